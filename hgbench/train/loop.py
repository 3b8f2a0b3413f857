"""The training engine: fit one variant under one protocol on one device, resumable at any
step, and write its run record.

:func:`train_variant` runs the parts in order, each in a module named after what it holds:
the run's setup (:mod:`hgbench.train.setup`: checks, run folder, data, model, optimiser), its
training state (:mod:`hgbench.train.state`: restore from and save to the checkpoint), the
epochs (:mod:`hgbench.train.epoch`: steps, progress lines, checkpoints, stop signals from
:mod:`hgbench.train.signals`), the validation (:mod:`hgbench.train.validation`) and the
record (:mod:`hgbench.train.record`).

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
reproducible as the kernels (``cudnn.benchmark`` and atomics make it close, not identical);
with ``deterministic`` (``hgbench train --deterministic``: deterministic algorithms, no
``cudnn.benchmark``, cuBLAS's workspace setting; :func:`hgbench.train.device.training_flags`)
bit for bit too. The flags are set for the run and restored after it.

**Signals.** SIGTERM and SIGUSR1 (what Slurm sends before a preemption or the time limit,
``sbatch --signal``) and SIGINT (Ctrl-C) make the run save a checkpoint after the current
step and raise :class:`TrainingInterrupted`, whose ``exit_code`` is ``128 + signal number``
(the shell's convention: 143 for SIGTERM, 138 for SIGUSR1, 130 for SIGINT). A second signal
acts as it would without hgbench (a second Ctrl-C interrupts at once; the checkpoint on disk
is then the previous one, never a partial file).

**Times.** ``train_time_s`` is the wall-clock time of the optimisation steps (data loading
included, validation and checkpoint writes not), ``wall_time_s`` everything from start to
end; both add up across resumes (the time between a run's last checkpoint and its kill is
lost). ``samples_per_s`` is the steady rate: the first :data:`hgbench.train.epoch.WARMUP_STEPS`
steps of every session (compilation, cuDNN's autotuning, allocator growth) are left out of its
steps and its time (the record says how many, ``warmup_steps_excluded``; the rate over every
step is ``samples_per_s_all_steps``); ``data_wait_fraction`` the part of ``train_time_s`` spent
waiting for the next batch.

**Divergence.** A step whose loss is not a finite number stops the run with
:class:`hgbench.train.divergence.TrainingDiverged` (exit status 1, the step and the epoch
named): no checkpoint is written after it, and ``train.json`` says ``complete: false`` with
``diverged`` (:mod:`hgbench.train.divergence`).

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

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch

from hgbench.config import Protocol, VariantSpec
from hgbench.models import count_parameters
from hgbench.paths import TRAIN_RECORD
from hgbench.records import TrainRecord, utc_now, write_record
from hgbench.records.schema import new_record
from hgbench.tracking import track_training
from hgbench.train.device import deterministic_requested, training_flags
from hgbench.train.distributed import (
    DistInfo,
    backend_for,
    broadcast_from_main,
    control_group,
    destroy_distributed,
    init_distributed,
    lost_rank_error,
)
from hgbench.train.divergence import TrainingDiverged
from hgbench.train.epoch import EpochLoop
from hgbench.train.lock import RunLockedError, run_lock
from hgbench.train.progress import ProgressFn
from hgbench.train.record import train_record_body
from hgbench.train.setup import RunSetup, check_same_data, run_folder, set_up_run, skipped_samples, target_run
from hgbench.train.signals import STOP_SIGNALS, TrainingInterrupted
from hgbench.train.state import TrainState, checkpoint_identity, completed_record, previous_run_kept, start_state

__all__ = [
    "DEFAULT_LOG_EVERY_S",
    "DEFAULT_LOG_EVERY_STEPS",
    "RECORD",
    "STOP_SIGNALS",
    "TrainingDiverged",
    "TrainingInterrupted",
    "completed_record",
    "run_folder",
    "train_record_body",
    "train_variant",
]

RECORD = TRAIN_RECORD
DEFAULT_LOG_EVERY_STEPS = 500
DEFAULT_LOG_EVERY_S = 30.0


@contextmanager
def _run_context(info: DistInfo, device: torch.device, out_dir: Path) -> Iterator[Any]:
    """Around one run: join the process group (several processes), hold the run folder's lock
    (rank 0; every rank raises :class:`RunLockedError` when it is taken), yield the control
    group (:func:`hgbench.train.distributed.control_group`; None for one process), and leave
    the process group at the end if this call joined it. A collective broken by another rank's
    death is raised as :class:`hgbench.train.distributed.RankLostError`."""
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
            try:
                yield group
            except RuntimeError as e:  # a collective that broke: one line naming the rank, not its traceback
                lost = lost_rank_error(e, info, out_dir)
                if lost is None:
                    raise
                raise lost from None
    finally:
        if joined:
            destroy_distributed()


def _record(setup: RunSetup, state: TrainState, diverged: dict | None = None) -> TrainRecord:
    """The run record of the finished run: written to ``train.json`` by rank 0; the same
    record, unwritten (no path), on the other ranks. With ``diverged``
    (:meth:`hgbench.train.divergence.TrainingDiverged.record_field`) the run failed: the record
    says ``complete: false`` and holds it as ``diverged``."""
    t = setup.target
    body = train_record_body(
        spec=t.spec,
        protocol=t.protocol,
        run_protocol=t.settings,
        dataset=t.dataset,
        data_root=t.data_root,
        data=t.data,
        split={"train": len(setup.train_set), "val": len(setup.val_set),
               "skipped_samples": skipped_samples(setup.train_set, setup.val_set)},
        keypoints=setup.keypoints,
        parameters=count_parameters(setup.model),
        progress=state,
        steps_per_epoch=setup.steps_per_epoch,
        device=t.device,
        checkpoint=t.checkpoint,
        world_size=t.info.world_size,
        backend=backend_for(t.device) if t.info.distributed else None,
        per_rank_batch_size=t.rank_batch,
    )  # fmt: skip
    if diverged is not None:
        body.update(complete=False, diverged=diverged)
    if not t.writer:
        return new_record("train", body, utc_now())
    return write_record(t.folder / RECORD, "train", body)


def _run_epochs(epochs: EpochLoop, scaler_state: dict | None, resumed: bool) -> TrainRecord:
    """Train the session's epochs and return the run's record (:func:`_record`).

    Raises:
        TrainingDiverged: after writing the record of the failed run (``diverged``, not complete).
    """
    try:
        epochs.run(scaler_state, resumed)
    except TrainingDiverged as e:
        _record(epochs.setup, epochs.state, diverged=e.record_field())
        raise
    return _record(epochs.setup, epochs.state)


def _emitter(progress: ProgressFn | None, tracker: str | None, target, spec: VariantSpec, dataset: str) -> ProgressFn:
    """The run's progress callback: ``progress`` on rank 0 (nothing elsewhere), wrapped by the
    tracker's logging, if any (:func:`hgbench.tracking.track_training`)."""
    if not target.writer:
        return lambda event, data: None
    emit = progress if progress is not None else (lambda event, data: None)
    return track_training(tracker, target.folder, spec, target.settings, dataset, emit)


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
    *,
    checked: bool = False,
    tracker: str | None = None,
    deterministic: bool | None = None,
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
        bad_samples: ``"error"`` (a missing or corrupt image stops the run, naming it) or ``"skip"``
            (left out, counted in ``split.skipped_samples``).
        log_every_steps, log_every_s: a ``"log"`` event (the loss read from the device) every this
            many steps or seconds, whichever first, and at each epoch end.
        deterministic: deterministic kernels (:func:`hgbench.train.device.training_flags`: exact
            resume bit-identical on CUDA too, slower); None: ``$HGBENCH_DETERMINISTIC``, which
            ``hgbench train --deterministic`` sets. Recorded (``deterministic``, ``cudnn_benchmark``).
        force: train again from scratch even if the run is complete or has a checkpoint (a
            complete run's record and checkpoint are kept as ``*.previous``).
        checked: the caller (:func:`hgbench.train.launch.plan_training`, ``device`` its resolved
            ``torch.device``) checked variant, protocol and device (:func:`hgbench.train.setup.target_run`).
        tracker: ``tensorboard`` or ``mlflow`` logs the run there (rank 0), ``none`` nowhere; None:
            ``$HGBENCH_TRACKER`` (:mod:`hgbench.tracking`; a tracker's failure is a warning).

    Returns:
        The run record (:class:`hgbench.records.TrainRecord` of :func:`train_record_body`,
        also written to ``train.json``); its extra field ``skipped`` is True when a complete
        run was found and ``force`` is False. A rank other than 0 gets the same record,
        unwritten (its ``path`` None).

    Raises:
        DeviceError: the device does not exist or cannot run the protocol's precision.
        ConfigError: the variant cannot be trained under the protocol.
        DistributedError: an inconsistent launcher environment, or a global batch that does not
            divide over the processes (both before any work, as the two above).
        RunLockedError: another live process trains this run.
        CheckpointError: the run's checkpoint is unreadable or belongs to another run.
        ValueError: a run without a step (``epochs`` or ``steps_per_epoch`` 0, a split
            smaller than a batch); DatasetError: the dataset cannot be built.
        TrainingInterrupted: SIGTERM, SIGUSR1 or SIGINT arrived (on any rank); a checkpoint
            was saved.
        TrainingDiverged: a step's loss was not finite (:mod:`hgbench.train.divergence`).
        OSError: a file could not be written (a full disk: the message names it). With
            ``force`` a failure puts the complete run back (:func:`hgbench.train.state.previous_run_kept`).
    """
    wall_start = time.perf_counter()
    target = target_run(spec, protocol, dataset, data_root, results_dir, device, checked)
    deterministic = deterministic_requested() if deterministic is None else deterministic
    with training_flags(target.device, deterministic), _run_context(target.info, target.device, target.folder) as group:
        done = broadcast_from_main(completed_record(target.folder) if target.writer and not force else None, group)
        if done is not None:
            check_same_data(done, target)  # a complete run on other data is not this run
            return done.model_copy(update={"skipped": True})
        setup = set_up_run(target, bad_samples)
        run_identity = checkpoint_identity(target, setup.keypoints.num_joints)
        with previous_run_kept(target.folder, force and target.writer):
            state, scaler_state, resumed = start_state(setup, run_identity, force, group)
            emit = _emitter(progress, tracker, target, spec, dataset)
            epochs = EpochLoop(setup, state, run_identity, group, emit, wall_start=wall_start,
                               log_every_steps=log_every_steps, log_every_s=log_every_s)  # fmt: skip
            record = _run_epochs(epochs, scaler_state, resumed)
        emit("done", {"variant": spec.name, "train_time_s": state.train_time_s, "samples_per_s": record["samples_per_s"]})  # fmt: skip
        return record
