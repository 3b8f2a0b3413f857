"""hgbench report: Pareto marking, the seed-002 Table 1 layout, skipped records, machines never
mixed, PNG plots, the CLI's exit statuses, and a report of 5,000 records.

Every record here is built by hand following notes/PROFILE_RECORD.md (kind "profile"),
hgbench.train's ``train.json`` and hgbench evaluate's record, in the current schema
(:mod:`hgbench.records.schema`), so the tests do not run the profiler.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_record, write_record_file
from typer.testing import CliRunner

from hgbench.analysis.labels import header
from hgbench.analysis.render import render_markdown
from hgbench.analysis.report import Filters, NoUsableRecordsError, build_report, write_report
from hgbench.analysis.tables import pareto_optimal
from hgbench.cli import app
from hgbench.records import SCHEMA, spec_hash
from tests.conftest import tiny_protocol_yaml

runner = CliRunner()
REFERENCE_RECORDS = REPO / "benchmarks" / "reference" / "lspet-cpu" / "records"

# ---------------------------------------------------------------------------------------------
# Record builders
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


def provenance(host: str, **extra) -> dict:
    return {"hgbench_version": "0.1.0", "git_commit": "0123456789abcdef", "git_dirty": False, "python": "3.12", "torch": "2.13.0",
            "cuda": None, "cudnn": None, "tensorrt": None, "onnxruntime": None, "gpu_name": None, "gpu_driver": None,
            "gpu_compute_capability": None, "cpu_model": "Test CPU", "threads": 2, "hostname": host, "platform": "Linux",
            "command": "hgbench profile", **extra}  # fmt: skip


def profile_record(variant: str, *, host: str = "h1", device: str = "cpu", device_name: str = "Test CPU", backend: str = "eager",
                   precision: str = "fp32", batch: int = 1, size: int = 256, joints: int = 16, parameters: int = 1_000_000,
                   gmacs: float = 1.0, p50: float | None = 10.0, status: str = "ok", error: str | None = None,
                   numerics_ok: bool | None = None, created: str = "2025-01-01T00:00:00+00:00", schema: str = SCHEMA,
                   stacks: int | None = None) -> dict:  # fmt: skip
    """A profile record of ``variant``; its network (:func:`spec`, ``stacks``) is that of
    :func:`train_record` with the same ``stacks``, so that the report joins the two."""
    lat = None if p50 is None else {"n": 20, "mean_ms": p50, "std_ms": 0.1, "p50_ms": p50, "p90_ms": p50 * 1.1,
                                    "p99_ms": p50 * 1.2, "min_ms": p50 * 0.9, "max_ms": p50 * 1.3, "samples_ms": [p50] * 20}  # fmt: skip
    numerics = None
    if numerics_ok is not None:
        numerics = {"max_abs_error": 0.01 if numerics_ok else 0.5, "argmax_moved_fraction": 0.0 if numerics_ok else 0.2,
                    "ok": numerics_ok, "tolerance": {"max_abs_error": 0.05}}  # fmt: skip
    return {
        "schema": schema, "kind": "profile", "created": created,
        "variant": variant, **spec(variant, stacks), "num_joints": joints, "backend": backend, "precision": precision, "tf32": False,
        "channels_last": False, "compile_mode": None, "device": device, "device_name": device_name, "batch_size": batch,
        "input_size": size, "threads": 2,
        "parameters": parameters, "model_size_mib": parameters * 4 / 2**20,
        "macs": {"fvcore": int(gmacs * 1e9), "thop": int(gmacs * 1e9), "unit": "MACs", "input_shape": [1, 3, size, size]},
        "gmacs_fvcore": gmacs, "gmacs_thop": gmacs, "gflops_flop_counter": 2 * gmacs,
        "skipped_ops": {"fvcore": {}, "thop": [], "flop_counter": []}, "activation_memory_mib": 12.0,
        "latency_ms": lat, "throughput_samples_per_s": None if p50 is None else batch / p50 * 1000,
        "peak_memory_mib": 100.0, "build_time_s": 0.0, "numerics": numerics, "roofline": None,
        "calibration": {"workload": "matmul", "p50_ms": 1.0, "samples_ms": [1.0]},
        "status": status, "error": error, "provenance": provenance(host),
    }  # fmt: skip


def pck_result(
    groups: dict[str, float],
    mean: float,
    persons: int = 100,
    metric: str = "pck",
    threshold: float = 0.2,
    ci: float | None = None,
) -> dict:
    """A PCKResult as a record holds it; ``ci``: half-width (points) of the 95 % intervals, None:
    a record written before intervals existed (no ``mean_ci``/``groups_ci`` fields)."""
    convention = "PCK@0.2, torso-normalised (...)" if metric == "pck" else "PCKh, head-normalised (...)"
    result = {"threshold": threshold, "per_joint": {}, "groups": dict(groups), "mean": mean, "counts": {}, "num_persons": persons,
              "num_unnormalised": 0, "convention": convention, "loss": 0.001, "metric": metric}  # fmt: skip
    if ci is not None:
        result["mean_ci"] = [mean - ci, mean + ci]
        result["groups_ci"] = {g: [v - 2 * ci, v + 2 * ci] for g, v in groups.items()}
    return result


def spec(variant: str, stacks: int | None = None) -> dict:
    """The identity fields of a trained variant (hgbench.train.loop writes ``asdict(VariantSpec)``)."""
    body = {"name": variant, "architecture": {"num_stacks": stacks}}
    return {"spec": body, "spec_hash": spec_hash(body)}


def train_record(variant: str, *, dataset: str = "synthetic", protocol: str = "smoke", joints: int = 16, mean: float = 80.0,
                 groups: dict[str, float] | None = None, parameters: int = 1_000_000, train_time_s: float = 3600.0,
                 curve: list[float] | None = None, host: str = "trainer", persons: int = 100, metric: str = "pck",
                 threshold: float = 0.2, complete: bool = True, created: str = "2025-01-01T00:00:00+00:00",
                 stacks: int | None = None, ci: float | None = None) -> dict:  # fmt: skip
    groups = groups or {g: mean for g in GROUPS}
    curve = curve or [mean - 10, mean]
    history = [{"epoch": i + 1, "steps": 10 * (i + 1), "train_loss": 0.001, "lr": 2.5e-4,
                "val": pck_result({g: v for g in GROUPS}, v, persons, metric, threshold)} for i, v in enumerate(curve)]  # fmt: skip
    history[-1]["val"] = pck_result(groups, mean, persons, metric, threshold, ci)
    return {
        "schema": SCHEMA, "kind": "train", "created": created, "variant": variant, **spec(variant, stacks), "protocol": protocol,
        "protocol_hash": f"{protocol}-hash", "protocol_settings": {"input_size": 256}, "overrides": "", "dataset": dataset,
        "split": {"train": 1000, "val": persons},
        "keypoints": "mpii", "num_joints": joints, "parameters": parameters, "train_time_s": train_time_s,
        "wall_time_s": train_time_s * 1.1, "epochs": len(curve), "history": history, "final": history[-1]["val"],
        "complete": complete, "provenance": provenance(host),
    }  # fmt: skip


def write(path: Path, record: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def profile_path(results: Path, rec: dict) -> Path:
    host = rec["provenance"]["hostname"]
    name = f"{rec['variant']}__j{rec['num_joints']}__{rec['backend']}__{rec['precision']}__b{rec['batch_size']}__s{rec['input_size']}.json"
    return results / "profile" / host / name


def train_path(results: Path, rec: dict) -> Path:
    return results / "runs" / rec["dataset"] / rec["protocol"] / rec["variant"] / "train.json"


def write_profile(results: Path, **kw) -> Path:
    rec = profile_record(**kw)
    return write(profile_path(results, rec), rec)


def write_train(results: Path, variant: str, **kw) -> Path:
    rec = train_record(variant, **kw)
    return write(train_path(results, rec), rec)


def invoke(*args) -> tuple[int, str]:
    """Run the CLI; exit status and output with rich's line wrapping undone."""
    r = runner.invoke(app, [str(a) for a in args])
    return r.exit_code, " ".join(r.output.split())


def md_rows(md: str, first_cell: str) -> list[list[str]]:
    """Cells of the Markdown table rows whose first cell is ``first_cell``."""
    rows = []
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == first_cell:
                rows.append(cells)
    return rows


# ---------------------------------------------------------------------------------------------
# Pareto front


def test_pareto_optimal_on_a_hand_built_set_with_ties_and_missing_values():
    points = {  # name: (accuracy %, cost)
        "A": (90, 10), "B": (85, 5), "B_tie": (85, 5),  # B and its exact tie: both optimal
        "D": (80, 6),  # dominated by B (more accurate and cheaper)
        "E": (95, 20), "F": (95, 25),  # F: as accurate as E but dearer -> dominated
        "J": (89, 10),  # same cost as A, less accurate -> dominated
        "K": (85, 7),  # as accurate as B, dearer -> dominated
        "nan_acc": (math.nan, 1), "none_acc": (None, 0.5),  # missing accuracy: never optimal, dominates nothing
        "nan_cost": (99, math.nan),  # missing cost: never optimal
    }  # fmt: skip
    names = list(points)
    mask = pareto_optimal([points[n][0] for n in names], [points[n][1] for n in names])
    assert {n for n, m in zip(names, mask, strict=True) if m} == {"A", "B", "B_tie", "E"}
    # the brute-force definition agrees on random sets with many ties
    rng = np.random.default_rng(0)
    for _ in range(20):
        acc, cost = rng.integers(0, 5, 30).astype(float), rng.integers(0, 5, 30).astype(float)
        acc[rng.random(30) < 0.1] = np.nan
        brute = [np.isfinite(acc[i]) and not any(
            np.isfinite(acc[j]) and acc[j] >= acc[i] and cost[j] <= cost[i] and (acc[j] > acc[i] or cost[j] < cost[i])
            for j in range(30)) for i in range(30)]  # fmt: skip
        assert list(pareto_optimal(acc, cost)) == brute


def test_report_marks_the_front_per_group_and_never_a_row_without_accuracy(tmp_path):
    for v, acc in (("fast", 70.0), ("mid", 80.0), ("slow", 90.0), ("dominated", 75.0)):
        write_train(tmp_path, v, mean=acc)
    for batch in (1, 8):
        scale = 1 if batch == 1 else 5
        for v, p50 in (("fast", 1.0), ("mid", 2.0), ("slow", 4.0), ("dominated", 3.0), ("untrained", 0.5)):
            write_profile(tmp_path, variant=v, batch=batch, p50=p50 * scale)
    # a half-precision run whose outputs moved: fp32 accuracy does not carry over -> not on the front
    write_profile(tmp_path, variant="slow", precision="fp16", p50=0.8, numerics_ok=False)
    write_profile(tmp_path, variant="mid", precision="fp16", p50=1.5, numerics_ok=True)
    rep = build_report(tmp_path)
    front = {
        (r["variant"], r["precision"], r["batch_size"]) for _, r in rep.cost[rep.cost["pareto_optimal"]].iterrows()
    }
    assert front == {("fast", "fp32", 1), ("mid", "fp16", 1), ("slow", "fp32", 1),
                     ("fast", "fp32", 8), ("mid", "fp32", 8), ("slow", "fp32", 8)}  # fmt: skip
    untrained = rep.cost[rep.cost["variant"] == "untrained"]
    assert len(untrained) == 2 and untrained["accuracy_pct"].isna().all() and not untrained["pareto_optimal"].any()
    bad = rep.cost[(rep.cost["variant"] == "slow") & (rep.cost["precision"] == "fp16")].iloc[0]
    assert bad["accuracy_pct"] == 90.0 and bad["numerics_ok"] is False and not bad["pareto_optimal"]
    # on another cost: by GMACs (all 1.0 here) the most accurate rows of each group win
    by_gmacs = build_report(tmp_path, pareto_on="gmacs")
    assert set(by_gmacs.cost[by_gmacs.cost["pareto_optimal"]]["variant"]) == {"slow"}
    md = render_markdown(rep)
    assert "★" in md and "at least as cheap in latency p50 (ms/batch)" in md


def test_indistinguishable_from_names_the_cheapest_overlapping_row_of_the_front():
    from hgbench.analysis.tables import indistinguishable_from

    rows = {  # name: (cost, accuracy interval, on the front)
        "A": (1.0, (68.0, 72.0), True),
        "B": (2.0, (72.5, 75.5), True),  # above A's interval: told apart
        "C": (3.0, (71.0, 79.0), True),  # overlaps A and B: the cheapest, A, is named
        "D": (4.0, (88.0, 92.0), True),  # far above everything cheaper
        "E": (5.0, (50.0, 95.0), False),  # off the front: never marked, never named
        "F": (6.0, (None, None), True),  # no interval: no claim either way
        "G": (7.0, (89.0, 93.0), True),  # overlaps D only (E is off the front)
    }
    names = list(rows)
    got = indistinguishable_from([rows[n][0] for n in names], [rows[n][1][0] for n in names], [rows[n][1][1] for n in names],
                                 [rows[n][2] for n in names], names)  # fmt: skip
    marked = {n: m for n, m in zip(names, got, strict=True) if m is not None}
    assert marked == {"C": "A", "G": "D"}


def test_report_shows_intervals_and_marks_front_rows_not_distinguishable_from_a_cheaper_one(tmp_path):
    # fast 70 +- 1.5 and mid 72 +- 1.5 overlap; slow 90 +- 1.5 is far above; old has no interval (an older record)
    for v, acc, ci in (("fast", 70.0, 1.5), ("mid", 72.0, 1.5), ("slow", 90.0, 1.5), ("old", 95.0, None)):
        write_train(tmp_path, v, mean=acc, ci=ci)
    for v, p50 in (("fast", 1.0), ("mid", 2.0), ("slow", 4.0), ("old", 8.0)):
        write_profile(tmp_path, variant=v, p50=p50)
    write_profile(tmp_path, variant="mid", backend="torchscript", p50=2.5)  # off the front
    rep = build_report(tmp_path)
    cost = rep.cost.set_index(["variant", "backend"])
    assert cost["pareto_optimal"].sum() == 4  # the front is that of the point accuracies
    assert cost.loc[("mid", "eager"), "indistinguishable_from"] == "fast"  # overlapping intervals
    assert cost.loc[("slow", "eager"), "indistinguishable_from"] is None  # far apart: distinguishable
    assert cost.loc[("old", "eager"), "indistinguishable_from"] is None  # no interval, no claim
    assert cost.loc[("mid", "torchscript"), "indistinguishable_from"] is None  # not on the front
    assert tuple(cost.loc[("mid", "eager"), ["accuracy_ci_low_pct", "accuracy_ci_high_pct"]]) == (70.5, 73.5)
    # never a made-up one
    assert cost.loc[("old", "eager"), ["accuracy_ci_low_pct", "accuracy_ci_high_pct"]].isna().all()
    mid = rep.per_joint[rep.per_joint["variant"] == "mid"].iloc[0]
    assert (mid["head_ci_low_pct"], mid["head_ci_high_pct"], mid["mean_ci_low_pct"]) == (69.0, 75.0, 70.5)

    out = tmp_path / "out"
    write_report(rep, out, ["csv", "md", "png"])
    csv_cost = pd.read_csv(out / "accuracy_vs_cost.csv")
    wanted = {"accuracy 95% CI low (%)", "accuracy 95% CI high (%)", header("indistinguishable_from")}
    assert wanted <= set(csv_cost.columns)
    old = csv_cost[csv_cost["variant"] == "old"].iloc[0]
    assert old["accuracy (%)"] == 95.0 and math.isnan(old["accuracy 95% CI low (%)"])
    assert {"Head 95% CI low (%)", "Mean 95% CI high (%)"} <= set(pd.read_csv(out / "per_joint.csv").columns)
    md = (out / "report.md").read_text()
    cost_row, joint_row = md_rows(md, "mid")[0], md_rows(md, "mid")[-1]
    assert "72.0 (70.5–73.5)" in cost_row and cost_row[-1] == "fast"
    assert joint_row[1] == "72.0 (69.0–75.0)" and joint_row[8] == "72.0 (70.5–73.5)"  # Head, Mean
    assert "95.00" in md_rows(md, "old")[0]  # without an interval: as before
    assert "With 100 evaluated persons, the 95% intervals (in parentheses) reach about ±1.5 points" in md
    assert "bootstrap over the evaluated persons" in md and "`indistinguishable from` names" in md
    assert any(p.name.startswith("accuracy_vs_latency") for p in (out / "plots").iterdir())


def test_records_without_intervals_give_the_tables_of_before(tmp_path):
    write_train(tmp_path, "hg1", mean=80.0)
    write_profile(tmp_path, variant="hg1")
    rep = build_report(tmp_path)
    assert not [c for c in [*rep.cost.columns, *rep.per_joint.columns] if "_ci_" in c or c == "indistinguishable_from"]
    md = render_markdown(rep)
    assert "confidence interval" not in md and "±" not in md and "80.00" in md_rows(md, "hg1")[0]


# ---------------------------------------------------------------------------------------------
# Seed 002's Table 1, regenerated from records

# Elhagry et al., seed 002_bdd2d633fa65b35a.txt Table 1: PCKh per group, Mean, "Num. of Parameters"
# (MiB of float32 weights), training (h:mm), inference over the 493 validation images (mm:ss).
SEED_002 = {
    "hg8": ([95.50, 92.92, 87.78, 83.76, 82.57, 81.04, 79.00], 86.23, 97.7, "97:34", "01:51"),
    "hg1": ([94.61, 92.07, 84.56, 78.78, 80.96, 75.44, 71.26], 82.71, 12.6, "33:11", "01:53"),
    "hg2": ([95.05, 93.27, 87.06, 82.13, 83.45, 80.07, 76.10], 85.47, 24.8, "37:01", "01:48"),
}


def _hmm_to_s(text: str) -> int:
    h, m = text.split(":")
    return (int(h) * 60 + int(m)) * 60


def test_seed_002_table_1_layout_and_values(tmp_path):
    persons, batch = 493, 6  # the paper's validation images and batch size: 83 batches
    for variant, (groups, mean, mib, train_hmm, infer_mmss) in SEED_002.items():
        params = round(mib * 2**20 / 4)  # the paper's MiB as a parameter count
        write_train(
            tmp_path,
            variant,
            dataset="mpii",
            protocol="elhagry",
            mean=mean,
            groups=dict(zip(GROUPS, groups, strict=True)),
            parameters=params,
            train_time_s=_hmm_to_s(train_hmm),
            persons=persons,
            metric="pckh",
            threshold=0.5,
        )
        m, s = infer_mmss.split(":")
        p50 = (int(m) * 60 + int(s)) * 1000 / math.ceil(persons / batch)  # ms per batch that gives the paper's minutes
        write_profile(
            tmp_path,
            variant=variant,
            host="quadro",
            device="cuda",
            device_name="Quadro RTX 6000",
            batch=batch,
            parameters=params,
            gmacs=10.0,
            p50=p50,
        )
        write_profile(
            tmp_path,
            variant=variant,
            host="quadro",
            device="cuda",
            device_name="Quadro RTX 6000",
            batch=1,
            backend="torchscript",
            parameters=params,
            gmacs=10.0,
            p50=1.0,
        )  # not the row's inference condition
    rep = build_report(tmp_path, Filters(batch_size=(batch,)))
    paper_cols = [f"{g.lower()}_pct" for g in GROUPS] + ["mean_pct"]
    cols = list(rep.per_joint.columns)
    order = paper_cols + [
        "params_m",
        "weights_fp32_mib",
        "gmacs_fvcore",
        "training_h",
        "inference_p50_ms",
        "inference_val_set_min",
    ]
    assert [cols.index(c) for c in order] == sorted(cols.index(c) for c in order)
    for variant, (groups, mean, mib, train_hmm, _) in SEED_002.items():
        row = rep.per_joint[rep.per_joint["variant"] == variant].iloc[0]
        assert list(row[paper_cols]) == pytest.approx(groups + [mean])
        assert row["weights_fp32_mib"] == pytest.approx(mib, abs=0.005)
        assert row["training_h"] == pytest.approx(_hmm_to_s(train_hmm) / 3600)
        assert (row["metric"], row["dataset"], row["split"], row["eval_persons"]) == (
            "PCKh@0.5",
            "mpii",
            "val",
            persons,
        )
        assert (row["machine"], row["inference_backend"], row["inference_batch_size"]) == ("quadro", "eager", batch)
    md = render_markdown(rep)
    assert "PCKh@0.5 (%) on mpii/val, 493 persons, protocol elhagry" in md
    for variant, (groups, mean, mib, train_hmm, infer_mmss) in SEED_002.items():
        (cells,) = md_rows(md, variant)[-1:]  # the per-joint table's row (the last table with this variant)
        assert cells[1:9] == [f"{v:.2f}" for v in groups + [mean]]
        assert cells[10] == f"{mib:.2f}"  # weights fp32 (MiB): the paper's "Num. of Parameters"
        assert cells[-3] == train_hmm and cells[-1] == infer_mmss


def test_eval_record_preferred_to_the_training_validation(tmp_path):
    write_train(
        tmp_path, "hg1", dataset="mpii", protocol="p", mean=50.0, metric="pckh", threshold=0.5, train_time_s=7200
    )
    ev = {"schema": SCHEMA, "kind": "eval", "created": "2025-01-02T00:00:00+00:00", "variant": "hg1", **spec("hg1"), "num_joints": 16,
          "protocol": "p", "protocol_hash": "p-hash", "dataset": "mpii", "split": "val", "metric": "pckh", "threshold": 0.5,
          "flip_test": False, "checkpoint": str(tmp_path / "runs/mpii/p/hg1/checkpoint.pt"),
          "result": {**pck_result({g: 70.0 for g in GROUPS}, 70.0, 2958, "pckh", 0.5), "per_joint": {f"j{i}": 70.0 for i in range(16)}},
          "provenance": provenance("evaluator")}  # fmt: skip
    write(tmp_path / "runs/mpii/p/hg1/eval-mpii-val.json", ev)
    write(tmp_path / "runs/mpii/p/hg1/eval-mpii-train.json", {**ev, "split": "train"})
    write_profile(tmp_path, variant="hg1")
    rep = build_report(tmp_path)
    row = rep.per_joint.iloc[0]
    assert (row["mean_pct"], row["eval_persons"], row["protocol"], row["training_h"]) == (70.0, 2958, "p", 2.0)
    assert rep.cost.iloc[0]["accuracy_pct"] == 70.0 and rep.cost.iloc[0]["metric"] == "PCKh@0.5"
    assert any("training split" in r for p, r in rep.skipped if p.endswith("eval-mpii-train.json"))
    assert rep.learning["val_accuracy_pct"].tolist() == [40.0, 50.0]  # the training run still gives its learning curve


# ---------------------------------------------------------------------------------------------
# Results store: skipped records and failed measurements


def test_skipped_records_and_failed_measurements_say_why(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_train(a, "hg1", mean=80.0)
    write_profile(a, variant="hg1", p50=5.0)
    old = write(a / "profile/h1/old.json", profile_record("hg1", schema="hgbench.record/1"))
    (a / "broken.json").write_text('{"schema": "hgbench.record/2", ')
    write(a / "notes.json", {"some": "thing"})
    missing = profile_record("hg1", backend="onnxruntime")
    del missing["device"]
    write(a / "profile/h1/missing.json", missing)
    write_train(a, "hg2", complete=False)
    filtered = write_profile(a, variant="hg1", backend="torchscript", p50=4.0)
    write_profile(
        a,
        variant="hg2",
        backend="tensorrt",
        status="error",
        p50=None,
        error="prepare: RuntimeError: engine build failed",
    )
    # the same measurement in a second folder, older: superseded by a's
    dup = write_profile(b, variant="hg1", p50=6.0, created="2024-01-01T00:00:00+00:00")
    rep = build_report([a, b], Filters(backend=("eager", "tensorrt")))
    reasons = {Path(p).name: r for p, r in rep.skipped}
    # the reasons of hgbench.records.read_record, without the path
    assert reasons[old.name] == "schema hgbench.record/1 profile records are no longer read: re-run hgbench profile"
    assert reasons["broken.json"].startswith("not a readable JSON record (")
    assert reasons["notes.json"].startswith("field 'schema' is 'None', not an hgbench record schema")
    assert reasons["missing.json"] == "malformed profile record: field 'device': Field required; re-run hgbench profile"
    assert reasons["train.json"].startswith("training run not complete")
    assert reasons[filtered.name].startswith("filtered out by --backend eager,tensorrt (record: torchscript)")
    assert reasons[dup.name].startswith("superseded by the newer record") and str(a) in reasons[dup.name]
    assert len(rep.skipped) == 7
    assert rep.failed[["variant", "backend", "error"]].values.tolist() == [
        ["hg2", "tensorrt", "prepare: RuntimeError: engine build failed"]
    ]
    assert rep.cost["latency_p50_ms"].tolist() == [5.0]  # only the usable eager record, from folder a

    written = write_report(rep, tmp_path / "out", ["md", "csv"])
    skipped_csv = pd.read_csv(tmp_path / "out/skipped.csv")
    assert sorted(skipped_csv["reason"]) == sorted(reasons.values())
    assert pd.read_csv(tmp_path / "out/failed.csv")["error"].tolist() == ["prepare: RuntimeError: engine build failed"]
    md = (tmp_path / "out/report.md").read_text()
    assert "## Failed measurements (1)" in md and "engine build failed" in md
    assert (
        "## Records skipped (7)" in md
        and "schema hgbench.record/1 profile records are no longer read: re-run hgbench profile" in md
    )
    assert {p.name for p in written} == {
        "accuracy_vs_cost.csv",
        "per_joint.csv",
        "failed.csv",
        "skipped.csv",
        "learning_curves.csv",  # folder a's training run validated twice
        "report.md",
    }


def test_csv_holds_raw_numbers_and_empty_cells_for_missing(tmp_path):
    write_train(tmp_path, "hg1", mean=80.0, parameters=1234567)
    write_profile(tmp_path, variant="hg1", parameters=1234567, p50=2.5)
    write_profile(tmp_path, variant="hg9", parameters=10, p50=1.0)  # never trained: accuracy missing
    rep = build_report(tmp_path)
    write_report(rep, tmp_path / "out", ["csv", "md"])
    text = (tmp_path / "out/accuracy_vs_cost.csv").read_text()
    assert "—" not in text and "1234567" in text
    cost = pd.read_csv(tmp_path / "out/accuracy_vs_cost.csv")  # headers with units
    assert list(cost.columns) == [header(c) for c in rep.cost.columns]
    hg9 = cost[cost["variant"] == "hg9"].iloc[0]
    assert pd.isna(hg9["accuracy (%)"]) and pd.isna(hg9["dataset"]) and hg9["latency p50 (ms/batch)"] == 1.0
    assert cost[cost["variant"] == "hg1"].iloc[0]["latency p50 (ms/batch)"] == 2.5
    md = (tmp_path / "out/report.md").read_text()
    assert md_rows(md, "hg9")[0][1] == "—"  # Markdown shows the missing accuracy as "—"
    assert md_rows(md, "hg1")[0][1] == "80.00"


# ---------------------------------------------------------------------------------------------
# Machines are never mixed


def test_two_hosts_are_never_mixed(tmp_path):
    gpu, cpu, cpu2 = tmp_path / "gpu", tmp_path / "cpu", tmp_path / "cpu2"
    for results in (gpu, cpu, cpu2):
        write_train(results, "a", mean=80.0)
        write_train(results, "b", mean=85.0)
    write_profile(gpu, variant="a", host="gpu-box", device="cuda", device_name="NVIDIA H100", p50=1.0)
    write_profile(gpu, variant="b", host="gpu-box", device="cuda", device_name="NVIDIA H100", p50=2.0)
    write_profile(cpu, variant="a", host="laptop", p50=50.0)
    write_profile(cpu, variant="b", host="laptop", p50=40.0)
    write_profile(cpu2, variant="a", host="laptop2", p50=30.0)  # the same CPU model on another host
    rep = build_report([gpu, cpu, cpu2])
    front = {(r["machine"], r["variant"]) for _, r in rep.cost[rep.cost["pareto_optimal"]].iterrows()}
    assert front == {("gpu-box", "a"), ("gpu-box", "b"), ("laptop", "b"), ("laptop2", "a")}
    # one row per machine and variant; each latency stays with its host
    assert {(r["machine"], r["variant"]): r["latency_p50_ms"] for _, r in rep.cost.iterrows()} == {
        ("gpu-box", "a"): 1.0,
        ("gpu-box", "b"): 2.0,
        ("laptop", "a"): 50.0,
        ("laptop", "b"): 40.0,
        ("laptop2", "a"): 30.0,
    }
    pj = {(r["machine"], r["variant"]): r["inference_p50_ms"] for _, r in rep.per_joint.iterrows()}
    assert pj[("gpu-box", "a")] == 1.0 and pj[("laptop", "a")] == 50.0 and pj[("laptop2", "a")] == 30.0
    assert pd.isna(pj[("laptop2", "b")])  # not profiled there: missing, not borrowed from another host
    md = render_markdown(rep)
    sections = md.split("### Machine ")[1:]
    cost_sections = [s for s in sections if "| variant | backend" in s or "accuracy (%)" in s][:3]
    assert [s.split("`")[1] for s in cost_sections] == ["gpu-box", "laptop", "laptop2"]
    gpu_section = cost_sections[0].split("## ")[0]
    assert "NVIDIA H100" in cost_sections[0] and "50.00" not in gpu_section and "40.00" not in gpu_section


# ---------------------------------------------------------------------------------------------
# Plots and output formats


def _demo_store(results: Path) -> None:
    variants = {"hg1": (78.0, 3.4e6, 5.0, 20.0), "hg2": (82.0, 6.7e6, 9.8, 38.0), "hg4": (84.0, 13.0e6, 19.4, 75.0),
                "hg1-ds1": (75.0, 1.4e6, 2.1, 12.0), "hg8": (85.0, 25.4e6, 38.7, 150.0)}  # fmt: skip
    for v, (acc, params, gmacs, p50) in variants.items():
        write_train(
            results,
            v,
            mean=acc,
            parameters=int(params),
            curve=[acc - 30, acc - 12, acc - 4, acc],
            groups={g: acc + d for g, d in zip(GROUPS, (8, 5, 0, -5, 1, -3, -7), strict=True)},
            stacks=int(v[2]),
        )
        for backend, factor in (("eager", 1.0), ("torchscript", 0.85)):
            for precision, pf in (("fp32", 1.0), ("fp16", 0.6)):
                write_profile(
                    results,
                    variant=v,
                    host="gpu-box",
                    device="cuda",
                    device_name="NVIDIA H100",
                    backend=backend,
                    precision=precision,
                    parameters=int(params),
                    gmacs=gmacs,
                    p50=p50 / 20 * factor * pf,
                    numerics_ok=None if precision == "fp32" and backend == "eager" else True,
                    stacks=int(v[2]),
                )


def test_png_plots_are_written_and_plausible(tmp_path):
    from matplotlib.image import imread

    _demo_store(tmp_path / "results")
    rep = build_report(tmp_path / "results")
    # the learning curves' line styles come from each train record's spec, not from this checkout's registry
    assert dict(zip(rep.learning["variant"], rep.learning["num_stacks"], strict=True)) == {
        "hg1": 1,
        "hg2": 2,
        "hg4": 4,
        "hg1-ds1": 1,
        "hg8": 8,
    }
    written = write_report(rep, tmp_path / "out", ["png", "md", "html"])
    pngs = sorted(p for p in written if p.suffix == ".png")
    kinds = {p.name.split("__")[0] for p in pngs}
    kinds_expected = {"accuracy_vs_latency", "accuracy_vs_gmacs", "accuracy_vs_parameters", "per_joint"}
    assert kinds == kinds_expected | {"learning_curves.png"}  # one learning-curves plot, without a group in its name
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 20_000 < len(data) < 2_000_000, p
        h, w = imread(p).shape[:2]
        assert 500 < w < 3000 and 350 < h < 2000, (p, w, h)
    md = (tmp_path / "out/report.md").read_text()
    assert all(f"](plots/{p.name})" in md for p in pngs)  # linked relative to the report
    html = (tmp_path / "out/report.html").read_text()
    assert html.count("<table") >= 2 and "<img src='plots/" in html and "NVIDIA H100" in html


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_report_reads_several_folders_and_writes_every_format(tmp_path):
    _demo_store(tmp_path / "gpu")
    write_train(tmp_path / "cpu", "hg1", mean=78.0)
    write_profile(tmp_path / "cpu", variant="hg1", host="laptop", p50=40.0)
    out = tmp_path / "out"
    code, text = invoke(
        "report",
        "--results",
        tmp_path / "gpu",
        "--results",
        tmp_path / "cpu",
        "--out",
        out,
        "--format",
        "md,csv,html,png",
        "--precision",
        "fp32",
    )
    assert code == 0, text
    assert "Pareto-optimal rows" in text and "laptop" in text and "gpu-box" in text
    assert "filtered out by --precision fp32" in text
    for name in ("report.md", "report.html", "accuracy_vs_cost.csv", "per_joint.csv", "learning_curves.csv"):
        assert (out / name).stat().st_size > 0, name
    cost = pd.read_csv(out / "accuracy_vs_cost.csv")
    assert set(cost["precision"]) == {"fp32"} and set(cost["machine"]) == {"gpu-box", "laptop"}
    assert len(list((out / "plots").glob("*.png"))) >= 5


def test_cli_report_exits_2_when_nothing_is_usable(tmp_path):
    code, text = invoke("report", "--results", tmp_path / "nope")
    assert code == 2 and "nope: no such results folder" in text and "hgbench profile" in text
    (tmp_path / "empty").mkdir()
    code, text = invoke("report", "--results", tmp_path / "empty")
    assert code == 2 and "no records (*.json) found" in text
    write(tmp_path / "old/profile/h/x.json", profile_record("hg1", schema="hgbench.record/1"))
    (tmp_path / "old/bad.json").write_text("[1, 2")
    code, text = invoke("report", "--results", tmp_path / "old")
    assert code == 2 and "none of the 2 record files is usable" in text
    assert "schema hgbench.record/1 profile records are no longer read: re-run hgbench profile" in text
    assert "not a readable JSON record" in text
    write_profile(tmp_path / "ok", variant="hg1")
    code, text = invoke("report", "--results", tmp_path / "ok", "--backend", "tensorrt")
    assert code == 2 and "filters: --backend tensorrt" in text and "filtered out by --backend tensorrt" in text
    code, text = invoke("report", "--results", tmp_path / "ok", "--format", "md,pdf")
    assert code == 2 and "--format" in text and "html" in text
    code, text = invoke("report", "--results", tmp_path / "ok", "--batch-size", "one")
    assert code == 2 and "--batch-size: expected integers" in text


# ---------------------------------------------------------------------------------------------
# Many records


def test_a_report_of_5000_records_builds(tmp_path):
    """5,000 profile records (25 variants x 2 hosts x 5 backends x 2 precisions x 10 batch sizes)
    and 25 training runs: every record used once, one front per group. (Timing: benchmarks/.)"""
    variants = [f"v{i:02d}" for i in range(25)]
    for i, v in enumerate(variants):
        write_train(tmp_path, v, mean=60.0 + i)
    for host in ("h1", "h2"):
        folder = tmp_path / "profile" / host
        folder.mkdir(parents=True)
        for i, v in enumerate(variants):
            for backend in ("eager", "torchscript", "compile", "onnxruntime", "tensorrt"):
                for precision in ("fp32", "fp16"):
                    for batch in range(1, 11):
                        rec = profile_record(
                            v, host=host, backend=backend, precision=precision, batch=batch, p50=1.0 + i + batch
                        )
                        (folder / f"{v}__{backend}__{precision}__b{batch}.json").write_text(json.dumps(rec))
    rep = build_report(tmp_path)
    assert rep.files == 5025 and len(rep.cost) == 5000 and not rep.skipped
    # per (host, batch size) group: the most accurate variant has the highest latency, so every
    # variant is on the front, at each of its 10 equally fast backend x precision settings
    assert rep.cost["pareto_optimal"].all()
    write_report(rep, tmp_path / "out", ["md", "csv"])
    assert len(pd.read_csv(tmp_path / "out/accuracy_vs_cost.csv")) == 5000


def test_nothing_usable_is_an_error_naming_the_reasons(tmp_path):
    write(tmp_path / "x.json", profile_record("hg1", schema="hgbench.record/1"))
    with pytest.raises(NoUsableRecordsError, match="re-run hgbench profile"):
        build_report(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such results folder"):
        build_report(tmp_path / "missing")


@pytest.mark.parametrize("profiled_at, note", [((256,), False), ((64,), True), ((256, 64), True)])
def test_a_profile_at_another_size_than_the_training_is_said_in_the_notes(tmp_path, profiled_at, note):
    write_train(tmp_path, "hg1", mean=50.0)  # protocol_settings.input_size: 256
    for size in profiled_at:
        write_profile(tmp_path, variant="hg1", size=size)
    rep = build_report(tmp_path)
    said = [n for n in rep.notes if "trained at 256 px" in n]
    assert bool(said) is note
    if note:
        assert "64 px" in said[0] and "--input-size 256" in said[0] and said[0] in render_markdown(rep)


# ---------------------------------------------------------------------------------------------
# Joins on identity (issue 25, item 2): a row never mixes two networks

EDITED_VARIANT = """\
name: tiny
description: "test network: 1 stack, {features} features, depth 1"
source:
  paper: "hgbench tests"
architecture:
  num_stacks: 1
  num_features: {features}
  depth: 1
supervision: intermediate
"""
TWO_STEP_PROTOCOL = tiny_protocol_yaml(
    description="test protocol: 1 epoch of 2 steps, 8 validation persons",
    epochs=1, batch_size=2, val_max_samples=8, heatmap_sigma=None,
)  # fmt: skip


def _profile_cpu(spec_, joints: int, results: Path) -> None:
    """One eager fp32 batch-1 profile record of ``spec_`` at 64 px, a few calls, under ``results``."""
    import torch

    from hgbench.profile.backends import RunSettings
    from hgbench.profile.roofline import Ceilings
    from hgbench.profile.sweep import Budget, run_sweep
    from hgbench.records.provenance import collect_provenance

    budget = Budget(warmup_iters=1, warmup_s=0.0, min_iters=3, min_time_s=0.0, repetitions=1, quiet_attempts=1)
    ceilings = {
        ("fp32", False): Ceilings(
            matmul_tflops=0.1, copy_gib_s=10.0, precision="fp32", measured="2026-01-01T00:00:00+00:00"
        )
    }
    [(rec, _)] = run_sweep(
        [(spec_, joints)], backends=["eager"], settings_list=[RunSettings()], batch_sizes=[1], input_size=64,
        device=torch.device("cpu"), threads=1, budget=budget, results_dir=results, provenance=collect_provenance(),
        ceilings=ceilings,
    )  # fmt: skip
    assert rec.status == "ok", rec.error


@pytest.mark.slow
def test_an_edited_variant_s_old_accuracy_never_sits_beside_the_new_network_s_cost(tmp_path, monkeypatch):
    """Train a variant, profile it (joined), edit its YAML, profile it again: the new network's
    row has no accuracy (the old run's is of another spec hash), the notes say why, and the
    per-joint row of the old run shows no inference time of the new network."""
    from hgbench.config import load_protocol, load_variant_file
    from hgbench.train import train_variant

    registry = tmp_path / "registry"
    (registry / "protocols").mkdir(parents=True)
    yaml_file = registry / "tiny.yaml"
    yaml_file.write_text(EDITED_VARIANT.format(features=16))
    (registry / "protocols" / "two-step.yaml").write_text(TWO_STEP_PROTOCOL)
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(registry))
    results, out = tmp_path / "results", tmp_path / "report"
    old = load_variant_file(yaml_file)
    run = train_variant(old, load_protocol("two-step"), "synthetic", None, results, device="cpu")
    joints = run["num_joints"]

    _profile_cpu(old, joints, results)  # the trained network: accuracy and cost join
    write_report(build_report(results), out, "csv")
    cost = pd.read_csv(out / "accuracy_vs_cost.csv")
    assert len(cost) == 1 and cost.loc[0, header("spec_hash")] == spec_hash(old)
    assert cost.loc[0, header("accuracy_pct")] == pytest.approx(run["final"]["mean"])

    yaml_file.write_text(EDITED_VARIANT.format(features=8))  # the edit: another network of the same name
    new = load_variant_file(yaml_file)
    assert spec_hash(new) != spec_hash(old)
    _profile_cpu(new, joints, results)  # replaces the profile record of the same setting
    report = build_report(results)
    write_report(report, out, "csv")
    cost = pd.read_csv(out / "accuracy_vs_cost.csv")
    assert len(cost) == 1 and cost.loc[0, header("spec_hash")] == spec_hash(new)
    assert cost[[header(c) for c in ("accuracy_pct", "dataset", "protocol", "accuracy_record")]].isna().all().all()
    assert cost.loc[0, header("params")] < run["parameters"]  # the new network's size, not the run's
    per_joint = pd.read_csv(out / "per_joint.csv")
    assert len(per_joint) == 1 and per_joint.loc[0, header("spec_hash")] == spec_hash(old)
    assert per_joint.loc[0, header("params")] == run["parameters"]
    assert per_joint[[header(c) for c in ("inference_p50_ms", "profile_record", "gmacs_fvcore")]].isna().all().all()
    [note] = [n for n in report.notes if "spec" in n]
    assert f"tiny ({joints} joints) was profiled as spec {spec_hash(new)}" in note and spec_hash(old) in note


def test_an_evaluation_joins_only_the_run_of_its_network_and_protocol_content(tmp_path):
    """An eval record of the same variant name and protocol name but another spec or protocol
    hash is another run's: it does not borrow the training run's size and time, and the run's
    own validation stays in the report."""
    run = make_record("train", variant="hg1", mean=50.0)
    write_record_file(tmp_path / "runs" / "hg1" / "train.json", run)
    same = make_record("eval", variant="hg1", mean=60.0, protocol_hash=run["protocol_hash"])
    write_record_file(tmp_path / "runs" / "hg1" / "eval-val.json", same)
    report = build_report(tmp_path)
    assert report.per_joint["mean_pct"].tolist() == [60.0] and report.per_joint["training_h"].tolist() == [1.0]

    other_spec = {"name": "hg1", "architecture": {"num_stacks": 2, "depth": 4}}
    edited = make_record("eval", variant="hg1", mean=70.0, protocol_hash=run["protocol_hash"], spec=other_spec)
    write_record_file(tmp_path / "runs" / "hg1" / "eval-val.json", edited)
    rows = build_report(tmp_path).per_joint.set_index("mean_pct")
    assert sorted(rows.index) == [50.0, 70.0]  # the run's validation and the other network's evaluation
    assert rows.loc[70.0, "training_h"] is None or math.isnan(rows.loc[70.0, "training_h"])
    assert rows.loc[70.0, "spec_hash"] == spec_hash(other_spec) != rows.loc[50.0, "spec_hash"]


def test_two_networks_of_one_name_are_two_rows_told_apart_by_their_spec_hash(tmp_path):
    """Two runs of ``hg1`` before and after an edit of its YAML (one and two stacks), the second
    profiled: its cost row has its own accuracy only; the per-joint table and the Markdown show
    both runs, with their spec hashes."""
    write_train(tmp_path / "runs-a", "hg1", mean=60.0, stacks=1)
    write_train(tmp_path / "runs-b", "hg1", mean=70.0, stacks=2)
    write_profile(tmp_path, variant="hg1", stacks=2)
    report = build_report(tmp_path)
    assert report.cost["accuracy_pct"].tolist() == [70.0]
    assert report.cost["spec_hash"].tolist() == [spec("hg1", 2)["spec_hash"]]
    pj = report.per_joint.set_index("mean_pct")
    assert sorted(pj.index) == [60.0, 70.0] and pj.loc[60.0, "spec_hash"] == spec("hg1", 1)["spec_hash"]
    assert math.isnan(pj.loc[60.0, "inference_p50_ms"]) and pj.loc[70.0, "inference_p50_ms"] == 10.0
    assert not [n for n in report.notes if "spec" in n]  # the profiled network has its accuracy
    md = render_markdown(report)
    assert {r[1] for r in md_rows(md, "hg1") if len(r) > 10} >= {
        spec("hg1", 1)["spec_hash"],
        spec("hg1", 2)["spec_hash"],
    }


def test_the_report_reads_records_only(tmp_path):
    """Building and writing the report of the committed reference records imports neither the
    registry (hgbench.config), the networks, training, profiling nor torch."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hgbench.analysis.report import build_report, write_report\n"
        f"write_report(build_report({str(REFERENCE_RECORDS)!r}), {str(tmp_path)!r}, 'md,csv')\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.split('.')[:2] in "
        "(['hgbench', 'config'], ['hgbench', 'models'], ['hgbench', 'train'], ['hgbench', 'profile']))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]" and (tmp_path / "accuracy_vs_cost.csv").is_file()
