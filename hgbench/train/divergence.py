"""Divergence: a training loss that is not a finite number (NaN or infinite) ends the run as a
failure, never as a complete run with a meaningless accuracy.

The engine keeps every step's loss on the device (:class:`LossWatch`: references to the
detached scalars the steps return, no extra kernel and no host synchronisation per step) and
looks at them where it reads the device anyway: before every checkpoint, at the end of every
epoch (before its validation) and, with one process, at every progress line. The first step
whose loss is not finite stops the run with :class:`TrainingDiverged` (exit status 1): no
checkpoint is written after it, so the checkpoint on disk is the last one of finite losses,
and the run's record (``train.json``) says ``complete: false`` with ``diverged`` (the step,
the epoch, the loss and the step of the checkpoint kept), which ``hgbench runs`` shows as
failed.

Only the loss is watched. With fp16 a ``torch.amp.GradScaler`` meets infinite *gradients* as a
matter of course (it skips that step and lowers its scale); those steps have a finite loss and
go on. In a data-parallel run every rank checks its own losses and the ranks agree on the
earliest step where any rank saw one (:func:`hgbench.train.distributed.max_over_ranks`), so all
stop together.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

_NONE = 0
_FAR = 1 << 62
"""Encodes "the earliest step" as a maximum over the ranks: a rank sends ``_FAR - step``."""


class TrainingDiverged(Exception):
    """The loss of a step was not a finite number (module docstring); the CLI exits with status 1.

    Attributes:
        variant: the variant trained. step: the optimiser step (1-based, over the whole run)
            whose loss was not finite; epoch: its epoch (1-based) of ``epochs``. loss: the
            value as text (``"nan"``, ``"inf"``; ``"not finite on another rank"``).
        checkpoint: the checkpoint kept (of finite losses), None when the run has none;
            checkpoint_step: its step.
        exit_code: 1.
    """

    exit_code = 1

    def __init__(self, variant: str, step: int, epoch: int, epochs: int, loss: str, checkpoint: Path | None,
                 checkpoint_step: int | None) -> None:  # fmt: skip
        self.variant, self.step, self.epoch, self.epochs, self.loss = variant, step, epoch, epochs, loss
        self.checkpoint, self.checkpoint_step = checkpoint, checkpoint_step
        kept = (
            f"the last checkpoint of finite losses (step {checkpoint_step}) is kept: {checkpoint}"
            if checkpoint is not None and checkpoint_step is not None
            else "no checkpoint was written before it"
        )
        super().__init__(
            f"{variant}: training diverged: the loss is {loss} at step {step} (epoch {epoch} of {epochs}); {kept}; "
            "lower the learning rate (the protocol's optimizer.lr) or check the data, then train again"
        )

    def record_field(self) -> dict[str, Any]:
        """The run record's ``diverged`` field: ``step``, ``epoch``, ``loss`` (text), ``checkpoint_step``."""
        return {"step": self.step, "epoch": self.epoch, "loss": self.loss, "checkpoint_step": self.checkpoint_step}


class LossWatch:
    """The losses of the steps since the last look, on the device (module docstring).

    Args:
        step: optimiser steps done before the first loss :meth:`add` gets.
    """

    def __init__(self, step: int) -> None:
        self.start = step
        self.losses: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        """Keep the detached scalar ``loss`` of the next step (no device work)."""
        self.losses.append(loss)

    def first_non_finite(self) -> tuple[int, str] | None:
        """``(step, loss as text)`` of the first kept loss that is not finite, or None (then the
        kept losses are dropped). Reads the device (one small transfer)."""
        if not self.losses:
            return None
        losses = torch.stack(self.losses)
        bad = torch.nonzero(~torch.isfinite(losses)).flatten().tolist()
        if not bad:
            self.start += len(self.losses)
            self.losses = []
            return None
        return self.start + bad[0] + 1, str(float(losses[bad[0]]))

    @staticmethod
    def encode(found: tuple[int, str] | None) -> int:
        """``found`` as one integer whose maximum over the ranks is the earliest step (0: none)."""
        return _NONE if found is None else _FAR - found[0]

    @staticmethod
    def decode(value: int) -> int | None:
        """The step :meth:`encode` encoded (None for none)."""
        return None if value == _NONE else _FAR - value
