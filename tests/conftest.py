"""Shared fixtures: where the real data of ../shared/data is (skip with a reason where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep the tests' measured device ceilings (hgbench.profile.roofline) out of ~/.cache."""
    old = os.environ.get("HGBENCH_CACHE_DIR")
    os.environ["HGBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("hgbench-cache"))
    yield
    if old is None:
        os.environ.pop("HGBENCH_CACHE_DIR", None)
    else:
        os.environ["HGBENCH_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def lspet_root() -> Path:
    root = SHARED_DATA / "lspet"
    if not (root / "joints.mat").is_file():
        pytest.skip(f"real LSPET data not found at {root} (set HGBENCH_SHARED_DATA to the shared data folder)")
    return root


# --- records ------------------------------------------------------------------------------------

GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


def _provenance(host: str) -> dict:
    return {"hostname": host, "hgbench": "0.1.0", "torch": "2.13.0", "cpu": "Test CPU", "command": ["hgbench"]}


def _pck_result(
    mean: float, groups: dict | None = None, persons: int = 100, metric: str = "pck", threshold: float = 0.2
) -> dict:
    groups = dict(groups) if groups else {g: mean for g in GROUPS}
    convention = "PCK@0.2, torso-normalised (...)" if metric == "pck" else "PCKh, head-normalised (...)"
    return {"metric": metric, "threshold": threshold, "per_joint": {}, "groups": groups, "mean": mean, "counts": {},
            "num_persons": persons, "num_unnormalised": 0, "convention": convention, "loss": 0.001, "flip_test": True}  # fmt: skip


def make_record(kind: str, **over) -> dict:
    """A complete record body of the current schema (every field its kind's type requires, and
    what the report, compare and the gate read), with ``over`` replacing fields. The one record
    builder of the tests; write it with :func:`write_record_file` or ``hgbench.records.write_record``.

    Profile records: ``p50``, ``calib``, ``n``, ``spread`` shape ``latency_ms`` (samples evenly
    spread over ``p50 * [1 - spread, 1 + spread]``, so their median is exactly ``p50``); ``host``
    sets the provenance's host name. Train records: ``mean``, ``curve`` (validation means per
    epoch), ``groups`` and ``persons`` shape ``history`` and ``final``.
    """
    import numpy as np

    from hgbench.records import SCHEMA, content_hash

    host = over.pop("host", "h")
    spec = over.pop("spec", {"name": over.get("variant", "hg1"), "architecture": {"num_stacks": 1, "depth": 4}})
    common = {"schema": SCHEMA, "kind": kind, "created": "2025-01-01T00:00:00+00:00", "provenance": _provenance(host)}
    if kind == "profile":
        p50, calib = over.pop("p50", 10.0), over.pop("calib", 5.0)
        n, spread = over.pop("n", 31), over.pop("spread", 0.05)
        samples = [float(s) for s in np.linspace(1 - spread, 1 + spread, n) * p50]
        rec = {
            **common, "variant": "hg1", "num_joints": 16, "backend": "eager", "precision": "fp32", "tf32": False,
            "channels_last": False, "compile_mode": None, "device": "cpu", "device_name": "Test CPU", "batch_size": 1,
            "input_size": 64, "threads": 1, "spec": spec, "spec_hash": content_hash(spec), "parameters": 1000,
            "model_size_mib": 0.004, "macs": {"fvcore": 2_000_000, "thop": 2_000_000, "unit": "MACs", "input_shape": [1, 3, 64, 64]},
            "gmacs_fvcore": 0.002, "gmacs_thop": 0.002, "gflops_flop_counter": 0.004, "skipped_ops": None,
            "activation_memory_mib": 1.0,
            "latency_ms": {"n": n, "mean_ms": float(np.mean(samples)), "std_ms": float(np.std(samples, ddof=1)),
                           "p50_ms": float(np.percentile(samples, 50)), "p90_ms": float(np.percentile(samples, 90)),
                           "p99_ms": float(np.percentile(samples, 99)), "min_ms": min(samples), "max_ms": max(samples),
                           "samples_ms": samples},
            "throughput_samples_per_s": 1000.0 / p50, "peak_memory_mib": 20.0, "build_time_s": 0.0, "numerics": None,
            "roofline": None, "calibration": {"workload": "test-workload", "p50_ms": calib, "samples_ms": [calib] * 5},
            "status": "ok", "error": None,
        }  # fmt: skip
    elif kind == "train":
        mean, persons = over.pop("mean", 80.0), over.pop("persons", 100)
        curve, groups = over.pop("curve", None) or [mean - 10, mean], over.pop("groups", None)
        history = [{"epoch": i + 1, "steps": 10 * (i + 1), "train_loss": 0.001, "lr": 2.5e-4, "val": _pck_result(v, None, persons)}
                   for i, v in enumerate(curve)]  # fmt: skip
        history[-1]["val"] = _pck_result(mean, groups, persons)
        settings = {"name": "smoke", "input_size": 256, "output_size": 64}
        rec = {
            **common, "variant": "hg1", "spec": spec, "spec_hash": content_hash(spec), "dataset": "synthetic",
            "protocol": "smoke", "protocol_hash": content_hash(settings), "protocol_settings": settings, "overrides": "",
            "split": {"train": 1000, "val": persons}, "keypoints": "mpii", "num_joints": 16, "parameters": 1_000_000,
            "train_time_s": 3600.0, "wall_time_s": 3960.0, "epochs": len(curve), "history": history,
            "final": history[-1]["val"], "complete": True,
        }  # fmt: skip
    elif kind == "eval":
        mean, metric = over.pop("mean", 80.0), over.pop("metric", "pck")
        rec = {
            **common, "variant": "hg1", "spec": spec, "spec_hash": content_hash(spec), "num_joints": 16,
            "protocol": "smoke", "protocol_hash": "0123456789ab", "dataset": "synthetic", "split": "val",
            "metric": metric, "threshold": 0.2 if metric == "pck" else 0.5, "flip_test": True, "checkpoint": None,
            "result": _pck_result(mean, over.pop("groups", None), over.pop("persons", 100), metric,
                                  0.2 if metric == "pck" else 0.5),
        }  # fmt: skip
    else:
        raise ValueError(f"unknown record kind {kind!r}")
    rec.update(over)
    return rec


def write_record_file(path: Path, record: dict) -> Path:
    """Write ``record`` as JSON at ``path`` (as it is: no validation, so tests can write bad records)."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def record_factory():
    """:func:`make_record`, for tests that build records."""
    return make_record


@pytest.fixture(autouse=True)
def _torch_tf32_flags_as_found():
    """Every test starts and ends with torch's process-wide TF32 flags consistent: several tests
    (and modules they import) switch them through the new fp32_precision API, and a mixed state
    makes any later legacy read (torch.export's backend decompositions read one) raise. A test
    that changed them gets them back; a mixed state is reset to torch 2.13's defaults."""
    import torch

    from hgbench.profile.tf32 import has_fp32_precision_api

    if not has_fp32_precision_api():
        yield
        return
    b = torch.backends
    names = ((b.cudnn, "fp32_precision"), (b.cuda.matmul, "fp32_precision"), (b.cudnn.conv, "fp32_precision"),
             (b.cudnn.rnn, "fp32_precision"))  # fmt: skip
    defaults = ["none", "none", "tf32", "tf32"]

    def consistent() -> bool:
        try:
            bool(b.cudnn.allow_tf32) and bool(b.cuda.matmul.allow_tf32)
        except RuntimeError:
            return False
        return True

    def restore(values) -> None:
        for (o, n), v in zip(names, values, strict=True):
            setattr(o, n, v)

    if not consistent():
        restore(defaults)
    before = [getattr(o, n) for o, n in names]
    yield
    if [getattr(o, n) for o, n in names] != before:
        restore(before)
    if not consistent():
        restore(defaults)


# --- tiny networks, registries and protocols: the fixtures several test files share ------------


@pytest.fixture()
def one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP spin-waiting makes tiny models slow
    (files whose every test wants it: ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_hourglass():
    """Two stacks (list output of length 2), narrow and shallow, seeded, in eval mode: fast to
    trace, export and quantize."""
    import torch

    from hgbench.models.hourglass import StackedHourglass

    torch.manual_seed(0)
    return StackedHourglass(num_stacks=2, num_joints=16, num_features=16, depth=1, stem_channels=8).eval()


TINY_PROTOCOL_BASE = {
    "description": "tests: 2 x 2 steps of 4 samples at 64 px",
    "optimizer": {"name": "rmsprop", "lr": 2.5e-4},
    "schedule": {"type": "constant"},
    "epochs": 2,
    "steps_per_epoch": 2,
    "batch_size": 4,
    "input_size": 64,
    "output_size": 16,
    "heatmap_sigma": 1.0,
    "seed": 0,
    "val_every": 1,
    "val_max_samples": 4,
    "num_workers": 0,
}
"""The smoke protocol's recipe cut to 2 epochs of 2 steps of 4 samples at 64 px (seconds a run)."""


def tiny_protocol_yaml(**changes) -> str:
    """:data:`TINY_PROTOCOL_BASE` with ``changes`` (a value None removes the field), as YAML text."""
    import yaml

    content = {k: v for k, v in {**TINY_PROTOCOL_BASE, **changes}.items() if v is not None}
    return yaml.safe_dump(content, sort_keys=False)


TINY_VARIANT = """\
name: tiny
description: "test network: 2 stacks, 16 features, depth 2"
source:
  paper: "hgbench tests"
architecture:
  num_stacks: 2
  num_features: 16
  depth: 2
supervision: intermediate
"""
TINY_VARIANT_2 = TINY_VARIANT.replace("name: tiny", "name: tiny2").replace("num_stacks: 2", "num_stacks: 1")
TINY_PROTOCOL = """\
description: "test protocol: smoke's recipe, 3 epochs of 4 steps, a checkpoint every 3 steps"
optimizer:
  name: rmsprop
  lr: 2.5e-4
schedule:
  type: plateau      # patience 0: the learning rate drops after any validation without improvement
  gamma: 0.5
  patience: 0
epochs: 3
steps_per_epoch: 4
batch_size: 4
input_size: 64
output_size: 16
augmentation:
  rotation_deg: 30
  rotation_prob: 0.4
  scale: [0.75, 1.25]
  flip: true
  color_jitter: 0.4
seed: 0
val_every: 1
val_max_samples: 16
num_workers: 0
checkpoint_every_steps: 3
"""


def write_registry(folder: Path) -> Path:
    """A registry with the variants ``tiny``, ``tiny2`` and the protocol ``tiny``; returns it."""
    (folder / "protocols").mkdir(parents=True, exist_ok=True)
    (folder / "tiny.yaml").write_text(TINY_VARIANT)
    (folder / "tiny2.yaml").write_text(TINY_VARIANT_2)
    (folder / "protocols" / "tiny.yaml").write_text(TINY_PROTOCOL)
    return folder
