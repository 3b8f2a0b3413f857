"""The epochs of one training session (a start or a resume): phase 1 where the variant has
one, then optimiser steps epoch by epoch, progress lines, checkpoints and stop signals
(:mod:`hgbench.train.loop`'s module docstring says what each does).

Optimiser steps are counted over the whole run; epoch ``e`` ends after step
``(e + 1) * steps_per_epoch`` with the epoch's mean training loss, a validation where due
(:mod:`hgbench.train.validation`) and the learning-rate schedule's step. Batches come from
:mod:`hgbench.train.sampler` (batch ``k`` is a pure function of ``k``), each step from
:class:`hgbench.train.step.TrainStep`, without host synchronisation: losses are summed on the
device and read when a progress line is logged and at the end of each epoch.

Training time runs in segments between checkpoints and validations: ``train_time_s`` counts
the optimisation steps (data loading included, validation and checkpoint writes not). The
first :data:`WARMUP_STEPS` steps of each session are its warm-up: the session notes their count
and time (``warmup_steps``, ``warmup_time_s``), which the record's ``samples_per_s`` leaves out.

Every step's loss is also kept for :class:`hgbench.train.divergence.LossWatch`, which looks at
them before every checkpoint, at every epoch's end and (one process) at every progress line: a
loss that is not finite stops the run (:class:`hgbench.train.divergence.TrainingDiverged`)
before anything is written after it.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from hgbench.train.device import device_label, synchronize
from hgbench.train.distributed import max_over_ranks, mean_over_ranks_
from hgbench.train.divergence import LossWatch, TrainingDiverged
from hgbench.train.optim import learning_rate, step_schedule
from hgbench.train.progress import ProgressFn
from hgbench.train.sampler import TrainSampler, make_train_loader
from hgbench.train.setup import RunSetup
from hgbench.train.signals import StopSignals, TrainingInterrupted
from hgbench.train.state import TrainState, begin_session, save_state
from hgbench.train.step import TrainStep
from hgbench.train.validation import due, validate

WARMUP_STEPS = 3
"""Steps at the start of every session (a start or a resume) that are its warm-up: the first
compiles the step (``torch.compile``) and runs cuDNN's autotuner on the training shapes, the
second may recompile (optimiser state now present) and grows the allocator; from the third on
a step takes its steady time. Their time is left out of the record's ``samples_per_s``."""


class EpochLoop:
    """One training session of a run: :meth:`run` trains from ``state`` to the last epoch.

    Args:
        setup: the run (:func:`hgbench.train.setup.set_up_run`). state: where it starts
            (:func:`hgbench.train.state.start_state`); updated in place.
        run_identity: the checkpoint's identity fields
            (:func:`hgbench.train.state.checkpoint_identity`).
        group: the control group of a data-parallel run (None for one process).
        emit: the progress callback (rank 0's; the others' do nothing).
        wall_start: ``time.perf_counter()`` when the session began (``wall_time_s``).
        log_every_steps, log_every_s: a ``"log"`` event every this many steps or seconds.
    """

    def __init__(self, setup: RunSetup, state: TrainState, run_identity: dict[str, Any], group: Any,
                 emit: ProgressFn, *, wall_start: float, log_every_steps: int, log_every_s: float) -> None:  # fmt: skip
        self.setup, self.target, self.state = setup, setup.target, state
        self.run_identity, self.group, self.emit = run_identity, group, emit
        self.wall_start, self.wall_before = wall_start, state.wall_time_s
        self.log_every_steps, self.log_every_s = log_every_steps, log_every_s
        self.session = begin_session(state, setup.target)
        self.stop = StopSignals()
        self.train_step: TrainStep | None = None  # built after phase 1, around the data-parallel model
        self.segment = self.last_ckpt = time.perf_counter()
        self.window_steps, self.window_wait, self.window_time = 0, 0.0, 0.0
        self.window_loss = torch.zeros((), dtype=torch.float64, device=setup.target.device)
        self.watch = LossWatch(state.step)
        self.saved_step: int | None = None  # the step of the checkpoint on disk (None: none of this run)

    def run(self, scaler_state: dict | None, resumed: bool) -> None:
        """Emit ``"start"``, then train every remaining epoch with the stop signals caught; the
        state's ``wall_time_s`` is brought up to date at the end.

        Raises:
            TrainingInterrupted: a stop signal arrived on any rank (a checkpoint was saved,
                except in phase 1).
            TrainingDiverged: a step's loss was not finite (no checkpoint after it).
        """
        t, p = self.target, self.target.settings
        self.saved_step = self.state.step if resumed else None
        self.emit("start", {"variant": t.spec.name, "total_steps": self.setup.total_steps, "done_steps": self.state.step,
                            "epochs": p.epochs, "device": device_label(t.device), "precision": p.precision,
                            "resumed": resumed, "world_size": t.info.world_size})  # fmt: skip
        with self.stop:
            self._pretrain()
            self._start_steps(scaler_state)
            while len(self.state.history) < p.epochs:
                epoch = len(self.state.history)
                self._train_epoch(epoch)
                self._end_epoch(epoch)
        self.state.wall_time_s = self.wall_before + time.perf_counter() - self.wall_start

    def agreed_stop(self, checkpoint_due: bool = False) -> tuple[int | None, bool]:
        """(the stop signal any rank received, or None; whether any rank's checkpoint is due):
        a maximum over the ranks, so that all stop or save at the same step."""
        signum, due_ = max_over_ranks([self.stop.received or 0, checkpoint_due], self.group)
        return signum or None, bool(due_)

    def check_finite(self) -> None:
        """Stop the run if a loss since the last look was not finite (every rank calls it at the
        same step in a data-parallel run; the earliest step over the ranks is named).

        Raises:
            TrainingDiverged: naming the step, its epoch, the loss and the checkpoint kept.
        """
        found = self.watch.first_non_finite()
        step = LossWatch.decode(max_over_ranks([LossWatch.encode(found)], self.group)[0])
        if step is None:
            return
        loss = found[1] if found is not None and found[0] == step else "not finite (on another rank)"
        kept = self.target.checkpoint if self.saved_step is not None else None
        raise TrainingDiverged(self.target.spec.name, step, (step - 1) // self.setup.steps_per_epoch + 1,
                               self.target.settings.epochs, loss, kept, self.saved_step)  # fmt: skip

    def save(self, reason: str) -> None:
        """Checkpoint (rank 0 writes; every rank calls it at the same step) and emit
        ``"checkpoint"`` with ``reason`` (``steps``, ``minutes``, ``epoch``, ``signal``), unless
        a loss since the last checkpoint was not finite (:meth:`check_finite` raises)."""
        self.check_finite()
        state = self.state
        mean_over_ranks_(state.epoch_loss_sum)  # one accumulator for the run, whichever rank resumes it
        state.wall_time_s = self.wall_before + time.perf_counter() - self.wall_start
        self.session["end_step"] = state.step
        if self.target.writer:
            save_state(self.setup, self.run_identity, state, self.train_step.scaler)
            self.emit("checkpoint", {"step": state.step, "reason": reason, "path": str(self.target.checkpoint)})
        self.saved_step = state.step

    def _pretrain(self) -> None:
        """Phase 1 of a two-phase training (:mod:`hgbench.train.pretrain`), on every rank
        alike, unless the variant has none or a resumed run already had it."""
        spec, state = self.target.spec, self.state
        if spec.pretrain is None or state.pretrain is not None:
            return
        from hgbench.train.pretrain import pretrain_autoencoder

        state.pretrain = pretrain_autoencoder(self.setup.model, self.setup.train_set, spec.pretrain, self.target.settings,
                                              self.emit, device=self.target.device,
                                              should_stop=lambda: self.agreed_stop()[0] is not None)  # fmt: skip
        if state.pretrain is None:
            signum = self.agreed_stop()[0] or self.stop.received
            raise TrainingInterrupted(spec.name, signum, state.step, self.setup.total_steps, None)

    def _start_steps(self, scaler_state: dict | None) -> None:
        """Wrap the model for data parallelism (after phase 1: ``DistributedDataParallel``
        starts every rank from rank 0's weights and buffers), build the step, restore its
        gradient scaler, and start the batches at the state's step."""
        t, p, dev = self.target, self.target.settings, self.target.device
        self.wrapped = (
            DistributedDataParallel(self.setup.model, device_ids=[dev.index] if dev.type == "cuda" else None)
            if t.info.distributed
            else self.setup.model
        )
        self.train_step = TrainStep(self.wrapped, self.setup.optimizer, t.spec.supervision, dev, p.precision,
                                    p.channels_last, p.compile)  # fmt: skip
        if scaler_state is not None:
            self.train_step.scaler.load_state_dict(scaler_state)
        sampler = TrainSampler(len(self.setup.train_set), t.rank_batch, p.seed, start=self.state.step,
                               num_batches=self.setup.total_steps - self.state.step,
                               num_replicas=t.info.world_size, rank=t.info.rank)  # fmt: skip
        self.batches = iter(
            make_train_loader(self.setup.train_set, sampler, p.num_workers, pin_memory=dev.type == "cuda")
        )
        self.segment = self.last_ckpt = time.perf_counter()

    def _close_segment(self) -> None:
        """Add the time since the segment began to the run's, the session's and the window's."""
        now = time.perf_counter()
        self.state.train_time_s += now - self.segment
        self.session["train_time_s"] += now - self.segment
        self.window_time += now - self.segment
        self.segment = now

    def _log(self, epoch: int) -> None:
        """Emit a ``"log"`` event for the window since the last one, and start a new window (one
        process: after :meth:`check_finite`, as the loss is read from the device here anyway)."""
        if self.target.info.world_size == 1:
            self.check_finite()
        state, p, session = self.state, self.target.settings, self.session
        # the only read of a device value between epochs (rank 0's share)
        loss = float(self.window_loss) / self.window_steps
        self._close_segment()
        done = state.step - session["start_step"]
        rate = done / session["train_time_s"] if session["train_time_s"] > 0 else 0.0
        window = max(self.window_time, 1e-9)
        total = self.setup.total_steps
        self.emit("log", {"variant": self.target.spec.name, "epoch": epoch + 1, "epochs": p.epochs, "step": state.step,
                          "total_steps": total, "loss": loss, "samples_per_s": self.window_steps * p.batch_size / window,
                          "data_wait": min(self.window_wait / window, 1.0),
                          "eta_s": (total - state.step) / rate if rate > 0 else None,
                          "lr": learning_rate(self.setup.optimizer)})  # fmt: skip
        self.window_loss.zero_()
        self.window_steps, self.window_wait, self.window_time = 0, 0.0, 0.0

    def _step(self) -> float:
        """One optimiser step on the next batch; returns ``time.perf_counter()`` after it."""
        state = self.state
        t0 = time.perf_counter()
        batch = next(self.batches)
        wait = time.perf_counter() - t0
        loss = self.train_step(batch)
        self.watch.add(loss)
        state.epoch_loss_sum += loss
        self.window_loss += loss
        state.step += 1
        self.window_steps += 1
        state.data_wait_s += wait
        self.window_wait += wait
        if state.step - self.session["start_step"] <= WARMUP_STEPS:  # still warming up: note its steps and time
            synchronize(self.target.device)
            self._close_segment()
            self.session.update(warmup_steps=state.step - self.session["start_step"],
                                warmup_time_s=self.session["train_time_s"])  # fmt: skip
        self.emit("step", {"step": state.step})
        return time.perf_counter()

    def _train_epoch(self, epoch: int) -> None:
        """The steps of epoch ``epoch`` (0-based) from the state's step on, with the progress
        lines and the checkpoints due by steps or minutes within it.

        Raises:
            TrainingInterrupted: a stop signal arrived on any rank (after a checkpoint).
        """
        state, p, dev = self.state, self.target.settings, self.target.device
        epoch_end = (epoch + 1) * self.setup.steps_per_epoch
        self.wrapped.train()
        self.segment = time.perf_counter()
        stop_signal, _ = self.agreed_stop()
        while state.step < epoch_end and stop_signal is None:
            now = self._step()
            if self.window_steps >= self.log_every_steps or self.window_time + now - self.segment >= self.log_every_s:
                self._log(epoch)
            by_steps = state.step % p.checkpoint_every_steps == 0
            stop_signal, by_time = self.agreed_stop(now - self.last_ckpt >= 60 * p.checkpoint_every_min)
            if (by_steps or by_time) and state.step < epoch_end and stop_signal is None:
                synchronize(dev)
                self._close_segment()
                self.save("steps" if by_steps else "minutes")
                self.segment = self.last_ckpt = time.perf_counter()
        synchronize(dev)
        self._close_segment()
        if stop_signal is not None:
            self.save("signal")
            raise TrainingInterrupted(self.target.spec.name, stop_signal, state.step, self.setup.total_steps,
                                      self.target.checkpoint)  # fmt: skip
        if self.window_steps:
            self._log(epoch)

    def _end_epoch(self, epoch: int) -> None:
        """Close epoch ``epoch`` (0-based): its history entry (mean training loss over the
        ranks, learning rate, validation where due), the schedule's step and a checkpoint; first
        :meth:`check_finite` (no validation of diverged weights)."""
        self.check_finite()
        state = self.state
        mean_over_ranks_(state.epoch_loss_sum)
        entry = {
            "epoch": epoch + 1,
            "steps": state.step,
            "train_loss": float(state.epoch_loss_sum) / self.setup.steps_per_epoch,
            "lr": learning_rate(self.setup.optimizer),
        }
        val = None
        if due(self.setup, epoch):
            entry["val"] = val = validate(self.setup, epoch, self.emit, self.group)
        step_schedule(self.setup.scheduler, val)
        state.history = [*state.history, entry]
        state.epoch_loss_sum.zero_()
        self.emit("epoch", {"variant": self.target.spec.name, **entry})  # before its checkpoint: a tracker logs it
        self.save("epoch")
        self.last_ckpt = time.perf_counter()
