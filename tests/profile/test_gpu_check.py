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
                 "registry"):  # fmt: skip
        assert status[name] == "PASS", name
    for name in ("events vs wall", "numerics cudagraphs", "ort events", "compile release", "numerics eager fp32+tf32"):
        assert status[name] == "SKIP", name
    assert "0 FAIL" in proc.stdout.splitlines()[-1]
    assert seconds < 60 or torch.get_num_threads() > 2  # the brief: under a minute on 2 cores


def test_dry_run_writes_its_tables_flat_under_out(dry_run):
    _, out, _ = dry_run
    files = sorted(p.name for p in out.iterdir())
    assert files == ["ceilings.csv", "checks.txt", "memory.csv", "numerics.csv", "records.jsonl", "registry.csv",
                     "registry.md", "run.json"]  # fmt: skip
    numerics = list(csv.DictReader((out / "numerics.csv").open()))
    eager_fp32 = [
        r for r in numerics if (r["backend"], r["precision"], r["channels_last"]) == ("eager", "fp32", "False")
    ]
    assert len(eager_fp32) == 1 and float(eager_fp32[0]["relative_error"]) <= float(eager_fp32[0]["bound"]) == 1e-4
    run = json.loads((out / "run.json").read_text())
    assert run["dry_run"] is True and run["counts"]["FAIL"] == 0 and run["provenance"]["torch"] == torch.__version__
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert {r["backend"] for r in records} == {"eager", "torchscript"} and all(r["status"] == "ok" for r in records)
    assert "| hg1 | 64 | torchscript | fp32 | 1 |" in (out / "registry.md").read_text()


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
