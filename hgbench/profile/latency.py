"""Wall-clock latency of a callable: warm-up, timed calls, summary statistics."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Latency samples of repeated calls, one per call, in milliseconds.

    Percentiles use linear interpolation between the two nearest ranks (numpy's default,
    ``np.percentile(..., method="linear")``): for the samples 1, 2, ..., 100 ms,
    p50 = 50.5, p90 = 90.1, p99 = 99.01. ``std`` is the sample standard deviation
    (``ddof=1``; 0 for a single sample).

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
        return float(np.percentile(self.samples_ms, q))

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
        ``min_ms``, ``max_ms``) and the raw ``samples_ms``, as plain JSON-able values."""
        return {
            "n": self.n,
            "mean_ms": self.mean,
            "std_ms": self.std,
            "p50_ms": self.p50,
            "p90_ms": self.p90,
            "p99_ms": self.p99,
            "min_ms": float(min(self.samples_ms)),
            "max_ms": float(max(self.samples_ms)),
            "samples_ms": [float(s) for s in self.samples_ms],
        }


def time_callable(
    fn: Callable[[], object],
    *,
    warmup_iters: int = 3,
    min_iters: int = 10,
    min_time_s: float = 1.0,
    max_iters: int = 10_000,
    sync: Callable[[], None] | None = None,
) -> LatencyStats:
    """Time ``fn()`` call by call.

    First ``warmup_iters`` untimed calls (allocator, autotuning, JIT profiling runs), then
    timed calls until at least ``min_iters`` calls have been timed AND at least
    ``min_time_s`` seconds of wall-clock time have passed since the first timed call, or
    ``max_iters`` calls have been timed, whichever stops first. Each call is timed with
    ``time.perf_counter_ns()`` (monotonic); its return value is dropped.

    Args:
        fn: the work to time, called without arguments.
        sync: called after every call, before the clock is read; pass
            ``torch.cuda.synchronize`` when ``fn`` launches CUDA work, which is otherwise
            asynchronous and would be timed as launch overhead only.

    Returns:
        One sample per timed call, in ms.

    Raises:
        ValueError: ``warmup_iters`` < 0, ``min_iters`` < 1, ``min_time_s`` < 0 or
            ``max_iters`` < ``min_iters``.
        Whatever ``fn`` or ``sync`` raises.
    """
    if warmup_iters < 0 or min_iters < 1 or min_time_s < 0 or max_iters < min_iters:
        raise ValueError(
            f"need warmup_iters >= 0, min_iters >= 1, min_time_s >= 0, max_iters >= min_iters; got "
            f"{warmup_iters=}, {min_iters=}, {min_time_s=}, {max_iters=}"
        )
    for _ in range(warmup_iters):
        fn()
        if sync is not None:
            sync()

    samples_ns: list[int] = []
    min_time_ns = int(min_time_s * 1e9)
    start = time.perf_counter_ns()
    while len(samples_ns) < max_iters:
        t0 = time.perf_counter_ns()
        fn()
        if sync is not None:
            sync()
        t1 = time.perf_counter_ns()
        samples_ns.append(t1 - t0)
        if len(samples_ns) >= min_iters and t1 - start >= min_time_ns:
            break
    return LatencyStats([s / 1e6 for s in samples_ns])
