"""A fixed reference workload timed during every ``hgbench profile`` invocation.

The sweep (:mod:`hgbench.profile.sweep`) times it in the probes around every timing window
(:class:`hgbench.profile.quiet.QuietTimer`), groups them in one block per visit of a variant
and pools the blocks (:func:`pool_calibrations`); the pooled median goes into
every record of the run (``calibration``), so that records from two runs, or two machines,
can be compared after normalising by how fast the machine was at the time
(``hgbench compare``): a latency ratio divided by the calibration ratio.

The workload never changes (changing it would make old records incomparable; rename
:data:`WORKLOAD` if it ever must): four 3x3 convolutions, 32 -> 32 channels, padding 1, each
followed by ReLU, on a ``(1, 32, 56, 56)`` float32 input, weights drawn from a private
generator with seed 0 (the global RNG is untouched), eval mode, ``torch.inference_mode()``: about 0.12 GMACs per
call (``4 * 32 * 32 * 9 * 56 * 56``), a few ms on a CPU core, launch-bound on a GPU. It runs
on the profiled device with the profiled CPU thread count, TF32 off
(:func:`~hgbench.profile.tf32.tf32_mode`: IEEE fp32 convolutions on CUDA).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hgbench.profile.latency import fixed_threads, time_callable
from hgbench.profile.tf32 import tf32_mode
from hgbench.profile.timeline import phase

WORKLOAD = "conv3x3 32->32 x4 + ReLU, input (1, 32, 56, 56) fp32, seed 0, eval, inference_mode"
CHANNELS, SIZE, LAYERS, SEED = 32, 56, 4, 0


def calibration_model() -> nn.Module:
    """The calibration network (see the module docstring), on the CPU, in eval mode."""
    generator = torch.Generator().manual_seed(SEED)
    layers: list[nn.Module] = []
    for _ in range(LAYERS):
        conv = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.05)
            conv.bias.zero_()
        layers += [conv, nn.ReLU()]
    return nn.Sequential(*layers).eval()


def calibration_input(device: torch.device | str = "cpu") -> torch.Tensor:
    """The calibration input ``(1, CHANNELS, SIZE, SIZE)`` fp32, drawn from a private generator
    with seed ``SEED + 1`` (the global RNG is untouched), on ``device``."""
    return torch.randn((1, CHANNELS, SIZE, SIZE), generator=torch.Generator().manual_seed(SEED + 1)).to(device)


def measure_calibration(
    device: torch.device | str,
    threads: int | None = None,
    min_time_s: float = 0.5,
    min_iters: int = 20,
    warmup_iters: int = 3,
) -> dict[str, Any]:
    """Time the calibration workload on ``device`` with ``threads`` CPU threads (restored
    afterwards; ``None``: as set now).

    Returns:
        The record's ``calibration``: ``{"workload": WORKLOAD, "p50_ms": float (median of one
        call, ms), "samples_ms": [...]}`` plus ``device`` and ``threads`` it ran with.

    Raises:
        ValueError: ``threads`` < 1 or bad timing arguments (see :func:`time_callable`).
    """
    device = torch.device(device)
    model = calibration_model().to(device)
    x = calibration_input(device)
    with phase("probes"), fixed_threads(threads) as used, torch.inference_mode(), tf32_mode(False):
        stats = time_callable(
            lambda: model(x), warmup_iters=warmup_iters, min_iters=min_iters, min_time_s=min_time_s, device=device
        )
    return calibration_block(stats.samples_ms, device, used)


def calibration_block(samples_ms: list[float], device: torch.device | str, threads: int) -> dict[str, Any]:
    """A calibration block from timed calls of the workload (ms per call; e.g. a sweep's quiet-window
    probes, :class:`hgbench.profile.quiet.QuietTimer`), on ``device`` with ``threads`` CPU
    threads: ``{"workload", "p50_ms" (median), "samples_ms", "device" (its type), "threads"}``.

    Raises:
        ValueError: no samples.
    """
    if not samples_ms:
        raise ValueError("a calibration block needs at least one timed call")
    return {
        "workload": WORKLOAD,
        "p50_ms": float(np.median(samples_ms)),
        "samples_ms": [float(s) for s in samples_ms],
        "device": torch.device(device).type,
        "threads": int(threads),
    }


def pool_calibrations(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One calibration from several blocks (:func:`calibration_block`: a sweep's probes per visit
    of a variant, or :func:`measure_calibration`) timed during a sweep
    (interleaved with the profiled settings, so that it sees the machine as they did).

    Every record of a sweep carries this pooled calibration, so it keeps a summary, not the
    pooled samples (a whole-registry sweep in 3 repetitions timed ~16,000 calibration calls in
    81 blocks: 160 KB repeated in each of its 216 records, three quarters of their 45 MB).

    Returns:
        ``parts[0]`` without ``samples_ms``, with ``p50_ms`` = the median of every block's
        samples together (ms per call), ``n`` = their count, ``blocks`` = ``len(parts)`` and
        ``block_p50_ms`` = each block's own median in the order timed (the machine's drift
        over the sweep).

    Raises:
        ValueError: no blocks, or blocks of another workload, device or thread count.
    """
    if not parts:
        raise ValueError("pool_calibrations needs at least one calibration block")
    first = parts[0]
    for part in parts[1:]:
        if (part["workload"], part["device"], part["threads"]) != (
            first["workload"],
            first["device"],
            first["threads"],
        ):
            raise ValueError(
                "calibration blocks differ in workload, device or threads: "
                f"{(first['workload'], first['device'], first['threads'])} vs {(part['workload'], part['device'], part['threads'])}"
            )
    samples = [float(s) for part in parts for s in part["samples_ms"]]
    summary = {k: v for k, v in first.items() if k != "samples_ms"}
    return {
        **summary,
        "p50_ms": float(np.median(samples)),
        "n": len(samples),
        "blocks": len(parts),
        "block_p50_ms": [part["p50_ms"] for part in parts],
    }
