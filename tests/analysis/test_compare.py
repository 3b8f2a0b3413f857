"""hgbench compare: thresholds, matching, calibration normalisation, the statistical test,
verdicts and exit statuses on constructed records; then real measurements of hg1 (an
unchanged re-run passes, a 2x wider network under the same name fails)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import make_record
from typer.testing import CliRunner

from hgbench.analysis.compare import (
    CHANGED,
    ERROR,
    IMPROVEMENT,
    MISSING,
    NEW,
    REGRESSION,
    UNCHANGED,
    compare_results,
    load_record_set,
    machine_factor,
    min_attainable_p,
    normalised_ratio,
    parse_thresholds,
    slower_p_values,
)
from hgbench.cli import app
from hgbench.models import create_model
from hgbench.records import SCHEMA, key_of

runner = CliRunner()

# The thresholds .ci/run passes to `hgbench compare` (keep in step with it).
CI_GATE = ["p50=50", "p90=off", "throughput=off", "peak_memory=off"]


def invoke(*args: str) -> tuple[int, str]:
    """Run the CLI; exit status and its output with line wrapping undone (rich wraps at 80 columns)."""
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, " ".join(r.output.split())


def body(
    variant: str = "hg1", p50: float = 10.0, calib: float = 5.0, n: int = 31, spread: float = 0.05, **over
) -> dict:
    """A profile record whose latency samples are evenly spread over p50 * [1 - spread, 1 + spread]
    (so their median is exactly p50): conftest's record factory."""
    return make_record("profile", variant=variant, p50=p50, calib=calib, n=n, spread=spread, **over)


def write(folder: Path, *records: dict) -> Path:
    for i, rec in enumerate(records):
        path = folder / "profile" / "h" / f"{rec['variant']}__{rec['precision']}__{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rec))
    return folder


def rows_of(comp, metric: str) -> dict[str, object]:
    return {r.key.variant: r for r in comp.rows if r.metric == metric}


def run_compare(tmp_path: Path, base: list[dict], cur: list[dict], **kw):
    write(tmp_path / "base", *base)
    write(tmp_path / "cur", *cur)
    return compare_results(tmp_path / "base", tmp_path / "cur", **kw)


# --- thresholds -----------------------------------------------------------------------------


def test_thresholds_default_and_overrides():
    t = parse_thresholds(["p50=20", "p90=off", "throughput=12.5%"])
    assert t["p50"] == 20.0 and t["p90"] is None and t["throughput"] == 12.5
    assert t["parameters"] == 0.0 and t["gmacs"] == 0.0  # untouched defaults stay
    assert parse_thresholds(None)["p50"] == 10.0


@pytest.mark.parametrize(
    "item, message",
    [
        ("p50", "expected METRIC=PERCENT"),
        ("latency=5", "unknown metric 'latency'"),
        ("p50=fast", "must be a number >= 0"),
        ("p50=-3", "must be a number >= 0"),
        ("p50=nan", "must be a number >= 0"),
    ],
)
def test_bad_thresholds_are_refused_with_the_reason(item, message):
    with pytest.raises(ValueError, match=message):
        parse_thresholds([item])


def test_cli_bad_threshold_exits_2_naming_it(tmp_path):
    write(tmp_path / "r", body())
    code, out = invoke("compare", tmp_path / "r", tmp_path / "r", "--threshold", "p50")
    assert code == 2 and "--threshold 'p50': expected METRIC=PERCENT" in out


# --- normalisation maths ----------------------------------------------------------------------


def test_normalised_ratio_closed_forms():
    # baseline 10 ms on a machine whose calibration takes 5 ms; current 30 ms where it takes 10 ms:
    # (30 / 10) / (10 / 5) = 1.5
    f = machine_factor(5.0, 10.0)
    assert f == 2.0
    assert normalised_ratio(10.0, 30.0, f) == pytest.approx(1.5)
    # a machine 2x slower at everything: no change
    assert normalised_ratio(10.0, 20.0, f) == pytest.approx(1.0)
    # throughput is a rate: 100/s -> 50/s on the 2x slower machine is no change
    assert normalised_ratio(100.0, 50.0, f, higher_is_better=True) == pytest.approx(1.0)
    assert normalised_ratio(0.0, 0.0) == 1.0 and math.isinf(normalised_ratio(0.0, 1.0))
    with pytest.raises(ValueError):
        machine_factor(0.0, 1.0)


def test_a_uniformly_slower_machine_is_not_a_regression(tmp_path):
    # every timing 2x, the calibration 2x too: the same code on a slower machine
    comp = run_compare(tmp_path, [body(p50=10.0, calib=5.0)], [body(p50=20.0, calib=10.0)])
    p50 = rows_of(comp, "p50")["hg1"]
    assert p50.ratio == pytest.approx(1.0) and p50.factor == pytest.approx(2.0)
    assert p50.verdict == UNCHANGED and comp.exit_code == 0
    assert rows_of(comp, "throughput")["hg1"].ratio == pytest.approx(1.0)
    # ...while without normalisation it reads as twice as slow
    comp = run_compare(tmp_path / "raw", [body(p50=10.0, calib=5.0)], [body(p50=20.0, calib=10.0)], normalize=False)
    assert rows_of(comp, "p50")["hg1"].verdict == REGRESSION and comp.exit_code == 1


def test_slower_code_on_a_faster_machine_is_a_regression(tmp_path):
    # current machine 2x faster (calibration 2.5 vs 5 ms), model time unchanged in ms: the code got 2x slower
    comp = run_compare(tmp_path, [body(p50=10.0, calib=5.0)], [body(p50=10.0, calib=2.5)])
    r = rows_of(comp, "p50")["hg1"]
    assert r.ratio == pytest.approx(2.0) and r.verdict == REGRESSION and r.failing
    assert rows_of(comp, "throughput")["hg1"].ratio == pytest.approx(0.5)
    assert rows_of(comp, "throughput")["hg1"].verdict == REGRESSION
    assert comp.exit_code == 1 and comp.regressed_variants() == ["hg1"]


# --- the statistical test ---------------------------------------------------------------------


def test_mann_whitney_on_separated_and_on_equal_samples():
    base = [float(i) for i in range(1, 9)]
    cur = [s + 100 for s in base]
    p_slow, p_fast = slower_p_values(base, cur)
    # 8 samples a side, no ties: scipy's exact test; every current sample above every baseline
    # one has probability 1 / C(16, 8) under the null hypothesis
    assert p_slow == pytest.approx(1 / math.comb(16, 8)) == pytest.approx(min_attainable_p(8, 8))
    assert p_fast == pytest.approx(1.0)
    p_slow, p_fast = slower_p_values(base, list(base))
    assert p_slow > 0.4 and p_fast > 0.4
    assert min_attainable_p(3, 3) == pytest.approx(0.05)
    # 30 a side: the normal approximation, z = (U - mn/2 - 1/2) / sqrt(mn(m+n+1)/12) with U = mn
    m = n = 30
    z = (m * n / 2 - 0.5) / math.sqrt(m * n * (m + n + 1) / 12)
    big = [float(i) for i in range(m)]
    p_slow, _ = slower_p_values(big, [s + 100 for s in big])
    assert p_slow == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-6)
    with pytest.raises(ValueError):
        slower_p_values([], [1.0])


def test_a_threshold_without_significance_is_not_a_regression(tmp_path):
    # 3 samples a side: 1.3x slower, but the exact test cannot go below 0.05 > alpha
    comp = run_compare(tmp_path, [body(p50=10.0, n=3)], [body(p50=13.0, n=3)])
    r = rows_of(comp, "p50")["hg1"]
    assert r.ratio == pytest.approx(1.3) and r.p_value == pytest.approx(0.05)
    assert r.verdict == UNCHANGED and "not significant" in r.note and comp.exit_code == 0
    assert any("cannot reach" in w for w in comp.warnings)


def test_significance_without_the_threshold_is_not_a_regression(tmp_path):
    # 2 % slower over 2,001 samples: the test is sure, the threshold (10 %) says it does not matter
    comp = run_compare(tmp_path, [body(p50=10.0, n=2001)], [body(p50=10.2, n=2001)])
    r = rows_of(comp, "p50")["hg1"]
    assert r.p_value < 1e-6 and r.verdict == UNCHANGED and comp.exit_code == 0


def test_improvement_is_reported_and_passes(tmp_path):
    comp = run_compare(tmp_path, [body(p50=10.0)], [body(p50=5.0)])
    assert rows_of(comp, "p50")["hg1"].verdict == IMPROVEMENT
    assert rows_of(comp, "throughput")["hg1"].verdict == IMPROVEMENT
    assert comp.exit_code == 0


def test_threshold_off_never_judges(tmp_path):
    comp = run_compare(tmp_path, [body(p50=10.0)], [body(p50=30.0)], thresholds=parse_thresholds(CI_GATE))
    assert rows_of(comp, "p50")["hg1"].verdict == REGRESSION  # 3x > 1.5x
    assert rows_of(comp, "p90")["hg1"].verdict == UNCHANGED and rows_of(comp, "p90")["hg1"].note == "threshold off"
    comp = run_compare(tmp_path / "b", [body(p50=10.0)], [body(p50=14.0)], thresholds=parse_thresholds(CI_GATE))
    assert comp.exit_code == 0  # 1.4x passes the CI gate's 1.5x


# --- counts and memory ------------------------------------------------------------------------


def test_parameters_and_gmacs_changes_are_changes_not_regressions(tmp_path):
    comp = run_compare(tmp_path, [body()], [body(parameters=1001, gmacs_fvcore=0.001)])
    assert rows_of(comp, "parameters")["hg1"].verdict == CHANGED
    assert rows_of(comp, "gmacs")["hg1"].verdict == CHANGED
    assert comp.exit_code == 0


def test_peak_memory_threshold_and_floor(tmp_path):
    comp = run_compare(tmp_path, [body(peak_memory_mib=20.0)], [body(peak_memory_mib=30.0)])
    assert rows_of(comp, "peak_memory")["hg1"].verdict == REGRESSION and comp.exit_code == 1
    # +50 % but only 0.5 MiB: allocator noise on CPU, below the 1 MiB floor
    comp = run_compare(tmp_path / "b", [body(peak_memory_mib=1.0)], [body(peak_memory_mib=1.5)])
    assert rows_of(comp, "peak_memory")["hg1"].verdict == UNCHANGED and comp.exit_code == 0


# --- matching ---------------------------------------------------------------------------------


def test_matching_by_configuration(tmp_path):
    base = [body("hg1"), body("hg2"), body("hg1", precision="fp16", p50=4.0)]
    cur = [body("hg1", p50=30.0), body("hg8"), body("hg1", precision="fp16", p50=4.0)]
    comp = run_compare(tmp_path, base, cur)
    verdicts = {(r.key.variant, r.key.precision): r.verdict for r in comp.rows if r.metric in (None, "p50")}
    assert verdicts == {
        ("hg1", "fp32"): REGRESSION,
        ("hg1", "fp16"): UNCHANGED,
        ("hg2", "fp32"): MISSING,
        ("hg8", "fp32"): NEW,
    }
    key = key_of("profile", body("hg1", precision="fp16", tf32=True, channels_last=True))
    assert key.label() == "hg1 j16 eager fp16 tf32 cl b1 s64 cpu"


def test_threads_are_not_matched_but_warned_about(tmp_path):
    comp = run_compare(tmp_path, [body(threads=1)], [body(threads=2)])
    assert rows_of(comp, "p50")["hg1"].verdict == UNCHANGED
    assert any("threads 1 (baseline) vs 2 (current)" in w for w in comp.warnings)


def test_no_matching_records_names_both_sides(tmp_path):
    write(tmp_path / "base", body("hg1", input_size=256))
    write(tmp_path / "cur", body("hg1", input_size=64))
    with pytest.raises(
        ValueError, match=r"BASELINE has: hg1 j16 eager fp32 b1 s256 cpu\. CURRENT has: hg1 j16 eager fp32 b1 s64 cpu"
    ):
        compare_results(tmp_path / "base", tmp_path / "cur")
    code, out = invoke("compare", tmp_path / "base", tmp_path / "cur")
    assert code == 2 and "no record of CURRENT" in out and "BASELINE has: hg1 j16 eager fp32 b1 s256 cpu" in out


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="BASELINE .*nope: no such"):
        load_record_set(tmp_path / "nope", "BASELINE")
    old = body()
    old["schema"] = "hgbench.record/1"
    write(tmp_path / "old", old)
    with pytest.raises(
        ValueError, match="schema hgbench.record/1 profile records are no longer read: re-run hgbench profile"
    ):
        load_record_set(tmp_path / "old", "BASELINE")
    write(tmp_path / "dup", body(), body())
    with pytest.raises(ValueError, match="two records of hg1"):
        load_record_set(tmp_path / "dup", "CURRENT")
    # no calibration: normalising is impossible, unless --no-normalize
    write(tmp_path / "nocal", body(calibration=None))
    write(tmp_path / "ok", body())
    with pytest.raises(ValueError, match="'calibration'.*--no-normalize"):
        compare_results(tmp_path / "ok", tmp_path / "nocal")
    assert compare_results(tmp_path / "ok", tmp_path / "nocal", normalize=False).exit_code == 0
    other = body(calibration={"workload": "another", "p50_ms": 5.0, "samples_ms": [5.0]})
    write(tmp_path / "other", other)
    with pytest.raises(ValueError, match="calibration workload 'another' differs"):
        compare_results(tmp_path / "ok", tmp_path / "other")
    code, out = invoke("compare", tmp_path / "nope", tmp_path / "ok")
    assert code == 2 and "BASELINE" in out and "nope: no such results folder" in out
    code, out = invoke("compare", tmp_path / "ok", tmp_path / "ok", "--alpha", "2")
    assert code == 2 and "--alpha must be in (0, 1)" in out


def test_a_run_that_now_fails_fails_the_comparison(tmp_path):
    broken = body(status="error", error="prepare: RuntimeError: boom", latency_ms=None, throughput_samples_per_s=None)
    comp = run_compare(tmp_path, [body()], [broken])
    (row,) = comp.rows
    assert row.verdict == ERROR and row.failing and "boom" in row.note and comp.exit_code == 1
    comp = run_compare(tmp_path / "both", [broken], [broken])
    assert comp.rows[0].verdict == ERROR and not comp.failed


@pytest.mark.parametrize(
    ("over", "words"),
    [
        (
            {"latency_ms": None, "throughput_samples_per_s": None},
            ["'latency_ms.p50_ms' is missing", "completed setting"],
        ),
        ({"parameters": -5}, ["field 'parameters' is -5"]),
        ({"gmacs_fvcore": float("nan")}, ["field 'gmacs_fvcore' is nan"]),
    ],
)
def test_an_invalid_record_among_good_ones_is_refused_not_compared_as_missing(tmp_path, over, words):
    """Issue 26: a hand-edited CURRENT record (no latency, negative parameters, NaN GMACs) beside
    good ones was left out, its setting read as "missing" and the comparison passed (exit 0)."""
    write(tmp_path / "base", body("hg1"), body("hg2"))
    write(tmp_path / "cur", body("hg1"), body("hg2", **over))
    bad = tmp_path / "cur" / "profile" / "h" / "hg2__fp32__1.json"
    with pytest.raises(
        ValueError, match=r"^CURRENT .*cur: refused record .*hg2__fp32__1.json: malformed profile record"
    ):
        compare_results(tmp_path / "base", tmp_path / "cur")
    code, out = invoke("compare", tmp_path / "base", tmp_path / "cur")
    assert code == 2 and str(bad) in out and all(w in out for w in words), out
    assert "Traceback" not in out


def test_cli_prints_the_table_and_exits_1_on_a_regression(tmp_path):
    write(tmp_path / "base", body("hg1"), body("hg2"))
    write(tmp_path / "cur", body("hg1", p50=25.0), body("hg2"))
    out = tmp_path / "comparison.json"
    code, text = invoke("compare", tmp_path / "base", tmp_path / "cur", "--json", out)
    assert code == 1, text
    assert "hg1 j16 eager fp32 b1 s64 cpu │ latency p50 (ms) │ 10 │ 25 │ 1 │ 2.5" in text
    assert "regression: hg1" in text and "hg2" not in text  # unchanged rows are not shown
    saved = json.loads(out.read_text())
    assert saved["failed"] and saved["regressed_variants"] == ["hg1"]
    code, text = invoke("compare", tmp_path / "base", tmp_path / "base", "--all")
    assert code == 0 and "hg2 j16" in text, text


# --- real measurements: an unchanged re-run passes, a 2x wider network fails -----------------
#
# Measured as the CI gate (`hgbench latency-check`, hgbench/profile/gate.py) measures: CPU, batch 1,
# 64 px, 1 thread, eval, inference_mode, every call of the model interleaved with a call of the
# frozen reference network (the calibration), judged with the gate's thresholds (calibrated p50
# above 1.5x AND Mann-Whitney p < 0.01), a flagged variant re-measured once.


@pytest.fixture(scope="module")
def nets():
    import dataclasses

    from hgbench.config import get_variant
    from hgbench.profile.gate import frozen_reference_network

    spec = get_variant("hg1")
    arch = spec.architecture
    wide = dataclasses.replace(spec, architecture=dataclasses.replace(arch, num_features=2 * arch.num_features))
    return {
        "hg1": create_model(spec, 16, input_size=64),
        "wide": create_model(wide, 16, input_size=64),
        "reference": frozen_reference_network(),
    }


def measure(nets, which: str) -> dict:
    from hgbench.profile.gate import gate_record

    return gate_record(nets[which], "hg1", reference_net=nets["reference"], min_iters=20, min_time_s=0.3).to_dict()


def gate(tmp_path: Path, base: dict, cur: dict) -> tuple[int, str]:
    for rec in (base, cur):
        rec.update(schema=SCHEMA, kind="profile", created="2025-01-01T00:00:00+00:00", provenance={"hostname": "h"})
    write(tmp_path / "base", base)
    write(tmp_path / "cur", cur)
    return invoke("compare", tmp_path / "base", tmp_path / "cur", *[a for t in CI_GATE for a in ("--threshold", t)])


def test_ci_gate_thresholds_are_the_ones_tested_here():
    from hgbench.analysis.gate import GATE_THRESHOLDS

    assert list(GATE_THRESHOLDS) == CI_GATE


def test_unchanged_code_re_measured_passes(tmp_path, nets):
    baseline = measure(nets, "hg1")
    code, out = gate(tmp_path / "1", baseline, measure(nets, "hg1"))
    if code == 1:  # as the gate does: a flagged variant is re-measured once before the check fails
        code, out = gate(tmp_path / "2", baseline, measure(nets, "hg1"))
    assert code == 0, out


def test_a_2x_wider_network_under_the_same_name_fails(tmp_path, nets):
    # num_features 256 -> 512: 3.1x the MACs at 64 px (fvcore: 1.02 vs 0.32 GMACs; the stem keeps its
    # width) and 1.9x to 2.8x the CPU time of hg1 relative to the reference network, measured under a
    # load average of 4 to 10 on 2 cores: above the gate's 1.5x however loaded the machine is
    code, out = gate(tmp_path, measure(nets, "hg1"), measure(nets, "wide"))
    assert code == 1, out
    assert "hg1 j16 eager fp32 b1 s64 cpu │ latency p50 (ms)" in out and "regression: hg1" in out
    assert "parameters" in out and "changed" in out  # the width shows in the count too


def test_a_variant_whose_forward_fails_is_written_with_its_identity(tmp_path, monkeypatch):
    from hgbench.config import get_variant
    from hgbench.profile import gate as profile_gate
    from hgbench.records import read_record
    from hgbench.records.identity import network_identity

    def broken(*args, **kwargs):
        raise RuntimeError("shape\nmismatch")

    monkeypatch.setattr(profile_gate, "gate_record", broken)
    (path,) = profile_gate.measure_variants(["hg1"], tmp_path)
    assert path == tmp_path / "hg1__j16__eager__cpu__fp32__b1__s64.json"
    rec = read_record(path)
    assert rec.status == "error" and rec.error == "timing: RuntimeError: shape mismatch"
    assert {k: rec[k] for k in ("variant", "spec", "spec_hash", "num_joints")} == network_identity(
        get_variant("hg1"), 16
    )
    assert (rec.backend, rec.precision, rec.batch_size, rec.input_size, rec.device, rec.threads) == (
        "eager", "fp32", 1, 64, "cpu", 1,
    )  # fmt: skip


def test_frozen_reference_network_is_newells_one_stack_hourglass(nets):
    # the frozen copy has exactly the parameters of hgbench's hg1 (same layers, 16 heatmaps; the
    # closed form is checked in tests/models/test_models.py)...
    import torch

    def count(net):
        return sum(p.numel() for p in net.parameters())

    assert count(nets["reference"]) == count(nets["hg1"]) == 3_426_448
    # ...and computes the same function: hg1 with the frozen network's weights loaded in order

    hg1 = nets["hg1"].eval()
    ours = list(hg1.state_dict().values())
    frozen = list(nets["reference"].state_dict().values())
    assert [t.shape for t in ours] == [t.shape for t in frozen]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    copy = {k: v.clone() for k, v in hg1.state_dict().items()}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # two threads on a busy 2-core machine take seconds per call
        hg1.load_state_dict(dict(zip(hg1.state_dict(), frozen)))
        with torch.inference_mode():
            ours, theirs = hg1(x)[-1], nets["reference"](x)
        assert ours.shape == theirs.shape == (1, 16, 16, 16)
        assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    finally:
        hg1.load_state_dict(copy)
        torch.set_num_threads(threads)


# --- records of the real profiler ---------------------------------------------------------------


@pytest.mark.slow
def test_compare_reads_hgbench_profile_records(tmp_path, monkeypatch):
    """Two `hgbench profile` runs of hg1, the second with hg1 twice as wide (a user registry in
    HGBENCH_VARIANTS_DIR): compare matches them, normalises by each run's calibration as the
    closed form says, and reports the width as changed parameters and GMACs. (Whether the latency
    is flagged is left to the interleaved gate tests above: two separate runs on a loaded shared
    machine are exactly what the gate does not rely on.)"""
    import shutil

    import yaml

    from hgbench.paths import variants_dir

    wide_dir = tmp_path / "variants"
    shutil.copytree(variants_dir(), wide_dir)
    spec = yaml.safe_load((wide_dir / "hg1.yaml").read_text())
    spec["architecture"]["num_features"] *= 2
    (wide_dir / "hg1.yaml").write_text(yaml.safe_dump(spec))
    args = [
        "profile",
        "--variants",
        "hg1",
        "--backend",
        "eager",
        "--input-size",
        "64",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--num-joints",
        "16",
        "--min-time-s",
        "0.2",
        "--min-iters",
        "10",
        "--warmup",
        "1",
        "--warmup-s",
        "0",
        "--cache-dir",
        tmp_path / "cache",
    ]
    code, out = invoke(*args, "--results", tmp_path / "base")
    assert code == 0, out
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(wide_dir))
    code, out = invoke(*args, "--results", tmp_path / "cur")
    assert code == 0, out

    comp = compare_results(tmp_path / "base", tmp_path / "cur", parse_thresholds(CI_GATE))
    (b,) = load_record_set(tmp_path / "base").records.values()
    (c,) = load_record_set(tmp_path / "cur").records.values()
    rows = {r.metric: r for r in comp.rows}
    expected = (c["latency_ms"]["p50_ms"] / c["calibration"]["p50_ms"]) / (
        b["latency_ms"]["p50_ms"] / b["calibration"]["p50_ms"]
    )
    assert rows["p50"].ratio == pytest.approx(expected)
    assert rows["p50"].factor == pytest.approx(c["calibration"]["p50_ms"] / b["calibration"]["p50_ms"])
    assert rows["parameters"].verdict == CHANGED and rows["gmacs"].verdict == CHANGED
    assert rows["gmacs"].ratio == pytest.approx(c["gmacs_fvcore"] / b["gmacs_fvcore"]) and rows["gmacs"].ratio > 2.5
    code, out = invoke("compare", tmp_path / "base", tmp_path / "base")
    assert code == 0 and "unchanged" in out


@pytest.mark.slow
def test_latency_check_end_to_end(tmp_path, monkeypatch):
    """`hgbench latency-check` against a reference of hg1: the unchanged code passes; hg1 made
    twice as wide in a user registry (HGBENCH_VARIANTS_DIR) fails after its re-measurement; no
    reference folder is bad input."""
    import shutil

    import yaml

    from hgbench.paths import variants_dir
    from hgbench.profile.gate import update_reference

    reference = tmp_path / "reference"
    update_reference(reference, ["hg1"], min_iters=25, min_time_s=0.5)
    code, out = invoke("latency-check", "--reference", reference, "--variants", "hg1", "--out", tmp_path / "same")
    assert code == 0, out

    wide_dir = tmp_path / "variants"
    shutil.copytree(variants_dir(), wide_dir)
    spec = yaml.safe_load((wide_dir / "hg1.yaml").read_text())
    spec["architecture"]["num_features"] *= 2
    (wide_dir / "hg1.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(wide_dir))
    code, out = invoke("latency-check", "--reference", reference, "--variants", "hg1", "--out", tmp_path / "wide")
    assert code == 1, out
    assert "re-measured: hg1" in out and "latency regression (every attempt): hg1" in out
    assert (tmp_path / "wide" / "attempt2" / "hg1__j16__eager__cpu__fp32__b1__s64.json").is_file()
    code, out = invoke("latency-check", "--reference", reference, "--variants", "hg1", "--out", tmp_path / "wide")
    assert code == 2 and "not empty" in out

    code, out = invoke("latency-check", "--reference", tmp_path / "nothing")
    assert code == 2 and "hgbench latency-check --update" in out
