"""Timing windows taken while the machine was quiet: each window bracketed by calibration
probes, and timed again when a probe says the machine was disturbed.

Why. On a shared machine the speed of a core is not one number. The 2-vCPU development VM
(1 thread, nothing else of ours running) switches between a quiet state and one in which
hg2's TorchScript trace at batch 1 runs about 25 % slower (14.6 vs 18.3 ms), every few
seconds (``benchmarks/reference/repeatability/README.md``, "Quiet windows"). A setting timed in
three short windows gets a median that depends on how many of them fell in disturbed
seconds, and two whole-registry runs of one command disagreed by 5.6 % on the median
setting, 45 % on the worst, for nothing that changed in the model.

What. The calibration workload (:mod:`hgbench.profile.calibration`, the same fixed network
on the same device and threads) is timed for :data:`PROBE_CALLS` calls right before each
window's warm-up calls and right after the window: a *probe* (about 35 ms on a CPU core;
windows timed back to back share the probe between them, :data:`FRESH_PROBE_S`). The machine's quiet
level is the 10th percentile of every probe median so far in the run (:data:`QUIET_PERCENTILE`;
disturbance only ever slows the probe down). A window is *quiet* when both its probes are
within ``tolerance`` of that level; otherwise it is timed again right away, without preparing
the setting again, up to ``max_attempts`` windows; when none is quiet the window with the
smallest worse probe is kept and marked not quiet. Only the kept window's samples enter the
record; ``latency_ms.windows`` says, per repetition, how many windows were timed, the two
probes and the quiet level of the kept one, and whether it was quiet.

Selecting windows by an independent measurement (the probe), not by the model's own time,
does not pick the luckiest of a setting's windows: in a quiet second a window is kept
whatever its own time. The result estimates the latency on the machine when nothing else
runs on it, which is what a deployment on a dedicated machine sees. On a dedicated GPU or an
idle workstation nearly every first window is quiet and the probes cost a few ms per window.

Measured (same VM, ``benchmarks/quiet_windows.py``: 300 s of 0.15 s windows of three hg2
settings, each between two probes; two simulated runs of three windows per setting drawn
2,000 times): the medians of two runs differed by 4.5-9.2 % (median over draws) when every
window was kept, by 2.7-4.3 % when windows were retimed until quiet (tolerance 15 %, up to 10
windows). What it cannot remove is a slow state that lasts a whole run: the quiet level is a
percentile of the run's own probes and rises with it (two five-minute sweeps whose
calibration differed by 19 % disagreed by 9.3 %, quiet windows or not; see the README named
above).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hgbench.profile.calibration import calibration_input, calibration_model
from hgbench.profile.latency import LatencyStats, time_callable, warm_up
from hgbench.profile.tf32 import tf32_mode
from hgbench.profile.timeline import current, phase

PROBE_CALLS = 10
"""Calibration calls per probe (the probe is their median); about 35 ms on one CPU core."""

QUIET_PERCENTILE = 10.0
"""Percentile of the run's probe medians taken as the quiet level (low, because disturbance
only slows calls down; not the minimum, which one lucky probe would set)."""

DEFAULT_TOLERANCE = 0.15
"""A window is quiet when both probes are at most this fraction above the quiet level. On the
development VM the probe medians of five minutes fell in two groups, relative to their 10th
percentile: 0.9-1.15 (quiet; 66 % of probes) and 1.2-1.6 (disturbed); 15 % lies between."""

DEFAULT_MAX_ATTEMPTS = 10
"""Windows timed at most per repetition before keeping the least disturbed one."""

MIN_HISTORY = 10
"""Probes timed before the first window is judged (fewer would make the first probe the
quiet level, whatever the machine was doing)."""

FRESH_PROBE_S = 0.2
"""A probe that ended at most this many seconds before a window's before-probe is due serves as
that probe (issue 29): the after-probe of the window just timed, when the sweep goes straight
on to the next kept setting or times a disturbed window again. Two probes a few ms apart see
the same machine (its disturbed states last seconds, see above), and each costs ~35 ms: a
whole-registry sweep took 250 of them back to back. The warm-up calls come after the
before-probe (:meth:`QuietTimer.time`), so the before-probe ended at most this plus the warm-up
before the window starts: on the development VM up to ~0.8 s for the slowest settings (3 calls
of 180-200 ms), against ~0.2 s (one call) when the warm-up came first. A disturbance that begins
in that gap is seen by the after-probe if it lasts to the window's end; one that ends before
is missed, as one that begins and ends inside the window always was. Two whole-registry runs timed
this way agreed to a median 1.8 % (two runs timed the earlier way: 1.9 %;
``benchmarks/reference/sweep-time/README.md``, third sitting)."""


@dataclass
class QuietTimer:
    """Times callables in quiet windows on one device (see the module docstring). One timer
    serves a whole run: its probe history sets the quiet level.

    Attributes:
        device: where the calibration probe runs (the profiled device).
        tolerance: how far above the quiet level both probes may be, as a fraction (0.10:
            10 %).
        max_attempts: windows timed at most per call of :meth:`time` (1: never retime; the
            probes are still recorded).
        probes_ms, samples_ms: each probe's median, and every probe call, in the order timed
            (ms per call; the sweep's calibration is pooled from ``samples_ms``).

    Raises:
        ValueError: ``tolerance`` < 0 or ``max_attempts`` < 1.
    """

    device: torch.device
    tolerance: float = DEFAULT_TOLERANCE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if self.tolerance < 0 or self.max_attempts < 1:
            raise ValueError(f"need tolerance >= 0 and max_attempts >= 1; got {self.tolerance=}, {self.max_attempts=}")
        self.device = torch.device(self.device)
        self._model = calibration_model().to(self.device)
        self._x = calibration_input(self.device)
        self.probes_ms: list[float] = []
        self.samples_ms: list[float] = []  # every probe call, in order: the sweep's calibration
        self._probe_ended: float | None = None  # time.perf_counter() at the end of the last probe

    def probe(self) -> float:
        """Time the calibration workload for :data:`PROBE_CALLS` calls (with the caller's
        thread count, TF32 off as in :func:`~hgbench.profile.calibration.measure_calibration`:
        one workload under one name, whatever TF32 setting is being profiled around it) and add
        their median (ms per call) to the history, the calls to :attr:`samples_ms`; returns it."""
        with phase("probes"), torch.inference_mode(), tf32_mode(False):
            stats = time_callable(lambda: self._model(self._x), warmup_iters=0, min_iters=PROBE_CALLS,
                                  min_time_s=0.0, device=self.device)  # fmt: skip
        self.probes_ms.append(stats.p50)
        self.samples_ms += stats.samples_ms
        self._probe_ended = time.perf_counter()
        return stats.p50

    def before_probe(self) -> float:
        """The probe before a window: the last one when it ended at most :data:`FRESH_PROBE_S` ago
        (nothing but the harness ran since) and was quiet, else a new one (a disturbed probe
        reused would condemn the next window whatever the machine does then)."""
        fresh = self._probe_ended is not None and time.perf_counter() - self._probe_ended <= FRESH_PROBE_S
        if fresh and self.probes_ms[-1] <= self.quiet_level_ms() * (1.0 + self.tolerance):
            return self.probes_ms[-1]
        return self.probe()

    def ready(self) -> None:
        """Time probes until the history holds :data:`MIN_HISTORY` (the first :meth:`time` does
        it, or a caller that wants probe samples before any window)."""
        while len(self.probes_ms) < MIN_HISTORY:
            self.probe()

    def quiet_level_ms(self) -> float:
        """The :data:`QUIET_PERCENTILE`-th percentile of the probe medians so far, ms.

        Raises:
            ValueError: no probe yet.
        """
        if not self.probes_ms:
            raise ValueError("no probe timed yet: call probe() first")
        return float(np.percentile(self.probes_ms, QUIET_PERCENTILE))

    def time(
        self,
        fn: Callable[[], object],
        *,
        warmup_iters: int = 3,
        warmup_s: float = 0.0,
        min_iters: int = 10,
        min_time_s: float = 1.0,
    ) -> tuple[LatencyStats, dict[str, Any]]:
        """Time windows of ``fn`` (:func:`time_callable` with ``min_iters`` and ``min_time_s``)
        until one is quiet or ``max_attempts`` were timed. The first window's before-probe is
        followed by the warm-up (``warmup_iters`` calls, at least one, and ``warmup_s``), which
        also refills the caches the probe used; a window timed again gets one untimed call
        after its probe. The first call of a timer first times :data:`MIN_HISTORY` probes. A
        window's before-probe is the last probe when that one is fresh (:meth:`before_probe`):
        with the warm-up after it, the previous setting's after-probe serves when the sweep goes
        straight on (issue 29: before, the warm-up came first and a probe was timed again after
        it, one extra probe and one extra call per window).

        Returns:
            The kept window's samples, and its description for the record's
            ``latency_ms.windows``: ``{"attempts": windows timed, "probe_p50_ms": [before,
            after] (ms per calibration call), "quiet_level_ms": the level it was judged
            against, "quiet": bool}``.

        Raises:
            ValueError: bad timing arguments (see :func:`time_callable`).
            Whatever ``fn`` raises.
        """
        self.ready()
        best: tuple[float, LatencyStats, dict[str, Any], int] | None = None
        spent_s: list[float] = []  # what each window charged to "timed": the discarded ones' is "retimed" time
        for attempt in range(1, self.max_attempts + 1):
            before = self.before_probe()
            if attempt == 1:  # the warm-up, after the probe: it also refills what the probe took
                warm_up(fn, iters=max(1, warmup_iters), seconds=warmup_s, device=self.device)
            else:
                warm_up(fn, iters=1, seconds=0.0, device=self.device)
            charged = _timed_s()
            stats = time_callable(fn, warmup_iters=0, min_iters=min_iters, min_time_s=min_time_s, device=self.device)
            spent_s.append(_timed_s() - charged)
            after = self.probe()
            level = self.quiet_level_ms()
            worse = max(before, after)
            window = {"attempts": attempt, "probe_p50_ms": [before, after], "quiet_level_ms": level,
                      "quiet": worse <= level * (1.0 + self.tolerance)}  # fmt: skip
            if best is None or worse < best[0]:
                best = (worse, stats, window, attempt)
            if window["quiet"]:
                break
        _, stats, window, kept = best
        window["attempts"] = attempt
        timeline = current()
        if timeline is not None:
            timeline.move("timed", "retimed", sum(spent_s) - spent_s[kept - 1])
        return stats, window


def _timed_s() -> float:
    """Seconds the active timeline has charged to ``timed`` so far (0 without one): a window's share
    is the difference around it, exactly what :meth:`QuietTimer.time` may move to ``retimed``."""
    timeline = current()
    return timeline.seconds["timed"] if timeline is not None else 0.0


def window_summary(latency_entries: Iterable[dict[str, Any] | None]) -> dict[str, int]:
    """Counts over the ``windows`` of records' ``latency_ms`` (see :meth:`QuietTimer.time`):
    ``repetitions`` (those timed between probes), ``quiet`` (of them, kept in a quiet window) and
    ``windows`` (windows timed for them, retimed ones included). Entries without windows
    (``None``, records timed without probes or older than this field) count nothing."""
    counts = {"repetitions": 0, "quiet": 0, "windows": 0}
    for entry in latency_entries:
        for window in (entry or {}).get("windows") or []:
            if window is not None:
                counts["repetitions"] += 1
                counts["quiet"] += bool(window["quiet"])
                counts["windows"] += int(window["attempts"])
    return counts
