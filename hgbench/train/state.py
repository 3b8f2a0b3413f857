"""Training state: what a run has done so far, restored from its checkpoint and saved into it.

A run's checkpoint (:mod:`hgbench.train.checkpoint`) holds the run's identity
(:func:`checkpoint_identity`), the model, optimiser, scheduler and gradient-scaler states, the
position (optimiser steps done and the sampler's pass and batch), the current epoch's loss
accumulator, the history of finished epochs, the times so far, the sessions and every random
generator. Restoring all of it (:func:`start_state`) after the run's setup
(:func:`hgbench.train.setup.set_up_run`) makes a resumed run on the CPU, with a fixed thread
count, reach the same weights, losses and validation figures as a run never interrupted, bit
for bit.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from hgbench.fileio import TMP_SUFFIX
from hgbench.paths import CHECKPOINT, TRAIN_RECORD
from hgbench.records import RecordError, TrainRecord, read_record
from hgbench.records.identity import identity
from hgbench.train.checkpoint import (
    RESUME_FIELDS,
    RESUME_FIX,
    capture_rng,
    check_fields,
    check_resumable,
    load_weights,
    read_checkpoint,
    restore_rng,
    save_checkpoint,
)
from hgbench.train.device import device_label
from hgbench.train.distributed import broadcast_from_main, slurm_job_id
from hgbench.train.setup import RunSetup, RunTarget, check_same_data

_SAVED = ("step", "history", "train_time_s", "wall_time_s", "data_wait_s", "pretrain", "epoch_loss_sum", "sessions")
"""The :class:`TrainState` fields a checkpoint holds under the same names."""


@dataclasses.dataclass
class TrainState:
    """What the run has done so far (saved in every checkpoint).

    Attributes:
        step: optimiser steps done. history: one entry per finished epoch.
        train_time_s, wall_time_s, data_wait_s: seconds, summed across resumes.
        epoch_loss_sum: float64 tensor on the device, the sum of this epoch's step losses.
        pretrain: phase 1's record (None before it, or without one).
        sessions: one entry per start or resume (:func:`begin_session`).
    """

    step: int = 0
    history: list[dict] = dataclasses.field(default_factory=list)
    train_time_s: float = 0.0
    wall_time_s: float = 0.0
    data_wait_s: float = 0.0
    epoch_loss_sum: torch.Tensor | None = None
    pretrain: dict | None = None
    sessions: list[dict] = dataclasses.field(default_factory=list)


def completed_record(path: Path) -> TrainRecord | None:
    """The complete training record in run folder ``path``, or None."""
    try:
        record = read_record(Path(path) / TRAIN_RECORD)
    except RecordError:
        return None
    return record if record.get("complete") else None


def checkpoint_identity(target: RunTarget, num_joints: int) -> dict[str, Any]:
    """The identity fields of the run's checkpoint (:func:`hgbench.records.identity.identity`
    of the variant and the protocol as loaded), with the fields :func:`check_resumable`
    compares in checkpoint format 2: ``protocol`` holds the settings as run (asdict, with the
    variant's overrides), its name is ``protocol_name``."""
    return {
        **identity(
            spec=target.spec,
            num_joints=num_joints,
            protocol=target.protocol,
            dataset=target.dataset,
            data=None if target.data is None else target.data.fields(),
        ),
        "protocol_name": target.protocol.name,
        "protocol": dataclasses.asdict(target.settings),
    }


PREVIOUS_SUFFIX = ".previous"
"""A complete run's record and checkpoint set aside by a forced run (``train.json.previous``,
``checkpoint.pt.previous``: outside every reader's ``*.json`` scan)."""


def set_aside(out_dir: Path) -> bool:
    """Before a forced run: keep a complete run's record and checkpoint as ``*.previous``
    (:data:`PREVIOUS_SUFFIX`) instead of overwriting the checkpoint the record describes while
    the new run is still unfinished. Returns whether there was a complete run to set aside."""
    if completed_record(out_dir) is None:
        return False
    for name in (TRAIN_RECORD, CHECKPOINT):
        if (out_dir / name).is_file():
            shutil.move(out_dir / name, out_dir / f"{name}{PREVIOUS_SUFFIX}")
    return True


def put_back(out_dir: Path) -> None:
    """Undo :func:`set_aside` after a forced run failed: the complete run's record and checkpoint
    replace the failed run's (renames in one folder: they need no free space); a file the
    complete run did not have is removed, so the failed run leaves nothing behind.

    Raises:
        OSError: a rename or removal failed (the message names the file).
    """
    for name in (TRAIN_RECORD, CHECKPOINT):
        previous = out_dir / f"{name}{PREVIOUS_SUFFIX}"
        if previous.is_file():
            os.replace(previous, out_dir / name)
        else:
            (out_dir / name).unlink(missing_ok=True)


@contextmanager
def previous_run_kept(out_dir: Path, force: bool) -> Iterator[None]:
    """Around a forced run (``force``; rank 0 alone, the writer): set a complete run aside
    (:func:`set_aside`) and, when the new run fails with an error (a full disk, a divergence,
    anything but a stop signal or a second Ctrl-C, after which the new run resumes), put it back
    (:func:`put_back`) and add so to the error's message (``strerror`` of an ``OSError``).

    Raises:
        Whatever the block raises, unchanged but for the message.
    """
    from hgbench.train.signals import TrainingInterrupted

    aside = force and set_aside(out_dir)
    try:
        yield
    except TrainingInterrupted:
        raise
    except Exception as e:
        if not aside:
            raise
        put_back(out_dir)
        note = f"the complete run from before --force is put back in {out_dir} ({TRAIN_RECORD}, {CHECKPOINT})"
        if isinstance(e, OSError) and e.strerror:
            e.strerror = f"{e.strerror}; {note}"
        elif e.args and isinstance(e.args[0], str):
            e.args = (f"{e.args[0]}; {note}", *e.args[1:])
        raise


def drop_diverged_record(out_dir: Path) -> None:
    """Remove the record of a run that diverged (``complete`` false, ``diverged`` set) as a new
    session of it starts: the session rewrites it if the run diverges again. A record that cannot
    be read, or a complete one, is left alone."""
    try:
        record = read_record(out_dir / TRAIN_RECORD)
    except RecordError:
        return
    if not record.get("complete") and record.get("diverged") is not None:
        (out_dir / TRAIN_RECORD).unlink(missing_ok=True)


def restore_state(setup: RunSetup, run_identity: dict[str, Any]) -> tuple[TrainState, dict | None]:
    """Load the run's checkpoint into ``setup``'s model, optimiser and schedule, set every
    random generator from it, and return ``(its training state, its gradient scaler's state)``.

    Raises:
        CheckpointError: unreadable, of another run than ``run_identity``
            (:func:`checkpoint_identity`) describes, a field missing
            (:data:`hgbench.train.checkpoint.RESUME_FIELDS`), or states that do not fit the
            network or optimiser its spec builds.
    """
    path = setup.target.checkpoint
    ckpt = read_checkpoint(path)
    check_resumable(ckpt, path, run_identity)
    check_same_data(ckpt, setup.target, "checkpoint")  # resuming on other data would mix two runs
    check_fields(ckpt, path, {**RESUME_FIELDS, **{name: object for name in _SAVED}}, RESUME_FIX)
    load_weights(setup.model, ckpt["model_state"], path, RESUME_FIX)
    load_weights(setup.optimizer, ckpt["optimizer_state"], path, RESUME_FIX, "an optimiser state")
    if setup.scheduler is not None:
        load_weights(setup.scheduler, ckpt.get("scheduler_state"), path, RESUME_FIX, "a schedule state")
    state = TrainState(**{name: ckpt[name] for name in _SAVED})
    restore_rng(ckpt["rng"])
    return state, ckpt["scaler_state"]


def start_state(
    setup: RunSetup, run_identity: dict[str, Any], force: bool, group: Any
) -> tuple[TrainState, dict | None, bool]:
    """The state the run starts from: fresh with ``force`` (the caller has set a complete run's
    files aside, :func:`previous_run_kept`), else the checkpoint's when rank 0 has one (every
    rank reads it, :func:`restore_state`), else fresh. Rank 0 also removes the temporary file of
    a checkpoint write that was killed, and the record of an earlier session that diverged
    (:func:`drop_diverged_record`). The loss accumulator is put on the run's device.

    Returns:
        ``(state, gradient scaler's state or None, whether the run resumed)``.
    """
    target = setup.target
    state, scaler_state, resumed = TrainState(), None, False
    if target.writer:
        for stale in target.folder.glob(f".{CHECKPOINT}.*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)  # the temporary file of a write that was killed (atomic_write_bytes)
        drop_diverged_record(target.folder)
    if not force and broadcast_from_main(
        target.checkpoint.is_file(), group
    ):  # every rank resumes from rank 0's checkpoint
        state, scaler_state = restore_state(setup, run_identity)
        resumed = True
    loss_sum = state.epoch_loss_sum if state.epoch_loss_sum is not None else torch.zeros((), dtype=torch.float64)
    state.epoch_loss_sum = loss_sum.to(target.device)
    return state, scaler_state, resumed


def begin_session(state: TrainState, target: RunTarget) -> dict[str, Any]:
    """Append this start or resume to ``state.sessions`` and return its entry (``device``,
    ``world_size``, ``slurm_job_id``, ``start_step``; ``end_step`` and ``train_time_s`` are
    updated as it trains)."""
    session = {
        "device": device_label(target.device),
        "world_size": target.info.world_size,
        "slurm_job_id": slurm_job_id(),
        "start_step": state.step,
        "end_step": state.step,
        "train_time_s": 0.0,
    }
    state.sessions = [*state.sessions, session]
    return session


def save_state(setup: RunSetup, run_identity: dict[str, Any], state: TrainState, scaler: Any) -> None:
    """Write the run's checkpoint (atomically, :func:`hgbench.train.checkpoint.save_checkpoint`):
    ``run_identity``, the model, optimiser, scheduler and ``scaler`` states, the position, the
    training state and every random generator."""
    save_checkpoint(
        setup.target.checkpoint,
        {
            **run_identity,
            "model_state": setup.model.state_dict(),
            "optimizer_state": setup.optimizer.state_dict(),
            "scheduler_state": setup.scheduler.state_dict() if setup.scheduler is not None else None,
            "scaler_state": scaler.state_dict(),
            "sampler": setup.positions.position(state.step),
            "epoch": len(state.history),
            **{name: getattr(state, name) for name in _SAVED},
            "epoch_loss_sum": state.epoch_loss_sum.detach().cpu(),
            "rng": capture_rng(),
        },
    )
