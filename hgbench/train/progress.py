"""Training progress people can follow: a rich progress bar on a terminal, one line per log
interval and per validation in a log file (CI, ``nohup``, a cluster job).

The engine (:func:`hgbench.train.train_variant`) reports through a callback
``progress(event, info)``:

* ``"start"``: ``variant``, ``total_steps``, ``done_steps``, ``epochs``, ``device``,
  ``precision``, ``resumed`` (bool), ``world_size`` (data-parallel processes; 1 for one);
* ``"step"``: ``step`` (after every optimiser step; no value is read from the device);
* ``"log"``: every ``log_every_steps`` steps or ``log_every_s`` seconds, whichever comes
  first, and at the end of each epoch: ``variant``, ``epoch``, ``epochs``, ``step``,
  ``total_steps``, ``loss`` (mean over the interval; rank 0's share of the batch in a
  data-parallel run), ``samples_per_s`` (of the global batch), ``data_wait``
  (fraction of the interval spent waiting for the next batch), ``eta_s``, ``lr``;
* ``"validate"``: ``variant``, ``epoch``, ``epochs``, ``metric``, ``threshold``, ``mean``
  (percent), ``loss``;
* ``"epoch"``: ``variant`` and the epoch's history entry (``epoch``, ``steps``, ``train_loss``,
  ``lr``, ``val`` where validated), before the epoch's checkpoint (:mod:`hgbench.tracking` logs it);
* ``"checkpoint"``: ``step``, ``reason`` (``steps``, ``minutes``, ``epoch``, ``signal``), ``path``;
* ``"pretrain"``: ``step``, ``total_steps`` (phase 1 of a two-phase training);
* ``"done"``: ``variant``, ``train_time_s``, ``samples_per_s``.

:class:`TrainDisplay` turns these into the bar or the lines.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ProgressFn = Callable[[str, dict], None]

TERMINAL_LOG_EVERY_S = 2.0
"""How often the bar's status (loss, samples/s) is refreshed on a terminal, seconds."""
FILE_LOG_EVERY_S = 30.0
"""How often a progress line is written to a log file, seconds (also every
``log_every_steps`` steps)."""


def _eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "?"
    return str(_dt.timedelta(seconds=round(seconds)))


def log_line(info: dict) -> str:
    """One progress line: ``hg1 | epoch 1/2 | step 5/20 | loss 1.23e-03 | 45.2 samples/s |
    data wait 3% | ETA 0:01:23``."""
    return (
        f"{info['variant']} | epoch {info['epoch']}/{info['epochs']} | step {info['step']}/{info['total_steps']} | "
        f"loss {info['loss']:.3e} | {info['samples_per_s']:.1f} samples/s | data wait {100 * info['data_wait']:.0f}% | "
        f"lr {info['lr']:.3g} | ETA {_eta(info.get('eta_s'))}"
    )


def validation_line(info: dict) -> str:
    """One validation line: ``hg1 | epoch 1/2 | validation PCK@0.2 Mean 12.3% | loss 1.2e-03``."""
    label = {"pck": "PCK", "pckh": "PCKh", "pck_heatmap": "PCK (heatmap/10)"}.get(
        info.get("metric"), info.get("metric")
    )
    return (
        f"{info['variant']} | epoch {info['epoch']}/{info['epochs']} | validation {label}@{info['threshold']:g} "
        f"Mean {info['mean']:.1f}% | loss {info['loss']:.3e}"
    )


class TrainDisplay:
    """Progress of one or more training runs on ``console``: a rich progress bar per variant
    when the console is a terminal, otherwise plain lines (:func:`log_line`,
    :func:`validation_line`, a line when a run starts, resumes, saves a checkpoint on a signal
    or ends), each flushed as it is written.

    Use as a context manager; :meth:`callback` gives the ``progress`` function of one run and
    :attr:`log_every_s` the interval to pass to the engine.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.terminal = console.is_terminal
        self.log_every_s = TERMINAL_LOG_EVERY_S if self.terminal else FILE_LOG_EVERY_S
        self._bar: Progress | None = None

    def __enter__(self) -> TrainDisplay:
        if self.terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def print(self, line: str) -> None:
        """Write one line (above the bar on a terminal)."""
        (self._bar.console if self._bar is not None else self.console).print(
            line, markup=False, highlight=False, soft_wrap=True
        )

    def skipped(self, variant: str, record: dict) -> None:
        """Say that ``variant`` has a complete run and was not trained again."""
        self.print(f"{variant} | complete run found, skipped (--force retrains): {record.get('_path', '')}")

    def callback(self, variant: str) -> ProgressFn:
        """The ``progress`` function for training ``variant``."""
        task = self._bar.add_task(f"train {variant}", total=None, status="") if self._bar is not None else None

        def on_event(event: str, info: dict) -> None:
            if event == "start":
                if task is not None:
                    self._bar.update(task, total=info["total_steps"], completed=info["done_steps"])
                how = (
                    f"resuming at step {info['done_steps']}/{info['total_steps']}"
                    if info["resumed"]
                    else f"{info['total_steps']} steps"
                )
                ranks = info.get("world_size", 1)
                where = f"{ranks} processes, rank 0 on {info['device']}" if ranks > 1 else info["device"]
                self.print(f"{variant} | training on {where} ({info['precision']}), {how}")
            elif event == "step" and task is not None:
                self._bar.update(task, completed=info["step"])
            elif event == "pretrain" and task is not None:
                self._bar.update(task, status=f"phase 1 (autoencoder) {info['step']}/{info['total_steps']}")
            elif event == "log":
                if task is not None:
                    self._bar.update(
                        task,
                        status=f"epoch {info['epoch']}/{info['epochs']} loss {info['loss']:.2e} "
                        f"{info['samples_per_s']:.1f}/s data {100 * info['data_wait']:.0f}%",
                    )
                else:
                    self.print(log_line(info))
            elif event == "validate":
                if task is not None:
                    self._bar.update(task, status=f"epoch {info['epoch']} val {info['mean']:.1f}%")
                self.print(validation_line(info))
            elif event == "checkpoint" and info["reason"] == "signal":
                self.print(f"{variant} | checkpoint saved at step {info['step']}: {info['path']}")
            elif event == "done":
                self.print(
                    f"{variant} | done: {info['train_time_s'] / 60:.2f} min of training, {info['samples_per_s']:.1f} samples/s"
                )

        return on_event
