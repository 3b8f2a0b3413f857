"""The training data pipeline: a resumable batch sampler, per-sample augmentation seeds and
the ``DataLoader`` around them.

**Order.** The training stream is a sequence of passes over the training split; pass ``p``
visits the samples in the permutation drawn from ``np.random.default_rng((seed, stream,
p))``, cut into batches of ``batch_size`` (the last, incomplete batch of a pass is dropped,
as ``DataLoader(drop_last=True)``). Batch ``k`` of the run is therefore a pure function of
``k``: a resumed run continues at the batch after the last one it consumed, whatever the
loader had prefetched, and the checkpoint only needs ``k`` (:meth:`TrainSampler.position`
says which pass and which batch of it that is). An epoch of ``steps_per_epoch`` steps need
not align with a pass.

**Augmentation.** Each sample's random augmentation is drawn from a generator seeded by
``(seed, stream, pass, index)`` (:meth:`hgbench.data.base.PoseDataset.item`), so that the
samples, and so the results, do not depend on ``num_workers`` or on which worker built them;
a dataset without ``item`` gets torch's global generator seeded the same way (forked, so the
caller's generator is left as it was).

**Distributed.** ``num_replicas`` / ``rank`` shard each pass's permutation as
``torch.utils.data.DistributedSampler`` does (``perm[rank::num_replicas]``, every shard cut
to the same length), so a data-parallel run over ``num_replicas`` processes sees each sample
of a pass once.

**Workers** ignore SIGINT, SIGTERM and SIGUSR1 (:func:`worker_init`): those signals are
meant for the training process, which saves a checkpoint and then shuts the workers down;
a worker killed by Ctrl-C in the same process group would otherwise fail the next batch.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

TRAIN_STREAM = 0
"""Seed stream of the protocol's training (``stream`` argument)."""
PRETRAIN_STREAM = 1
"""Seed stream of phase 1 of a two-phase training (:mod:`hgbench.train.pretrain`)."""

SampleKey = tuple[int, tuple[int, int, int, int]]
"""``(sample index, augmentation seed)``: what the sampler hands the dataset for one sample."""


class TrainSampler(Sampler[list[SampleKey]]):
    """Batches of ``(index, seed)`` keys, from batch ``start`` on (module docstring).

    Args:
        num_samples: samples in the training split.
        batch_size: samples per batch (per replica).
        seed: the protocol's seed (>= 0).
        start: the first batch to yield (the number of batches already consumed).
        num_batches: how many batches to yield; ``None``: for ever.
        stream: seed stream (:data:`TRAIN_STREAM`, :data:`PRETRAIN_STREAM`), so that two
            phases of one run draw different orders from one seed.
        num_replicas, rank: data-parallel sharding (1 and 0 for one process).

    Raises:
        ValueError: a pass holds no complete batch (``num_samples // num_replicas <
            batch_size``), a negative seed or start, or ``rank`` not below ``num_replicas``.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        start: int = 0,
        num_batches: int | None = None,
        stream: int = TRAIN_STREAM,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if seed < 0 or start < 0 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"TrainSampler: need seed >= 0, start >= 0 and 0 <= rank < num_replicas; "
                f"got {seed=}, {start=}, {rank=}, {num_replicas=}"
            )
        self.per_replica = num_samples // num_replicas
        self.batches_per_pass = self.per_replica // batch_size
        if self.batches_per_pass < 1:
            raise ValueError(
                f"the training split has {num_samples} samples: fewer than one batch of {batch_size}"
                + (f" per process ({num_replicas} processes)" if num_replicas > 1 else "")
                + "; use a smaller batch_size or a larger split"
            )
        self.num_samples, self.batch_size, self.seed, self.stream = num_samples, batch_size, seed, stream
        self.start, self.num_batches = start, num_batches
        self.num_replicas, self.rank = num_replicas, rank
        self._cached: tuple[int, np.ndarray] | None = None

    def permutation(self, pass_: int) -> np.ndarray:
        """This replica's ``(per_replica,)`` sample indices of pass ``pass_``, in order."""
        if self._cached is None or self._cached[0] != pass_:
            perm = np.random.default_rng((self.seed, self.stream, pass_)).permutation(self.num_samples)
            self._cached = (pass_, perm[self.rank :: self.num_replicas][: self.per_replica])
        return self._cached[1]

    def position(self, batch: int) -> dict[str, int]:
        """Where batch ``batch`` of the run lies: ``{"batch", "pass", "batch_in_pass",
        "batches_per_pass"}`` (for checkpoints and messages)."""
        return {
            "batch": batch,
            "pass": batch // self.batches_per_pass,
            "batch_in_pass": batch % self.batches_per_pass,
            "batches_per_pass": self.batches_per_pass,
        }

    def batch(self, k: int) -> list[SampleKey]:
        """Batch ``k`` of the run as ``(index, (seed, stream, pass, index))`` keys."""
        pass_, j = divmod(k, self.batches_per_pass)
        indices = self.permutation(pass_)[j * self.batch_size : (j + 1) * self.batch_size]
        return [(int(i), (self.seed, self.stream, pass_, int(i))) for i in indices]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        k = self.start
        while self.num_batches is None or k < self.start + self.num_batches:
            yield self.batch(k)
            k += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an endless TrainSampler has no length")
        return self.num_batches


class SeededSamples(Dataset):
    """``dataset`` read with ``(index, seed)`` keys (module docstring): item ``(i, s)`` is
    ``dataset.item(i, s)``, or ``dataset[i]`` under torch's global generator seeded from
    ``s`` for a dataset without ``item``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> dict:
        index, seed = key
        item = getattr(self.dataset, "item", None)
        if item is not None:
            return item(index, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence(list(seed)).generate_state(1, np.uint64)[0]))
            return self.dataset[index]


def worker_init(worker_id: int) -> None:
    """``worker_init_fn`` of the training loader: ignore SIGINT, SIGTERM and SIGUSR1
    (module docstring)."""
    for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def make_train_loader(
    dataset: Dataset, sampler: TrainSampler, num_workers: int = 0, pin_memory: bool = False, prefetch_factor: int = 2
) -> DataLoader:
    """The training ``DataLoader``: ``dataset`` read through :class:`SeededSamples` in the
    batches of ``sampler``; with ``num_workers`` > 0, decode and augmentation run in worker
    processes that stay alive for the whole run (``persistent_workers``) and keep
    ``prefetch_factor`` batches each ready; ``pin_memory`` (for a CUDA device) lets the
    batches be copied with ``non_blocking=True``.
    """
    workers = num_workers > 0
    return DataLoader(
        SeededSamples(dataset),
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=workers,
        prefetch_factor=prefetch_factor if workers else None,
        worker_init_fn=worker_init if workers else None,
    )
