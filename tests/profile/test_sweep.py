"""The profiling sweep: timing split into repetitions interleaved across settings, pooled into one
record per setting, with a pooled calibration; and the helpers it is made of."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from hgbench.config import Architecture, Source, VariantSpec
from hgbench.profile import backends as backends_pkg
from hgbench.profile import profile_model
from hgbench.profile import sweep as sweep_module
from hgbench.profile.backends import Backend, Prepared, RunSettings
from hgbench.profile.calibration import measure_calibration, pool_calibrations
from hgbench.profile.quiet import PROBE_CALLS
from hgbench.profile.roofline import Ceilings
from hgbench.profile.run import latency_entry, repeat_timing
from hgbench.profile.sweep import Budget, build_profiled_model, run_sweep
from hgbench.records import read_record, repetition_range_pct
from hgbench.records.provenance import collect_provenance

CEILINGS = Ceilings(matmul_tflops=0.1, copy_gib_s=10.0, precision="fp32", measured="2026-01-01T00:00:00+00:00")


def tiny_spec(name: str, features: int = 16) -> VariantSpec:
    """A one-stack hourglass small enough to count and run in milliseconds (input 16 px)."""
    arch = Architecture(num_stacks=1, num_features=features, depth=1, stem_channels=8)
    return VariantSpec(name=name, description="test", source=Source(paper="test"), architecture=arch)


class Drifting(Backend):
    """Every setting does the same work: a sleep of ``BASE_S`` times a machine factor that grows
    linearly with the number of calls made so far in the sweep, from 1 to ``1 + DRIFT`` over
    ``TOTAL_CALLS``: a machine that slows down steadily while the sweep runs. ``fn`` returns the
    eager output of the model (so the numerical check passes); ``log`` records the parameter
    count of each prepared model."""

    name = "drifting"
    BASE_S, DRIFT, TOTAL_CALLS = 0.002, 0.5, 1
    calls = 0
    log: list = []
    called: list = []  # the parameter count of the model behind each call, in call order

    def prepare(self, model, example_input, settings):
        with torch.inference_mode():
            out = model(example_input)
        size = sum(p.numel() for p in model.parameters())
        Drifting.log.append(size)

        def fn(x):
            factor = 1 + Drifting.DRIFT * min(Drifting.calls / Drifting.TOTAL_CALLS, 1.0)
            Drifting.calls += 1
            Drifting.called.append(size)
            time.sleep(Drifting.BASE_S * factor)
            return out

        return Prepared(fn=fn, prepare_input=lambda x: x, build_time_s=0.0)


@pytest.fixture
def drifting(monkeypatch):
    monkeypatch.setitem(backends_pkg.BACKENDS, "drifting", Drifting)
    monkeypatch.setattr(Drifting, "calls", 0)
    monkeypatch.setattr(Drifting, "log", [])
    monkeypatch.setattr(Drifting, "called", [])
    return Drifting


def _sweep(tmp_path, repetitions: int, calls_per_setting: int, features=(16, 24)):
    jobs = [(tiny_spec(f"v{i}", f), 4) for i, f in enumerate(features)]
    budget = Budget(
        warmup_iters=0,
        warmup_s=0.0,
        min_iters=calls_per_setting,
        min_time_s=0.0,
        repetitions=repetitions,
        quiet_attempts=1,
    )  # the simulated machine is not what the probes see: never retime here
    return run_sweep(
        jobs, backends=["drifting"], settings_list=[RunSettings()], batch_sizes=[1], input_size=16,
        device=torch.device("cpu"), threads=1, budget=budget, results_dir=tmp_path,
        provenance=collect_provenance(["hgbench", "profile"], threads=1), ceilings={("fp32", False): CEILINGS},
    )  # fmt: skip


def test_budget_splits_the_timed_calls_and_seconds_over_the_repetitions():
    budget = Budget(warmup_iters=2, warmup_s=0.5, min_iters=10, min_time_s=1.5, repetitions=3)
    assert budget.per_repetition(1) == {"warmup_iters": 2, "warmup_s": 0.5, "min_iters": 4, "min_time_s": 0.5}
    assert budget.per_repetition(2) == {"warmup_iters": 2, "warmup_s": 0.0, "min_iters": 4, "min_time_s": 0.5}
    assert Budget(min_iters=10, min_time_s=2.0, repetitions=1).per_repetition()["min_iters"] == 10
    with pytest.raises(ValueError, match="repetitions >= 1"):
        Budget(repetitions=0)


def test_profiled_models_have_the_same_weights_every_time_and_leave_the_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = build_profiled_model(tiny_spec("a"), 4, 16, torch.device("cpu"))
    b = build_profiled_model(tiny_spec("a"), 4, 16, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before) and not a.training
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_pooled_calibration_is_the_median_of_every_block():
    blocks = [measure_calibration("cpu", threads=1, min_time_s=0.0, min_iters=3) for _ in range(2)]
    pooled = pool_calibrations(blocks)
    samples = blocks[0]["samples_ms"] + blocks[1]["samples_ms"]
    assert pooled["blocks"] == 2 and pooled["n"] == len(samples) and "samples_ms" not in pooled
    assert pooled["p50_ms"] == pytest.approx(float(np.median(samples)))
    assert pooled["block_p50_ms"] == pytest.approx([float(np.median(b["samples_ms"])) for b in blocks])
    assert pooled["workload"] == blocks[0]["workload"] and pooled["threads"] == 1
    with pytest.raises(ValueError, match="differ in workload, device or threads"):
        pool_calibrations([blocks[0], {**blocks[1], "threads": 7}])
    with pytest.raises(ValueError, match="at least one"):
        pool_calibrations([])


def test_latency_entry_pools_samples_and_keeps_each_repetitions_median():
    entry = latency_entry([1.0, 2.0, 3.0, 10.0, 20.0], [2.0, 15.0])
    assert entry["n"] == 5 and entry["p50_ms"] == 3.0 and entry["max_ms"] == 20.0
    assert entry["repetitions"] == 2 and entry["repetition_p50_ms"] == [2.0, 15.0]
    assert repetition_range_pct(entry) == pytest.approx(100 * 13 / 3)
    assert repetition_range_pct(latency_entry([1.0, 2.0], [1.5])) is None  # one repetition: no range


def test_repeat_timing_pools_a_new_repetition_and_recomputes_what_depends_on_the_median(drifting):
    model = build_profiled_model(tiny_spec("a"), 4, 16, torch.device("cpu"))
    settings = RunSettings()
    timing = {"warmup_iters": 0, "min_iters": 5, "min_time_s": 0.0}
    rec = profile_model(model, variant="a", num_joints=4, backend="drifting", batch_size=2, input_size=16, threads=1,
                        settings=settings, ceilings=CEILINGS, **timing)  # fmt: skip
    first = list(rec["latency_ms"]["samples_ms"])
    assert rec["status"] == "ok" and rec["latency_ms"]["repetitions"] == 1 and rec["numerics"]["ok"]
    Drifting.BASE_S = 0.006  # the second repetition is three times slower: the pooled median moves
    try:
        repeat_timing(rec, model, settings=settings, threads=1, **timing)
    finally:
        Drifting.BASE_S = 0.002
    lat = rec["latency_ms"]
    assert lat["n"] == 10 and lat["samples_ms"][:5] == first and lat["repetitions"] == 2
    assert lat["repetition_p50_ms"][1] > 2.5 * lat["repetition_p50_ms"][0]
    assert lat["p50_ms"] == pytest.approx(float(np.median(lat["samples_ms"])))
    assert rec["throughput_samples_per_s"] == pytest.approx(2 / (lat["p50_ms"] / 1000))
    assert rec["roofline"]["efficiency"] == pytest.approx(rec["roofline"]["floor_ms"] / lat["p50_ms"])


def test_a_failing_repetition_is_recorded_and_keeps_the_earlier_samples(drifting, monkeypatch):
    model = build_profiled_model(tiny_spec("a"), 4, 16, torch.device("cpu"))
    rec = profile_model(model, variant="a", num_joints=4, backend="drifting", batch_size=1, input_size=16, threads=1,
                        warmup_iters=0, min_iters=3, min_time_s=0.0, ceilings=CEILINGS)  # fmt: skip

    def broken(self, model, example_input, settings):
        raise RuntimeError("engine build failed")

    monkeypatch.setattr(Drifting, "prepare", broken)
    repeat_timing(rec, model, settings=RunSettings(), threads=1, warmup_iters=0, min_iters=3, min_time_s=0.0)
    assert rec["status"] == "error" and rec["error"] == "timing (repetition 2): RuntimeError: engine build failed"
    assert rec["latency_ms"]["n"] == 3 and rec["latency_ms"]["repetitions"] == 1
    repeat_timing(rec, model, settings=RunSettings(), threads=1, warmup_iters=0, min_iters=3, min_time_s=0.0)
    assert rec["latency_ms"]["n"] == 3  # a failed record is not timed again


def test_interleaved_repetitions_cancel_a_drifting_machine(tmp_path, drifting):
    """Two settings that do the same work, on a machine that slows down by half during the sweep.
    Timed one after the other (one repetition), the second looks about 20 % slower; timed in
    eight repetitions interleaved across the sweep, they agree within a few percent."""
    calls = 48
    Drifting.TOTAL_CALLS = 2 * (calls + 2)  # timed calls + one numerics call per setting + one untimed call per window
    try:
        contiguous = _sweep(tmp_path / "one", repetitions=1, calls_per_setting=calls, features=(16, 24))
        Drifting.calls = 0
        interleaved = _sweep(tmp_path / "eight", repetitions=8, calls_per_setting=calls, features=(16, 24))
    finally:
        Drifting.TOTAL_CALLS = 1

    def ratio(rows):
        a, b = (body["latency_ms"]["p50_ms"] for body, _ in rows)
        return max(a, b) / min(a, b)

    assert ratio(contiguous) > 1.12  # the simulated drift is there
    assert ratio(interleaved) < 1.05
    for body, path in interleaved:
        assert body["status"] == "ok" and body["latency_ms"]["n"] == calls
        assert body["latency_ms"]["repetitions"] == 8 and len(body["latency_ms"]["repetition_p50_ms"]) == 8
        windows = body["latency_ms"]["windows"]  # each repetition's window, between two real probes
        assert len(windows) == 8 and all(w["attempts"] == 1 and min(w["probe_p50_ms"]) > 0 for w in windows)
        on_disk = read_record(path)
        assert on_disk["latency_ms"] == body["latency_ms"]
        assert on_disk["calibration"]["blocks"] == 2 * 8  # one block per variant per repetition
        # pooled from the probes around the windows (not the cold history before the first): one
        # after each of the 16 windows, one before it unless the previous window's is fresh and quiet
        probes, rest = divmod(on_disk["calibration"]["n"], PROBE_CALLS)
        assert rest == 0 and 2 * 8 <= probes <= 2 * 2 * 8
        assert on_disk["calibration"] == interleaved[0][0]["calibration"]  # one pooled calibration for the run


def test_variants_that_build_the_same_network_are_timed_once_and_each_gets_the_record(tmp_path, drifting):
    """v0 and v1 differ only in training (supervision): one network, prepared and timed once; v1's
    record is v0's measurement under v1's own identity, naming v0; the sweep's progress counts one
    network's timing."""
    v0, v2 = tiny_spec("v0"), tiny_spec("v2", 8)
    v1 = dataclasses.replace(tiny_spec("v1"), supervision="final")
    assert sweep_module.network_twins([(v0, 4), (v1, 4), (v2, 4), (v1, 5)]) == {1: 0}  # 5 heatmaps: another network
    steps = []
    budget = Budget(warmup_iters=0, warmup_s=0.0, min_iters=3, min_time_s=0.0, repetitions=2, quiet_attempts=1)
    rows = run_sweep(
        [(v0, 4), (v1, 4), (v2, 4)], backends=["drifting"], settings_list=[RunSettings()], batch_sizes=[1],
        input_size=16, device=torch.device("cpu"), threads=1, budget=budget, results_dir=tmp_path,
        provenance=collect_provenance(["hgbench", "profile"], threads=1), ceilings={("fp32", False): CEILINGS},
        on_step=lambda label, advance: steps.append(advance),
    )  # fmt: skip
    assert [r.variant for r, _ in rows] == ["v0", "v1", "v2"]
    assert len(Drifting.log) == 2 and steps.count(True) == 2 * 2  # two networks, two repetitions
    (r0, p0), (r1, p1), (r2, _) = rows
    assert r0.measured_as is None and r2.measured_as is None and r1.measured_as == "v0"
    assert r1.latency_ms == r0.latency_ms and r1.latency_ms["repetitions"] == 2 and r1.calibration == r0.calibration
    assert r1.spec_hash != r0.spec_hash and r1.spec["supervision"] == "final" and p1 != p0
    on_disk = read_record(p1)
    assert on_disk["variant"] == "v1" and on_disk["measured_as"] == "v0" and on_disk["latency_ms"] == r0.latency_ms


def test_a_failed_measurement_is_the_failure_of_every_variant_of_its_network(tmp_path, drifting, monkeypatch):
    """v0's setting fails to prepare: v1 (the same network) gets the failed record under its own
    identity, naming v0, not a success; v2 (another network) is measured as usual."""
    real_prepare = Drifting.prepare

    def prepare(self, model, example_input, settings):
        if sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in build_profiled_model(
                tiny_spec("v0"), 4, 16, torch.device("cpu")).parameters()):  # fmt: skip
            raise RuntimeError("no kernel for this network")
        return real_prepare(self, model, example_input, settings)

    monkeypatch.setattr(Drifting, "prepare", prepare)
    v0, v2 = tiny_spec("v0"), tiny_spec("v2", 8)
    v1 = dataclasses.replace(tiny_spec("v1"), supervision="final")
    budget = Budget(warmup_iters=0, warmup_s=0.0, min_iters=3, min_time_s=0.0, repetitions=2, quiet_attempts=1)
    rows = run_sweep(
        [(v0, 4), (v1, 4), (v2, 4)], backends=["drifting"], settings_list=[RunSettings()], batch_sizes=[1],
        input_size=16, device=torch.device("cpu"), threads=1, budget=budget, results_dir=tmp_path,
        provenance=collect_provenance(["hgbench", "profile"], threads=1), ceilings={("fp32", False): CEILINGS},
    )  # fmt: skip
    (r0, _), (r1, p1), (r2, _) = rows
    assert r0.status == r1.status == "error" and "no kernel for this network" in r1.error
    assert r1.variant == "v1" and r1.measured_as == "v0" and read_record(p1)["status"] == "error"
    assert r2.status == "ok" and r2.measured_as is None and r2.latency_ms["repetitions"] == 2


def _visits(called: list) -> list:
    """The settings (by parameter count) in the order they were called, runs of calls of one setting as one visit."""
    return [size for i, size in enumerate(called) if i == 0 or called[i - 1] != size]


def test_each_repetition_visits_every_setting_before_the_next_begins(tmp_path, drifting):
    """Each setting is prepared once and kept: repetitions 2 and 3 time the same artefact, each
    repetition visiting every setting (in a shuffled order) before the next begins."""
    rows = _sweep(tmp_path, repetitions=3, calls_per_setting=3, features=(8, 16, 24))
    sizes = [body["parameters"] for body, _ in rows]  # three variants of distinct sizes, in job order
    assert [body["variant"] for body, _ in rows] == ["v0", "v1", "v2"] and len(set(sizes)) == 3
    assert Drifting.log == sizes  # prepared once each, in repetition 1's order
    visits = _visits(Drifting.called)
    assert len(visits) == 9 and visits[:3] == sizes and sorted(visits[3:6]) == sorted(visits[6:9]) == sorted(sizes)
    assert all(body["latency_ms"]["repetitions"] == 3 and body["latency_ms"]["n"] == 3 for body, _ in rows)
    assert all(body["latency_ms"]["prepares"] == 1 for body, _ in rows)


def test_a_backend_that_cannot_keep_its_artefact_is_prepared_again_in_every_repetition(tmp_path, drifting, monkeypatch):
    monkeypatch.setattr(Drifting, "keepable", False)  # as the compile backend (torch._dynamo.reset between settings)
    rows = _sweep(tmp_path, repetitions=3, calls_per_setting=3, features=(8, 16))
    sizes = [body["parameters"] for body, _ in rows]
    assert len(Drifting.log) == 6 and Drifting.log[:2] == sizes and sorted(Drifting.log[2:4]) == sorted(sizes)
    assert all(body["latency_ms"]["prepares"] == 3 for body, _ in rows)


def test_kept_settings_are_released_when_memory_runs_low_and_prepared_again(tmp_path, drifting, monkeypatch):
    """Below half the memory available at the start, every kept setting is dropped; those are
    then prepared again in each later repetition (as before issue 29), the others stay kept."""
    available = iter([100, 90, 40] + [40] * 100)  # at the start, after keeping v0, after keeping v1
    monkeypatch.setattr(sweep_module, "available_memory_bytes", lambda device: next(available))
    rows = _sweep(tmp_path, repetitions=3, calls_per_setting=3, features=(8, 16))
    by_variant = {body["variant"]: body["latency_ms"]["prepares"] for body, _ in rows}
    assert by_variant == {"v0": 3, "v1": 3}  # v1 tipped memory below half: both released after repetition 1
    assert len(Drifting.log) == 6


@pytest.mark.parametrize("repetitions, clears", [(2, 1), (1, 2)])
def test_the_sweep_clears_torchscript_types_once_no_trace_is_kept(tmp_path, monkeypatch, repetitions, clears):
    """Every trace keeps its frozen weights alive in TorchScript's global class registry until it
    is cleared (a whole-registry sweep in repetitions ran out of memory), and clearing it breaks
    every traced module still alive: with repetitions the traces are kept and timed again, and the
    registry is cleared once, after the last repetition; with one repetition, after each setting."""
    cleared = []
    real = torch._C._jit_clear_class_registry
    monkeypatch.setattr(torch._C, "_jit_clear_class_registry", lambda: cleared.append(1) or real())
    budget = Budget(warmup_iters=1, warmup_s=0.0, min_iters=2, min_time_s=0.0, repetitions=repetitions)
    rows = run_sweep(
        [(tiny_spec("v0"), 4)], backends=["eager", "torchscript"], settings_list=[RunSettings()], batch_sizes=[1, 2],
        input_size=16, device=torch.device("cpu"), threads=1, budget=budget, results_dir=tmp_path,
        provenance=collect_provenance(["hgbench", "profile"], threads=1), ceilings={("fp32", False): CEILINGS},
    )  # fmt: skip
    assert all(body["status"] == "ok" and body["latency_ms"]["repetitions"] == repetitions for body, _ in rows)
    assert len(cleared) == clears  # two TorchScript settings (batch 1 and 2)


def test_each_setting_gets_the_ceilings_of_its_precision_and_tf32(tmp_path, drifting):
    """An fp32 record with --tf32 must be divided by a TF32 ceiling, not the IEEE one (its
    efficiency could exceed 1 otherwise): the sweep looks ceilings up by (precision, tf32)."""
    tf32_ceilings = dataclasses.replace(CEILINGS, matmul_tflops=CEILINGS.matmul_tflops * 8, tf32=True)
    budget = Budget(warmup_iters=0, warmup_s=0.0, min_iters=2, min_time_s=0.0, repetitions=1, quiet_attempts=1)
    rows = run_sweep(
        [(tiny_spec("v0"), 4)], backends=["drifting"], settings_list=[RunSettings(), RunSettings(tf32=True)],
        batch_sizes=[1], input_size=16, device=torch.device("cpu"), threads=1, budget=budget, results_dir=tmp_path,
        provenance=collect_provenance(["hgbench", "profile"], threads=1),
        ceilings={("fp32", False): CEILINGS, ("fp32", True): tf32_ceilings},
    )  # fmt: skip
    by_tf32 = {body["tf32"]: body["roofline"]["ceilings"] for body, _ in rows}
    assert by_tf32 == {False: CEILINGS.to_record(), True: tf32_ceilings.to_record()}


def test_sweep_records_carry_the_network_identity_of_their_variant(tmp_path, drifting):
    from hgbench.records.identity import network_identity

    rows = _sweep(tmp_path, repetitions=1, calls_per_setting=2, features=(8, 16))
    for (spec, joints), (record, path) in zip([(tiny_spec("v0", 8), 4), (tiny_spec("v1", 16), 4)], rows):
        expected = network_identity(spec, joints)
        assert {k: record[k] for k in expected} == expected
        assert {k: read_record(path)[k] for k in expected} == expected


def test_the_garbage_collector_sees_everything_again_after_a_sweep_even_when_kept_settings_failed(
    tmp_path, drifting, monkeypatch
):
    """Kept settings are frozen out of the collector's sight during the sweep (gc.freeze); a
    later repetition that fails drops the setting, and the sweep still unfreezes at its end."""
    import gc

    later = {"on": False}
    real_prepare, real_later = Drifting.prepare, sweep_module._later_repetition

    def failing_later(self, model, example_input, settings):
        prepared = real_prepare(self, model, example_input, settings)
        fn = prepared.fn

        def flaky(x):
            if later["on"]:  # repetition 1 done: every later call fails
                raise RuntimeError("lost the device")
            return fn(x)

        return dataclasses.replace(prepared, fn=flaky)

    def mark_later(*args, **kwargs):
        later["on"] = True
        return real_later(*args, **kwargs)

    monkeypatch.setattr(sweep_module, "_later_repetition", mark_later)
    monkeypatch.setattr(Drifting, "prepare", failing_later)
    rows = _sweep(tmp_path, repetitions=3, calls_per_setting=3, features=(8, 16))
    assert all(body["status"] == "error" and "lost the device" in body["error"] for body, _ in rows)
    assert gc.get_freeze_count() == 0
