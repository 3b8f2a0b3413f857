"""Where a sweep's wall time goes: the timeline's phases, the sweep record and the summary line,
and the complexity counts cached across sweeps (issue 29)."""

from __future__ import annotations

import time

import pytest
import torch
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.config import select_variants
from hgbench.profile import complexity as complexity_module
from hgbench.profile.complexity import cached_complexity_record, complexity_cache_key, complexity_record
from hgbench.profile.latency import time_callable
from hgbench.profile.quiet import QuietTimer
from hgbench.profile.sweep import build_profiled_model
from hgbench.profile.timeline import PHASES, Timeline, current, phase, process_age_s
from hgbench.records import read_record


def test_phases_add_up_to_the_wall_time_and_the_outermost_phase_takes_it():
    timeline = Timeline()
    with timeline.active():
        with phase("prepare"):
            time.sleep(0.05)
            with phase("timed"):  # inside an open phase: part of it
                time.sleep(0.05)
        time.sleep(0.03)  # no phase: other
        with phase("timed"):
            time.sleep(0.04)
    assert current() is None  # the block ended: marks charge nothing
    with phase("timed"):
        pass
    got = timeline.breakdown()
    assert got["prepare"] == pytest.approx(0.10, abs=0.03) and got["timed"] == pytest.approx(0.04, abs=0.02)
    assert got["other"] == pytest.approx(0.03, abs=0.02)
    assert sum(v for k, v in got.items() if k != "wall") == pytest.approx(got["wall"], abs=0.002)
    with pytest.raises(ValueError, match="unknown timeline phase 'typo'"):
        timeline.move("timed", "typo", 1.0)


def test_a_disturbed_window_is_charged_as_retimed_and_probes_are_not_timed_windows():
    """Three windows timed, the machine judged disturbed (tolerance -1: never quiet): the two
    windows not kept move from ``timed`` to ``retimed``; the probes' timed calls are ``probes``."""
    timer = QuietTimer(torch.device("cpu"), tolerance=0.0, max_attempts=3)
    timer.tolerance = -1.0  # the constructor refuses a negative tolerance; every window is disturbed then
    timeline = Timeline()
    with timeline.active():
        stats, window = timer.time(lambda: time.sleep(0.01), warmup_iters=0, min_iters=1, min_time_s=0.05)
    got = timeline.breakdown()
    assert window["attempts"] == 3 and not window["quiet"] and sum(stats.samples_ms) / 1000 >= 0.05
    assert got["timed"] == pytest.approx(sum(stats.samples_ms) / 1000, rel=0.2)  # the kept window only
    assert got["retimed"] == pytest.approx(2 * got["timed"], rel=0.35)
    assert got["probes"] > 0 and got["warmup"] > 0  # one untimed call before each window
    timed_alone = Timeline()
    with timed_alone.active():
        time_callable(lambda: None, warmup_iters=2, min_iters=5, min_time_s=0.0)
    assert timed_alone.seconds["timed"] > 0 and timed_alone.seconds["warmup"] > 0


def test_process_age_is_the_time_since_this_process_started():
    age = process_age_s()
    assert age is None or 0 < age < 24 * 3600


def test_complexity_is_counted_once_and_read_back_while_the_code_and_the_network_are_the_same(tmp_path, monkeypatch):
    spec = select_variants("hg1")[0]
    model = build_profiled_model(spec, 16, 64, torch.device("cpu"))
    first = cached_complexity_record(model, spec, 16, 64, tmp_path)
    assert first == complexity_record(model, 64)
    (cached,) = (tmp_path / "complexity").glob("*.json")

    def never(*args, **kwargs):
        raise AssertionError("counted again")

    monkeypatch.setattr(complexity_module, "complexity_record", never)
    assert cached_complexity_record(model, spec, 16, 64, tmp_path) == first  # read back
    key = complexity_cache_key(spec, 16, 64)
    assert cached.stem == key
    assert len({key, complexity_cache_key(spec, 14, 64), complexity_cache_key(spec, 16, 128),
                complexity_cache_key(select_variants("hg2")[0], 16, 64)}) == 4  # fmt: skip
    hg8, hg8_adam = select_variants("hg8,hg8-adam-b16")  # one network, two training protocols: one count
    assert complexity_cache_key(hg8, 16, 64) == complexity_cache_key(hg8_adam, 16, 64)
    monkeypatch.setattr(complexity_module, "_COUNTED_BY", ("models/hourglass.py",))  # other code: another key
    assert complexity_cache_key(spec, 16, 64) != key
    cached.write_text("{not json")  # a damaged cache entry is counted again
    monkeypatch.setattr(complexity_module, "_COUNTED_BY", ("models", "profile/complexity.py"))
    monkeypatch.setattr(complexity_module, "complexity_record", lambda m, s: {"parameters": 7})
    assert cached_complexity_record(model, spec, 16, 64, tmp_path) == {"parameters": 7}


def test_the_command_prints_where_the_time_went_and_writes_the_sweep_record(tmp_path):
    args = ["profile", "--variants", "hg1", "--backend", "eager,torchscript", "--input-size", "64", "--min-time-s", "0.05",
            "--min-iters", "2", "--warmup", "1", "--warmup-s", "0", "--threads", "1", "--machine-label", "box-a",
            "--cache-dir", str(tmp_path / "cache"), "--results", str(tmp_path / "results")]  # fmt: skip
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    (path,) = (tmp_path / "results/profile/box-a/sweeps").glob("*.json")
    sweep = read_record(path)
    assert sweep.status == "complete" and sweep.settings == 2 and sweep.failed == 0 and sweep.repetitions == 3
    assert set(sweep.time_s) == {*PHASES, "other"} and sweep.provenance["machine"] == "box-a"
    assert sum(sweep.time_s.values()) == pytest.approx(sweep.wall_s, abs=0.01)
    assert sweep.time_s["timed"] >= sweep.samples_s > 0 and sweep.time_s["complexity"] > 0
    assert sweep.time_s["prepare"] > 0 and sweep.kept_settings == 2  # prepared once, timed in all three repetitions
    assert f"sweep record: {path}" in r.output and "in timed windows" in r.output
    again = CliRunner().invoke(app, args)  # the same network: its complexity comes from the cache
    assert again.exit_code == 0, again.output
    second = max((read_record(p) for p in path.parent.glob("*.json")), key=lambda s: s.started)
    assert second.started > sweep.started and second.time_s["complexity"] < sweep.time_s["complexity"]
