"""Peak memory (hgbench.profile.memory): the CUDA figures computed from a scripted device, and
the CPU figure measured."""

from __future__ import annotations

import pytest
import torch

from hgbench.profile import memory as memory_module
from hgbench.profile.memory import MIB, CudaMemorySnapshot, PeakMemory


class FakeCuda:
    """A scripted CUDA device: ``used`` device-wide bytes (every process), the allocator's
    ``allocated``/``reserved`` bytes and their peaks since the last reset."""

    total = 80 * 1024 * MIB

    context = 500 * MIB  # the CUDA context and other processes

    def __init__(self, monkeypatch):
        self.allocated = self.reserved = self.foreign = 0
        self.max_allocated = self.max_reserved = 0
        for name, fn in {
            "synchronize": lambda device=None: None,
            "reset_peak_memory_stats": self.reset,
            "max_memory_allocated": lambda device=None: self.max_allocated,
            "max_memory_reserved": lambda device=None: self.max_reserved,
            "memory_allocated": lambda device=None: self.allocated,
            "memory_reserved": lambda device=None: self.reserved,
            "mem_get_info": lambda device=None: (self.total - self.used, self.total),
        }.items():
            monkeypatch.setattr(torch.cuda, name, fn)

    @property
    def used(self):
        return self.context + self.reserved + self.foreign

    def reset(self, device=None):
        self.max_allocated, self.max_reserved = self.allocated, self.reserved

    def torch_alloc(self, nbytes, keep=True):
        """An allocation through the caching allocator (freed again unless ``keep``)."""
        self.allocated += nbytes
        self.reserved = max(self.reserved, self.allocated)
        self.max_allocated, self.max_reserved = (
            max(self.max_allocated, self.allocated),
            max(self.max_reserved, self.reserved),
        )
        if not keep:
            self.allocated -= nbytes

    def foreign_alloc(self, nbytes):
        """Memory past the allocator: an ONNX Runtime arena, TensorRT's activations."""
        self.foreign += nbytes


def test_a_backend_that_allocates_past_the_allocator_is_seen_by_the_device_figure(monkeypatch):
    gpu = FakeCuda(monkeypatch)
    gpu.torch_alloc(100 * MIB)  # the caller's model and input, before preparing
    baseline = CudaMemorySnapshot.take("cuda")
    gpu.torch_alloc(100 * MIB)  # the backend's copy of the weights...
    gpu.foreign_alloc(700 * MIB)  # ...and its arena
    with PeakMemory("cuda", baseline=baseline) as mem:
        gpu.torch_alloc(10 * MIB, keep=False)  # outputs
    assert mem.peak("allocator") == mem.peak_mib == mem.allocated_peak_mib == pytest.approx(210)  # weights + I/O only
    assert mem.peak("device") == mem.device_peak_mib == pytest.approx(100 + 100 + 700 + 10)
    record = mem.to_record("device")
    assert record["peak_source"] == "device" and "mem_get_info" in record["method"]
    assert record["allocated_before_mib"] == pytest.approx(100) and record["reserved_peak_mib"] == pytest.approx(210)
    assert record["device_used_after_mib"] - record["device_used_before_mib"] == pytest.approx(810)
    assert mem.to_record("allocator")["peak_source"] == "allocator"


def test_for_an_eager_backend_the_two_figures_agree(monkeypatch):
    gpu = FakeCuda(monkeypatch)
    gpu.torch_alloc(100 * MIB)
    baseline = CudaMemorySnapshot.take("cuda")
    with PeakMemory("cuda", baseline=baseline) as mem:
        gpu.torch_alloc(300 * MIB, keep=False)  # activations, freed after the call but kept cached
    assert mem.peak("allocator") == pytest.approx(400) and mem.peak("device") == pytest.approx(400)


def test_an_unknown_source_is_refused():
    with PeakMemory("cpu") as mem:
        pass
    with pytest.raises(ValueError, match="unknown peak memory source 'vram'"):
        mem.peak("vram")
    assert mem.to_record()["peak_source"] == "rss"


def test_cpu_peak_sees_a_large_allocation():
    if not memory_module.reset_cpu_peak_rss():
        pytest.skip("/proc/self/clear_refs is not writable here")
    with PeakMemory("cpu") as mem:
        block = torch.ones(64 * MIB // 4)
        del block
    assert mem.peak() == mem.peak("device") == mem.peak_mib and mem.peak_mib >= 48
