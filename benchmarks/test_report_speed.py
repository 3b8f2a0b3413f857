"""How long ``hgbench report`` takes on a large results store (pytest-benchmark).

5,000 profile records (25 variants x 2 hosts x 5 backends x 2 precisions x 10 batch sizes, with
the 20 raw latency samples each that real records carry) and 25 training runs, built once. Two
benchmarks: reading and joining (:func:`hgbench.analysis.report.build_report`), and writing Markdown and
CSV (:func:`hgbench.analysis.report.write_report`; PNG plots are left out, their cost is per plot, not
per record). Run with

    .venv/bin/python -m pytest benchmarks/test_report_speed.py --benchmark-only

Reference: about 0.3 s to read and join and 0.4 s to write (median of 3 rounds on the shared
2-core development machine), measured when the report parsed each file into a plain dict itself.
Records are now read through :func:`hgbench.records.scan` (typed, validated records), which takes
most of the reading time; the rows are plain dicts and each table is built once as a DataFrame.
"""

from __future__ import annotations

import json

import pytest

from hgbench.analysis.report import build_report, write_report
from hgbench.records import SCHEMA, spec_hash

VARIANTS = [f"v{i:02d}" for i in range(25)]
HOSTS = ("h1", "h2")
BACKENDS = ("eager", "torchscript", "compile", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16")
BATCHES = range(1, 11)


def _profile(variant: str, host: str, backend: str, precision: str, batch: int, p50: float) -> dict:
    """A profile record of notes/PROFILE_RECORD.md, every key present."""
    samples = [p50 * (1 + 0.01 * k) for k in range(20)]
    return {
        "schema": SCHEMA, "kind": "profile", "created": "2025-01-01T00:00:00+00:00", "variant": variant, "num_joints": 16,
        "backend": backend, "precision": precision, "tf32": False, "channels_last": False, "compile_mode": None,
        "device": "cuda", "device_name": "NVIDIA H100", "batch_size": batch, "input_size": 256, "threads": 16,
        "parameters": 3_000_000, "model_size_mib": 11.4, "macs": {"fvcore": 5_000_000_000, "thop": 5_100_000_000, "unit": "MACs",
        "input_shape": [1, 3, 256, 256]}, "gmacs_fvcore": 5.0, "gmacs_thop": 5.1, "gflops_flop_counter": 10.0,
        "skipped_ops": {"fvcore": {}, "thop": [], "flop_counter": []}, "activation_memory_mib": 60.0,
        "latency_ms": {"n": 20, "mean_ms": p50, "std_ms": 0.1, "p50_ms": p50, "p90_ms": p50 * 1.1, "p99_ms": p50 * 1.2,
                       "min_ms": p50, "max_ms": p50 * 1.2, "samples_ms": samples},
        "throughput_samples_per_s": batch / p50 * 1000, "peak_memory_mib": 500.0, "build_time_s": 1.0,
        "numerics": None if (backend, precision) == ("eager", "fp32") else {"max_abs_error": 0.01, "argmax_moved_fraction": 0.0,
                                                                           "ok": True, "tolerance": {}},
        "roofline": None, "calibration": {"workload": "matmul", "p50_ms": 1.0, "samples_ms": [1.0] * 10},
        "status": "ok", "error": None,
        "provenance": {"hostname": host, "torch": "2.13.0", "hgbench_version": "0.1.0", "git_commit": "0" * 40, "git_dirty": False},
    }  # fmt: skip


def _train(variant: str, mean: float) -> dict:
    val = {"threshold": 0.5, "per_joint": {}, "groups": {g: mean for g in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")},
           "mean": mean, "counts": {}, "num_persons": 2958, "num_unnormalised": 0, "convention": "PCKh", "metric": "pckh"}  # fmt: skip
    spec = {"name": variant, "architecture": {"num_stacks": 1}}
    return {"schema": SCHEMA, "kind": "train", "created": "2025-01-01T00:00:00+00:00", "variant": variant, "spec": spec,
            "spec_hash": spec_hash(spec), "protocol": "p", "protocol_hash": "p-hash", "protocol_settings": {"input_size": 256},
            "dataset": "mpii", "num_joints": 16, "parameters": 3_000_000,
            "train_time_s": 3600.0, "history": [{"epoch": 1, "val": val}], "final": val, "complete": True,
            "provenance": {"hostname": "trainer"}}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    for i, v in enumerate(VARIANTS):
        run = root / "runs" / "mpii" / "p" / v
        run.mkdir(parents=True)
        (run / "train.json").write_text(json.dumps(_train(v, 60.0 + i)))
    for host in HOSTS:
        folder = root / "profile" / host
        folder.mkdir(parents=True)
        for i, v in enumerate(VARIANTS):
            for backend in BACKENDS:
                for precision in PRECISIONS:
                    for batch in BATCHES:
                        rec = _profile(v, host, backend, precision, batch, 1.0 + i + batch)
                        (folder / f"{v}__j16__{backend}__{precision}__b{batch}__s256.json").write_text(json.dumps(rec))
    return root


def test_build_report_5000_records(benchmark, store):
    rep = benchmark.pedantic(build_report, args=(store,), rounds=3, iterations=1)
    assert len(rep.cost) == 5000 and not rep.skipped


def test_write_report_5000_rows(benchmark, store, tmp_path):
    rep = build_report(store)
    written = benchmark.pedantic(write_report, args=(rep, tmp_path / "out", ("md", "csv")), rounds=3, iterations=1)
    assert (tmp_path / "out" / "report.md") in written
