"""The measuring half of the latency regression gate (``hgbench latency-check``, ``.ci/run``):
every registered variant's CPU forward pass timed in-run against a frozen reference network and
written as profile records; :mod:`hgbench.analysis.gate` compares them with the committed
reference records (:data:`hgbench.paths.LATENCY_GATE_DIR`) and gives the verdict.

Why the measurement does not flake on a shared 2-core machine, yet moves with a real slowdown:

* **Interleaving.** Each round times one call of the variant, then one call of the frozen
  reference network (:func:`frozen_reference_network`), on one thread, in one process. Both
  see the same load of the machine at the same moments, so the ratio of their medians stays
  put when neighbours come and go. (Timing the calibration once, before the models, does not:
  on this 2-core development machine under a load average of 4 to 10 the median of hg1 moved
  0.3x to 2.9x between two such runs; interleaved, 0.86x to 1.11x.)
* **A frozen reference with the same operations.** The calibration workload is a self-contained
  copy of Newell et al.'s one-stack hourglass (1x1 and 3x3 convolutions, batch norm, ReLU,
  max-pool, nearest upsampling, additions: the variants' operation mix) that never changes
  with hgbench's model code. For ``hg1`` the gate is an in-run A/B test of the current code
  against this committed code path (a ratio of 1.0 on any machine); for the other variants a
  ratio to a network of the same operations should move between machines much less than a
  ratio to a single convolution (not yet checked on a second machine). Machine speed and the
  torch build cancel out.

The thresholds and the retry are the verdict's (:mod:`hgbench.analysis.gate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hgbench import paths
from hgbench.models import create_model
from hgbench.paths import LATENCY_GATE_DIR
from hgbench.profile.complexity import count_parameters, model_size_mib
from hgbench.profile.latency import LatencyStats
from hgbench.profile.run import one_line, profile_identity
from hgbench.records import ProfileRecord
from hgbench.records.identity import artifact_identity

INPUT_SIZE = 64  # px: the pytest-benchmark benchmarks' input, small enough for CI
NUM_JOINTS = 16
THREADS = 1
INPUT_SEED = 0
MIN_ITERS = 25  # rounds (variant call + reference call) per variant, at least ...
MIN_TIME_S = 0.5  # ... and at least this long
WARMUP_ITERS = 2
FROZEN_SEED = 0
WORKLOAD = (
    "frozen one-stack Newell hourglass (hgbench.analysis.gate.frozen_reference_network: 256 features, depth 4, "
    "16 heatmaps, seed 0), input (1, 3, 64, 64) fp32, eval, inference_mode, 1 thread, timed call by call "
    "interleaved with the model"
)
"""The ``calibration.workload`` of every gate record. ``hgbench compare`` refuses to compare
records of different workloads, so this text is part of the committed references: it still
names the network's first home (``hgbench.analysis.gate``; the code, unchanged, now lives here)."""
GATE_ARTIFACT = artifact_identity(
    backend="eager",
    precision="fp32",
    batch_size=1,
    input_size=INPUT_SIZE,
    device="cpu",
    tf32=False,
    channels_last=False,
)
"""What the gate times: eager fp32, NCHW, no TF32, batch 1, :data:`INPUT_SIZE` px, on the CPU."""


# --- the frozen reference network ----------------------------------------------------------------
# Do not edit: the committed reference records were measured against exactly this code. A change
# here (or to WORKLOAD's text, which compare checks) needs the reference regenerated.


class _FrozenResidual(nn.Module):
    """Pre-activation bottleneck residual module (pose-hg-train ``src/models/layers/Residual.lua``):
    BN-ReLU-conv1x1 (out/2), BN-ReLU-conv3x3 (out/2), BN-ReLU-conv1x1 (out), plus the input
    (a 1x1 conv when the widths differ). ``(B, cin, H, W) -> (B, cout, H, W)``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        m = cout // 2
        self.branch = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, m, 1),
            nn.BatchNorm2d(m), nn.ReLU(), nn.Conv2d(m, m, 3, padding=1),
            nn.BatchNorm2d(m), nn.ReLU(), nn.Conv2d(m, cout, 1),
        )  # fmt: skip
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x) + self.skip(x)


class _FrozenHourglass(nn.Module):
    """Newell et al.'s hourglass (pose-hg-train ``hg.lua``), one residual per branch and level.
    ``(B, f, H, W) -> (B, f, H, W)``, ``H`` and ``W`` divisible by ``2**depth``."""

    def __init__(self, depth: int, f: int) -> None:
        super().__init__()
        self.up1, self.pool, self.low1 = _FrozenResidual(f, f), nn.MaxPool2d(2, 2), _FrozenResidual(f, f)
        self.low2 = _FrozenHourglass(depth - 1, f) if depth > 1 else _FrozenResidual(f, f)
        self.low3 = _FrozenResidual(f, f)

    def forward(self, x: Tensor) -> Tensor:
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="nearest")


def frozen_reference_network(num_features: int = 256, num_joints: int = NUM_JOINTS) -> nn.Module:
    """The gate's calibration workload: a self-contained one-stack stacked hourglass (Newell et
    al., ECCV 2016, seed ``004_f2275e04f372f4f6.txt`` section 2; the layers of pose-hg-train
    ``hg.lua`` with ``nStack = 1``: 7x7 stride-2 conv 3->64, BN, ReLU, residual 64->128,
    max-pool, residual 128->128, residual 128->f, an hourglass of depth 4, residual, 1x1 conv +
    BN + ReLU, 1x1 conv to the heatmaps), written with ``torch.nn`` only so that it never
    changes with hgbench's model code. Weights from ``torch.manual_seed(FROZEN_SEED)`` inside
    ``torch.random.fork_rng`` (the caller's RNG is untouched); eval mode, on the CPU.

    Shapes: ``(B, 3, S, S) -> (B, num_joints, S/4, S/4)``, ``S`` divisible by 64.
    """
    f = num_features
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(FROZEN_SEED)
        net = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
            _FrozenResidual(64, 128), nn.MaxPool2d(2, 2), _FrozenResidual(128, 128), _FrozenResidual(128, f),
            _FrozenHourglass(4, f), _FrozenResidual(f, f),
            nn.Conv2d(f, f, 1), nn.BatchNorm2d(f), nn.ReLU(), nn.Conv2d(f, num_joints, 1),
        )  # fmt: skip
    return net.eval()


# --- measurement --------------------------------------------------------------------------------


def measure_interleaved(
    fns: dict[str, Callable[[], object]],
    *,
    warmup_iters: int = WARMUP_ITERS,
    min_iters: int = MIN_ITERS,
    min_time_s: float = MIN_TIME_S,
    max_iters: int = 10_000,
) -> dict[str, list[float]]:
    """Time several callables in alternation: each round calls every one once, in order, each call
    timed alone with ``time.perf_counter_ns`` (monotonic; CPU work, nothing asynchronous).

    ``warmup_iters`` untimed rounds first; then rounds until ``min_iters`` rounds are done AND
    ``min_time_s`` seconds have passed, or ``max_iters`` rounds.

    Returns:
        ``{name: [ms per call, one per round]}``.

    Raises:
        ValueError: no callables, ``min_iters`` < 1, ``min_time_s`` < 0 or ``max_iters`` < ``min_iters``.
    """
    if not fns or min_iters < 1 or min_time_s < 0 or max_iters < min_iters or warmup_iters < 0:
        raise ValueError(
            f"need callables, min_iters >= 1, min_time_s >= 0, max_iters >= min_iters, warmup_iters >= 0; "
            f"got {len(fns)} callables, {min_iters=}, {min_time_s=}, {max_iters=}, {warmup_iters=}"
        )
    for _ in range(warmup_iters):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter_ns()
    for rounds in range(1, max_iters + 1):
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            fn()
            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
        if rounds >= min_iters and time.perf_counter_ns() - start >= min_time_s * 1e9:
            break
    return samples


def gate_record(
    model: nn.Module,
    variant: str,
    *,
    spec: object = None,
    reference_net: nn.Module | None = None,
    min_iters: int = MIN_ITERS,
    min_time_s: float = MIN_TIME_S,
    warmup_iters: int = WARMUP_ITERS,
) -> ProfileRecord:
    """Measure ``model`` (CPU, batch 1, ``INPUT_SIZE`` px, ``THREADS`` thread, eval,
    ``torch.inference_mode``) interleaved with ``reference_net`` (default
    :func:`frozen_reference_network`), as a :class:`~hgbench.records.ProfileRecord`.

    The model's training mode and torch's thread count are restored afterwards. The input is
    standard normal from a private generator seeded with ``INPUT_SEED``.

    Returns:
        The record of :data:`GATE_ARTIFACT`: the network (``variant``, and ``spec`` with its
        hash when ``spec`` is given: :func:`hgbench.profile.run.profile_identity`),
        ``device_name``, ``threads``, ``parameters`` and ``model_size_mib`` (float32 weights
        and buffers, MiB), ``latency_ms`` (n, mean/std/p50/p90/p99/min/max in ms and the raw
        ``samples_ms``, one per round), ``throughput_samples_per_s`` (1 / p50), ``calibration``
        (``{"workload": WORKLOAD, "p50_ms", "samples_ms"}``: the reference network's calls of
        the same rounds), ``status`` ``"ok"``; what the gate does not measure (MACs, memory,
        numerics, roofline) is ``None``.

    Raises:
        Whatever the model's forward raises.
    """
    from hgbench.records.provenance import device_name

    reference_net = frozen_reference_network() if reference_net is None else reference_net
    x = torch.randn((1, 3, INPUT_SIZE, INPUT_SIZE), generator=torch.Generator().manual_seed(INPUT_SEED))
    was_training, old_threads = model.training, torch.get_num_threads()
    model.eval()
    torch.set_num_threads(THREADS)
    try:
        with torch.inference_mode():
            s = measure_interleaved(
                {"model": lambda: model(x), "reference": lambda: reference_net(x)},
                warmup_iters=warmup_iters,
                min_iters=min_iters,
                min_time_s=min_time_s,
            )
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    stats = LatencyStats(s["model"])
    return ProfileRecord(
        **profile_identity(variant, NUM_JOINTS, GATE_ARTIFACT, spec),
        device_name=device_name("cpu"),
        threads=THREADS,
        parameters=count_parameters(model),
        model_size_mib=model_size_mib(model),
        latency_ms=stats.to_dict(),
        throughput_samples_per_s=stats.throughput(1),
        calibration={"workload": WORKLOAD, "p50_ms": float(np.median(s["reference"])), "samples_ms": s["reference"]},
        notes=["hgbench latency-check: interleaved with the frozen reference network"],
        status="ok",
    )


def measure_variants(
    names: Iterable[str] | None,
    out: Path,
    *,
    min_iters: int = MIN_ITERS,
    min_time_s: float = MIN_TIME_S,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Measure the registered variants ``names`` (``None``: all) with :func:`gate_record`, one
    model at a time, and write each as a ``"profile"`` record (with provenance) under ``out``,
    at :func:`hgbench.paths.latency_gate_record_path`; return the paths. A variant whose forward
    raises is written with ``status`` ``"error"`` and ``error`` (``"timing: <exception>"``).

    Raises:
        KeyError: an unknown variant name.
    """
    from hgbench.config import get_variant, list_variants
    from hgbench.records import write_record
    from hgbench.records.provenance import collect_provenance

    specs = list_variants() if names is None else [get_variant(n) for n in names]
    provenance = collect_provenance(threads=THREADS)
    reference_net = frozen_reference_network()
    written = []
    for spec in specs:
        if progress is not None:
            progress(spec.name)
        model = create_model(spec, NUM_JOINTS, input_size=INPUT_SIZE)
        try:
            record = gate_record(
                model, spec.name, spec=spec, reference_net=reference_net, min_iters=min_iters, min_time_s=min_time_s
            )
        except Exception as e:  # noqa: BLE001 - one broken variant must not hide the others
            record = ProfileRecord(
                **profile_identity(spec.name, NUM_JOINTS, GATE_ARTIFACT, spec), threads=THREADS, status="error",
                error=one_line(f"timing: {type(e).__name__}: {e}"),
            )  # fmt: skip
        path = paths.latency_gate_record_path(out, record.key().stem())
        write_record(path, "profile", record.to_body(), provenance)
        written.append(path)
    return written


def update_reference(
    reference: Path = LATENCY_GATE_DIR,
    names: Iterable[str] | None = None,
    *,
    min_iters: int = 4 * MIN_ITERS,
    min_time_s: float = 4 * MIN_TIME_S,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """(Re)write the reference records: :func:`measure_variants` with 4x the rounds and time of a
    check (a tighter reference median), into ``reference``. Records of variants not measured now
    are left as they are. Run it on a quiet machine and commit the folder."""
    return measure_variants(names, Path(reference), min_iters=min_iters, min_time_s=min_time_s, progress=progress)
