"""The main job end to end through the CLI: train-all, profile, report."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.records import read_record

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result


@pytest.mark.slow
def test_train_all_profile_report_on_the_embedded_default(tmp_path):
    results = str(tmp_path / "results")
    r = invoke("train-all", "--protocol", "smoke", "--variants", "hg1", "--results", results)
    assert r.exit_code == 0, r.output
    (record_path,) = (tmp_path / "results/runs/synthetic").glob("smoke-*/hg1-*/train.json")
    record = read_record(record_path)
    assert record["complete"] and record["dataset"] == "synthetic" and record["num_joints"] == 14
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert all("val" in h for h in record["history"])
    assert record["train_time_s"] > 0

    # a complete run is skipped, its record left as it was
    r = invoke("train-all", "--protocol", "smoke", "--variants", "hg1", "--results", results)
    assert r.exit_code == 0 and "skipped" in r.output
    assert read_record(record_path)["created"] == record["created"]

    r = invoke(
        "profile",
        "--variants",
        "hg1",
        "--input-size",
        "64",
        "--min-time-s",
        "0.05",
        "--min-iters",
        "3",
        "--warmup",
        "1",
        "--results",
        results,
    )
    assert r.exit_code == 0, r.output

    out = tmp_path / "report"
    r = invoke("report", "--results", results, "--input-size", "64", "--out", str(out))
    assert r.exit_code == 0, r.output
    table = pd.read_csv(out / "accuracy_vs_cost.csv")
    rows = table[table.variant == "hg1"]
    assert set(rows.backend) >= {"eager"}
    row = rows[rows.backend == "eager"].iloc[0]
    assert row["parameters"] == record["parameters"]
    for col in ("GMACs fvcore (per sample)", "GMACs thop (per sample)", "latency p50 (ms/batch)", "accuracy (%)"):
        assert pd.notna(row[col]) and row[col] >= 0, col
    assert row["accuracy (%)"] == pytest.approx(record["final"]["mean"])
    joints = pd.read_csv(out / "per_joint.csv").iloc[0]
    for col in ("Head (%)", "Ankle (%)", "Mean (%)", "training (h)", "inference p50 (ms/batch)"):
        assert pd.notna(joints[col]) and joints[col] >= 0, col
    md = (out / "report.md").read_text()
    assert "PCK@0.2, torso-normalised" in md and "| hg1" in md
    assert len(list((out / "plots").glob("*.png"))) >= 4


def test_user_errors_exit_2_with_the_fix(tmp_path):
    r = invoke("train-all", "--protocol", "nope", "--results", str(tmp_path))
    assert r.exit_code == 2 and "unknown protocol 'nope'" in r.output and "smoke" in r.output
    r = invoke("train", "hg99", "--protocol", "smoke", "--results", str(tmp_path))
    assert r.exit_code == 2 and "unknown variant 'hg99'" in r.output
    r = invoke(
        "train",
        "hg1",
        "--protocol",
        "smoke",
        "--dataset",
        "lspet",
        "--data-root",
        str(tmp_path),
        "--results",
        str(tmp_path),
    )
    assert r.exit_code == 2 and "joints.mat" in r.output
    r = invoke("profile", "--backend", "tensorrt", "--results", str(tmp_path))
    assert r.exit_code == 2 and "tensorrt" in r.output.lower()
    assert not (tmp_path / "profile").exists()  # nothing profiled half-way


TINY = "epochs: 1\nsteps_per_epoch: 1\nbatch_size: 2\ninput_size: 64\noutput_size: 16\nval_max_samples: 4\n"


def test_a_protocol_changed_under_the_same_name_is_a_new_run_never_skipped(tmp_path):
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    results = str(tmp_path / "results")
    r = invoke("train", "hg1", "--protocol", str(protocol), "--results", results)
    assert r.exit_code == 0 and "skipped" not in r.output, r.output
    r = invoke("train", "hg1", "--protocol", str(protocol), "--results", results)
    assert r.exit_code == 0 and "skipped" in r.output  # the same content: complete, skipped
    protocol.write_text(TINY.replace("steps_per_epoch: 1", "steps_per_epoch: 2"))
    r = invoke("train", "hg1", "--protocol", str(protocol), "--results", results)
    assert r.exit_code == 0 and "skipped" not in r.output, r.output
    records = sorted((tmp_path / "results/runs/synthetic").glob("tiny-*/hg1-*/train.json"))
    assert len(records) == 2 and {read_record(p)["history"][-1]["steps"] for p in records} == {1, 2}


def test_a_newer_schema_record_is_refused_and_kept_byte_identical(tmp_path):
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(TINY)
    results = tmp_path / "results"
    assert invoke("train", "hg1", "--protocol", str(protocol), "--results", str(results)).exit_code == 0
    (path,) = results.glob("runs/synthetic/tiny-*/hg1-*/train.json")
    import json

    newer = {**json.loads(path.read_text()), "schema": "hgbench.record/99", "complete": False}
    path.write_text(json.dumps(newer))
    before = path.read_bytes()
    for args in (
        ["train", "hg1", "--protocol", str(protocol)],
        ["train-all", "--variants", "hg1", "--protocol", str(protocol)],
        ["train", "hg1", "--protocol", str(protocol), "--force"],
    ):
        r = invoke(*args, "--results", str(results))
        assert r.exit_code == 2 and "newer hgbench" in " ".join(r.output.split()), r.output
        assert path.read_bytes() == before
