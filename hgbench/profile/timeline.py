"""Where a profiling sweep's wall time goes: seconds per phase (timed windows, warm-up,
preparation, complexity counting, probes, ...), kept by a :class:`Timeline`.

The code that does the work marks it with ``with phase("prepare"): ...``; the marks cost two
``perf_counter`` calls and do nothing unless a timeline is active (:meth:`Timeline.active`, which
:func:`hgbench.profile.plan.run_profile` opens around a sweep). A mark inside an open phase is
part of that phase (the calibration probe's timed calls are probe time, a compile backend's
warm-up inside its preparation is preparation), so the phases never overlap and add up to the
wall time they cover; what no phase claims is ``other``. The sweep's summary line and its sweep record
(:class:`hgbench.records.SweepRecord`) give the totals.

Why: issue 29 measured a 2-core CPU sweep that spent 9 % of its wall time in timed calls; the
breakdown shows what a change to the sweep buys, and a user sees what their sweep costs.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator

PHASES: dict[str, str] = {
    "timed": "timed windows whose samples are kept in the records",
    "retimed": "timed windows discarded because a calibration probe said the machine was disturbed",
    "warmup": "untimed warm-up calls before a window",
    "probes": "the quiet-window probes around each window (they time the calibration workload)",
    "prepare": "backend preparation: trace, export, compile, session or engine, from the artefact cache where it hits",
    "complexity": "counting parameters, MACs, FLOPs and activation memory (or reading them from the cache)",
    "models": "building the fp32 models",
    "reference": "eager fp32 reference outputs for the numerical checks",
    "numerics": "numerical checks against the reference",
    "ceilings": "roofline ceilings (measured, or read from the cache)",
    "records": "writing the records",
    "cleanup": "releasing prepared settings and collecting memory",
    "evaluation": "accuracy through each artifact (--evaluate)",
    "startup": "process start, imports and checking the options, before the sweep",
}
"""Phase name -> what it holds (the sweep record's ``time_s`` keys, besides ``other``)."""

MEASURING = ("timed", "retimed")
"""The phases inside timed windows (kept or discarded): the time a sweep spends measuring."""

_ACTIVE: contextvars.ContextVar[Timeline | None] = contextvars.ContextVar("hgbench_timeline", default=None)


class Timeline:
    """Seconds of wall time per phase (:data:`PHASES`); the outermost open phase takes the time.
    ``before_s``: seconds that passed before the timeline was made (the process's start-up,
    :func:`process_age_s`), charged to ``startup`` and part of the wall time.

    Raises (:meth:`phase`, :meth:`move`): ValueError: a phase name not in :data:`PHASES`.
    """

    def __init__(self, before_s: float = 0.0) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.seconds["startup"] = self._before_s = float(before_s)
        self._open: str | None = None  # the phase being timed now
        self._started = time.perf_counter()

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Charge the wall time inside the block to ``name``, unless a phase is already open:
        the outermost phase takes it all (a probe's timed calls are probe time, not timed windows)."""
        _check(name)
        if self._open is not None:
            yield
            return
        self._open, start = name, time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start
            self._open = None

    def move(self, source: str, target: str, seconds: float) -> None:
        """Move ``seconds`` already charged to ``source`` over to ``target`` (a timed window
        found disturbed after it ran: ``timed`` -> ``retimed``)."""
        _check(source)
        _check(target)
        self.seconds[source] -= seconds
        self.seconds[target] += seconds

    def elapsed_s(self) -> float:
        """Seconds since the timeline was made, plus ``before_s``."""
        return time.perf_counter() - self._started + self._before_s

    def breakdown(self) -> dict[str, float]:
        """``{phase: seconds}`` for every phase of :data:`PHASES`, ``other`` (the wall time no
        phase claimed, never negative) and ``wall`` (:meth:`elapsed_s`), rounded to ms."""
        wall = self.elapsed_s()
        out = {name: round(s, 3) for name, s in self.seconds.items()}
        out["other"] = round(max(0.0, wall - sum(self.seconds.values())), 3)
        out["wall"] = round(wall, 3)
        return out

    @contextlib.contextmanager
    def active(self) -> Iterator[Timeline]:
        """Make this the timeline that :func:`phase` marks charge, inside the block."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


def current() -> Timeline | None:
    """The active timeline (:meth:`Timeline.active`), or None."""
    return _ACTIVE.get()


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """``Timeline.phase(name)`` of the active timeline; nothing without one."""
    timeline = _ACTIVE.get()
    if timeline is None:
        yield
        return
    with timeline.phase(name):
        yield


def process_age_s() -> float | None:
    """Seconds since this process started (Linux: ``/proc/self/stat``'s start time against
    ``/proc/uptime``, ``proc(5)``), or None where that cannot be read: the ``startup`` phase."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _check(name: str) -> None:
    if name not in PHASES:
        raise ValueError(f"unknown timeline phase {name!r}; expected one of {', '.join(PHASES)}")
