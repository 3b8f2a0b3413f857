"""The timing loop, the percentile maths, fixed threads and peak memory.

No absolute timing of our own code is asserted: durations come from ``time.sleep``, which
never returns early (Python docs, ``time.sleep``: "suspends execution for at least the given
number of seconds"), so a sample can only be longer than the sleep, by scheduler delay; the
upper bounds are loose enough for a loaded 2-core CI machine.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from hgbench.profile.latency import (
    LatencyStats,
    default_threads,
    fixed_threads,
    physical_cores,
    time_callable,
)
from hgbench.profile.memory import PeakMemory, reset_cpu_peak_rss

# --- percentile maths -------------------------------------------------------------------------


def test_statistics_by_hand_on_five_samples():
    stats = LatencyStats([4.0, 1.0, 3.0, 2.0, 10.0])  # sorted: 1 2 3 4 10
    assert stats.n == 5
    assert stats.p50 == pytest.approx(3.0)  # rank (5-1)*0.5 = 2 -> 3
    assert stats.p90 == pytest.approx(7.6)  # rank 3.6 -> 4 + 0.6*(10-4)
    assert stats.p99 == pytest.approx(9.76)  # rank 3.96 -> 4 + 0.96*(10-4)
    assert stats.mean == pytest.approx(4.0)
    assert stats.std == pytest.approx((50 / 4) ** 0.5)  # squared deviations 0+9+1+4+36, ddof=1
    assert (stats.min, stats.max) == (1.0, 10.0)
    assert stats.throughput(batch_size=6) == pytest.approx(6 / 0.003)  # samples/s at the median
    d = stats.to_dict()
    assert d["samples_ms"] == [4.0, 1.0, 3.0, 2.0, 10.0]  # raw, in call order
    assert (d["p50_ms"], d["p90_ms"], d["p99_ms"], d["min_ms"], d["max_ms"]) == pytest.approx(
        (3.0, 7.6, 9.76, 1.0, 10.0)
    )


def test_percentiles_on_1_to_100_match_numpy_linear():
    samples = [float(v) for v in range(100, 0, -1)]
    stats = LatencyStats(samples)
    assert (stats.p50, stats.p90, stats.p99) == pytest.approx((50.5, 90.1, 99.01))
    for q in (50, 90, 99):
        assert stats.percentile(q) == pytest.approx(np.percentile(samples, q, method="linear"))


def test_latency_stats_rejects_empty_and_bad_batch():
    with pytest.raises(ValueError):
        LatencyStats([])
    with pytest.raises(ValueError):
        LatencyStats([1.0]).throughput(0)
    with pytest.raises(ValueError):
        LatencyStats([0.0]).throughput(1)
    assert LatencyStats([2.0]).std == 0.0


# --- the timing loop ----------------------------------------------------------------------------


def test_a_20_ms_sleep_measures_as_20_ms():
    stats = time_callable(lambda: time.sleep(0.02), warmup_iters=1, min_iters=5, min_time_s=0.0)
    assert stats.n == 5
    assert stats.min >= 0.999 * 20.0  # sleep never returns early (tiny margin for clock rounding)
    assert stats.p50 <= 3 * 20.0  # scheduler delay on a loaded machine, generously


def test_warm_up_calls_are_not_timed():
    calls = []

    def slow_first_two():
        calls.append(1)
        time.sleep(0.1 if len(calls) <= 2 else 0.001)

    stats = time_callable(slow_first_two, warmup_iters=2, min_iters=4, min_time_s=0.0)
    assert stats.n == 4 and len(calls) == 6
    assert stats.max < 100.0


def test_warm_up_lasts_both_the_count_and_the_time():
    starts = []
    stats = time_callable(
        lambda: starts.append(time.perf_counter()), warmup_iters=3, warmup_s=0.2, min_iters=2, min_time_s=0.0
    )
    warmup = len(starts) - stats.n
    assert warmup > 3  # 3 no-op calls take far less than 0.2 s: the time decides
    assert starts[warmup] - starts[0] >= 0.2  # the first timed call starts after 0.2 s of warm-up

    starts.clear()
    stats = time_callable(
        lambda: starts.append(1) or time.sleep(0.03), warmup_iters=4, warmup_s=0.01, min_iters=1, min_time_s=0.0
    )
    assert len(starts) - stats.n == 4  # 0.01 s is over after one call: the count decides


def test_runs_at_least_min_iters():
    calls = []
    stats = time_callable(lambda: calls.append(1), warmup_iters=2, min_iters=50, min_time_s=0.0)
    assert stats.n == 50 and len(calls) == 52


def test_runs_at_least_min_time():
    calls = []
    start = time.perf_counter()
    stats = time_callable(lambda: calls.append(1), warmup_iters=0, min_iters=1, min_time_s=0.2, max_iters=10**9)
    assert time.perf_counter() - start >= 0.2
    assert stats.n == len(calls) > 1


def test_min_time_and_min_iters_both_hold():
    start = time.perf_counter()
    stats = time_callable(lambda: time.sleep(0.01), warmup_iters=0, min_iters=3, min_time_s=0.1)
    assert time.perf_counter() - start >= 0.1 and stats.n >= 3  # the time decides
    stats = time_callable(lambda: time.sleep(0.01), warmup_iters=0, min_iters=12, min_time_s=0.01)
    assert stats.n == 12


def test_stops_at_max_iters():
    stats = time_callable(lambda: None, warmup_iters=0, min_iters=1, min_time_s=60.0, max_iters=7)
    assert stats.n == 7


@pytest.mark.parametrize(
    "kw",
    [
        {"min_iters": 0},
        {"min_iters": 5, "max_iters": 4},
        {"warmup_iters": -1},
        {"warmup_s": -1.0},
        {"min_time_s": -1.0},
    ],
)
def test_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        time_callable(lambda: None, **kw)


def test_errors_of_the_timed_function_propagate():
    def boom():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        time_callable(boom, warmup_iters=0, min_iters=1, min_time_s=0.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events_agree_with_the_wall_clock_on_a_long_gpu_workload():
    dev = torch.device("cuda")
    a = torch.randn(4096, 4096, device=dev)

    def work():
        for _ in range(20):
            a @ a

    events = time_callable(work, warmup_iters=2, min_iters=5, min_time_s=0.0, device=dev)
    walls = []
    for _ in range(5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        work()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t0) * 1e3)
    wall = float(np.median(walls))
    assert wall > 1.0  # long enough for launch overhead not to matter
    assert 0.8 * wall <= events.p50 <= 1.05 * wall


# --- threads ------------------------------------------------------------------------------------


def test_fixed_threads_sets_and_restores():
    before = torch.get_num_threads()
    with fixed_threads(1) as used:
        assert used == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), fixed_threads(1):
        raise RuntimeError("restored on error too")
    assert torch.get_num_threads() == before
    with fixed_threads(None) as used:
        assert used == before
    with pytest.raises(ValueError), fixed_threads(0):
        pass


def test_physical_cores_is_between_1_and_the_usable_cpus():
    import os

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= physical_cores() <= usable


def test_default_threads_leaves_one_physical_core_free(monkeypatch):
    from hgbench.profile import latency

    for cores, expected in [(1, 1), (2, 1), (16, 15)]:
        monkeypatch.setattr(latency, "physical_cores", lambda cores=cores: cores)
        assert default_threads() == expected


# --- peak memory --------------------------------------------------------------------------------


def test_cpu_peak_rss_sees_8_and_64_mib_tensors_also_after_freed_ones():
    if not reset_cpu_peak_rss():
        pytest.skip("the peak RSS cannot be reset here (not Linux, or /proc/self/clear_refs not writable)")
    for _ in range(3):  # leave freed 8 MiB blocks in glibc's heap, which a later block would reuse unseen
        del_me = torch.ones(8 * 2**20 // 4)
        del del_me
    with PeakMemory("cpu") as mem:
        x = torch.ones(8 * 2**20 // 4)  # 8 MiB of float32, written: resident
        del x
    assert mem.peak_mib is not None
    assert 7.5 <= mem.peak_mib <= 8.0 + 50.0  # the tensor, plus whatever else the process did meanwhile
    with PeakMemory("cpu") as mem:
        x = torch.ones(64 * 2**20 // 4)
        del x
    assert 60.0 <= mem.peak_mib <= 64.0 + 50.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_sees_a_256_mib_tensor():
    with PeakMemory("cuda") as mem:
        x = torch.ones(256 * 2**20 // 4, device="cuda")
        del x
    assert mem.peak_mib >= 256.0
