"""Peak memory of a block of work: the CUDA allocator's peak, or the CPU peak RSS increase.

* **CUDA**: ``torch.cuda.reset_peak_memory_stats(device)`` before the block,
  ``torch.cuda.max_memory_allocated(device)`` after it: the peak of the bytes held in tensors
  by PyTorch's caching allocator during the block, *absolute* (weights, input and everything
  else allocated on that device count), as PyTorch's own memory notes define it
  (https://pytorch.org/docs/stable/notes/cuda.html#memory-management). Not seen: memory that
  bypasses the allocator (cuDNN/cuBLAS workspaces that libraries allocate themselves, the
  CUDA context, TensorRT engines' own allocations).
* **CPU**: the increase of the process's peak resident set size over its resident size at the
  start of the block, read from ``/proc/self/status`` (``VmHWM`` = peak RSS, ``VmRSS`` =
  current RSS). The peak is reset to the current RSS at the start by writing ``5`` to
  ``/proc/self/clear_refs`` (Linux >= 4.0, ``Documentation/filesystems/proc.rst``). Just
  before, ``gc.collect()`` and glibc's ``malloc_trim(0)`` hand memory that earlier work freed
  back to the OS: without it, glibc keeps freed blocks resident (its mmap threshold grows to
  32 MiB after the first large free), the block reuses them without faulting pages in, and
  its increase reads as about 0 (measured: an 8 MiB tensor read as 0.004 MiB without the trim,
  8.0 MiB with it). Why not
  the alternatives: ``resource.getrusage().ru_maxrss`` is a process-lifetime maximum that
  cannot be reset (a block smaller than anything before it reads as 0 increase);
  ``tracemalloc`` sees only Python's allocator, not torch's; psutil is not a dependency and
  reads the same ``/proc`` fields. Limits: Linux only (elsewhere, or where ``clear_refs`` is
  not writable, the peak is ``None``); process-wide (other threads' allocations count);
  memory freed by a previous block but kept by the C allocator is reused without raising
  RSS (what ``malloc_trim`` cannot return, e.g. torch's or oneDNN's own caches), so the
  increase is a lower bound on the block's working set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from pathlib import Path

import torch

MIB = 2**20
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mib() -> float | None:
    """Resident set size of this process now, in MiB (``VmRSS`` of ``/proc/self/status``);
    ``None`` where that file is not there (not Linux)."""
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def release_freed_memory() -> bool:
    """``gc.collect()``, then glibc's ``malloc_trim(0)`` (return freed heap memory to the OS);
    ``False`` where there is no glibc (the collection still ran)."""
    gc.collect()
    try:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        trim = None
    if trim is None:
        return False
    trim(0)
    return True


def reset_cpu_peak_rss() -> bool:
    """Reset the process's peak RSS (``VmHWM``) to its current RSS; ``False`` where that is
    not possible (not Linux, or ``/proc/self/clear_refs`` not writable)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class PeakMemory:
    """Context manager measuring the peak memory of its block on ``device``.

    Example::

        with PeakMemory(torch.device("cpu")) as mem:
            work()
        mem.peak_mib   # float MiB, or None where it cannot be measured

    Attributes:
        peak_mib: after the block: CUDA allocator peak (absolute, MiB), or CPU peak RSS
            increase over the RSS at the start of the block (MiB, >= 0); ``None`` when it
            could not be measured (see the module docstring).
        method: how it was measured, one line, for the record and the docs.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.peak_mib: float | None = None
        self.method = ""
        self._baseline_kib: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated after reset_peak_memory_stats (absolute)"
        else:
            release_freed_memory()
            ok = reset_cpu_peak_rss()
            self._baseline_kib = _status_kib("VmRSS") if ok else None
            self.method = (
                "VmHWM - VmRSS at start (/proc/self/status; malloc_trim, then peak reset via clear_refs)"
                if self._baseline_kib is not None
                else "unavailable: /proc/self/clear_refs cannot reset the peak RSS here"
            )
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / MIB
        elif self._baseline_kib is not None:
            peak = _status_kib("VmHWM")
            self.peak_mib = None if peak is None else max(0, peak - self._baseline_kib) / 1024
