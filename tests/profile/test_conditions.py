"""What each profiled setting ran under (issue 28, defects 5-7): the GPU's clocks and throttle
reasons sampled while the setting is timed (not once before any work), ``cudnn.benchmark`` set
per setting, restored and recorded (both in the record's ``latency_ms``), and the CUDA cache
emptied between the build and the timed window. The CUDA branches run here with NVML and the CUDA calls replaced by fakes."""

from __future__ import annotations

import sys
import threading
import types

import pytest
import torch
from torch import nn

from hgbench.profile import run
from hgbench.profile.roofline import Ceilings
from hgbench.records import provenance
from hgbench.records.provenance import GpuStateSampler

pytestmark = pytest.mark.usefixtures("one_thread")
CEILINGS = Ceilings(matmul_tflops=0.1, copy_gib_s=10.0, precision="fp32", measured="2026-01-01T00:00:00+00:00")


class BusyNvml(types.ModuleType):
    """pynvml of a GPU whose SM clock climbs 1200, 1500, 1980 MHz (then stays) as it works,
    power-capped from the third read on."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self):
        super().__init__("pynvml")
        self.reads, self.lock = 0, threading.Lock()
        self.inits = 0

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetClockInfo(self, handle, clock):
        if clock == self.NVML_CLOCK_MEM:
            return 2619
        with self.lock:
            self.reads += 1
            return (1200, 1500, 1980)[min(self.reads, 3) - 1]

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return 1980 if clock == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return 0x4 if self.reads >= 3 else 0x0


@pytest.fixture
def busy_nvml(monkeypatch):
    fake = BusyNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    return fake


def test_the_sampler_reads_the_gpu_while_the_block_runs_and_once_at_its_end(busy_nvml):
    with GpuStateSampler(0, interval_s=0.01) as sampler:
        while len(sampler.samples) < 3:
            threading.Event().wait(0.005)
    summary = sampler.summary()
    assert summary["samples"] >= 4 and busy_nvml.inits == 1  # NVML initialised once per window
    assert summary["sm_mhz"]["min"] == 1200 and summary["sm_mhz"]["max"] == 1980  # the clock ramp is seen
    assert summary["sm_max_mhz"] == 1980 and summary["power_limit_w"] == 700.0
    assert 0 < summary["throttle_reasons"]["sw_power_cap"] < 1  # seen in some samples, not in the first


def test_a_short_block_still_has_one_sample_and_no_gpu_none(busy_nvml, monkeypatch):
    with GpuStateSampler(0, interval_s=60.0) as sampler:
        pass
    assert sampler.summary()["samples"] == 1
    with GpuStateSampler(None) as sampler:  # a CPU device
        pass
    assert sampler.summary() is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed
    with GpuStateSampler(0) as sampler:
        pass
    assert sampler.summary() is None


class BenchmarkSpy(nn.Module):
    """A tiny network that notes ``torch.backends.cudnn.benchmark`` at every call."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(torch.backends.cudnn.benchmark)
        return [self.conv(x)]


def _profile(model, **kw):
    args = {"variant": "spy", "num_joints": 4, "backend": "eager", "batch_size": 1, "input_size": 16, "threads": 1,
            "warmup_iters": 1, "min_iters": 3, "min_time_s": 0.0, "ceilings": CEILINGS}  # fmt: skip
    return run.profile_model(model, **{**args, **kw})


@pytest.mark.parametrize("before", [False, True])
def test_cudnn_benchmark_is_set_for_the_setting_recorded_and_restored(before, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", before)
    model = BenchmarkSpy()
    rec = _profile(model)
    assert rec.status == "ok", rec.error
    assert model.seen and set(model.seen) == {run.CUDNN_BENCHMARK}  # warm-up, timed calls and numerics
    assert torch.backends.cudnn.benchmark is before
    assert rec.latency_ms["cudnn_benchmark"] is None and rec.latency_ms["gpu"] == [None]  # the CPU: no cuDNN, no NVML


def test_each_timed_repetition_records_the_gpu_state_sampled_during_it(busy_nvml, monkeypatch):
    monkeypatch.setattr(run, "nvml_index", lambda device: 0)  # the CPU model stands in for a GPU's
    model = BenchmarkSpy()
    rec = _profile(model)
    assert rec.status == "ok", rec.error
    (gpu,) = rec.latency_ms["gpu"]
    assert gpu["samples"] >= 1 and gpu["sm_max_mhz"] == 1980
    run.repeat_timing(rec, model, settings=run.RunSettings(), threads=1, warmup_iters=1, min_iters=3, min_time_s=0.0)
    assert len(rec.latency_ms["gpu"]) == rec.latency_ms["repetitions"] == 2
    assert rec.to_body()["latency_ms"]["gpu"][1]["samples"] >= 1


def test_the_cuda_cache_is_emptied_between_the_build_and_the_timed_window(monkeypatch):
    """The order of events of the timing stage on a (faked) CUDA device."""
    events = []

    class Peak:
        def __init__(self, device, baseline=None):
            pass

        def __enter__(self):
            events.append("peak memory starts")
            return self

        def __exit__(self, *exc):
            pass

        def peak(self, source):
            return 1.0

        def to_record(self, source):
            return {"peak_source": source}

    class Impl:
        def peak_memory_source(self, settings):
            return "device"

    monkeypatch.setattr(run, "PeakMemory", Peak)
    monkeypatch.setattr(run, "free_memory", lambda device: events.append("cache emptied"))
    monkeypatch.setattr(run, "nvml_index", lambda device: None)
    monkeypatch.setattr(
        run, "_time_window", lambda fn, quiet, device, **t: (events.append("timed"), (run.LatencyStats([1.0]), None))[1]
    )
    prepared = run.Prepared(fn=lambda x: x, prepare_input=lambda x: x, build_time_s=0.0, notes=[])
    rec = run.ProfileRecord(variant="v", num_joints=1, backend="eager", precision="fp32", tf32=False, channels_last=False,
                            batch_size=1, input_size=8, device="cuda")  # fmt: skip
    run._time_first_repetition(rec, Impl(), prepared, None, None, run.RunSettings(), torch.device("cuda"), None, {})
    assert events == ["cache emptied", "peak memory starts", "timed"]
    assert rec.latency_ms["cudnn_benchmark"] is run.CUDNN_BENCHMARK and rec.latency_ms["gpu"] == [None]


def test_provenance_finds_the_nvml_index_of_a_device_without_cuda_as_none():
    assert provenance.nvml_index("cpu") is None
    if not torch.cuda.is_available():
        assert provenance.nvml_index(torch.device("cuda", 0)) is None and provenance.nvml_index(0) is None
