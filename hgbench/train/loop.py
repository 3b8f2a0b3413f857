"""The training engine: fit one variant under one protocol on one device, resumable at any
step, and write its run record.

A run lives in :func:`hgbench.paths.run_dir` (``<results>/runs/<dataset>/<protocol>-<hash>/
<variant>-<hash>/``, keyed by the protocol as loaded and the variant's spec, so every variant
of one protocol shares the protocol folder and a file changed under the same name is a new
run): ``checkpoint.pt`` (:mod:`hgbench.train.checkpoint`) and ``train.json``, the run record,
written once the run is complete. A variant whose record is complete is skipped unless
``force``.

**The loop.** Optimiser steps are counted over the whole run; epoch ``e`` ends after step
``(e + 1) * steps_per_epoch`` with the epoch's mean training loss, a validation (every
``val_every`` epochs and after the last) and the learning-rate schedule's step. Batches come
from :mod:`hgbench.train.sampler` (batch ``k`` is a pure function of ``k``), each step from
:class:`hgbench.train.step.TrainStep` (autocast, channels_last, ``torch.compile``, foreach or
fused optimisers, no host synchronisation: losses are summed on the device and read when a
progress line is logged and at the end of each epoch). On CUDA,
``torch.backends.cudnn.benchmark`` picks the fastest convolution algorithms for the fixed
training shapes.

**Checkpoints** are written every ``checkpoint_every_steps`` steps, every
``checkpoint_every_min`` minutes of training and at the end of every epoch (after its
validation), atomically. A run killed at any moment and started again continues from its
last checkpoint and, on the CPU with a fixed thread count, reaches the same weights, losses
and validation figures as a run never interrupted (bit for bit: the data order, every
sample's augmentation and every generator are restored). On CUDA the result is as
reproducible as the kernels (``cudnn.benchmark`` and atomics make it close, not identical).

**Signals.** SIGTERM and SIGUSR1 (what Slurm sends before a preemption or the time limit,
``sbatch --signal``) and SIGINT (Ctrl-C) make the run save a checkpoint after the current
step and raise :class:`TrainingInterrupted`, whose ``exit_code`` is ``128 + signal number``
(the shell's convention: 143 for SIGTERM, 138 for SIGUSR1, 130 for SIGINT). A second signal
acts as it would without hgbench (a second Ctrl-C interrupts at once; the checkpoint on disk
is then the previous one, never a partial file).

**Times.** ``train_time_s`` is the wall-clock time of the optimisation steps (data loading
included, validation and checkpoint writes not), ``wall_time_s`` everything from start to
end; both add up across resumes (the time between a run's last checkpoint and its kill is
lost). ``samples_per_s`` is ``steps * batch_size / train_time_s``; ``data_wait_fraction``
the part of ``train_time_s`` spent waiting for the next batch.

**One owner.** The run folder's lock (:func:`hgbench.train.lock.run_lock`) is held from the
start to the end: a second ``train`` of the same run while one is alive raises
:class:`hgbench.train.lock.RunLockedError` (a ``ValueError``: the CLI exits with status 2).

**Data parallel** (``torchrun --nproc-per-node N -m hgbench train ...``, or ``srun`` tasks:
:func:`hgbench.train.distributed.dist_info_from_env` reads the ranks). With a world of N > 1
processes the engine joins a process group (NCCL on CUDA, gloo on the CPU) and trains a
``DistributedDataParallel`` model; the protocol's ``batch_size`` is the global batch, each rank
taking ``batch_size / N`` samples per step (a ``ValueError`` before any work if N does not
divide it). Rank ``r`` takes ``perm[r::N]`` of each pass's seeded permutation
(:class:`hgbench.train.sampler.TrainSampler`), so the ranks' samples of step ``k`` together are
exactly the single process's batch ``k``: with ``sync_batchnorm`` (batch statistics over the
global batch) the run follows the single-process run to rounding. Every rank reads the same
checkpoint when it resumes (any world size may resume any checkpoint); rank 0 alone holds the
lock and writes checkpoints, the record and progress. Validation runs on rank 0 alone with the
bare model, and its result is broadcast to the others (they wait for it; the plateau schedule
steps on every rank with it). After every step the ranks agree on a stop signal and on a
checkpoint due by time (a maximum over the ranks, through a gloo group, so no GPU wait), so all
stop or save at the same step; the epoch's mean training loss is averaged over the ranks
(progress lines show rank 0's share). The record states ``world_size``, ``backend`` and
``per_rank_batch_size``; the process group is left at the end.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset

import hgbench.config
from hgbench.accuracy.evaluate import evaluate_pck
from hgbench.config import Protocol, VariantSpec
from hgbench.data import make_dataset
from hgbench.models import count_parameters, create_model
from hgbench.paths import CHECKPOINT, TRAIN_RECORD, run_dir
from hgbench.records import RecordError, TrainRecord, read_record, utc_now, write_record
from hgbench.records.key import protocol_hash, spec_hash
from hgbench.records.provenance import collect_provenance
from hgbench.records.schema import new_record
from hgbench.train.checkpoint import capture_rng, check_resumable, read_checkpoint, restore_rng, save_checkpoint
from hgbench.train.device import check_device, device_label, synchronize
from hgbench.train.distributed import (
    DistInfo,
    backend_for,
    broadcast_from_main,
    control_group,
    convert_sync_batchnorm,
    destroy_distributed,
    device_for_rank,
    dist_info_from_env,
    init_distributed,
    max_over_ranks,
    mean_over_ranks_,
    per_rank_batch,
    slurm_job_id,
)
from hgbench.train.lock import RunLockedError, run_lock
from hgbench.train.optim import build_optimizer, build_scheduler
from hgbench.train.progress import ProgressFn
from hgbench.train.sampler import TrainSampler, make_train_loader
from hgbench.train.step import TrainStep, prepare_model

RECORD = TRAIN_RECORD
STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")
DEFAULT_LOG_EVERY_STEPS = 500
DEFAULT_LOG_EVERY_S = 30.0


class TrainingInterrupted(Exception):
    """A stop signal ended the run after a checkpoint (module docstring, "Signals").

    Attributes:
        signal: its name (``"SIGTERM"``). exit_code: ``128 + signal number``.
        checkpoint: the checkpoint written (None when the run was in phase 1, which is not
            checkpointed). step: optimiser steps done.
    """

    def __init__(self, variant: str, signum: int, step: int, total: int, checkpoint: Path | None) -> None:
        self.signal = signal.Signals(signum).name
        self.exit_code = 128 + signum
        self.checkpoint, self.step = checkpoint, step
        saved = (
            f"checkpoint saved at step {step}/{total}: {checkpoint}"
            if checkpoint is not None
            else "stopped in phase 1 (autoencoder pretraining), which is not checkpointed and starts again"
        )
        super().__init__(
            f"{variant}: {self.signal} received; {saved}; run the same command again to resume "
            f"(exit status {self.exit_code})"
        )


class _StopSignals:
    """While active (in the main thread), SIGTERM, SIGUSR1 and SIGINT set :attr:`received`
    instead of ending the process; the first one also puts the previous handlers back, so a
    second signal acts as usual."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                if hasattr(signal, name):
                    sig = getattr(signal, name)
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    def __exit__(self, *exc: Any) -> None:
        self._restore()


def completed_record(path: Path) -> TrainRecord | None:
    """The complete training record in run folder ``path``, or None."""
    try:
        record = read_record(Path(path) / RECORD)
    except RecordError:
        return None
    return record if record.get("complete") else None


def run_folder(spec: VariantSpec, protocol: Protocol, dataset: str, results_dir: str | Path) -> Path:
    """The run folder of ``spec`` under ``protocol`` (as loaded, before the variant's
    overrides) on ``dataset`` (:func:`hgbench.paths.run_dir`)."""
    return run_dir(Path(results_dir), dataset, protocol.name, protocol_hash(protocol), spec.name, spec_hash(spec))


def _validation_set(protocol: Protocol, dataset: str, data_root, **kw):
    ds = make_dataset(dataset, data_root, "val", **kw)
    n = protocol.val_max_samples
    if n is not None and n < len(ds):
        # evenly spaced, so a small validation set still spans the whole split
        ds_sub = Subset(ds, np.linspace(0, len(ds) - 1, n).round().astype(int).tolist())
        ds_sub.keypoints = ds.keypoints  # type: ignore[attr-defined]
        return ds_sub
    return ds


def _skipped(*datasets) -> list[tuple[str, str]]:
    """``(file, "missing" | "corrupt")`` of every sample left out with ``bad_samples="skip"``."""
    return [item for ds in datasets for item in getattr(getattr(ds, "dataset", ds), "skipped", [])]


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


@dataclasses.dataclass
class _Progress:
    """What the run has done so far (saved in every checkpoint)."""

    step: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    train_time_s: float = 0.0
    wall_time_s: float = 0.0
    data_wait_s: float = 0.0
    epoch_loss_sum: torch.Tensor | None = None  # float64 on the device: sum of this epoch's step losses
    pretrain: dict | None = None
    sessions: list[dict] = dataclasses.field(default_factory=list)


def train_record_body(
    *,
    spec: VariantSpec,
    protocol: Protocol,
    run_protocol: Protocol,
    dataset: str,
    data_root,
    split: dict,
    keypoints,
    parameters: int,
    progress: _Progress,
    steps_per_epoch: int,
    device: torch.device,
    checkpoint: Path,
    world_size: int = 1,
    backend: str | None = None,
    per_rank_batch_size: int | None = None,
) -> dict:
    """The body of a complete run's ``train`` record (the one place it is assembled).

    Fields: ``variant``, ``spec`` (asdict), ``spec_hash``, ``protocol`` (name),
    ``protocol_hash`` (of the protocol as loaded), ``protocol_as_loaded`` and
    ``protocol_settings`` (as run: with the variant's overrides), ``overrides``, ``dataset``,
    ``data_root``, ``split`` (sizes), ``keypoints``, ``num_joints``, ``parameters``,
    ``train_time_s``, ``wall_time_s`` (seconds, summed across resumes),
    ``samples_per_s``, ``data_wait_fraction``, ``device`` (of the last session),
    ``precision``, ``channels_last``, ``compile``, ``tf32`` (torch's TF32 switches for
    cuDNN and matmuls on CUDA, None on the CPU), ``epochs``, ``steps_per_epoch``,
    ``steps``, ``batch_size`` (the global batch), ``world_size`` (processes of the last
    session), ``backend`` (``"nccl"``/``"gloo"``, None for one process), ``per_rank_batch_size``,
    ``slurm_job_id`` (:func:`hgbench.train.distributed.slurm_job_id`, None outside Slurm),
    ``history`` (per epoch: ``epoch``, ``steps``, ``train_loss`` (mean over the ranks),
    ``lr``, and ``val`` where validated), ``pretrain``, ``final`` (the last validation),
    ``checkpoint`` (path), ``sessions`` (one per start or resume: ``device``, ``world_size``,
    ``slurm_job_id``, ``start_step``, ``end_step``, ``train_time_s``), ``complete``,
    ``provenance``.
    """
    p = run_protocol
    last_val = next((h["val"] for h in reversed(progress.history) if "val" in h), None)
    train_time = progress.train_time_s
    return {
        "variant": spec.name,
        "spec": dataclasses.asdict(spec),
        "spec_hash": spec_hash(spec),
        "protocol": protocol.name,
        "protocol_hash": protocol_hash(protocol),
        "protocol_as_loaded": dataclasses.asdict(protocol),
        "protocol_settings": dataclasses.asdict(p),
        "overrides": spec.overrides,
        "dataset": dataset,
        "data_root": str(data_root) if data_root else None,
        "split": split,
        "keypoints": keypoints.name,
        "num_joints": keypoints.num_joints,
        "parameters": parameters,
        "train_time_s": train_time,
        "wall_time_s": progress.wall_time_s,
        "samples_per_s": progress.step * p.batch_size / train_time if train_time > 0 else None,
        "data_wait_fraction": progress.data_wait_s / train_time if train_time > 0 else None,
        "device": device_label(device),
        "precision": p.precision,
        "channels_last": p.channels_last,
        "compile": p.compile,
        # torch's TF32 switches on CUDA (cuDNN convolutions default to TF32 on Ampere and later, even in "fp32")
        "tf32": (
            {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32}
            if device.type == "cuda"
            else None
        ),
        "epochs": p.epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": progress.step,
        "batch_size": p.batch_size,
        "world_size": world_size,
        "backend": backend,
        "per_rank_batch_size": per_rank_batch_size if per_rank_batch_size is not None else p.batch_size // world_size,
        "slurm_job_id": slurm_job_id(),
        "history": progress.history,
        "pretrain": progress.pretrain,
        "final": last_val,
        "checkpoint": str(checkpoint),
        "sessions": progress.sessions,
        "complete": True,
        "provenance": collect_provenance(),
    }


def _set_aside(out_dir: Path) -> None:
    """Before a forced run: keep a complete run's record and checkpoint as ``*.previous``
    (outside every reader's ``*.json`` scan) instead of overwriting the checkpoint the record
    describes while the new run is still unfinished."""
    if completed_record(out_dir) is not None:
        for name in (RECORD, CHECKPOINT):
            if (out_dir / name).is_file():
                shutil.move(out_dir / name, out_dir / f"{name}.previous")


@contextmanager
def _run_context(info: DistInfo, device: torch.device, out_dir: Path) -> Iterator[Any]:
    """Around one run: join the process group (several processes), hold the run folder's lock
    (rank 0; every rank raises :class:`RunLockedError` when it is taken), yield the control
    group (:func:`hgbench.train.distributed.control_group`; None for one process), and leave
    the process group at the end if this call joined it."""
    joined = info.distributed and not torch.distributed.is_initialized()
    init_distributed(info, device)
    try:
        group = control_group()
        with ExitStack() as stack:
            refusal = None
            if info.is_main:
                try:
                    stack.enter_context(run_lock(out_dir))
                except RunLockedError as e:
                    refusal = (str(e.path), e.owner)
            refusal = broadcast_from_main(refusal, group)
            if refusal is not None:
                raise RunLockedError(Path(refusal[0]), refusal[1])
            yield group
    finally:
        if joined:
            destroy_distributed()


def train_variant(
    spec: VariantSpec,
    protocol: Protocol,
    dataset: str = "synthetic",
    data_root: str | Path | None = None,
    results_dir: str | Path = "results",
    force: bool = False,
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
    log_every_steps: int = DEFAULT_LOG_EVERY_STEPS,
    log_every_s: float = DEFAULT_LOG_EVERY_S,
    bad_samples: str = "error",
) -> TrainRecord | dict:
    """Train ``spec`` under ``protocol`` (with the variant's overrides) on ``dataset`` on
    ``device``; resume from the run's checkpoint when there is one; data-parallel when started
    by torchrun or srun with several processes (module docstring).

    Args:
        device: ``cpu``, ``cuda`` or ``cuda:N``; None: CUDA when available. With several
            processes ``cuda`` (or a CUDA ``torch.device``, as a caller's
            :func:`hgbench.train.device.check_device` resolves it) is each rank's GPU
            (:func:`hgbench.train.distributed.device_for_rank`); the text ``cuda:N`` is refused.
        progress: ``progress(event, info)`` (:mod:`hgbench.train.progress`).
        bad_samples: ``"error"`` (a missing or corrupt image stops the run, naming it) or
            ``"skip"`` (left out, counted in the record's ``split.skipped_samples``).
        log_every_steps, log_every_s: a ``"log"`` event (the loss read from the device)
            every this many steps or seconds, whichever comes first, and at each epoch end.
        force: train again from scratch even if the run is complete or has a checkpoint (a
            complete run's record and checkpoint are kept as ``*.previous``).

    Returns:
        The run record (:class:`hgbench.records.TrainRecord` of :func:`train_record_body`,
        also written to ``train.json``); its extra field ``skipped`` is True when a complete
        run was found and ``force`` is False. A rank other than 0 gets the same record,
        unwritten (its ``path`` None).

    Raises:
        DeviceError: the device does not exist or cannot run the protocol's precision
            (before any work).
        ConfigError: the variant cannot be trained under the protocol.
        DistributedError: the launcher's environment is inconsistent, or the global batch
            does not divide over the processes (before any work).
        RunLockedError: another live process trains this run.
        CheckpointError: the run's checkpoint is unreadable or belongs to another run.
        ValueError: a run without a step (``epochs`` or ``steps_per_epoch`` 0, a split
            smaller than a batch); DatasetError: the dataset cannot be built.
        TrainingInterrupted: SIGTERM, SIGUSR1 or SIGINT arrived (on any rank); a checkpoint
            was saved.
    """
    wall_start = time.perf_counter()
    check_compatible = getattr(hgbench.config, "check_compatible", None)
    if check_compatible is not None:
        check_compatible(spec, protocol)
    info = dist_info_from_env()
    if info.distributed:
        # a torch.device of type cuda was resolved by a caller's check to the current GPU: "cuda" is meant
        as_given = "cuda" if isinstance(device, torch.device) and device.type == "cuda" else device
        dev = check_device(device_for_rank(info, as_given), protocol)
    else:
        dev = check_device(device, protocol)
    p = protocol.with_overrides(spec.optimizer, spec.batch_size)
    where = f"protocol {protocol.name}" + (
        f" with variant {spec.name}'s batch_size" if spec.batch_size is not None else ""
    )
    rank_batch = per_rank_batch(p.batch_size, info.world_size, where)
    out_dir = run_folder(spec, protocol, dataset, results_dir)
    ckpt_path = out_dir / CHECKPOINT

    with _run_context(info, dev, out_dir) as group:
        writer = info.is_main
        done = broadcast_from_main(completed_record(out_dir) if writer and not force else None, group)
        if done is not None:
            return done.model_copy(update={"skipped": True})

        torch.manual_seed(p.seed)
        data_kw = dict(
            input_size=p.input_size,
            output_size=p.output_size,
            sigma=p.heatmap_sigma,
            sigma_occluded=p.heatmap_sigma_occluded,
        )
        train_set = make_dataset(
            dataset, data_root, "train", augmentation=p.augmentation, bad_samples=bad_samples, **data_kw
        )
        val_set = _validation_set(p, dataset, data_root, bad_samples=bad_samples, **data_kw)
        keypoints = train_set.keypoints
        steps_per_epoch = p.steps_per_epoch or len(train_set) // p.batch_size
        total = p.epochs * steps_per_epoch
        if total < 1:
            raise ValueError(
                f"protocol {p.name}: {p.epochs} epoch(s) of {steps_per_epoch} step(s) is no training "
                f"(training split {len(train_set)} samples, batch_size {p.batch_size}); set epochs and steps_per_epoch >= 1"
            )
        # this rank's share of every batch; a split smaller than a batch fails here, before work
        positions = TrainSampler(len(train_set), rank_batch, p.seed, num_replicas=info.world_size, rank=info.rank)

        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        model = prepare_model(create_model(spec, keypoints.num_joints, input_size=p.input_size), dev, p.channels_last)
        if info.distributed and p.sync_batchnorm:
            model = convert_sync_batchnorm(model, dev)
        optimizer = build_optimizer(p.optimizer, model.parameters(), dev.type)
        scheduler = build_scheduler(p.schedule, optimizer)
        identity = {
            "variant": spec.name,
            "spec": dataclasses.asdict(spec),
            "protocol_name": protocol.name,
            "protocol": dataclasses.asdict(p),
            "dataset": dataset,
        }

        state = _Progress()
        resumed, scaler_state = False, None
        if writer:
            for stale in out_dir.glob(f".{CHECKPOINT}.*.tmp"):
                stale.unlink(missing_ok=True)  # the temporary file of a write that was killed (atomic_write_bytes)
        if force:
            if writer:
                _set_aside(out_dir)
        elif broadcast_from_main(ckpt_path.is_file(), group):  # every rank resumes from rank 0's checkpoint
            ckpt = read_checkpoint(ckpt_path)
            check_resumable(ckpt, ckpt_path, identity)
            model.load_state_dict(ckpt["model_state"])
            optimizer.load_state_dict(ckpt["optimizer_state"])
            if scheduler is not None:
                scheduler.load_state_dict(ckpt["scheduler_state"])
            scaler_state = ckpt["scaler_state"]
            state = _Progress(
                step=ckpt["step"],
                history=ckpt["history"],
                train_time_s=ckpt["train_time_s"],
                wall_time_s=ckpt["wall_time_s"],
                data_wait_s=ckpt["data_wait_s"],
                pretrain=ckpt["pretrain"],
                epoch_loss_sum=ckpt["epoch_loss_sum"],
                sessions=ckpt["sessions"],
            )
            restore_rng(ckpt["rng"])
            resumed = True
        state.epoch_loss_sum = (
            state.epoch_loss_sum if state.epoch_loss_sum is not None else torch.zeros((), dtype=torch.float64)
        ).to(dev)
        wall_before = state.wall_time_s
        session = {
            "device": device_label(dev),
            "world_size": info.world_size,
            "slurm_job_id": slurm_job_id(),
            "start_step": state.step,
            "end_step": state.step,
            "train_time_s": 0.0,
        }
        state.sessions = [*state.sessions, session]
        emit = progress if (progress is not None and writer) else (lambda event, data: None)
        train_step: TrainStep | None = None  # built after phase 1, around the data-parallel model

        def save(reason: str) -> None:
            """Checkpoint (rank 0 writes; every rank calls it at the same step)."""
            mean_over_ranks_(state.epoch_loss_sum)  # one accumulator for the run, whichever rank resumes it
            state.wall_time_s = wall_before + time.perf_counter() - wall_start
            session["end_step"] = state.step
            if writer:
                save_checkpoint(
                    ckpt_path,
                    {
                        **identity,
                        "protocol_hash": protocol_hash(protocol),
                        "spec_hash": spec_hash(spec),
                        "num_joints": keypoints.num_joints,
                        "model_state": model.state_dict(),
                        "optimizer_state": optimizer.state_dict(),
                        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
                        "scaler_state": train_step.scaler.state_dict(),
                        "step": state.step,
                        "sampler": positions.position(state.step),
                        "epoch": len(state.history),
                        "epoch_loss_sum": state.epoch_loss_sum.detach().cpu(),
                        "history": state.history,
                        "train_time_s": state.train_time_s,
                        "wall_time_s": state.wall_time_s,
                        "data_wait_s": state.data_wait_s,
                        "pretrain": state.pretrain,
                        "sessions": state.sessions,
                        "rng": capture_rng(),
                    },
                )
                emit("checkpoint", {"step": state.step, "reason": reason, "path": str(ckpt_path)})

        emit(
            "start",
            {
                "variant": spec.name,
                "total_steps": total,
                "done_steps": state.step,
                "epochs": p.epochs,
                "device": device_label(dev),
                "precision": p.precision,
                "resumed": resumed,
                "world_size": info.world_size,
            },
        )
        with _StopSignals() as stop:

            def agreed_stop(checkpoint_due: bool = False) -> tuple[int | None, bool]:
                """(the stop signal any rank received, or None; whether any rank's checkpoint is due)."""
                signum, due = max_over_ranks([stop.received or 0, checkpoint_due], group)
                return signum or None, bool(due)

            if spec.pretrain is not None and state.pretrain is None:
                # phase 1 of a two-phase training (hgbench.train.pretrain), on every rank alike; a resumed run already had it
                from hgbench.train.pretrain import pretrain_autoencoder

                state.pretrain = pretrain_autoencoder(
                    model,
                    train_set,
                    spec.pretrain,
                    p,
                    emit,
                    device=dev,
                    should_stop=lambda: agreed_stop()[0] is not None,
                )
                if state.pretrain is None:
                    raise TrainingInterrupted(spec.name, agreed_stop()[0] or stop.received, state.step, total, None)

            # wrapped after phase 1: DistributedDataParallel starts every rank from rank 0's weights and buffers
            wrapped = (
                DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
                if info.distributed
                else model
            )
            train_step = TrainStep(wrapped, optimizer, spec.supervision, dev, p.precision, p.channels_last, p.compile)
            if scaler_state is not None:
                train_step.scaler.load_state_dict(scaler_state)

            sampler = TrainSampler(
                len(train_set),
                rank_batch,
                p.seed,
                start=state.step,
                num_batches=total - state.step,
                num_replicas=info.world_size,
                rank=info.rank,
            )
            batches = iter(make_train_loader(train_set, sampler, p.num_workers, pin_memory=dev.type == "cuda"))
            segment = last_ckpt = (
                time.perf_counter()
            )  # training time runs in segments between checkpoints and validations
            window_steps, window_wait, window_time = 0, 0.0, 0.0
            window_loss = torch.zeros((), dtype=torch.float64, device=dev)

            def close_segment() -> None:
                nonlocal segment, window_time
                now = time.perf_counter()
                state.train_time_s += now - segment
                session["train_time_s"] += now - segment
                window_time += now - segment
                segment = now

            def log(epoch: int) -> None:
                nonlocal window_steps, window_wait, window_time
                loss = (
                    float(window_loss) / window_steps
                )  # the only read of a device value between epochs (rank 0's share)
                close_segment()
                rate = (
                    (state.step - session["start_step"]) / session["train_time_s"]
                    if session["train_time_s"] > 0
                    else 0.0
                )
                emit(
                    "log",
                    {
                        "variant": spec.name,
                        "epoch": epoch + 1,
                        "epochs": p.epochs,
                        "step": state.step,
                        "total_steps": total,
                        "loss": loss,
                        "samples_per_s": window_steps * p.batch_size / max(window_time, 1e-9),
                        "data_wait": min(window_wait / max(window_time, 1e-9), 1.0),
                        "eta_s": (total - state.step) / rate if rate > 0 else None,
                        "lr": _lr(optimizer),
                    },
                )
                window_loss.zero_()
                window_steps, window_wait, window_time = 0, 0.0, 0.0

            while len(state.history) < p.epochs:
                epoch = len(state.history)
                epoch_end = (epoch + 1) * steps_per_epoch
                wrapped.train()
                segment = time.perf_counter()
                stop_signal, _ = agreed_stop()
                while state.step < epoch_end and stop_signal is None:
                    t0 = time.perf_counter()
                    batch = next(batches)
                    wait = time.perf_counter() - t0
                    loss = train_step(batch)
                    state.epoch_loss_sum += loss
                    window_loss += loss
                    state.step += 1
                    window_steps += 1
                    state.data_wait_s += wait
                    window_wait += wait
                    emit("step", {"step": state.step})
                    now = time.perf_counter()
                    if window_steps >= log_every_steps or window_time + now - segment >= log_every_s:
                        log(epoch)
                    by_steps = state.step % p.checkpoint_every_steps == 0
                    stop_signal, by_time = agreed_stop(now - last_ckpt >= 60 * p.checkpoint_every_min)
                    if (by_steps or by_time) and state.step < epoch_end and stop_signal is None:
                        synchronize(dev)
                        close_segment()
                        save("steps" if by_steps else "minutes")
                        segment = last_ckpt = time.perf_counter()
                synchronize(dev)
                close_segment()
                if stop_signal is not None:
                    save("signal")
                    raise TrainingInterrupted(spec.name, stop_signal, state.step, total, ckpt_path)
                if window_steps:
                    log(epoch)

                mean_over_ranks_(state.epoch_loss_sum)
                entry = {
                    "epoch": epoch + 1,
                    "steps": state.step,
                    "train_loss": float(state.epoch_loss_sum) / steps_per_epoch,
                    "lr": _lr(optimizer),
                }
                if (epoch + 1) % p.val_every == 0 or epoch + 1 == p.epochs:
                    val = None
                    if writer:  # rank 0 validates the bare model; the others wait for its result
                        result = evaluate_pck(
                            model,
                            val_set,
                            threshold=None,
                            batch_size=max(p.batch_size, 8),
                            supervision=spec.supervision,
                            skips=spec.eval_skips,
                            flip_test=p.flip_test,
                        )
                        val = result.to_dict()
                        emit(
                            "validate",
                            {
                                "variant": spec.name,
                                "epoch": epoch + 1,
                                "epochs": p.epochs,
                                "metric": result.metric,
                                "threshold": result.threshold,
                                "mean": result.mean,
                                "loss": result.loss,
                            },
                        )
                    entry["val"] = val = broadcast_from_main(val, group)
                    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and math.isfinite(val["mean"]):
                        scheduler.step(val["mean"])
                if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
                    scheduler.step()
                state.history = [*state.history, entry]
                state.epoch_loss_sum.zero_()
                save("epoch")
                last_ckpt = time.perf_counter()

        state.wall_time_s = wall_before + time.perf_counter() - wall_start
        body = train_record_body(
            spec=spec,
            protocol=protocol,
            run_protocol=p,
            dataset=dataset,
            data_root=data_root,
            split={"train": len(train_set), "val": len(val_set), "skipped_samples": _skipped(train_set, val_set)},
            keypoints=keypoints,
            parameters=count_parameters(model),
            progress=state,
            steps_per_epoch=steps_per_epoch,
            device=dev,
            checkpoint=ckpt_path,
            world_size=info.world_size,
            backend=backend_for(dev) if info.distributed else None,
            per_rank_batch_size=rank_batch,
        )
        emit("done", {"variant": spec.name, "train_time_s": state.train_time_s, "samples_per_s": body["samples_per_s"]})
        if not writer:
            return new_record("train", body, utc_now())  # the same record, unwritten (no path)
        return write_record(out_dir / RECORD, "train", body)
