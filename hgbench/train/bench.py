"""Training throughput: where a variant's training time goes, measured four ways.

For one variant under one protocol's settings (batch size, input size, precision,
channels_last, compile, loader workers) on one device, in samples/s:

* **data**: the training data pipeline alone (:mod:`hgbench.train.sampler`: decode,
  augmentation, heatmaps, collation, workers), batches fetched and dropped;
* **step**: the engine's step alone (:class:`hgbench.train.step.TrainStep`) on synthetic
  tensors already on the device;
* **full**: both together, as the engine runs them (batches from the loader, copied to the
  device, stepped), with the fraction of its time spent waiting for the next batch;
* **bare**: the plainest loop over the same model and tensors (forward under the same
  autocast, ``stacked_loss``, ``zero_grad``, ``backward``, the optimiser's default
  implementation), the yardstick for the engine's own overhead (step / bare).

After ``warmup`` untimed steps (compilation, ``cudnn.benchmark``'s search and allocator
warm-up happen there), the four are measured in ``repetitions`` rounds, their order rotated
each round; in a round each times ``steps`` iterations ending with a device
synchronisation (a loader's first batch, its start-up, is not timed). Each rate is the median
round, and the ratios (:meth:`Throughput.ratio`) are medians of the per-round ratios, so that
on a machine whose load drifts two rates are compared over the same minute: on a shared CPU
use many short rounds (``steps`` 1), on a GPU a few long ones (``steps`` 20 or more, so that
the device's queue stays full).

:func:`add_flops` turns a rate into achieved FLOP/s with the training FLOPs per sample
taken as 3 x the forward pass's (the backward pass costs about twice the forward: one
product for the input gradient and one for the weight gradient per layer; Kaplan et al.,
"Scaling Laws for Neural Language Models", 2020, section 2.1, use the same 2N + 4N count) and
its ratio to the device's measured compute ceiling (:mod:`hgbench.profile.roofline`).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from hgbench.config import Protocol, VariantSpec
from hgbench.data import make_dataset
from hgbench.models import create_model
from hgbench.models.loss import stacked_loss
from hgbench.train.device import autocast, check_compile, check_precision, resolve_device, synchronize
from hgbench.train.optim import _OPTIMIZERS, build_optimizer
from hgbench.train.sampler import TrainSampler, make_train_loader
from hgbench.train.step import TrainStep, prepare_model

KINDS = ("data", "step", "full", "bare")
TRAIN_FLOPS_PER_FORWARD = 3
"""Training FLOPs per sample / forward FLOPs per sample (module docstring)."""


@dataclass
class Throughput:
    """Training throughput of one variant and setting (module docstring).

    Attributes:
        samples_per_s: kind (``data``, ``step``, ``full``, ``bare``) -> median samples/s.
        rounds: kind -> samples/s of each round.
        data_wait: fraction of the full loop's time spent waiting for the next batch (median).
        train_gflop_per_sample, tflops, ceiling_tflops, ceiling_ratio: filled by
            :func:`add_flops`: training GFLOP per sample (3 x forward), kind -> achieved
            TFLOP/s, the device's measured ceiling, kind -> achieved / ceiling.
    """

    variant: str
    device: str
    precision: str
    channels_last: bool
    compile: bool
    batch_size: int
    input_size: int
    num_workers: int
    steps: int
    repetitions: int
    samples_per_s: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, list[float]] = field(default_factory=dict)
    data_wait: float | None = None
    train_gflop_per_sample: float | None = None
    tflops: dict[str, float] = field(default_factory=dict)
    ceiling_tflops: float | None = None
    ceiling_ratio: dict[str, float] = field(default_factory=dict)

    def ratio(self, a: str, b: str) -> float:
        """The median over rounds of ``rate[a] / rate[b]`` (two rates of one round)."""
        return statistics.median(x / y for x, y in zip(self.rounds[a], self.rounds[b], strict=True))

    def to_dict(self) -> dict:
        return asdict(self)


def add_flops(result: Throughput, forward_flops_per_sample: float, ceiling_tflops: float | None) -> Throughput:
    """Fill ``result``'s FLOP fields from the forward FLOPs of one sample (e.g.
    :func:`hgbench.profile.complexity.count_flops` of a batch of 1) and the device's compute
    ceiling in TFLOP/s (:class:`hgbench.profile.roofline.Ceilings` ``matmul_tflops``; None:
    no ratio); returns ``result``. The data-only rate has no FLOPs."""
    flops = TRAIN_FLOPS_PER_FORWARD * forward_flops_per_sample
    result.train_gflop_per_sample = flops / 1e9
    result.tflops = {k: v * flops / 1e12 for k, v in result.samples_per_s.items() if k != "data"}
    result.ceiling_tflops = ceiling_tflops
    if ceiling_tflops:
        result.ceiling_ratio = {k: v / ceiling_tflops for k, v in result.tflops.items()}
    return result


def _bare_loop(model: torch.nn.Module, protocol: Protocol, spec: VariantSpec, device: torch.device):
    """One iteration of the plainest training loop over ``model`` (module docstring)."""
    opt = _OPTIMIZERS[protocol.optimizer.name](model.parameters(), lr=protocol.optimizer.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=protocol.precision == "fp16")
    forward = torch.compile(model) if protocol.compile else model

    def step(images, heatmaps, weight):
        with autocast(device, protocol.precision):
            loss = stacked_loss(forward(images), heatmaps, weight, spec.supervision)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


@dataclass
class _Bench:
    """What the four measurements of one variant share: the engine's step, the bare loop, the
    synthetic batch on the device and the training set (module docstring)."""

    engine: TrainStep
    bare: Callable[..., None]
    synthetic: dict[str, torch.Tensor]
    train_set: Any
    protocol: Protocol
    device: torch.device
    steps: int
    batches_used: int = 0

    def step(self) -> None:
        """One step of the engine on the synthetic batch."""
        self.engine(self.synthetic)

    def bare_step(self) -> None:
        """One iteration of the bare loop on the synthetic batch."""
        self.bare(self.synthetic["image"], self.synthetic["heatmaps"], self.synthetic["target_weight"])

    def loader(self, n: int):
        """An iterator over the next ``n`` batches of the training data pipeline."""
        p = self.protocol
        sampler = TrainSampler(len(self.train_set), p.batch_size, p.seed, start=self.batches_used, num_batches=n)
        self.batches_used += n
        return iter(make_train_loader(self.train_set, sampler, p.num_workers, pin_memory=self.device.type == "cuda"))

    def timed(self, kind: str) -> tuple[float, float | None]:
        """(samples/s, data-wait fraction of ``full``, else None) of one round of ``kind``."""
        b, dev = self.protocol.batch_size, self.device
        if kind in ("step", "bare"):
            fn = self.step if kind == "step" else self.bare_step
            synchronize(dev)
            t0 = time.perf_counter()
            for _ in range(self.steps):
                fn()
            synchronize(dev)
            return self.steps * b / (time.perf_counter() - t0), None
        it = self.loader(self.steps + 1)
        next(it)  # workers started, first batch made: not timed
        synchronize(dev)
        wait, t0 = 0.0, time.perf_counter()
        for _ in range(self.steps):
            t = time.perf_counter()
            batch = next(it)
            wait += time.perf_counter() - t
            if kind == "full":
                self.engine(batch)
        synchronize(dev)
        elapsed = time.perf_counter() - t0
        return self.steps * b / elapsed, (wait / elapsed if kind == "full" else None)


def _set_up_bench(spec: VariantSpec, p: Protocol, dev: torch.device, dataset: str, data_root, steps: int) -> _Bench:
    """The training set, the model (twice: the engine's and the bare loop's, with the same
    initial weights), the engine's step, the bare loop and a synthetic batch on ``dev``."""
    torch.manual_seed(p.seed)
    train_set = make_dataset(dataset, data_root, "train", augmentation=p.augmentation, input_size=p.input_size,
                             output_size=p.output_size, sigma=p.heatmap_sigma)  # fmt: skip
    joints = train_set.keypoints.num_joints
    model = prepare_model(create_model(spec, joints, input_size=p.input_size), dev, p.channels_last)
    bare_model = copy.deepcopy(model)
    optimizer = build_optimizer(p.optimizer, model.parameters(), dev.type)
    engine = TrainStep(model, optimizer, spec.supervision, dev, p.precision, p.channels_last, p.compile)
    b, s, h = p.batch_size, p.input_size, p.output_size
    images = torch.rand(b, 3, s, s, device=dev)
    if p.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    synthetic = {
        "image": images,
        "heatmaps": torch.rand(b, joints, h, h, device=dev) * 0.1,
        "target_weight": torch.ones(b, joints, device=dev),
    }
    return _Bench(engine, _bare_loop(bare_model, p, spec, dev), synthetic, train_set, p, dev, steps)


def measure_training_throughput(
    spec: VariantSpec,
    protocol: Protocol,
    device: str | torch.device | None = None,
    dataset: str = "synthetic",
    data_root=None,
    steps: int = 10,
    warmup: int = 3,
    repetitions: int = 3,
    progress: Callable[[str], None] | None = None,
) -> Throughput:
    """Measure ``spec``'s training throughput under ``protocol``'s batch size, input size,
    augmentation, optimiser, precision, channels_last, compile and ``num_workers`` (module
    docstring).

    Raises:
        DeviceError: an unusable device or precision. ValueError: ``steps`` < 1.
    """
    if steps < 1 or repetitions < 1:
        raise ValueError(f"steps and repetitions must be >= 1, got {steps}, {repetitions}")
    dev = resolve_device(device)
    p = protocol
    check_precision(dev, p.precision, f"protocol {p.name}")
    check_compile(dev, p.precision, p.channels_last, p.compile, f"protocol {p.name}")
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    bench = _set_up_bench(spec, p, dev, dataset, data_root, steps)
    for _ in range(warmup):  # compilation, cudnn.benchmark's search, allocator
        bench.step()
        bench.bare_step()
    synchronize(dev)

    rounds: dict[str, list[float]] = {k: [] for k in KINDS}
    waits: list[float] = []
    for r in range(repetitions):
        order = KINDS[r % len(KINDS) :] + KINDS[: r % len(KINDS)]
        for kind in order:
            if progress:
                progress(f"{spec.name} {p.input_size}px round {r + 1}/{repetitions}: {kind}")
            rate, wait = bench.timed(kind)
            rounds[kind].append(rate)
            if wait is not None:
                waits.append(wait)
    result = Throughput(spec.name, str(dev), p.precision, p.channels_last, p.compile, p.batch_size, p.input_size,
                        p.num_workers, steps, repetitions)  # fmt: skip
    result.rounds = rounds
    result.samples_per_s = {k: statistics.median(v) for k, v in rounds.items()}
    result.data_wait = statistics.median(waits)
    return result


def markdown_table(results: list[Throughput]) -> str:
    """The results as a Markdown table (samples/s, ratios, FLOP/s)."""
    head = (
        "| variant | input (px) | batch | precision | workers | data alone (samples/s) | model step (samples/s) "
        "| data + step (samples/s) | bare loop (samples/s) | step / bare | full / step | data wait (full) "
        "| GFLOP/sample (train = 3 x fwd) | step TFLOP/s | step / ceiling |"
    )
    rows = [head, "|" + "---|" * head.count(" | ") + "---|"]

    def f(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in results:
        sps = r.samples_per_s
        rows.append(
            f"| {r.variant} | {r.input_size} | {r.batch_size} | {r.precision}{' cl' if r.channels_last else ''}"
            f"{' compile' if r.compile else ''} | {r.num_workers} | {sps['data']:.1f} | {sps['step']:.1f} | {sps['full']:.1f} "
            f"| {sps['bare']:.1f} | {r.ratio('step', 'bare'):.3f} | {r.ratio('full', 'step'):.3f} | {100 * r.data_wait:.0f}% "
            f"| {f(r.train_gflop_per_sample, '.2f')} | {f(r.tflops.get('step'), '.3f')} | {f(r.ceiling_ratio.get('step'), '.2f')} |"
        )
    return "\n".join(rows)
