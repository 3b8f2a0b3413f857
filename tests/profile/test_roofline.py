"""Roofline floors by hand, ceiling measurement (tiny sizes) and the per-device cache."""

from __future__ import annotations

import contextlib
import json

import pytest

from hgbench.profile import roofline as rl
from hgbench.profile.roofline import (
    Ceilings,
    ceilings_key,
    element_bytes,
    get_ceilings,
    measure_ceilings,
    roofline,
)

GIB = 2**30
TINY = {"matmul_n": 64, "copy_mib": 1, "conv_shape": (1, 8, 8), "min_time_s": 0.0}


def _ceilings(tflops=1.0, gib_s=100.0):
    return Ceilings(matmul_tflops=tflops, copy_gib_s=gib_s, precision="fp32", measured="2026-01-01T00:00:00+00:00")


def test_floors_and_efficiency_by_hand():
    out = roofline(
        flops_per_sample=2e9,
        weight_bytes=0.5 * GIB,
        activation_bytes_per_sample=0.125 * GIB,
        batch_size=4,
        p50_ms=20.0,
        ceilings=_ceilings(tflops=1.0, gib_s=100.0),
    )
    assert out["compute_floor_ms"] == pytest.approx(8.0)  # 4 * 2e9 FLOP / 1e12 FLOP/s
    assert out["memory_floor_ms"] == pytest.approx(10.0)  # (0.5 + 4 * 0.125) GiB / 100 GiB/s
    assert out["floor_ms"] == pytest.approx(10.0)
    assert out["efficiency"] == pytest.approx(0.5)
    assert out["flops"] == pytest.approx(8e9) and out["bytes"] == pytest.approx(GIB)
    c = out["ceilings"]
    assert (c["matmul_tflops"], c["copy_gib_s"], c["precision"], c["measured"]) == (
        1.0,
        100.0,
        "fp32",
        "2026-01-01T00:00:00+00:00",
    )


def test_compute_bound_case_and_missing_p50():
    out = roofline(
        flops_per_sample=1e12,
        weight_bytes=0,
        activation_bytes_per_sample=0,
        batch_size=1,
        p50_ms=None,
        ceilings=_ceilings(tflops=2.0),
    )
    assert out["floor_ms"] == out["compute_floor_ms"] == pytest.approx(500.0)
    assert out["efficiency"] is None


def test_roofline_rejects_bad_inputs():
    with pytest.raises(ValueError):
        roofline(
            flops_per_sample=1,
            weight_bytes=1,
            activation_bytes_per_sample=1,
            batch_size=0,
            p50_ms=1.0,
            ceilings=_ceilings(),
        )
    with pytest.raises(ValueError):
        roofline(
            flops_per_sample=1,
            weight_bytes=1,
            activation_bytes_per_sample=1,
            batch_size=1,
            p50_ms=1.0,
            ceilings=_ceilings(0.0),
        )


def test_element_bytes():
    assert (element_bytes("fp32"), element_bytes("fp16"), element_bytes("bf16")) == (4, 2, 2)
    assert (element_bytes("int8"), element_bytes("fp8")) == (1, 1)
    with pytest.raises(ValueError, match="int4"):
        element_bytes("int4")


def test_measure_ceilings_on_the_cpu_tiny():
    c = measure_ceilings("cpu", "fp32", threads=1, **TINY)
    assert c.matmul_tflops > 0 and c.copy_gib_s > 0
    assert c.conv_tflops > 0 and c.matmul_tflops == max(c.mm_tflops, c.conv_tflops)
    assert c.conv_shape == [1, 8, 8]
    assert (c.precision, c.threads, c.matmul_n, c.copy_mib) == ("fp32", 1, 64, 1)
    assert c.measured and c.device_name is not None
    with pytest.raises(ValueError):
        measure_ceilings("cpu", "int8", **TINY)


def test_cache_is_keyed_per_precision_and_threads_and_reused(tmp_path, monkeypatch):
    first = get_ceilings("cpu", "fp32", threads=1, cache_dir=tmp_path, **TINY)
    cache = json.loads((tmp_path / "ceilings.json").read_text())
    assert list(cache) == [ceilings_key("cpu", "fp32", 1)]
    assert "fp32" in ceilings_key("cpu", "fp32", 1) and "threads 1" in ceilings_key("cpu", "fp32", 1)

    def no_measuring(*a, **k):
        raise AssertionError("the cached ceilings should have been used")

    monkeypatch.setattr(rl, "measure_ceilings", no_measuring)
    assert get_ceilings("cpu", "fp32", threads=1, cache_dir=tmp_path) == first
    monkeypatch.undo()

    get_ceilings("cpu", "bf16", threads=1, cache_dir=tmp_path, **TINY)
    get_ceilings("cpu", "fp32", threads=2, cache_dir=tmp_path, **TINY)
    assert len(json.loads((tmp_path / "ceilings.json").read_text())) == 3  # the first entry kept

    again = get_ceilings("cpu", "fp32", threads=1, cache_dir=tmp_path, refresh=True, **TINY)
    assert again.measured >= first.measured and again.matmul_n == 64


def test_unreadable_cache_is_measured_over(tmp_path):
    (tmp_path / "ceilings.json").write_text("{not json")
    c = get_ceilings("cpu", "fp32", threads=1, cache_dir=tmp_path, **TINY)
    assert (
        json.loads((tmp_path / "ceilings.json").read_text())[ceilings_key("cpu", "fp32", 1)]["matmul_tflops"]
        == c.matmul_tflops
    )


# --- TF32 and CUDA sizing (defects found by reading: ceilings keyed by precision only, a GPU
# matmul sized by a launch-bound probe) -----------------------------------------------------------


def test_cache_key_includes_tf32_where_it_changes_the_ceilings():
    ieee, tf32 = ceilings_key("cuda", "fp32", tf32=False), ceilings_key("cuda", "fp32", tf32=True)
    assert ieee != tf32 and "|fp32|tf32|" in tf32 and "tf32" not in ieee
    assert ceilings_key("cuda", "bf16", tf32=True) == ceilings_key("cuda", "bf16")  # TF32 is float32-only
    assert ceilings_key("cpu", "fp32", 1, tf32=True) == ceilings_key("cpu", "fp32", 1)  # the CPU ignores it


class FakeDevice:
    """Stands in for the timed kernels of measure_ceilings on a 'cuda' device without one."""

    def __init__(self, monkeypatch):
        from hgbench.profile.latency import LatencyStats

        self.tf32_modes, self.sizes = [], []

        def probe(*a, **k):
            raise AssertionError("the launch-bound probe must not size a GPU matmul")

        @contextlib.contextmanager
        def tf32_mode(enabled):
            self.tf32_modes.append(enabled)
            yield

        def time_matmul(device, dtype, n, seconds):
            self.sizes.append(n)
            return LatencyStats([1.0])

        monkeypatch.setattr(rl, "_matmul_size", probe)
        monkeypatch.setattr(rl, "tf32_mode", tf32_mode)
        monkeypatch.setattr(rl, "_time_matmul", time_matmul)
        monkeypatch.setattr(rl, "_conv_tflops", lambda *a: 0.5)
        monkeypatch.setattr(rl, "_time_copy", lambda *a: LatencyStats([1.0]))


def test_cuda_matmul_ceiling_uses_the_documented_size_without_a_probe(monkeypatch):
    fake = FakeDevice(monkeypatch)
    c = measure_ceilings("cuda", "fp32", min_time_s=0.0)
    assert fake.sizes == [rl.CUDA_MATMUL_N] == [c.matmul_n] == [8192]
    assert c.mm_tflops == pytest.approx(2 * 8192**3 / 1e-3 / 1e12)


def test_cuda_fp32_ceilings_are_measured_in_the_tf32_mode_they_serve(monkeypatch, tmp_path):
    fake = FakeDevice(monkeypatch)
    tf32 = get_ceilings("cuda", "fp32", tf32=True, cache_dir=tmp_path, min_time_s=0.0)
    ieee = get_ceilings("cuda", "fp32", tf32=False, cache_dir=tmp_path, min_time_s=0.0)
    half = get_ceilings("cuda", "fp16", tf32=True, cache_dir=tmp_path, min_time_s=0.0)
    assert fake.tf32_modes == [True, False, False]  # fp16 work is not float32: TF32 is moot
    assert (tf32.tf32, ieee.tf32, half.tf32) == (True, False, False)
    cache = json.loads((tmp_path / "ceilings.json").read_text())
    assert set(cache) == {
        ceilings_key("cuda", "fp32", tf32=True),
        ceilings_key("cuda", "fp32"),
        ceilings_key("cuda", "fp16"),
    }
    assert get_ceilings("cuda", "fp32", tf32=True, cache_dir=tmp_path) == tf32  # from the cache
    assert len(fake.tf32_modes) == 3


def test_cpu_ceilings_run_with_tf32_off_and_a_probe_sized_matmul(monkeypatch):
    modes = []
    real = rl.tf32_mode

    @contextlib.contextmanager
    def recording(enabled):
        modes.append(enabled)
        with real(enabled):
            yield

    monkeypatch.setattr(rl, "tf32_mode", recording)
    c = measure_ceilings("cpu", "fp32", tf32=True, threads=1, copy_mib=1, conv_shape=(1, 8, 8), min_time_s=0.0)
    assert modes == [False] and c.tf32 is False
    assert rl.PROBE_N <= c.matmul_n <= rl.CPU_MATMUL_N


def test_old_cache_entries_without_tf32_still_load(tmp_path):
    entry = {k: v for k, v in _ceilings().to_record().items() if k != "tf32"}
    (tmp_path / "ceilings.json").write_text(json.dumps({ceilings_key("cpu", "fp32", 1): entry}))
    assert get_ceilings("cpu", "fp32", threads=1, cache_dir=tmp_path).tf32 is False
