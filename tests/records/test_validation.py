"""The value rules of records (issue 26 item 3): a hand-edited or broken record (negative
parameters, 250 % or NaN accuracy, a completed profile setting without latency, a diverged
run) is refused on read, naming the field and the value, and listed among the report's skipped
with its file; every committed record still validates; ``hgbench evaluate`` refuses non-finite
checkpoint weights."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from conftest import REPO, make_record, write_record_file
from typer.testing import CliRunner

from hgbench.records import InvalidRecordError, parse_record, read_record, scan, write_record
from hgbench.records.validation import accuracy_problem, check_finite_weights, non_finite_tensors, record_problem

runner = CliRunner()
NAN, INF = float("nan"), float("inf")


def _edit(record: dict, path: str, value) -> dict:
    """``record`` with the field at dotted ``path`` (``"result.mean"``, ``"history.-1.train_loss"``) set."""
    *parents, last = path.split(".")
    node = record
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return record


# (kind, dotted field, value, words the reason must hold)
BAD = [
    ("eval", "result.mean", 250.0, ["field 'result.mean' is 250.0", "[0, 100]"]),
    ("eval", "result.mean", NAN, ["field 'result.mean' is nan", "[0, 100]"]),
    ("eval", "result.mean", -1.0, ["field 'result.mean' is -1.0"]),
    ("eval", "result.groups.Head", INF, ["field 'result.groups.Head' is inf"]),
    ("eval", "result.loss", NAN, ["field 'result.loss' is nan", "diverged"]),
    ("eval", "result.mean_ci", [10.0, 101.0], ["field 'result.mean_ci' is 101.0"]),
    ("eval", "result.num_persons", -3, ["field 'result.num_persons' is -3"]),
    ("eval", "threshold", 2.0, ["field 'threshold' is 2.0", "at most 1"]),
    ("eval", "num_joints", 0, ["field 'num_joints' is 0", "integer >= 1"]),
    ("train", "final.mean", 250.0, ["field 'final.mean' is 250.0"]),
    ("train", "history.0.val.mean", 101.0, ["field 'history[0].val.mean' is 101.0"]),
    ("train", "history.-1.train_loss", NAN, ["field 'history[1].train_loss' is nan", "diverged", "--force"]),
    ("train", "parameters", -5, ["field 'parameters' is -5", "integer >= 1"]),
    ("train", "train_time_s", -1.0, ["field 'train_time_s' is -1.0"]),
    ("train", "train_time_s", INF, ["field 'train_time_s' is inf"]),
    ("profile", "parameters", -1000, ["field 'parameters' is -1000", "integer >= 1"]),
    ("profile", "parameters", 0, ["field 'parameters' is 0"]),
    ("profile", "gmacs_fvcore", -0.5, ["field 'gmacs_fvcore' is -0.5", "> 0"]),
    ("profile", "gflops_flop_counter", INF, ["field 'gflops_flop_counter' is inf"]),
    ("profile", "model_size_mib", NAN, ["field 'model_size_mib' is nan"]),
    ("profile", "peak_memory_mib", -2.0, ["field 'peak_memory_mib' is -2.0"]),
    ("profile", "batch_size", 0, ["field 'batch_size' is 0"]),
    ("profile", "latency_ms", None, ["field 'latency_ms.p50_ms' is missing", "completed setting"]),
    ("profile", "latency_ms.p50_ms", 0.0, ["field 'latency_ms.p50_ms' is 0.0", "completed setting"]),
    ("profile", "throughput_samples_per_s", 0.0, ["field 'throughput_samples_per_s' is 0.0", "> 0"]),
    ("profile", "status", "done", ["field 'status' is 'done'"]),
    (
        "profile",
        "latency_ms.p50_ms",
        NAN,
        ["field 'latency_ms.p50_ms' is nan"],
    ),  # the model rule, now an invalid value too
]


@pytest.mark.parametrize(("kind", "field", "value", "words"), BAD, ids=[f"{k}-{f}-{v}" for k, f, v, _ in BAD])
def test_a_record_with_an_impossible_value_is_refused_naming_the_field(kind, field, value, words):
    good = make_record(kind)
    parse_record(good, "x.json")  # as written: read
    bad = _edit(make_record(kind), field, value)
    with pytest.raises(InvalidRecordError) as e:
        parse_record(bad, "x.json")
    text = str(e.value)
    assert text.startswith(f"x.json: malformed {kind} record: "), text
    assert all(w in text for w in words), text
    assert "re-run hgbench" in text and "\n" not in text


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("eval", "result.mean_ci", [NAN, NAN]),  # fewer than two persons: the interval is undefined
        ("eval", "result.groups.Head", NAN),  # a group never scored
        ("eval", "result.mean_visible", NAN),
        ("eval", "result.mean", 0.0),
        ("eval", "result.mean", 100),
        ("profile", "peak_memory_mib", 0.0),  # a CPU peak RSS increase of 0 (committed records have it)
        ("profile", "build_time_s", 0.0),
        ("profile", "parameters", None),  # not measured
        ("train", "history.-1.val", None),  # an epoch without validation
        ("train", "final.mean", NAN),  # a validation that scored nothing: the engine meets it (optim.step_schedule)
    ],
)
def test_values_at_the_edge_of_their_range_or_undefined_by_the_metric_are_read(kind, field, value):
    assert parse_record(_edit(make_record(kind), field, value), "x.json").kind == kind


def test_a_per_joint_nan_is_read_only_where_the_joint_was_never_scored():
    rec = make_record("eval")
    rec["result"]["per_joint"] = {"head": NAN, "neck": 50.0}
    rec["result"]["counts"] = {"head": 0, "neck": 10}
    parse_record(rec, "x.json")
    rec["result"]["counts"]["head"] = 7
    with pytest.raises(InvalidRecordError, match=r"field 'result.per_joint.head' is nan but 7 instances were scored"):
        parse_record(rec, "x.json")


def test_a_failed_profile_setting_without_latency_and_an_incomplete_diverged_run_are_read():
    failed = make_record(
        "profile", status="error", error="timing: boom", latency_ms=None, throughput_samples_per_s=None
    )
    assert parse_record(failed, "f.json").status == "error"
    diverged = _edit(make_record("train", complete=False), "history.-1.train_loss", NAN)
    assert parse_record(diverged, "d.json").complete is False  # `hgbench runs` can still say what happened


def test_a_writer_cannot_write_an_invalid_record_and_the_message_names_the_file(tmp_path):
    body = {k: v for k, v in make_record("eval").items() if k not in ("schema", "kind", "created")}
    body["result"]["mean"] = 250.0
    target = tmp_path / "eval.json"
    with pytest.raises(InvalidRecordError, match=rf"^{tmp_path}/eval.json: malformed eval record: field 'result.mean'"):
        write_record(target, "eval", body)
    assert not target.exists()


def test_scan_lists_an_invalid_record_as_skipped_and_as_invalid_for_its_kind(tmp_path):
    write_record_file(tmp_path / "good.json", make_record("profile"))
    bad = write_record_file(tmp_path / "bad.json", make_record("profile", variant="hg2", parameters=-1))
    write_record_file(tmp_path / "eval.json", make_record("eval", mean=250.0))
    found = scan(tmp_path)
    assert [r.variant for r in found.records] == ["hg1"]
    assert {Path(p).name for p, _ in found.skipped} == {"bad.json", "eval.json"}
    assert {Path(p).name for p, _ in found.invalid} == {"bad.json", "eval.json"}
    profiles = scan(tmp_path, kinds=["profile"])
    assert profiles.invalid == [(str(bad), profiles.invalid[0][1])] and "'parameters' is -1" in profiles.invalid[0][1]
    with pytest.raises(InvalidRecordError, match="bad.json: malformed profile record: field 'parameters'"):
        read_record(bad)


def test_every_committed_record_validates():
    """All records committed under benchmarks/reference (and results/, where any are kept) are read:
    a rule that refused one of them would be wrong, or the record would be (then: report it)."""
    folders = [p for p in (REPO / "benchmarks" / "reference", REPO / "results") if p.is_dir()]
    found = scan(folders, dedupe=False)
    assert found.invalid == []
    assert len(found.records) >= 1161
    not_records = {Path(p).name for p, _ in found.skipped}
    assert not_records <= {"quiet-windows-trace-hg2.json", "results.json", "sweep_time.json"}, (
        found.skipped
    )  # measurement files, not records


# --- the report lists them, with the file and the reason ------------------------------------------


@pytest.mark.parametrize(
    ("kind", "over", "words"),
    [
        ("profile", {"parameters": -1000}, ["field 'parameters' is -1000"]),
        ("profile", {"latency_ms": None, "throughput_samples_per_s": None}, ["'latency_ms.p50_ms' is missing"]),
        ("eval", {"mean": 250.0}, ["field 'result.mean' is 250.0"]),
        ("eval", {"mean": NAN}, ["field 'result.mean' is nan"]),
        ("train", {"mean": 250.0}, ["field 'final.mean' is 250.0"]),
        ("train", {"mean": float("inf")}, ["field 'final.mean' is inf"]),
    ],
)
def test_the_report_lists_a_hand_edited_record_among_the_skipped_with_file_and_reason(tmp_path, kind, over, words):
    from hgbench.analysis.report import build_report, write_report

    write_record_file(tmp_path / "profile" / "h" / "good.json", make_record("profile", variant="hg1"))
    variant = "hg2"
    rec = make_record(kind, variant=variant, spec={"name": variant, "architecture": {"num_stacks": 2}}, **over)
    bad = write_record_file(tmp_path / "runs" / "bad.json", rec)
    report = build_report(tmp_path)
    reasons = dict(report.skipped)
    assert str(bad) in reasons, report.skipped
    assert all(w in reasons[str(bad)] for w in words), reasons[str(bad)]
    assert variant not in set(report.cost["variant"])  # not reported as it is
    write_report(report, tmp_path / "out", "csv")
    skipped_csv = (tmp_path / "out" / "skipped.csv").read_text()
    assert str(bad) in skipped_csv and words[0].split("'")[1] in skipped_csv


def test_hgbench_report_says_the_record_was_skipped_and_why(tmp_path):
    from hgbench.cli import app

    write_record_file(tmp_path / "profile" / "h" / "good.json", make_record("profile", variant="hg1"))
    write_record_file(tmp_path / "runs" / "eval.json", make_record("eval", variant="hg1", mean=NAN))
    r = runner.invoke(app, ["report", "--results", str(tmp_path), "--format", "csv"])
    text = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "field 'result.mean' is nan" in text and "eval.json" in text, r.output


# --- checkpoint weights ---------------------------------------------------------------------------


def test_non_finite_tensors_names_the_tensors_holding_nan_or_inf():
    import torch

    state = {"a.weight": torch.ones(3), "b.weight": torch.tensor([1.0, NAN]), "c.count": torch.tensor([5]),
             "d.bias": torch.tensor([INF])}  # fmt: skip
    assert non_finite_tensors(state) == ["b.weight", "d.bias"]
    with pytest.raises(
        ValueError, match=r"^ck.pt: 2 of 4 weight tensors hold NaN or infinite values \(first: b.weight\)"
    ):
        check_finite_weights(state, "ck.pt")
    check_finite_weights({"a.weight": torch.ones(3)}, "ck.pt")


def test_hgbench_evaluate_refuses_a_checkpoint_with_non_finite_weights(tmp_path, monkeypatch):
    """A diverged checkpoint (NaN weights) scored 0.0 % without a word; now: one line naming the
    checkpoint, exit 2, no eval record."""
    import torch

    from hgbench.cli import app

    ckpt_path = _tiny_checkpoint(tmp_path, monkeypatch)
    r = runner.invoke(app, ["evaluate", str(ckpt_path)])
    assert r.exit_code == 0, r.output  # the finite checkpoint is evaluated
    for record in ckpt_path.parent.glob("eval*.json"):
        record.unlink()
    ckpt = torch.load(ckpt_path, weights_only=False)
    key = next(k for k, v in ckpt["model_state"].items() if v.is_floating_point())
    ckpt["model_state"][key] = torch.full_like(ckpt["model_state"][key], NAN)
    torch.save(ckpt, ckpt_path)
    r = runner.invoke(app, ["evaluate", str(ckpt_path)])
    text = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    assert str(ckpt_path) in text and "NaN or infinite" in text and key in text, r.output
    assert "Traceback" not in r.output
    assert not list(ckpt_path.parent.glob("eval*.json"))


def test_hgbench_evaluate_on_mpii_without_a_scored_joint_is_a_clear_error(tmp_path, monkeypatch):
    """Issue 26, item 4: an MPII split whose one person with joints is skipped (its image is
    missing, --skip-bad-samples) gives no finite PCKh; evaluate ended in a SuspectResultError traceback; now one line, exit 2."""
    import h5py
    from conftest import SHARED_DATA

    source = SHARED_DATA / "mpii"
    if not (source / "valid.h5").is_file():
        pytest.skip(f"MPII fixture files not found at {source}")
    from hgbench.cli import app

    ckpt_path = _tiny_checkpoint(tmp_path, monkeypatch, num_joints=16)
    root = tmp_path / "mpii"
    shutil.copytree(source / "images", root / "images")
    with h5py.File(source / "valid.h5") as f, h5py.File(root / "valid.h5", "w") as out:
        for name in f:
            out[name] = f[name][:5]
        del out["part"]
        out["part"] = f["part"][:5] * float("nan")  # NaN coordinates: annotated, never scorable
    args = ["evaluate", str(ckpt_path), "--dataset", "mpii", "--data-root", str(root)]
    r = runner.invoke(app, args)
    text = " ".join(r.output.split())
    assert r.exit_code == 2, r.output
    suspect = str(ckpt_path) in text and "not a number" in text and "mpii/val" in text
    refused_data = "valid.h5" in text  # should the loader come to refuse NaN coordinates itself
    assert suspect or refused_data, r.output
    assert "Traceback" not in r.output and not list(ckpt_path.parent.glob("eval*.json"))


def test_a_suspect_result_is_an_input_error_the_cli_says_in_one_line():
    from hgbench.train.evaluation import SuspectResultError

    assert issubclass(SuspectResultError, ValueError)  # console.user_errors: one line, exit 2


def _tiny_checkpoint(tmp_path: Path, monkeypatch, num_joints: int | None = None) -> Path:
    """The checkpoint of the test registry's ``tiny`` trained 2 steps on the synthetic dataset
    (14 joints); with ``num_joints``, its network rebuilt (untrained) with that many."""
    from conftest import tiny_protocol_yaml, write_registry

    from hgbench.cli import app
    from hgbench.config.variant import _load_all

    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))
    _load_all.cache_clear()
    protocol = tmp_path / "p.yaml"
    protocol.write_text(tiny_protocol_yaml(epochs=1, steps_per_epoch=2, val_max_samples=4))
    r = runner.invoke(app, ["train", "tiny", "--protocol", str(protocol), "--results", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    path = next((tmp_path / "res").rglob("checkpoint.pt"))
    if num_joints is not None:
        import torch

        from hgbench.config import VariantSpec, from_dict
        from hgbench.models import create_model

        ckpt = torch.load(path, weights_only=False)
        model = create_model(from_dict(VariantSpec, ckpt["spec"], path), num_joints, input_size=64)
        ckpt.update(model_state=model.state_dict(), num_joints=num_joints)
        torch.save(ckpt, path)
    return path


def test_accuracy_problem_of_a_missing_mean_and_a_non_mapping():
    assert "missing" in accuracy_problem({"threshold": 0.2}, "final")
    assert "expected an accuracy result" in accuracy_problem([1, 2], "final")
    assert record_problem({"kind": "nope"}) is None
    assert math.isnan(json.loads("NaN"))  # records hold NaN as JSON's NaN literal (Python's json module)
