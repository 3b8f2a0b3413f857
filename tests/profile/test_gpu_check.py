"""benchmarks/gpu_check.py: its dry run on the CPU (the plumbing of every check, tiny sizes,
SKIP for the CUDA-only ones) and how results become lines and an exit status."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check_out")
    env = {**os.environ, "SMOKE_ALLOW_CPU": "1", "OUT": str(out), "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    return proc, out, time.perf_counter() - start


def test_dry_run_passes_with_one_line_per_check_and_skips_the_cuda_only_ones(dry_run):
    proc, out, seconds = dry_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    status = {line.split(":")[0][6:]: line[:4] for line in lines}
    assert not [line for line in lines if line.startswith("FAIL")]
    for name in ("setup", "tf32 api tf32", "tf32 api restore", "ceilings keys", "numerics eager fp32", "numerics torchscript fp32",
                 "numerics tensorrt fp16+cl", "numerics onnxruntime bf16", "peak memory eager", "tf32 roofline", "provenance",
                 "train resume sigterm", "train resume identical", "train flags restored", "ddp gloo", "ddp control group",
                 "profile hg1 eager fp32 b1", "profile hg1 torchscript fp32 b1", "profile hg1 onnxruntime int8 b1"):  # fmt: skip
        assert status[name] == "PASS", name
    for name in ("events vs wall", "numerics cudagraphs", "ort events", "compile release", "numerics eager fp32+tf32",
                 "train compiled"):  # fmt: skip
        assert status[name] == "SKIP", name
    # priority order: training, data parallel, then the profile matrix, then the issue-19 checks
    order = [line.split(":")[0][6:] for line in lines]
    assert order.index("train resume identical") < order.index("ddp gloo") < order.index("profile hg1 eager fp32 b1")
    assert order.index("profile hg1 torchscript fp32 b1") < order.index("tf32 api tf32")
    assert "0 FAIL" in proc.stdout.splitlines()[-1]
    # its duration is the benchmark's business (the script's own budget guards it), not a timed test's


def test_dry_run_writes_its_tables_flat_under_out(dry_run):
    _, out, _ = dry_run
    files = sorted(p.name for p in out.iterdir())
    assert files == ["ceilings.csv", "checks.txt", "memory.csv", "numerics.csv", "profiles.csv", "profiles.md",
                     "records.jsonl", "run.json"]  # fmt: skip
    numerics = list(csv.DictReader((out / "numerics.csv").open()))
    eager_fp32 = [
        r for r in numerics if (r["backend"], r["precision"], r["channels_last"]) == ("eager", "fp32", "False")
    ]
    assert len(eager_fp32) == 1 and float(eager_fp32[0]["relative_error"]) <= float(eager_fp32[0]["bound"]) == 1e-4
    run = json.loads((out / "run.json").read_text())
    assert run["dry_run"] is True and run["counts"]["FAIL"] == 0 and run["provenance"]["torch"] == torch.__version__
    assert (
        run["train_records"]["resumed"]["deterministic"] is True
        and len(run["train_records"]["resumed"]["sessions"]) == 2
    )
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert {(r["backend"], r["precision"]) for r in records} == {
        ("eager", "fp32"),
        ("torchscript", "fp32"),
        ("onnxruntime", "int8"),
    }
    assert all(r["status"] == "ok" for r in records)
    assert all(r["latency_ms"]["gpu"] == [None] for r in records)  # the CPU: no GPU state sampled
    assert "| hg1 | 64 | torchscript | fp32 | 1 |" in (out / "profiles.md").read_text()


def test_the_profile_matrix_covers_hg1_and_hg8_every_backend_and_precision_cheapest_first():
    gpu_check = load_script()
    items = gpu_check.profile_items(gpu_check.PROFILE_VARIANTS, gpu_check.BACKENDS, gpu_check.PROFILE_PRECISIONS,
                                    gpu_check.PROFILE_BATCHES)  # fmt: skip
    assert len(items) == len(set(items)) == 2 * len(gpu_check.BACKENDS) * 3 * 2  # nothing left out, nothing twice
    assert {(i.variant, i.batch) for i in items} == {("hg1", 1), ("hg1", 32), ("hg8", 1), ("hg8", 32)}
    assert gpu_check.PROFILE_INPUT_PX == 256 and set(gpu_check.PROFILE_PRECISIONS) == {"fp32", "fp16", "bf16"}
    slow = [n for n, i in enumerate(items) if gpu_check.PROFILE_COST_S[i.backend] >= 60]
    assert items[0].backend == "eager" and slow == list(range(slow[0], len(items)))  # builds of a minute come last
    first_builds = items[slow[0] : slow[0] + 6]  # each slow backend in each precision, on hg1 at batch 1, first
    assert {(i.backend, i.precision, i.variant, i.batch) for i in first_builds} == {
        (b, p, "hg1", 1) for b in ("compile", "tensorrt") for p in ("fp32", "fp16", "bf16")
    }


def test_the_quantized_items_are_those_of_the_backends_that_build_them():
    gpu_check = load_script()
    items = gpu_check.quantized_items(gpu_check.PROFILE_VARIANTS, gpu_check.BACKENDS, gpu_check.PROFILE_BATCHES)
    pairs = {(i.backend, i.precision) for i in items}
    assert pairs == {("onnxruntime", "int8"), ("compile", "int8"), ("tensorrt", "int8"), ("tensorrt", "fp8")}
    assert {(i.variant, i.batch) for i in items} == {("hg1", 1), ("hg1", 32), ("hg8", 1), ("hg8", 32)}


def test_a_failing_or_raising_check_is_a_fail_line_and_the_others_still_run():
    gpu_check = load_script()

    def fine(ctx):
        yield gpu_check.Result("PASS", "fine", "ok")

    def wrong(ctx):
        yield gpu_check.Result("FAIL", "wrong", "off by one")

    def check_broken(ctx):
        raise KeyError("boom")
        yield  # pragma: no cover

    lines = []
    results = gpu_check.run_checks([fine, check_broken, wrong], None, emit=lambda r: lines.append(r.line()))
    assert [r.status for r in results] == ["PASS", "FAIL", "FAIL"]
    assert lines[1].startswith("FAIL  broken: raised KeyError: 'boom'")


def test_without_cuda_and_without_dry_run_it_says_how_to_run_and_fails(capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    monkeypatch.delenv("SMOKE_ALLOW_CPU", raising=False)
    assert load_script().main([]) == 1
    assert "--dry-run" in capsys.readouterr().out
