"""Quiet windows: a repetition is timed again while the calibration probes around it say the
machine was disturbed, and the record says which window was kept and why."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hgbench.profile import quiet as quiet_module
from hgbench.profile.quiet import MIN_HISTORY, QuietTimer, window_summary


class Machine:
    """A scripted machine: each probe returns the next value of ``probes``; ``fn`` sleeps
    ``slow_s`` while the machine is disturbed (the probe just taken or the next one above
    1.2 ms: a window is slow when a probe around it is), else ``fast_s``, and counts its calls."""

    def __init__(self, probes, fast_s=0.001, slow_s=0.004):
        self.probes, self.fast_s, self.slow_s = list(probes), fast_s, slow_s
        self.disturbed, self.calls = False, 0

    def probe(self, timer):
        value = self.probes.pop(0)
        self.disturbed = max([value] + self.probes[:1]) > 1.2
        timer.probes_ms.append(value)
        return value

    def fn(self):
        self.calls += 1
        time.sleep(self.slow_s if self.disturbed else self.fast_s)


@pytest.fixture
def scripted(monkeypatch):
    def make(probes, **kw):
        machine = Machine(probes, **kw)
        monkeypatch.setattr(QuietTimer, "probe", lambda self: machine.probe(self))
        return machine

    return make


TIMING = {"warmup_iters": 0, "min_iters": 5, "min_time_s": 0.0}


def test_a_disturbed_window_is_timed_again_and_the_quiet_one_kept(scripted):
    # history: MIN_HISTORY quiet probes at 1.0 ms; window 1 ends disturbed (1.5 ms), window 2 is quiet
    machine = scripted([1.0] * MIN_HISTORY + [1.0, 1.5, 1.0, 1.05])
    timer = QuietTimer(torch.device("cpu"), tolerance=0.10, max_attempts=5)
    stats, window = timer.time(machine.fn, **TIMING)
    assert window == {"attempts": 2, "probe_p50_ms": [1.0, 1.05], "quiet_level_ms": pytest.approx(1.0), "quiet": True}
    assert stats.n == 5 and stats.p50 < 2.5  # the fast window's samples (1 ms), not the disturbed one's (4 ms)
    assert machine.calls == 2 * (5 + 1)  # two windows of 5 timed calls, each after one untimed call
    assert machine.probes == []


def test_when_no_window_is_quiet_the_least_disturbed_is_kept_and_marked(scripted):
    machine = scripted([1.0] * MIN_HISTORY + [1.3, 1.6, 1.5, 1.3, 1.9, 1.4])
    timer = QuietTimer(torch.device("cpu"), tolerance=0.10, max_attempts=3)
    _, window = timer.time(machine.fn, **TIMING)
    assert window["attempts"] == 3 and window["quiet"] is False
    assert window["probe_p50_ms"] == [1.5, 1.3]  # worse probe 1.5 < 1.6 and 1.9
    assert machine.probes == []  # exactly max_attempts windows, two probes each


def test_one_attempt_records_the_probes_and_never_retimes(scripted):
    machine = scripted([1.0] * MIN_HISTORY + [1.0, 3.0])
    _, window = QuietTimer(torch.device("cpu"), max_attempts=1).time(machine.fn, **TIMING)
    assert window["attempts"] == 1 and window["quiet"] is False and machine.calls == 6


def test_a_fresh_probe_serves_as_the_next_windows_before_probe(monkeypatch):
    """Windows timed back to back (the next kept setting, a window timed again) share the probe
    between them: one probe per window after the history, not two; a probe older than
    FRESH_PROBE_S is not reused."""
    timer = QuietTimer(torch.device("cpu"), max_attempts=1)
    real_probe = timer.probe

    def steady_probe():  # the real probe's bookkeeping, a steady machine's value
        real_probe()
        timer.probes_ms[-1] = 1.0
        return 1.0

    monkeypatch.setattr(timer, "probe", steady_probe)
    fast = lambda: None  # noqa: E731
    _, first = timer.time(fast, **TIMING)
    _, second = timer.time(fast, **TIMING)
    assert len(timer.probes_ms) == MIN_HISTORY + 2 and len(timer.samples_ms) == quiet_module.PROBE_CALLS * (
        MIN_HISTORY + 2
    )
    assert (
        first["probe_p50_ms"][0] == timer.probes_ms[MIN_HISTORY - 1]
        and second["probe_p50_ms"][0] == first["probe_p50_ms"][1]
    )
    monkeypatch.setattr(quiet_module, "FRESH_PROBE_S", 0.0)
    timer.time(fast, **TIMING)
    assert len(timer.probes_ms) == MIN_HISTORY + 4  # a stale probe: a new one before the window


def test_the_warm_up_follows_the_before_probe_and_refills_the_caches(monkeypatch):
    """The warm-up comes after the before-probe: a warm-up longer than FRESH_PROBE_S does not
    make the previous window's after-probe stale, and its calls are the refill (warmup_iters
    untimed calls per window, not one more)."""
    timer = QuietTimer(torch.device("cpu"), max_attempts=1)
    order = []
    real_probe = timer.probe

    def steady_probe():  # quiet, each probe its own value (1.0, 1.001, ...): which one served is visible
        real_probe()
        timer.probes_ms[-1] = 1.0 + 0.001 * order.count("probe")
        order.append("probe")
        return timer.probes_ms[-1]

    def slow():
        order.append("call")
        time.sleep(quiet_module.FRESH_PROBE_S / 2)

    monkeypatch.setattr(timer, "probe", steady_probe)
    timer.ready()
    order.clear()
    timing = {"warmup_iters": 3, "min_iters": 2, "min_time_s": 0.0}
    _, first = timer.time(slow, **timing)
    _, second = timer.time(slow, **timing)
    assert order == ["call"] * 5 + ["probe"] + ["call"] * 5 + ["probe"]  # the history's last probe is fresh too
    assert second["probe_p50_ms"][0] == first["probe_p50_ms"][1] != first["probe_p50_ms"][0]


def test_a_disturbed_probe_is_never_reused_as_the_next_windows_before_probe(monkeypatch):
    """The after-probe of a disturbed window is fresh when the window is timed again at once;
    reused, it would condemn the retry whatever the machine does then: a new probe is taken."""
    timer = QuietTimer(torch.device("cpu"), tolerance=0.10, max_attempts=2)
    values = iter([1.0] * MIN_HISTORY + [2.0, 1.0, 1.0])

    def probe():
        value = next(values)
        timer.probes_ms.append(value)
        timer._probe_ended = time.perf_counter()
        return value

    monkeypatch.setattr(timer, "probe", probe)
    _, window = timer.time(lambda: None, **TIMING)
    assert window == {"attempts": 2, "probe_p50_ms": [1.0, 1.0], "quiet_level_ms": pytest.approx(1.0), "quiet": True}
    assert len(timer.probes_ms) == MIN_HISTORY + 3  # the first before-probe reused, the disturbed one not


def test_the_quiet_level_is_the_10th_percentile_of_the_probes_so_far():
    timer = QuietTimer(torch.device("cpu"))
    with pytest.raises(ValueError, match="no probe"):
        timer.quiet_level_ms()
    timer.probes_ms = [float(v) for v in range(1, 101)]
    assert timer.quiet_level_ms() == pytest.approx(float(np.percentile(range(1, 101), 10)))  # 10.9


def test_the_first_window_waits_for_enough_probes_to_know_the_quiet_level(scripted):
    # the first window is judged against MIN_HISTORY probes, not only its own two: judged
    # against [1.6, 1.6] alone, its slow probes would be the quiet level and it would be kept
    machine = scripted([1.0] * (MIN_HISTORY - 2) + [1.6, 1.6] + [1.6, 1.6, 1.0, 1.0])
    timer = QuietTimer(torch.device("cpu"), max_attempts=2)
    _, window = timer.time(machine.fn, **TIMING)
    assert window["attempts"] == 2 and window["probe_p50_ms"] == [1.0, 1.0]


def test_a_real_probe_times_the_calibration_workload(monkeypatch):
    calls = []
    real = quiet_module.time_callable
    monkeypatch.setattr(quiet_module, "time_callable", lambda fn, **kw: calls.append(kw) or real(fn, **kw))
    timer = QuietTimer(torch.device("cpu"))
    value = timer.probe()
    assert value > 0 and timer.probes_ms == [value]
    assert calls == [
        {"warmup_iters": 0, "min_iters": quiet_module.PROBE_CALLS, "min_time_s": 0.0, "device": timer.device}
    ]


@pytest.mark.parametrize("kw", [{"tolerance": -0.1}, {"max_attempts": 0}])
def test_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        QuietTimer(torch.device("cpu"), **kw)


def test_window_summary_counts_repetitions_quiet_ones_and_windows_timed():
    quiet = {"attempts": 1, "probe_p50_ms": [1.0, 1.0], "quiet_level_ms": 1.0, "quiet": True}
    busy = {**quiet, "attempts": 10, "quiet": False}
    entries = [{"windows": [quiet, busy, {**quiet, "attempts": 3}]}, {"windows": [None, None]}, {}, None]
    assert window_summary(entries) == {"repetitions": 3, "quiet": 2, "windows": 14}


def test_a_timer_for_another_device_is_refused_before_timing():
    from hgbench.profile.run import _time_window

    timer = QuietTimer(torch.device("cpu"))
    with pytest.raises(ValueError, match="QuietTimer for the profiled device"):
        _time_window(lambda: None, timer, torch.device("cuda"), warmup_iters=0, min_iters=1, min_time_s=0.0)
    assert timer.probes_ms == []  # nothing was timed


def test_the_probe_and_the_calibration_run_with_tf32_off(monkeypatch):
    """The calibration workload is one workload under one name: IEEE fp32, also when the probe
    falls inside a ``--tf32`` setting's timing context (which has TF32 on)."""
    import contextlib

    from hgbench.profile import calibration

    modes = []

    @contextlib.contextmanager
    def recording(enabled):
        modes.append(enabled)
        yield

    monkeypatch.setattr(quiet_module, "tf32_mode", recording)
    monkeypatch.setattr(calibration, "tf32_mode", recording)
    QuietTimer(torch.device("cpu")).probe()
    calibration.measure_calibration("cpu", threads=1, min_time_s=0.0, min_iters=2, warmup_iters=0)
    assert modes == [False, False]
