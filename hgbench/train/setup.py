"""Run setup: what one training run needs, checked and built before its first step.

Two stages, in the order the engine (:func:`hgbench.train.loop.train_variant`) needs them:

* :func:`target_run` checks the request before any work and says which run it is and where
  it trains (:class:`RunTarget`: the variant, the protocol as loaded and as run, the dataset,
  the process's rank, the device, the per-rank batch and the run folder);
* :func:`set_up_run`, once the run's lock is held and the run is not complete, builds what
  its steps need (:class:`RunSetup`: the training and validation sets, the steps, the model,
  optimiser and learning-rate schedule). The global generator is seeded with the protocol's
  seed first, so the model's initial weights are a function of the seed; a resumed run then
  replaces them, and every generator, from its checkpoint (:mod:`hgbench.train.state`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from hgbench.config import Protocol, VariantSpec, check_compatible
from hgbench.data import make_dataset
from hgbench.data.fingerprint import DataFingerprint, training_data
from hgbench.models import create_model
from hgbench.paths import CHECKPOINT, run_dir
from hgbench.records.key import protocol_hash, spec_hash
from hgbench.train.device import check_device
from hgbench.train.distributed import (
    DistInfo,
    convert_sync_batchnorm,
    device_for_rank,
    dist_info_from_env,
    per_rank_batch,
)
from hgbench.train.optim import build_optimizer, build_scheduler
from hgbench.train.sampler import TrainSampler
from hgbench.train.step import prepare_model


def run_folder(spec: VariantSpec, protocol: Protocol, dataset: str, results_dir: str | Path) -> Path:
    """The run folder of ``spec`` under ``protocol`` (as loaded, before the variant's
    overrides) on ``dataset`` (:func:`hgbench.paths.run_dir`)."""
    return run_dir(Path(results_dir), dataset, protocol.name, protocol_hash(protocol), spec.name, spec_hash(spec))


@dataclasses.dataclass(frozen=True)
class RunTarget:
    """Which run this process trains, and where (:func:`target_run`).

    Attributes:
        spec: the variant. protocol: the protocol as loaded (it keys the run folder and the
            record's ``protocol_hash``). settings: the protocol as run, with the variant's
            overrides (optimiser, batch size). dataset, data_root: the data.
        info: this process's rank in the run. device: its device. rank_batch: its share of
            every global batch. folder: the run folder.
        data: the fingerprint of the data the run reads (its train and val splits,
            :func:`hgbench.data.fingerprint.training_data`): part of the run's identity
            (:func:`check_same_data`); None where a caller built the target without it.
    """

    spec: VariantSpec
    protocol: Protocol
    settings: Protocol
    dataset: str
    data_root: str | Path | None
    info: DistInfo
    device: torch.device
    rank_batch: int
    folder: Path
    data: DataFingerprint | None = None

    @property
    def checkpoint(self) -> Path:
        """The run's checkpoint file (``<folder>/checkpoint.pt``)."""
        return self.folder / CHECKPOINT

    @property
    def writer(self) -> bool:
        """Whether this process writes the run's files (rank 0)."""
        return self.info.is_main


def _device_of_run(protocol: Protocol, info: DistInfo, device: Any, checked: bool) -> torch.device:
    """This process's device, checked against the protocol's precision and compile settings
    (:func:`hgbench.train.device.check_device`) unless ``checked`` says a caller did so
    already; with several processes, each rank's own GPU is checked here (a caller checked
    the current one)."""
    if info.distributed:
        # a torch.device of type cuda was resolved by a caller's check to the current GPU: "cuda" is meant
        as_given = "cuda" if isinstance(device, torch.device) and device.type == "cuda" else device
        return check_device(device_for_rank(info, as_given), protocol)
    if checked and isinstance(device, torch.device):
        return device
    return check_device(device, protocol)


def target_run(
    spec: VariantSpec,
    protocol: Protocol,
    dataset: str,
    data_root: str | Path | None,
    results_dir: str | Path,
    device: str | torch.device | None,
    checked: bool = False,
) -> RunTarget:
    """Check a training request before any work and say which run it is.

    Args:
        device: as :func:`hgbench.train.loop.train_variant`'s.
        checked: the caller already ran :func:`hgbench.config.check_compatible` and
            :func:`hgbench.train.device.check_device` (``device`` is the latter's result), as
            :func:`hgbench.train.launch.plan_training` does: they are not run again.

    The data folder is fingerprinted here (:func:`hgbench.data.fingerprint.training_data`:
    annotation files hashed, images listed with their sizes), so that a complete run on other
    data is told apart (:func:`check_same_data`).

    Raises:
        ConfigError: the variant cannot be trained under the protocol. DeviceError: the
            device or its precision. DistributedError: the launcher's environment, or a
            global batch that does not divide over the processes. ValueError: an unknown
            dataset, or one read from a folder without ``data_root``. DatasetError: its
            annotation file exists but cannot be read.
    """
    if not checked:
        check_compatible(spec, protocol)
    info = dist_info_from_env()
    dev = _device_of_run(protocol, info, device, checked)
    settings = protocol.with_overrides(spec.optimizer, spec.batch_size)
    where = f"protocol {protocol.name}" + (
        f" with variant {spec.name}'s batch_size" if spec.batch_size is not None else ""
    )
    rank_batch = per_rank_batch(settings.batch_size, info.world_size, where)
    folder = run_folder(spec, protocol, dataset, results_dir)
    data = training_data(dataset, data_root)
    return RunTarget(spec, protocol, settings, dataset, data_root, info, dev, rank_batch, folder, data)


class DataMismatchError(ValueError):
    """A complete run (or its checkpoint) that read other data than the data asked for: the
    message names the run folder, both data and the two ways on (``--force``, another
    ``--results``); nothing was changed."""


def check_same_data(found: Any, target: RunTarget, what: str = "complete run") -> None:
    """Refuse to reuse a complete run (its train record) or resume a checkpoint (its dict)
    ``found`` that read other data than ``target`` (their ``data_fingerprint`` differ,
    :data:`hgbench.records.identity.DATA`). A record or checkpoint written before the field
    (None) or a target without a fingerprint is accepted, as before.

    Raises:
        DataMismatchError: naming the run folder, the data of each and how to go on.
    """
    refuse_other_data(found, target.data, target.folder, what)


def refuse_other_data(found: Any, data: DataFingerprint | None, folder: Path, what: str = "complete run") -> None:
    """:func:`check_same_data` for a caller without a :class:`RunTarget` (the Slurm launcher,
    which skips complete runs before it submits): ``found`` read ``data`` for run ``folder``.

    Raises:
        DataMismatchError: as :func:`check_same_data`.
    """
    get = found.get if hasattr(found, "get") else (lambda f, d=None: getattr(found, f, d))
    old = get("data_fingerprint")
    if old is None or data is None or old == data.digest:
        return
    counts = " + ".join(f"{n:,} {s}" for s, n in (get("data_images") or {}).items())
    before = f"{get('data_folder') or get('data_root') or 'another folder'} (fingerprint {old}" + (
        f", {counts} images)" if counts else ")"
    )
    kept = "the complete run is kept as *.previous" if what == "complete run" else "from the start"
    raise DataMismatchError(
        f"{folder}: the {what} there was trained on {before}, not on the data asked for, "
        f"{data.describe()}; pass --force to train it again on this data ({kept}), or another --results "
        "folder to keep both"
    )


@dataclasses.dataclass
class RunSetup:
    """What a run's steps need (:func:`set_up_run`).

    Attributes:
        target: the run. train_set, val_set: the training set and the validation set (a
            subset when the protocol caps it). keypoints: the dataset's keypoint layout.
        steps_per_epoch, total_steps: optimiser steps per epoch and in the run.
        positions: the run's batch sampler from step 0 (its :meth:`position` goes into every
            checkpoint). model: the bare network on the device (not wrapped for data
            parallelism). optimizer, scheduler: built from the protocol as run (scheduler
            None for a constant learning rate).
    """

    target: RunTarget
    train_set: Any
    val_set: Any
    keypoints: Any
    steps_per_epoch: int
    total_steps: int
    positions: TrainSampler
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any


def validation_set(protocol: Protocol, dataset: str, data_root, **kw):
    """The validation split, cut to ``protocol.val_max_samples`` samples evenly spaced over it
    (so a small validation set still spans the whole split)."""
    ds = make_dataset(dataset, data_root, "val", **kw)
    n = protocol.val_max_samples
    if n is not None and n < len(ds):
        ds_sub = Subset(ds, np.linspace(0, len(ds) - 1, n).round().astype(int).tolist())
        ds_sub.keypoints = ds.keypoints  # type: ignore[attr-defined]
        return ds_sub
    return ds


def skipped_samples(*datasets) -> list[tuple[str, str]]:
    """``(file, "missing" | "corrupt")`` of every sample left out with ``bad_samples="skip"``."""
    return [item for ds in datasets for item in getattr(getattr(ds, "dataset", ds), "skipped", [])]


def set_up_run(target: RunTarget, bad_samples: str = "error") -> RunSetup:
    """Seed the global generator with the protocol's seed, then build the run's data, model,
    optimiser and schedule (module docstring). ``torch.backends.cudnn.benchmark`` (on for CUDA
    unless deterministic) is the run's: :func:`hgbench.train.device.training_flags` sets and restores it.

    Raises:
        ValueError: a run without a step (``epochs`` or ``steps_per_epoch`` 0, a split smaller
            than a batch). DatasetError: the dataset cannot be built.
    """
    p, dev, info = target.settings, target.device, target.info
    torch.manual_seed(p.seed)
    data_kw = dict(
        input_size=p.input_size,
        output_size=p.output_size,
        sigma=p.heatmap_sigma,
        sigma_occluded=p.heatmap_sigma_occluded,
    )
    train_set = make_dataset(
        target.dataset, target.data_root, "train", augmentation=p.augmentation, bad_samples=bad_samples, **data_kw
    )
    val_set = validation_set(p, target.dataset, target.data_root, bad_samples=bad_samples, **data_kw)
    steps_per_epoch = p.steps_per_epoch or len(train_set) // p.batch_size
    total = p.epochs * steps_per_epoch
    if total < 1:
        raise ValueError(
            f"protocol {p.name}: {p.epochs} epoch(s) of {steps_per_epoch} step(s) is no training "
            f"(training split {len(train_set)} samples, batch_size {p.batch_size}); set epochs and steps_per_epoch >= 1"
        )
    # this rank's share of every batch; a split smaller than a batch fails here, before work
    positions = TrainSampler(len(train_set), target.rank_batch, p.seed, num_replicas=info.world_size, rank=info.rank)
    spec = target.spec
    model = prepare_model(
        create_model(spec, train_set.keypoints.num_joints, input_size=p.input_size), dev, p.channels_last
    )
    if info.distributed and p.sync_batchnorm:
        model = convert_sync_batchnorm(model, dev)
    optimizer = build_optimizer(p.optimizer, model.parameters(), dev.type)
    scheduler = build_scheduler(p.schedule, optimizer)
    return RunSetup(
        target, train_set, val_set, train_set.keypoints, steps_per_epoch, total, positions, model, optimizer, scheduler
    )
