"""Deployed accuracy (issue 27, deliverable 1): the prepared artifact itself run over the split
with the same preprocessing, flip test, decoding and scoring as ``hgbench evaluate``, beside the
eager fp32 checkpoint on the same persons (hgbench.accuracy.deployed, hgbench.profile.deployed)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hgbench.accuracy.evaluate import predict
from hgbench.accuracy.paired import paired_difference
from hgbench.data import make_dataset
from tests.conftest import tiny_hourglass, write_registry

runner = CliRunner()


def _cli(*args: str):
    from hgbench.cli import app

    return runner.invoke(app, list(args))


# --- the metric layer: a forward callable, static batches, the paired difference -----------------


def test_a_static_batch_callable_gets_exactly_its_batch_and_matches_the_module(one_thread):
    """Every call of a static-shape artifact has exactly ``batch_size`` crops (the flip test's
    mirror a second call, the last batch padded with zero crops whose outputs are dropped), and the
    decoded predictions are the module's."""
    from hgbench.models.hourglass import StackedHourglass

    torch.manual_seed(0)
    model = StackedHourglass(
        num_stacks=2, num_joints=14, num_features=16, depth=1, stem_channels=8
    ).eval()  # synthetic: LSP's 14
    ds = torch.utils.data.Subset(
        make_dataset("synthetic", None, "val", input_size=64, output_size=16, sigma=1.0), range(10)
    )
    shapes = []

    def artifact(x):
        shapes.append(tuple(x.shape))
        with torch.inference_mode():
            return model(x)

    ref = predict(model, ds, batch_size=4)
    got = predict(artifact, ds, batch_size=4, static_batch=True)
    assert set(shapes) == {(4, 3, 64, 64)} and len(shapes) == 6  # 3 batches x (plain, mirror)
    assert got.padded and not ref.padded and got.flip_test
    np.testing.assert_allclose(got.pred, ref.pred, atol=1e-4)
    np.testing.assert_array_equal(got.gt, ref.gt)
    # not static: one call with the mirror (2 x 4 crops), the last batch short, nothing padded
    shapes.clear()
    dynamic = predict(artifact, ds, batch_size=4)
    assert shapes == [(8, 3, 64, 64), (8, 3, 64, 64), (4, 3, 64, 64)] and not dynamic.padded
    np.testing.assert_array_equal(dynamic.pred, ref.pred)
    with pytest.raises(ValueError, match="before preparing it"):
        predict(artifact, ds, batch_size=4, skips=False)


def test_paired_difference_is_the_difference_of_the_means_with_a_paired_interval(one_thread):
    from hgbench.accuracy.evaluate import Predictions, score_predictions
    from hgbench.data.keypoints import LSP

    rng = np.random.default_rng(0)
    n, j = 300, LSP.num_joints
    gt = rng.uniform(0, 100, (n, j, 2))
    annotated = np.ones((n, j), bool)
    norm = np.full(n, 50.0)
    good = Predictions(gt + rng.normal(0, 6, gt.shape), gt, annotated, norm)
    worse = Predictions(good.pred + rng.normal(0, 6, gt.shape), gt, annotated, norm)
    same = paired_difference(good, good, LSP)
    assert same.mean == 0 and same.mean_ci == (0.0, 0.0)
    d = paired_difference(worse, good, LSP)
    expected = score_predictions(worse, LSP).mean - score_predictions(good, LSP).mean
    assert d.mean == pytest.approx(expected, abs=1e-9) and d.mean < 0
    assert d.mean_ci[0] <= d.mean <= d.mean_ci[1] < 0
    assert set(d.groups) == set(LSP.groups) and d.persons == n
    with pytest.raises(ValueError, match="not of the same persons"):
        paired_difference(worse, Predictions(good.pred[:10], gt[:10], annotated[:10], norm[:10]), LSP)


# --- a trained checkpoint, evaluated as deployed ----------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run trained long enough (120 steps, no augmentation: about 20 s on one thread) to be
    well above a broken artifact's accuracy; its checkpoint, results folder and plain eval record."""
    from hgbench.config import get_variant, load_protocol
    from hgbench.train import train_variant

    registry = write_registry(tmp_path_factory.mktemp("registry"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HGBENCH_VARIANTS_DIR", str(registry))
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            p = load_protocol("tiny")
            no_aug = dataclasses.replace(
                p.augmentation, rotation_prob=0.0, scale=(1.0, 1.0), flip=False, color_jitter=0.0
            )
            protocol = dataclasses.replace(p, epochs=1, steps_per_epoch=120, batch_size=8, val_max_samples=4,
                                           optimizer=dataclasses.replace(p.optimizer, lr=2.5e-3), augmentation=no_aug)  # fmt: skip
            results = tmp_path_factory.mktemp("results")
            rec = train_variant(get_variant("tiny"), protocol, "synthetic", None, results, device="cpu")
        finally:
            torch.set_num_threads(old)
    checkpoint = Path(rec["checkpoint"])
    return {
        "checkpoint": checkpoint,
        "results": results,
        "cache": tmp_path_factory.mktemp("cache"),
        "registry": registry,
    }


def _record(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.slow
def test_deployed_eager_fp32_equals_hgbench_evaluate_to_the_last_digit(trained, one_thread):
    ckpt = trained["checkpoint"]
    plain = ckpt.parent / "eval-synthetic-val-pck-t0.2.json"
    assert _cli("evaluate", str(ckpt)).exit_code == 0
    before = _record(plain)
    out = _cli("evaluate", str(ckpt), "--backend", "eager", "--precision", "fp32", "--cache-dir", str(trained["cache"]))
    assert out.exit_code == 0, out.output
    assert "deployed: eager fp32 batch 16" in out.output
    after = _record(plain)  # eager fp32 is the checkpoint: the same file, the same key
    for field in ("per_joint", "groups", "mean", "counts", "mean_ci", "groups_ci", "num_persons", "loss"):
        assert after["result"][field] == before["result"][field], field
    assert after.get("artifact") is None and before.get("artifact") is None
    assert (after["backend"], after["precision"], after["batch_size"], after["padded"]) == ("eager", "fp32", 16, False)
    diff = after["deployed"]["difference"]
    assert diff["mean"] == 0 and diff["mean_ci"] == [0.0, 0.0]
    assert after["deployed"]["reference"]["mean"] == before["result"]["mean"]


@pytest.mark.slow
def test_torchscript_and_onnxruntime_fp32_are_within_a_small_tolerance_of_eager(trained, one_thread):
    from hgbench.analysis.rows import read_store
    from hgbench.profile.deployed import BackendDeployment
    from hgbench.train.evaluation import evaluate_checkpoint

    ckpt, cache = trained["checkpoint"], trained["cache"] / "artefacts"
    plain = evaluate_checkpoint(ckpt)
    for backend, batch, padded in (("torchscript", 16, False), ("onnxruntime", 7, True)):
        ev = evaluate_checkpoint(ckpt, deployment=BackendDeployment(backend, "fp32", batch, cache))
        d = ev.deployed
        assert d.reference.mean == plain.result.mean and d.reference.per_joint == plain.result.per_joint
        assert abs(ev.result.mean - plain.result.mean) <= 0.5, (backend, ev.result.mean, plain.result.mean)
        assert abs(d.difference.mean - (ev.result.mean - plain.result.mean)) < 1e-9
        assert d.difference.mean_ci[0] <= 0 <= d.difference.mean_ci[1]
        # a static-shape artifact (ONNX Runtime) pads the last batch of 200 persons, TorchScript does not
        assert ev.result.padded is padded and d.static_shape is padded
        rec = ev.record
        assert Path(rec.path).name == f"eval-synthetic-val-pck-t0.2-{backend}-fp32-b{batch}.json"
        assert (rec["artifact"], rec["backend"], rec["padded"]) == (f"{backend}-fp32-b{batch}", backend, padded)
        assert rec.key() != plain.record.key()
    # the report keeps the checkpoint's accuracy and reads the deployed records as such
    store = read_store([trained["results"]])
    assert len(store.accuracy) == 1 and store.accuracy[0]["accuracy_pct"] == plain.result.mean
    assert sorted((d["backend"], d["batch_size"]) for d in store.deployed) == [("onnxruntime", 7), ("torchscript", 16)]


@pytest.mark.slow
def test_a_broken_artifact_is_measured_as_such(trained, one_thread, tmp_path):
    """Weights zeroed in the exported ONNX file after export (a corrupt cached artefact): the
    deployed evaluation runs that file, its accuracy collapses and is recorded with a difference
    whose interval lies below zero, and the checkpoint's own record is untouched."""
    import onnx
    from onnx import numpy_helper

    from hgbench.profile.deployed import BackendDeployment
    from hgbench.train.evaluation import evaluate_checkpoint

    ckpt, cache = trained["checkpoint"], tmp_path / "artefacts"
    plain = evaluate_checkpoint(ckpt)
    plain_text = Path(plain.record.path).read_text()
    deployment = BackendDeployment("onnxruntime", "fp32", 16, cache)
    good = evaluate_checkpoint(ckpt, deployment=deployment)
    (exported,) = (cache / "onnx").glob("*.onnx")
    model = onnx.load(str(exported))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.kind == "f" and array.ndim == 4:  # the convolutions' weights (not shape or scale constants)
            init.CopyFrom(numpy_helper.from_array(np.zeros_like(array), init.name))
    onnx.save(model, str(exported))
    broken = evaluate_checkpoint(ckpt, deployment=deployment)
    assert any("reused from" in n for n in broken.deployed.notes), broken.deployed.notes
    assert good.result.mean > 5 and broken.result.mean < good.result.mean / 3
    diff = broken.deployed.difference
    assert diff.mean_ci[1] < 0 and diff.mean == pytest.approx(broken.result.mean - plain.result.mean)
    rec = json.loads(Path(broken.record.path).read_text())
    assert rec["result"]["mean"] == broken.result.mean and rec["deployed"]["difference"]["mean_ci"][1] < 0
    assert Path(plain.record.path).read_text() == plain_text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "nope"], "unknown backend 'nope'"),
        (["--backend", "onnxruntime", "--precision", "bf16"], "--precision bf16"),
        (["--precision", "fp8"], "--precision"),
        (["--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_deployments_exit_2_before_any_work(tmp_path, args, message):
    missing = tmp_path / "no-such-checkpoint.pt"  # never read: the option is refused first
    out = _cli("evaluate", str(missing), *args)
    assert out.exit_code == 2, out.output
    assert message in out.output and "no-such-checkpoint" not in out.output


# --- int8 as a precision, and `hgbench profile --evaluate` (issue 27, deliverables 1-3, 6) ----------

_QUICK = ["--repetitions", "1", "--min-time-s", "0", "--min-iters", "2", "--warmup", "1", "--warmup-s", "0",
          "--threads", "1", "--quiet-attempts", "1"]  # fmt: skip


@pytest.mark.slow
def test_profile_evaluate_records_deployed_int8_accuracy_that_the_report_shows(trained, one_thread, monkeypatch):
    """The issue's acceptance command on a results folder holding a trained network: every setting's
    artifact is evaluated, the report's rows show their own (deployed) accuracy with the difference to
    eager fp32, and the int8 row is marked in the plot's points."""
    import pandas as pd

    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(trained["registry"]))
    results = trained["results"]
    out = _cli("profile", "--variants", "tiny", "--backend", "eager,onnxruntime", "--precision", "fp32,int8", "--evaluate",
               "--calibration-count", "32", "--results", str(results), "--cache-dir", str(trained["cache"]), *_QUICK)  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "eager int8 not run" in out.output and "deployed accuracy" in out.output
    folder = trained["checkpoint"].parent
    int8 = _record(next(folder.glob("eval-*onnxruntime-int8-b1*.json")))
    assert int8["precision"] == "int8" and int8["deployed"]["difference"]["mean_ci"] is not None
    profile = [json.loads(p.read_text()) for p in (results / "profile").glob("*/*.json")]
    quantized = [p for p in profile if p["precision"] == "int8"]
    assert [p["backend"] for p in quantized] == ["onnxruntime"] and quantized[0]["status"] == "ok"
    assert any("QDQ" in n for n in quantized[0]["notes"]) and quantized[0]["numerics"]["ok"] is not None
    (sweep,) = [json.loads(p.read_text()) for p in (results / "profile").glob("*/sweeps/*.json")]
    assert sweep["time_s"]["evaluation"] > 0  # the sweep record, written again after --evaluate, counts it
    assert sum(sweep["time_s"].values()) == pytest.approx(sweep["wall_s"], abs=0.01)

    report = tmp = results / "report"
    out = _cli("report", "--results", str(results), "--out", str(tmp))
    assert out.exit_code == 0, out.output
    cost = pd.read_csv(next(report.glob("accuracy_vs_cost*.csv")))
    row = cost[(cost["backend"] == "onnxruntime") & (cost["precision"] == "int8")].iloc[0]
    assert row["accuracy of"] == "deployed" and row["accuracy (%)"] == pytest.approx(int8["result"]["mean"])
    assert row["vs eager fp32 (points)"] == pytest.approx(int8["deployed"]["difference"]["mean"])
    eager = cost[(cost["backend"] == "eager")].iloc[0]
    assert eager["accuracy of"] == "deployed" and eager["vs eager fp32 (points)"] == 0


_ORT_INT8 = ["--backend", "onnxruntime", "--precision", "int8"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "eager,torchscript", "--precision", "int8"], "is built by compile, onnxruntime or tensorrt"),
        (_ORT_INT8, "needs calibration data"),
        ([*_ORT_INT8, "--dataset", "synthetic", "--calibration-count", "0"], "--calibration-count 0"),
        ([*_ORT_INT8, "--dataset", "synthetic", "--calibration-count", "100000"], "--calibration-count 100000 exceeds"),
        ([*_ORT_INT8, "--dataset", "synthetic", "--calibration-method", "nope"], "--calibration-method 'nope'"),
        (["--backend", "onnxruntime", "--precision", "int4"], "--precision 'int4'"),
    ],
)
def test_int8_bad_input_exits_2_before_any_work(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(write_registry(tmp_path / "registry")))
    results = tmp_path / "results"
    out = _cli(
        "profile", "--variants", "tiny", "--results", str(results), "--cache-dir", str(tmp_path / "cache"), *args
    )
    assert out.exit_code == 2, out.output
    assert message in " ".join(out.output.split()), out.output
    assert not (results / "profile").exists()  # nothing measured


def test_backends_without_int8_refuse_it_naming_those_that_have_it():
    from hgbench.profile.backends import RunSettings, get_backend

    int8 = RunSettings(precision="int8")
    for name in ("eager", "torchscript", "cudagraphs"):
        assert "use --backend compile, onnxruntime or tensorrt" in get_backend(name).unsupported(int8)
    assert get_backend("onnxruntime").unsupported(int8) is None
    assert "fp8 is not built by onnxruntime" in get_backend("onnxruntime").unsupported(RunSettings(precision="fp8"))


def test_a_quantized_setting_without_calibration_data_says_what_is_missing(one_thread):
    from hgbench.profile.backends import RunSettings, get_backend

    with pytest.raises(ValueError, match="--precision int8 needs calibration data: pass --dataset"):
        get_backend("onnxruntime").prepare(tiny_hourglass(), torch.zeros(1, 3, 32, 32), RunSettings(precision="int8"))
