"""Latency of a callable: warm-up by count and by time, timed calls, summary statistics.

The method follows the usual GPU benchmarking practice (PyTorch's ``torch.utils.benchmark``
and the CUDA C++ Best Practices Guide, "Using CUDA GPU Timers"):

* **Warm-up** (untimed) until both ``warmup_iters`` calls and ``warmup_s`` seconds have
  passed: allocator growth, cuDNN/oneDNN algorithm selection, JIT profiling runs, GPU clock
  ramp-up.
* **Timed calls** until both ``min_iters`` calls and ``min_time_s`` seconds of wall-clock time
  have passed (or ``max_iters`` calls, a cap on the record's size that only calls shorter
  than ``min_time_s / max_iters`` reach).
* **Clocks.** On the CPU each call is timed with ``time.perf_counter_ns()`` (monotonic, ns
  resolution). On CUDA, a pair of ``torch.cuda.Event(enable_timing=True)`` is recorded on the
  current stream around each call and read with ``Event.elapsed_time`` (GPU timestamps, about
  0.5 us resolution); the end event is synchronised after every call, so calls do not
  overlap: a sample is the latency of one call that starts on an idle GPU (what a single
  request sees, host launch gaps included), not a pipelined share of a throughput run.
* **Threads.** :func:`fixed_threads` sets ``torch.set_num_threads`` for a block and restores
  it; :func:`default_threads` (the physical cores less one) is the count the CLI uses when
  none is given, and records.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hgbench.profile.timeline import phase

DEFAULT_MAX_ITERS = 10_000


@dataclass(frozen=True)
class LatencyStats:
    """Latency samples of repeated calls, one per call, in milliseconds.

    Percentiles use linear interpolation between the two nearest ranks (numpy's default,
    ``np.percentile(..., method="linear")``): the q-th percentile of the sorted samples
    ``s[0..n-1]`` is ``s[i] + f * (s[i+1] - s[i])`` with ``i + f = (n - 1) * q / 100``.
    For the samples 1, 2, ..., 100 ms: p50 = 50.5, p90 = 90.1, p99 = 99.01. ``std`` is the
    sample standard deviation (``ddof=1``; 0 for a single sample).

    Raises:
        ValueError: no samples.
    """

    samples_ms: list[float]

    def __post_init__(self) -> None:
        if len(self.samples_ms) == 0:
            raise ValueError("LatencyStats needs at least one sample")

    @property
    def n(self) -> int:
        """Number of timed calls."""
        return len(self.samples_ms)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of the samples, in ms, linearly interpolated."""
        return float(np.percentile(self.samples_ms, q, method="linear"))

    @property
    def p50(self) -> float:
        """Median latency, ms."""
        return self.percentile(50)

    @property
    def p90(self) -> float:
        """90th-percentile latency, ms."""
        return self.percentile(90)

    @property
    def p99(self) -> float:
        """99th-percentile latency, ms."""
        return self.percentile(99)

    @property
    def mean(self) -> float:
        """Mean latency, ms."""
        return float(np.mean(self.samples_ms))

    @property
    def std(self) -> float:
        """Sample standard deviation of the latency (ddof=1), ms; 0.0 for one sample."""
        return float(np.std(self.samples_ms, ddof=1)) if self.n > 1 else 0.0

    @property
    def min(self) -> float:
        """Fastest call, ms."""
        return float(np.min(self.samples_ms))

    @property
    def max(self) -> float:
        """Slowest call, ms."""
        return float(np.max(self.samples_ms))

    def throughput(self, batch_size: int) -> float:
        """Samples per second at the median latency: ``batch_size / (p50 / 1000)``.

        Raises:
            ValueError: ``batch_size`` < 1, or a median of 0 ms.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.p50 <= 0:
            raise ValueError("median latency is 0 ms: throughput is undefined")
        return batch_size / (self.p50 / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        """Summary (``n``, ``mean_ms``, ``std_ms``, ``p50_ms``, ``p90_ms``, ``p99_ms``,
        ``min_ms``, ``max_ms``) and the raw ``samples_ms`` in call order, as plain JSON values
        (the record's ``latency_ms``)."""
        return {
            "n": self.n,
            "mean_ms": self.mean,
            "std_ms": self.std,
            "p50_ms": self.p50,
            "p90_ms": self.p90,
            "p99_ms": self.p99,
            "min_ms": self.min,
            "max_ms": self.max,
            "samples_ms": [float(s) for s in self.samples_ms],
        }


def time_callable(
    fn: Callable[[], object],
    *,
    warmup_iters: int = 3,
    warmup_s: float = 0.0,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    device: torch.device | str | None = None,
    max_iters: int = DEFAULT_MAX_ITERS,
) -> LatencyStats:
    """Time ``fn()`` call by call (see the module docstring for the method).

    Args:
        fn: the work to time, called without arguments; its return value is dropped.
        warmup_iters, warmup_s: untimed calls until at least this many calls AND at least this
            many seconds have passed (``0`` and ``0.0``: no warm-up).
        min_iters, min_time_s: timed calls until at least this many calls AND at least this
            many seconds of wall-clock time (from the start of the first timed call) have
            passed, or ``max_iters`` calls have been timed.
        device: where ``fn`` runs its work. ``cuda`` (any index): CUDA events on that
            device's current stream, and a synchronisation after every call (warm-up
            included); anything else (default ``cpu``): ``time.perf_counter_ns``.

    Returns:
        One sample per timed call, in ms.

    Raises:
        ValueError: ``warmup_iters`` < 0, ``warmup_s`` < 0, ``min_iters`` < 1,
            ``min_time_s`` < 0 or ``max_iters`` < ``min_iters``.
        Whatever ``fn`` raises (e.g. ``torch.cuda.OutOfMemoryError``).
    """
    if warmup_iters < 0 or warmup_s < 0 or min_iters < 1 or min_time_s < 0 or max_iters < min_iters:
        raise ValueError(
            "need warmup_iters >= 0, warmup_s >= 0, min_iters >= 1, min_time_s >= 0, max_iters >= min_iters; got "
            f"{warmup_iters=}, {warmup_s=}, {min_iters=}, {min_time_s=}, {max_iters=}"
        )
    device = torch.device(device if device is not None else "cpu")
    warm_up(fn, iters=warmup_iters, seconds=warmup_s, device=device)
    with phase("timed"):
        return LatencyStats(_timed_calls(fn, device, min_iters, min_time_s, max_iters))


def _timed_calls(fn: Callable[[], object], device: torch.device, min_iters: int, min_time_s: float,
                 max_iters: int) -> list[float]:  # fmt: skip
    """The timed loop of :func:`time_callable`: one sample per call, ms."""
    on_cuda = device.type == "cuda"
    samples_ms: list[float] = []
    min_time_ns = int(min_time_s * 1e9)
    start_ns = time.perf_counter_ns()
    if on_cuda:
        with torch.cuda.device(device):
            stream = torch.cuda.current_stream(device)
            while len(samples_ms) < max_iters:
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                begin.record(stream)
                fn()
                end.record(stream)
                end.synchronize()
                samples_ms.append(float(begin.elapsed_time(end)))
                if len(samples_ms) >= min_iters and time.perf_counter_ns() - start_ns >= min_time_ns:
                    break
    else:
        while len(samples_ms) < max_iters:
            t0 = time.perf_counter_ns()
            fn()
            t1 = time.perf_counter_ns()
            samples_ms.append((t1 - t0) / 1e6)
            if len(samples_ms) >= min_iters and t1 - start_ns >= min_time_ns:
                break
    return samples_ms


def warm_up(fn: Callable[[], object], *, iters: int, seconds: float, device: torch.device | str | None = None) -> int:
    """Call ``fn()`` untimed until at least ``iters`` calls AND ``seconds`` seconds have passed
    (the warm-up of :func:`time_callable`); on CUDA each call is synchronised.

    Returns:
        How many calls were made.

    Raises:
        ValueError: ``iters`` < 0 or ``seconds`` < 0.
    """
    if iters < 0 or seconds < 0:
        raise ValueError(f"need iters >= 0 and seconds >= 0; got {iters=}, {seconds=}")
    device = torch.device(device if device is not None else "cpu")
    done, start = 0, time.perf_counter()
    with phase("warmup"):
        while done < iters or time.perf_counter() - start < seconds:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            done += 1
    return done


@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[int]:
    """``torch.set_num_threads(threads)`` inside the block (nothing when ``None``), restored
    on exit, also on error. Yields the intra-op thread count in effect.

    Raises:
        ValueError: ``threads`` < 1.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    old = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def physical_cores() -> int:
    """Physical CPU cores this process may run on (SMT siblings counted once).

    Linux: the distinct ``/sys/devices/system/cpu/cpu<N>/topology/core_cpus_list`` (or
    ``thread_siblings_list``) among the CPUs of ``os.sched_getaffinity(0)``. Elsewhere, or
    when the topology cannot be read: the number of usable logical CPUs. Always >= 1.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        for name in ("core_cpus_list", "thread_siblings_list"):
            try:
                cores.add((topology / name).read_text().strip())
                break
            except OSError:
                continue
        else:
            return max(1, len(cpus))
    return max(1, len(cores))


def default_threads() -> int:
    """CPU intra-op threads for a profile when the user gives none: the physical cores this
    process may use less one, at least 1 (:func:`physical_cores`).

    The spare core keeps the operating system and the harness off the timed threads (the likely
    reason, not measured further: with every core timed, one preempted thread stalls each
    parallel operator at its barrier). Measured on the 2-vCPU development VM, two back-to-back
    runs agreed on medians to 8.1 % with 2 threads and 1.7 % with 1 on hg1 and hg2 (four
    backends, batch 1 and 4; ``benchmarks/reference/repeatability/``, set 3), and over the whole
    registry to 8.9 % with 2 and 5.6 % with 1 (``benchmarks/reference/cpu-registry-64px/``).
    Pass ``--threads`` to time a deployment that owns every core.
    """
    return max(1, physical_cores() - 1)
