"""Peak memory of a block of work: on CUDA the caching allocator's peak and the device-wide use,
on the CPU the peak RSS increase; and, before any work, whether a batch can fit at all
(:func:`check_plan_memory`: a lower bound from the network built on the ``meta`` device,
against the memory available now).

* **CUDA**, two figures (``torch.cuda.mem_get_info`` and PyTorch's memory notes,
  https://pytorch.org/docs/stable/notes/cuda.html#memory-management):

  - *allocator*: ``torch.cuda.reset_peak_memory_stats(device)`` before the block,
    ``torch.cuda.max_memory_allocated(device)`` after it: the peak of the bytes held in
    tensors by PyTorch's caching allocator, *absolute* (weights, input and everything else
    allocated on that device count). ``max_memory_reserved`` (the allocator's cached segments)
    is recorded beside it. It sees every activation of a backend that allocates through the
    allocator at run time (eager, TorchScript, ``torch.compile`` without CUDA graphs) and
    misses the working memory of the others: a CUDA-graph replay allocates nothing (its
    activations live in the graph's private pool, allocated at capture), and ONNX Runtime's
    arena and TensorRT allocate past the allocator. For them it reads weights plus I/O.
  - *device*: the device-wide use ``total - free`` of ``torch.cuda.mem_get_info`` before the
    backend prepares (:class:`CudaMemorySnapshot`, passed as ``baseline``) and after the
    block, plus the tensors already allocated before preparing (the caller's model, the
    input): ``allocated_before + (used_after - used_before)``. It sees everything the setting
    added on the device (engines, arenas, graph pools, workspaces, the allocator's cached
    segments), so it is comparable with the allocator figure of the others up to the
    allocator's cache slack. It counts growth, so the allocator's cache must be empty at the
    baseline (``torch.cuda.empty_cache()``, as :func:`hgbench.profile.run.profile_model` does):
    blocks cached from earlier work would be reused without raising the device-wide use.
    Memory freed inside the block and returned to the driver is not seen (neither ONNX
    Runtime's arena nor PyTorch's allocator returns memory by itself), and other processes'
    use of the same GPU during the block counts: profile on a dedicated GPU.

  Which figure is a backend's ``peak_memory_mib`` is the backend's
  :meth:`~hgbench.profile.backends.Backend.peak_memory_source`, recorded beside it
  (:meth:`PeakMemory.to_record`).
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class CudaMemorySnapshot:
    """Memory of one CUDA device at one moment, MiB.

    Attributes:
        used_mib: device-wide use, ``total - free`` of ``torch.cuda.mem_get_info`` (every
            process and the CUDA contexts included).
        allocated_mib: bytes in tensors of this process's caching allocator
            (``torch.cuda.memory_allocated``).
        reserved_mib: the allocator's segments (``torch.cuda.memory_reserved``).
    """

    used_mib: float
    allocated_mib: float
    reserved_mib: float

    @classmethod
    def take(cls, device: torch.device | str) -> CudaMemorySnapshot:
        """Synchronise ``device`` and read the three figures."""
        device = torch.device(device)
        torch.cuda.synchronize(device)
        free, total = torch.cuda.mem_get_info(device)
        return cls(
            used_mib=(total - free) / MIB,
            allocated_mib=torch.cuda.memory_allocated(device) / MIB,
            reserved_mib=torch.cuda.memory_reserved(device) / MIB,
        )


class PeakMemory:
    """Context manager measuring the peak memory of its block on ``device``.

    Example::

        baseline = CudaMemorySnapshot.take(device)   # CUDA: before the backend prepares
        prepared = backend.prepare(...)
        with PeakMemory(device, baseline=baseline) as mem:
            work()
        mem.peak("device")   # float MiB, or None where it cannot be measured

    Args:
        device: the device of the block.
        baseline: on CUDA, the :class:`CudaMemorySnapshot` taken before the memory of interest
            was allocated (``None``: the start of the block); needed for the *device* figure.

    Attributes:
        peak_mib: after the block: CUDA allocator peak (absolute, MiB), or CPU peak RSS
            increase over the RSS at the start of the block (MiB, >= 0); ``None`` when it
            could not be measured (see the module docstring).
        allocated_peak_mib, reserved_peak_mib: CUDA: ``max_memory_allocated`` and
            ``max_memory_reserved`` over the block, MiB (``None`` on the CPU).
        device_peak_mib: CUDA: the device figure (module docstring), MiB.
        method: how ``peak_mib`` was measured, one line, for the record and the docs.
    """

    def __init__(self, device: torch.device | str, baseline: CudaMemorySnapshot | None = None) -> None:
        self.device = torch.device(device)
        self.baseline = baseline
        self.peak_mib: float | None = None
        self.allocated_peak_mib: float | None = None
        self.reserved_peak_mib: float | None = None
        self.device_peak_mib: float | None = None
        self.after: CudaMemorySnapshot | None = None
        self.method = ""
        self._baseline_kib: int | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            if self.baseline is None:
                self.baseline = CudaMemorySnapshot.take(self.device)
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
            self.allocated_peak_mib = torch.cuda.max_memory_allocated(self.device) / MIB
            self.reserved_peak_mib = torch.cuda.max_memory_reserved(self.device) / MIB
            self.after = CudaMemorySnapshot.take(self.device)
            base = self.baseline
            self.device_peak_mib = base.allocated_mib + max(0.0, self.after.used_mib - base.used_mib)
            self.peak_mib = self.allocated_peak_mib
        elif self._baseline_kib is not None:
            peak = _status_kib("VmHWM")
            self.peak_mib = None if peak is None else max(0, peak - self._baseline_kib) / 1024

    def peak(self, source: str = "allocator") -> float | None:
        """The peak of the block in MiB by ``source``: ``"allocator"`` (:attr:`peak_mib`; on the
        CPU always the RSS figure) or ``"device"`` (:attr:`device_peak_mib` on CUDA).

        Raises:
            ValueError: an unknown source.
        """
        if source not in ("allocator", "device"):
            raise ValueError(f"unknown peak memory source {source!r}; expected 'allocator' or 'device'")
        if self.device.type == "cuda" and source == "device":
            return self.device_peak_mib
        return self.peak_mib

    def to_record(self, source: str = "allocator") -> dict[str, Any]:
        """The record's ``memory``: ``peak_source`` (``"allocator"``, ``"device"``, or ``"rss"`` on
        the CPU: which figure ``peak_memory_mib`` is), ``method``, and on CUDA every figure
        (MiB): ``allocated_peak_mib``, ``reserved_peak_mib``, ``device_peak_mib``,
        ``device_used_before_mib``, ``device_used_after_mib``, ``allocated_before_mib``."""
        if self.device.type != "cuda":
            return {"peak_source": "rss", "method": self.method}
        method = {
            "allocator": self.method,
            "device": "allocated before preparing + increase of device-wide use (torch.cuda.mem_get_info) "
                      "from before preparing to after the timed calls",
        }[source]  # fmt: skip
        return {
            "peak_source": source,
            "method": method,
            "allocated_peak_mib": self.allocated_peak_mib,
            "reserved_peak_mib": self.reserved_peak_mib,
            "device_peak_mib": self.device_peak_mib,
            "device_used_before_mib": self.baseline.used_mib if self.baseline else None,
            "device_used_after_mib": self.after.used_mib if self.after else None,
            "allocated_before_mib": self.baseline.allocated_mib if self.baseline else None,
        }


# --- the memory a batch needs, before anything is allocated -------------------------------------

ELEMENT_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1}
"""Bytes per tensor element at each inference precision (:data:`hgbench.config.axes.INFERENCE_PRECISIONS`)."""


def available_memory_bytes(device: torch.device | str) -> int | None:
    """Memory a new allocation can take on ``device`` now, bytes: on CUDA the free memory of
    ``torch.cuda.mem_get_info``; on the CPU ``MemAvailable`` of ``/proc/meminfo`` (the kernel's
    estimate of what can be allocated without swapping), or less where the process's control
    group caps it (:func:`cgroup_headroom_bytes`: a Slurm job's ``--mem``, a container's limit,
    which kill the process past it whatever the node has free). ``None`` where neither can be read."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024  # "MemAvailable:   123456 kB"
    except (OSError, ValueError, IndexError):
        pass
    known = [b for b in (available, cgroup_headroom_bytes()) if b is not None]
    return min(known) if known else None


def cgroup_headroom_bytes(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """What this process's memory control group lets it allocate more, bytes: over its cgroup and
    every ancestor that sets a limit, the smallest ``limit - (usage - file pages)`` (the page
    cache, which a limit reclaims before it kills, is not counted as used: the bound errs toward
    too much, as :func:`check_batch_fits` must never refuse a batch that fits). cgroup v2
    (``0::<path>`` in ``/proc/self/cgroup``): ``memory.max``, ``memory.current`` and ``file`` of
    ``memory.stat``; v1 (the ``memory`` controller's line, taking precedence in a hybrid
    hierarchy): under ``<root>/memory``, ``memory.limit_in_bytes``, ``memory.usage_in_bytes`` and
    ``total_cache``. ``None`` when no limit is set (v2 ``max``, v1's 2**63 rounded down to a
    page), nothing can be read, or the path leaves the hierarchy (``..``: a process outside its
    cgroup namespace) (kernel documentation: ``admin-guide/cgroup-v2.rst``,
    ``admin-guide/cgroup-v1/memory.rst``). A v1 memory controller mounted together with another
    (``cpu,memory``) is not found."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    v1 = [line.split(":", 2)[2] for line in lines if line.count(":") >= 2 and "memory" in line.split(":")[1].split(",")]
    v2 = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
    if v1:
        base, names = root / "memory", ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_cache")
    elif v2:
        base, names = root, ("memory.max", "memory.current", "file")
    else:
        return None
    if ".." in Path((v1 or v2)[0]).parts:
        return None
    folder, headroom = base / (v1 or v2)[0].lstrip("/"), []
    while True:
        limit = _cgroup_number(folder / names[0])
        if limit is not None and limit < 2**62:  # unlimited: "max" (v2) or ~2**63 (v1)
            used = (_cgroup_number(folder / names[1]) or 0) - (_cgroup_stat(folder / "memory.stat", names[2]) or 0)
            headroom.append(max(0, limit - used))
        if folder == base or base not in folder.parents:
            return min(headroom) if headroom else None
        folder = folder.parent


def _cgroup_number(path: Path) -> int | None:
    """The integer in a cgroup file (``None`` for ``max``, a missing or unreadable file)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _cgroup_stat(path: Path, key: str) -> int | None:
    """The value of ``key`` in a cgroup ``memory.stat`` file (``None`` when absent)."""
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


@dataclass(frozen=True)
class BatchMemory:
    """A lower bound on the memory one forward pass of a network needs, in elements (multiply by
    :data:`ELEMENT_BYTES` of the precision): ``weights`` (parameters and buffers) plus, per
    sample, ``per_sample`` = the largest input plus output of one leaf module (a layer's input
    and its output exist together in every backend: eager, a compiled graph or an engine;
    an in-place layer counts once). The true peak is higher (skip connections, workspaces)."""

    weights: int
    per_sample: int

    def bytes(self, batch_size: int, element_bytes: int = 4) -> int:
        """The bound for ``batch_size`` samples at ``element_bytes`` per element."""
        return (self.weights + batch_size * self.per_sample) * element_bytes


def batch_memory(model: torch.nn.Module, input_size: int) -> BatchMemory:
    """:class:`BatchMemory` of ``model`` (best built on the ``meta`` device: nothing is allocated)
    for ``(1, 3, input_size, input_size)`` inputs, from one forward pass on that device with a
    hook on every leaf module.

    Raises:
        Whatever the model's forward raises on such an input.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    largest = 0

    def hook(module: torch.nn.Module, inputs: Any, output: Any) -> None:
        nonlocal largest
        ins = [t for t in inputs if isinstance(t, torch.Tensor)]
        outs = [t for t in (output if isinstance(output, (tuple, list)) else [output]) if isinstance(t, torch.Tensor)]
        n = sum(t.numel() for t in ins) + sum(t.numel() for t in outs if not any(t is i for i in ins))
        largest = max(largest, n)

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        for h in hooks:
            h.remove()
    weights = sum(t.numel() for t in model.parameters()) + sum(t.numel() for t in model.buffers())
    return BatchMemory(weights, largest)


def check_batch_fits(
    needs: dict[str, BatchMemory],
    batch_sizes: list[int],
    precisions: list[str],
    device: torch.device | str,
    available: int | None = None,
) -> None:
    """Refuse, before anything is allocated, a batch size that cannot fit in ``device``'s memory
    for one of the networks ``needs`` (name -> :func:`batch_memory`), at the smallest element
    size of ``precisions`` (a lower bound: nothing that passes is refused wrongly).

    Args:
        available: bytes free (default: :func:`available_memory_bytes`; ``None`` there: no check).

    Raises:
        ValueError: naming ``--batch-size``, the network, the estimated memory, the memory
            available and the largest batch size that passes.
    """
    free = available_memory_bytes(device) if available is None else available
    if free is None or not needs:
        return
    element = min(ELEMENT_BYTES.get(p, 4) for p in precisions) if precisions else 4
    batch = max(batch_sizes)
    name, need = max(needs.items(), key=lambda item: item[1].bytes(batch, element))
    required = need.bytes(batch, element)
    if required <= free:
        return
    fits = (free // element - need.weights) // need.per_sample if need.per_sample else 0
    hint = f"use --batch-size {fits} or less" if fits >= 1 else "its weights alone do not fit: use a smaller variant"
    raise ValueError(
        f"--batch-size {batch}: {name} needs at least {required / 2**30:,.3g} GiB on {torch.device(device).type} "
        f"({need.per_sample * element / MIB:,.3g} MiB per sample for its largest layer's input and output, "
        f"{need.weights * element / MIB:,.3g} MiB of weights, at {element} byte(s) per element), but "
        f"{free / 2**30:,.3g} GiB is available; {hint}"
    )


LAYER_TO_INPUT_BOUND = 1024
""":func:`check_plan_memory` builds no network when ``LAYER_TO_INPUT_BOUND`` times the input batch
fits: the largest layer of every registered variant holds under 45 times its input
(``andersen-hg``: 8.4 M elements per 256 px sample for 0.2 M of input), so only a batch near
the memory's size is worth the networks' (meta-device) forward passes."""


def check_plan_memory(
    jobs: Sequence[tuple[Any, int]],
    batch_sizes: list[int],
    input_size: int,
    precisions: list[str],
    device: torch.device | str,
    available: int | None = None,
) -> None:
    """The profile plan's memory check (:func:`hgbench.profile.plan.plan_profile`): every
    ``(variant spec, joints)`` of ``jobs`` at the largest of ``batch_sizes`` must fit in
    ``device``'s free memory (:func:`check_batch_fits`); each network is built on the ``meta``
    device for :func:`batch_memory` (nothing allocated), and none at all when
    :data:`LAYER_TO_INPUT_BOUND` times the input batch fits.

    Raises:
        ValueError: as :func:`check_batch_fits`.
    """
    from hgbench.models import create_model

    free = available_memory_bytes(device) if available is None else available
    element = min(ELEMENT_BYTES.get(p, 4) for p in precisions) if precisions else 4
    if free is None or max(batch_sizes) * 3 * input_size**2 * element * LAYER_TO_INPUT_BOUND <= free:
        return
    needs = {}
    for spec, joints in jobs:
        with torch.device("meta"):
            model = create_model(spec, joints, input_size=input_size)
        needs[spec.name] = batch_memory(model, input_size)
    check_batch_fits(needs, batch_sizes, precisions, device, free)
