"""The report's deployed accuracy (issue 27, deliverable 3): each cost row shows the accuracy of its
own artifact where a deployed eval record was read, the difference to eager fp32 with its interval,
and the Pareto front uses it; a quantized row without one is never on the front."""

from __future__ import annotations

from hgbench.analysis.rows import read_store
from hgbench.analysis.tables import build_tables
from tests.conftest import make_record, write_record_file


def _deployed(train: dict, backend: str, precision: str, mean: float, diff: float, ci: tuple[float, float]) -> dict:
    rec = make_record("eval", mean=mean, protocol_hash=train["protocol_hash"], artifact=f"{backend}-{precision}-b1",
                      backend=backend, precision=precision, batch_size=1, padded=True,
                      created="2025-01-02T00:00:00+00:00")  # fmt: skip
    rec["result"]["mean_ci"] = [mean - 2, mean + 2]
    rec["deployed"] = {"device": "cpu", "difference": {"mean": diff, "mean_ci": list(ci)}}
    return rec


def _results(tmp_path, *, int8_mean: float | None, int8_p50: float = 5.0):
    train = make_record("train", mean=80.0)
    write_record_file(tmp_path / "runs" / "hg1" / "train.json", train)
    profiles = {
        ("eager", "fp32"): make_record("profile", p50=10.0),
        ("onnxruntime", "fp32"): make_record("profile", backend="onnxruntime", p50=8.0),
        ("onnxruntime", "int8"): make_record("profile", backend="onnxruntime", precision="int8", p50=int8_p50),
    }
    for (b, p), rec in profiles.items():
        rec["num_joints"], rec["input_size"] = 16, 256
        write_record_file(tmp_path / "profile" / "h" / f"{b}-{p}.json", rec)
    write_record_file(tmp_path / "runs" / "hg1" / "eval-ort-fp32.json",
                      _deployed(train, "onnxruntime", "fp32", 80.0, 0.0, (0.0, 0.0)))  # fmt: skip
    if int8_mean is not None:
        diff = int8_mean - 80.0
        int8 = _deployed(train, "onnxruntime", "int8", int8_mean, diff, (diff - 1, diff + 1))
        write_record_file(tmp_path / "runs" / "hg1" / "eval-ort-int8.json", int8)
    cost = build_tables(read_store([tmp_path]), [tmp_path]).cost
    return {(r.backend, r.precision): r for r in cost.itertuples()}


def test_a_row_shows_its_artifacts_accuracy_and_the_difference_to_fp32(tmp_path):
    rows = _results(tmp_path, int8_mean=78.5)
    int8 = rows[("onnxruntime", "int8")]
    assert int8.accuracy_source == "deployed" and int8.accuracy_pct == 78.5
    assert int8.accuracy_vs_fp32_pct == -1.5 and (
        int8.accuracy_vs_fp32_ci_low_pct,
        int8.accuracy_vs_fp32_ci_high_pct,
    ) == (-2.5, -0.5)
    assert bool(int8.padded) and int8.accuracy_ci_low_pct == 76.5
    eager = rows[("eager", "fp32")]
    assert eager.accuracy_source == "deployed" and eager.accuracy_pct == 80.0 and eager.accuracy_vs_fp32_pct == 0
    assert bool(int8.pareto_optimal)  # the cheapest, with its measured accuracy


def test_a_collapsed_artifact_keeps_its_measured_accuracy_and_is_not_on_the_front_by_accident(tmp_path):
    rows = _results(tmp_path, int8_mean=3.0)
    int8 = rows[("onnxruntime", "int8")]
    assert int8.accuracy_pct == 3.0 and int8.accuracy_source == "deployed"
    assert bool(int8.pareto_optimal)  # cheapest, so on the front, but with its collapsed accuracy for all to see
    assert bool(rows[("onnxruntime", "fp32")].pareto_optimal)  # the collapse does not push the good rows off


def test_a_quantized_row_without_a_deployed_accuracy_is_never_on_the_front(tmp_path):
    rows = _results(tmp_path, int8_mean=None, int8_p50=1.0)
    int8 = rows[("onnxruntime", "int8")]
    assert int8.accuracy_source == "fp32 checkpoint" and int8.accuracy_pct == 80.0
    assert not bool(int8.pareto_optimal) and bool(rows[("onnxruntime", "fp32")].pareto_optimal)


def test_without_deployed_records_the_table_has_no_deployed_columns(tmp_path):
    write_record_file(tmp_path / "runs" / "hg1" / "train.json", make_record("train"))
    write_record_file(tmp_path / "profile" / "h" / "p.json", make_record("profile"))
    cost = build_tables(read_store([tmp_path]), [tmp_path]).cost
    assert "accuracy_source" not in cost.columns and "accuracy_vs_fp32_pct" not in cost.columns
