"""Stop signals of a training run: SIGTERM and SIGUSR1 (what Slurm sends before a preemption or
the time limit, ``sbatch --signal``) and SIGINT (Ctrl-C) make the run save a checkpoint after
the current step and raise :class:`TrainingInterrupted` (the engine's "Signals",
:mod:`hgbench.train.loop`).
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class TrainingInterrupted(Exception):
    """A stop signal ended the run after a checkpoint (:mod:`hgbench.train.loop`, "Signals").

    Attributes:
        signal: its name (``"SIGTERM"``). exit_code: ``128 + signal number`` (the shell's
            convention: 143 for SIGTERM, 138 for SIGUSR1, 130 for SIGINT).
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


class StopSignals:
    """While active (in the main thread), SIGTERM, SIGUSR1 and SIGINT set :attr:`received`
    instead of ending the process; the first one also puts the previous handlers back, so a
    second signal acts as usual (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
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
