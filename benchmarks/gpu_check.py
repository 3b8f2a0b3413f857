"""One prepared check of every CUDA path (issues 19 and 28), in under 8 minutes on one H100/H200,
printing one line per check and exiting 1 on any FAIL.

Usage (from the repository root)::

    python benchmarks/gpu_check.py                 # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run       # the same plumbing on the CPU, tiny sizes
    SMOKE_ALLOW_CPU=1 python benchmarks/gpu_check.py   # the same as --dry-run

Each line is ``PASS|FAIL|SKIP  <check>: <detail>``; the last one counts them. The tables go to
``$OUT`` (default ``./gpu_check_out``), at most eight files, flat (what the device tool brings
back): ``checks.txt`` (the lines), ``numerics.csv``, ``memory.csv``, ``ceilings.csv``,
``profiles.csv`` and ``profiles.md`` (the profile matrix), ``records.jsonl`` (its profile
records, one per line) and ``run.json`` (command, versions, provenance, the training runs'
records, elapsed time). Caches (ceilings, ONNX files, TensorRT programs) and the training runs
go to a temporary folder, so every run measures anew.

What is checked, in priority order (:data:`CHECKS`; the budget, :data:`GPU_BUDGET_S`, is spent
on the first ones first, and a check that would not fit says SKIP with the time spent):

1. ``train compiled``: CUDA training of hg1 in bf16, channels_last, with the compiled step
   (``torch.compile``), two epochs: a complete record with finite losses, ``cudnn.benchmark`` on,
   the warm-up steps left out of ``samples_per_s`` (issue 28, 6 and 9).
2. ``train resume``: deterministic fp32 training (``deterministic=True``) stopped by SIGTERM
   mid-epoch (the engine saves a checkpoint and stops), resumed, ends with the weights and losses
   of a run never stopped, bit for bit; the flags are recorded and restored (issue 28, 9).
3. ``ddp``: the data-parallel pieces on one GPU over NCCL (world size 1: NCCL refuses two ranks
   on one GPU): ``DistributedDataParallel`` steps match plain steps, the gloo control group agrees.
4. ``ceilings`` (issue 19, 3 and 10): fp32 IEEE, fp32 TF32, bf16 and fp16 ceilings measured and
   cached under four keys; the CUDA matmul is 8192^3; the TF32 ceiling above the IEEE one.
5. ``profile``: the profile matrix, :func:`profile_items`: hg1 and hg8 at 256 px, every backend
   (:data:`BACKENDS`) and precision (:data:`PROFILE_PRECISIONS`) at batch 1 and 32, one line per
   setting: the record's status and numerics (a refused combination or a missing backend SKIP
   with the reason; an item that would not fit the budget, :data:`PROFILE_COST_S`, SKIP).
6. the issue-19 checks, with what is left: ``tf32 api`` (the new ``fp32_precision`` settings and
   the legacy flags agree and are restored), ``events vs wall`` (CUDA events vs the wall clock of
   synchronised calls, 5 %), ``numerics`` (every backend x {fp32, fp32+TF32, bf16, fp16} x
   {NCHW, channels_last} on hg1 at 128 px against float64; :data:`GPU_SUBSETS` for the builds
   that take tens of seconds), ``tf32 takes effect``, ``ort events`` (CUDA events bracket ONNX
   Runtime's kernels), ``peak memory`` (the device-wide figure covers the allocator's),
   ``compile release`` (CUDA Graph Trees freed), ``tf32 roofline`` (efficiency <= 1),
   ``provenance`` (NVML's fields; the profile records' ``latency_ms.gpu``, sampled while timed).

Needs hgbench importable (``pip install`` the wheel, or run from the repository root, which is
put first on ``sys.path``) with its dependencies; on the device machine pydantic (and its
pydantic-core, annotated-types, typing-inspection) may have to travel as wheels. onnxruntime-gpu
and torch-tensorrt are optional: without them their lines are SKIP with the reason.
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# Deterministic training (check_train_resume) needs cuBLAS's workspace setting before CUDA starts
# in this process (hgbench.train.device.training_flags refuses it later): set it first, as
# `hgbench train --deterministic` does. The other checks run with it too (8 workspaces of 4 MiB).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

from hgbench.profile.backends import BACKENDS, RunSettings, get_backend  # noqa: E402
from hgbench.profile.numerics import RTOL, final_stack  # noqa: E402
from hgbench.profile.roofline import Ceilings  # noqa: E402
from hgbench.profile.run import make_input  # noqa: E402
from hgbench.profile.tf32 import has_fp32_precision_api, tf32_mode, tf32_state  # noqa: E402

IEEE_RTOL = 1e-4
"""Bound on the relative error (max abs error / max |reference|) of an fp32 run without TF32
against float64: fp32's unit roundoff is 6.0e-8 and correct fp32 backends measured < 1e-6 on
the CPU (:mod:`hgbench.profile.numerics`), while TF32's 10-bit mantissa (u = 4.9e-4) gives
errors near 1e-3: 1e-4 tells the two apart with a margin on both sides."""

PRECISION_SETTINGS = (("fp32", False), ("fp32", True), ("bf16", False), ("fp16", False))
"""(precision, tf32) of the numerics matrix."""

GPU_BUDGET_S, DRY_BUDGET_S = 420.0, 300.0
"""Default time budget of the checks: 7 minutes, so that the run (imports and CUDA start
included) ends within 8. The dry run's sizes are fixed small enough to finish within a minute
on 2 cores; its budget only guards."""

PROFILE_VARIANTS = ("hg1", "hg8")
PROFILE_INPUT_PX = 256
PROFILE_BATCHES = (1, 32)
PROFILE_PRECISIONS = ("fp32", "fp16", "bf16")
"""The profile matrix's axes (:func:`profile_items`)."""

PROFILE_QUANTIZED = ("int8", "fp8")
"""Quantized precisions, profiled after the floating-point matrix on the backends that build them
(:attr:`hgbench.profile.backends.Backend.quantized`; fp8 where the GPU has compute capability 8.9),
calibrated on :data:`CALIBRATION_COUNT` synthetic training crops (:func:`quantized_items`)."""

CALIBRATION_COUNT = 64
"""Calibration crops of the quantized items: enough for activation ranges of random weights, few
enough to calibrate in seconds."""

PROFILE_COST_S = {"eager": 5.0, "torchscript": 10.0, "cudagraphs": 8.0, "onnxruntime": 30.0, "compile": 75.0,
                  "tensorrt": 100.0}  # fmt: skip
"""Seconds a profile item may take on an H100 (build, warm-up, timing, numerics; hg8 at 256 px,
batch 32, the slow end): an item starts only with this much of the budget left, plus
:data:`PROFILE_RESERVE_S`. It also orders the backends, cheapest first; a backend not named
here counts 60 s."""

PROFILE_RESERVE_S = 75.0
"""Budget seconds the profile matrix leaves to the issue-19 checks after it."""

TRAIN_COMPILED_NEED_S = 150.0
"""Budget seconds the compiled bf16 training check needs to start (Inductor compiles the
forward and backward of hg1: about a minute on an H100)."""

DRY_RUN_SKIPS = {
    "compile": "Inductor's C++ build takes minutes on 2 cores",
    "onnxruntime": "the ONNX export takes 10-20 s on 2 cores",
}
"""Backends the dry run does not build (their refusals are still checked)."""

GPU_SUBSETS = {
    "compile": {("fp32", False, False), ("fp32", True, False), ("fp16", False, True)},
    "tensorrt": {("fp32", False, False), ("fp32", True, False), ("fp16", False, False)},
}
"""(precision, tf32, channels_last) the matrix builds for the backends whose builds take tens of
seconds: IEEE and TF32 fp32 (the TF32 check needs both) and one half-precision setting."""

EXPENSIVE = ("compile", "tensorrt")
"""Backends whose settings take tens of seconds to build; the matrix stops starting them after
:data:`EXPENSIVE_SHARE` of the budget, so that the later checks keep their time."""
EXPENSIVE_SHARE = 0.55


@dataclass
class Result:
    """One checked thing: ``status`` is ``"PASS"``, ``"FAIL"`` or ``"SKIP"``."""

    status: str
    name: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"


@dataclass
class Context:
    """What the checks share: the device, sizes, the model and its float64 reference, the
    measured ceilings and the tables written at the end."""

    device: torch.device
    dry_run: bool
    out: Path
    cache: Path
    budget_s: float
    start: float = field(default_factory=time.perf_counter)
    model: Any = None
    variant: str = ""
    batch: int = 0
    size: int = 0
    reference64: torch.Tensor | None = None
    ceilings: dict[tuple[str, bool], Ceilings] = field(default_factory=dict)
    errors: dict[tuple[str, str, bool, bool], float] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    train_records: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] | None = None

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def row(self, table: str, **values: Any) -> None:
        self.tables.setdefault(table, []).append(values)

    def tf32_capable(self) -> bool:
        """A GPU with TF32 tensor cores (compute capability >= 8.0)."""
        return self.cuda and torch.cuda.get_device_capability(self.device)[0] >= 8


def free(ctx: Context) -> None:
    gc.collect()
    if ctx.cuda:
        torch.cuda.synchronize(ctx.device)
        torch.cuda.empty_cache()


def relative_error(output: Any, reference64: torch.Tensor) -> float:
    """max |final heatmaps - reference| / max |reference|, in float64 (``inf`` for NaN/inf)."""
    out = final_stack(output).detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(out).all()):
        return float("inf")
    return float((out - reference64).abs().max() / reference64.abs().max())


def bound_for(precision: str, tf32: bool) -> float:
    """IEEE fp32: :data:`IEEE_RTOL`; else the profiler's relative tolerance (:data:`RTOL`)."""
    if precision == "fp32":
        return RTOL["tf32"] if tf32 else IEEE_RTOL
    return RTOL[precision]


def settings_label(precision: str, tf32: bool, channels_last: bool) -> str:
    return precision + ("+tf32" if tf32 else "") + ("+cl" if channels_last else "")


def check_setup(ctx: Context) -> Iterator[Result]:
    """The checked model (hg1 at 128 px, batch 8 on CUDA; a tiny two-stack hourglass at 32 px,
    batch 2 in the dry run), its fixed input and the float64 CPU reference of its final stack."""
    if ctx.dry_run:
        from hgbench.models.hourglass import StackedHourglass

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = StackedHourglass(num_stacks=2, num_joints=16, num_features=16, depth=1, stem_channels=8)
        ctx.model, ctx.variant, ctx.batch, ctx.size = model.eval().to(ctx.device), "tiny", 2, 32
    else:
        from hgbench.config import get_variant
        from hgbench.profile.sweep import build_profiled_model

        ctx.model = build_profiled_model(get_variant("hg1"), 16, 128, ctx.device)
        ctx.variant, ctx.batch, ctx.size = "hg1", 8, 128
    model64 = copy.deepcopy(ctx.model).to("cpu", torch.float64).eval()
    with torch.inference_mode():
        ctx.reference64 = final_stack(model64(make_input(ctx.batch, ctx.size).double())).clone()
    yield Result(
        "PASS",
        "setup",
        f"{ctx.variant} at {ctx.size} px, batch {ctx.batch}, on {ctx.device}; float64 CPU reference, "
        f"max |heatmap| {float(ctx.reference64.abs().max()):.3f}",
    )


# --- training and data parallel (issue 28) ---------------------------------------------------------


def _train_protocol(ctx: Context, name: str, **changes: Any):
    """The smoke protocol cut down for a check: hg1-sized, synthetic data, few steps."""
    import dataclasses

    from hgbench.config import load_protocol

    size = 64 if ctx.dry_run else 128
    sizes = {"input_size": size, "output_size": size // 4, "batch_size": 2 if ctx.dry_run else 16,
             "val_max_samples": 2 if ctx.dry_run else 16, "num_workers": 0}  # fmt: skip
    return dataclasses.replace(load_protocol("smoke"), name=name, **{**sizes, **changes})


def _train(ctx: Context, protocol, results: str, **kw: Any):
    from hgbench.config import get_variant
    from hgbench.train import train_variant

    return train_variant(get_variant("hg1"), protocol, "synthetic", None, ctx.cache / results, device=ctx.device, **kw)


def _weights(record) -> dict[str, torch.Tensor]:
    return torch.load(Path(record.path).parent / "checkpoint.pt", weights_only=True, map_location="cpu")["model_state"]


def check_train_compiled(ctx: Context) -> Iterator[Result]:
    """hg1 trained in bf16, channels_last, with the compiled step, on CUDA."""
    import math

    if not ctx.cuda:
        yield Result("SKIP", "train compiled", "CUDA only (on the CPU bf16 + channels_last + compile is refused, "
                                               "and Inductor's C++ build takes minutes on 2 cores)")  # fmt: skip
        return
    if ctx.left() < TRAIN_COMPILED_NEED_S:
        yield Result("SKIP", "train compiled", f"time budget: {ctx.elapsed():.0f} s spent")
        return
    protocol = _train_protocol(ctx, "gpucheck-bf16", precision="bf16", channels_last=True, compile=True, epochs=2,
                               steps_per_epoch=8)  # fmt: skip
    start = time.perf_counter()
    rec = _train(ctx, protocol, "train-compiled")
    ctx.train_records["compiled"] = rec.to_dict()
    losses = [h["train_loss"] for h in rec["history"]]
    checks = {"complete": rec["complete"], "finite losses": all(math.isfinite(v) for v in losses),
              "bf16/channels_last/compile": (rec["precision"], rec["channels_last"], rec["compile"]) == ("bf16", True, True),
              "cudnn.benchmark on": rec["cudnn_benchmark"] is True,
              "warm-up left out": rec["warmup_steps_excluded"] > 0 and rec["samples_per_s"] > 0}  # fmt: skip
    failed = [k for k, ok in checks.items() if not ok]
    yield Result("FAIL" if failed else "PASS", "train compiled",
                 (f"failed: {', '.join(failed)}; " if failed else "")
                 + f"{rec['steps']} steps in {time.perf_counter() - start:.0f} s, losses {losses}, "
                 f"{rec['samples_per_s']:.0f} samples/s after {rec['warmup_steps_excluded']} warm-up steps "
                 f"({rec['samples_per_s_all_steps']:.0f} with them)")  # fmt: skip


def check_train_resume(ctx: Context) -> Iterator[Result]:
    """Deterministic fp32 training stopped by SIGTERM mid-epoch and resumed = a run never stopped."""
    import signal

    from hgbench.train import TrainingInterrupted

    steps, every, stop_at = (3, 2, 3) if ctx.dry_run else (20, 10, 15)
    protocol = _train_protocol(ctx, "gpucheck-det", epochs=2, steps_per_epoch=steps, checkpoint_every_steps=every)
    before = (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    with tf32_mode(False):
        whole = _train(ctx, protocol, "train-whole", deterministic=True)

        def sigterm_at(event: str, info: dict) -> None:
            if event == "step" and info["step"] == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)  # the engine saves a checkpoint after this step and stops

        try:
            _train(ctx, protocol, "train-split", deterministic=True, progress=sigterm_at)
            yield Result("FAIL", "train resume sigterm", f"the run did not stop at step {stop_at} on SIGTERM")
            return
        except TrainingInterrupted as e:
            yield Result("PASS" if e.exit_code == 128 + signal.SIGTERM else "FAIL", "train resume sigterm",
                         f"{' '.join(str(e).split())[:300]} (exit status {e.exit_code})")  # fmt: skip
        resumed = _train(ctx, protocol, "train-split", deterministic=True)
    ctx.train_records.update(whole=whole.to_dict(), resumed=resumed.to_dict())
    a, b = _weights(whole), _weights(resumed)
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    same_losses = [h["train_loss"] for h in whole["history"]] == [h["train_loss"] for h in resumed["history"]]
    sessions = [(s["start_step"], s["end_step"]) for s in resumed["sessions"]]
    ok = not differ and same_losses and len(sessions) == 2 and resumed["deterministic"] is True
    yield Result("PASS" if ok else "FAIL", "train resume identical",
                 f"{len(a)} tensors, {len(differ)} differ{' (' + ', '.join(differ[:3]) + ')' if differ else ''}; "
                 f"losses {'equal' if same_losses else 'differ'}; sessions {sessions}; recorded deterministic="
                 f"{resumed['deterministic']}, cudnn_benchmark={resumed['cudnn_benchmark']}, "
                 f"CUBLAS_WORKSPACE_CONFIG={resumed['cublas_workspace_config']}")  # fmt: skip
    after = (torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled())
    yield Result("PASS" if after == before else "FAIL", "train flags restored", f"(benchmark, deterministic) "
                 f"{before} before, {after} after")  # fmt: skip


def check_ddp(ctx: Context) -> Iterator[Result]:
    """DistributedDataParallel over NCCL (gloo in the dry run) on one device: its steps equal
    plain steps, and the control group (gloo) agrees."""
    import socket

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from hgbench.config import get_variant
    from hgbench.models import create_model
    from hgbench.train.distributed import backend_for, broadcast_from_main, control_group, max_over_ranks
    from hgbench.train.optim import build_optimizer
    from hgbench.train.step import TrainStep, prepare_model

    if dist.is_initialized():
        yield Result("SKIP", "ddp", "a process group is already initialised in this process")
        return
    backend = backend_for(ctx.device)
    dev = torch.device("cuda", torch.cuda.current_device()) if ctx.cuda else ctx.device  # DDP wants an index
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if ctx.cuda:
        torch.cuda.set_device(dev)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", world_size=1, rank=0)
    try:
        spec, size, batch = get_variant("hg1"), (64 if ctx.dry_run else 128), (2 if ctx.dry_run else 16)
        protocol = _train_protocol(ctx, "gpucheck-ddp")
        with torch.random.fork_rng(devices=[dev] if ctx.cuda else []):
            torch.manual_seed(0)
            base = create_model(spec, 16, input_size=size)
            batches = [{"image": torch.rand(batch, 3, size, size), "heatmaps": torch.rand(batch, 16, size // 4, size // 4) * 0.1,
                        "target_weight": torch.ones(batch, 16)} for _ in range(3)]  # fmt: skip
        plain = prepare_model(copy.deepcopy(base), dev)
        ddp = DistributedDataParallel(
            prepare_model(copy.deepcopy(base), dev), device_ids=[dev.index] if ctx.cuda else None
        )
        losses = {}
        with tf32_mode(False):
            for name, model in (("plain", plain), ("ddp", ddp)):
                step = TrainStep(
                    model, build_optimizer(protocol.optimizer, model.parameters(), dev.type), spec.supervision, dev
                )
                losses[name] = [float(step(b)) for b in batches]
        a, b = plain.state_dict(), ddp.module.state_dict()
        gap = max(float((a[k].double() - b[k].double()).abs().max() / (a[k].double().abs().max() + 1e-12))
                  for k in a if a[k].is_floating_point())  # fmt: skip
        ok = gap <= 1e-4 and all(
            abs(x - y) <= 1e-4 * abs(x) for x, y in zip(losses["plain"], losses["ddp"], strict=True)
        )
        yield Result("PASS" if ok else "FAIL", f"ddp {backend}",
                     f"3 steps of hg1 at {size} px, batch {batch}: losses {losses['ddp']} vs plain {losses['plain']}; "
                     f"weights within {gap:.1e} (<= 1e-4) of the plain model's")  # fmt: skip
        group = control_group()
        agreed = broadcast_from_main({"stop": None}, group), max_over_ranks([0, 1], group)
        yield Result("PASS" if agreed == ({"stop": None}, [0, 1]) else "FAIL", "ddp control group",
                     f"gloo group beside {backend}: broadcast and max over the ranks {agreed}")  # fmt: skip
    finally:
        dist.destroy_process_group()
        free(ctx)


# --- the checks ------------------------------------------------------------------------------------


def check_tf32_api(ctx: Context) -> Iterator[Result]:
    before = tf32_state()
    for enabled in (True, False):
        value = "tf32" if enabled else "ieee"
        with tf32_mode(enabled):
            state = tf32_state()
            legacy_ok = state["legacy"] == (enabled, enabled)
            new_ok = not has_fp32_precision_api() or all(state[k] == value for k in ("cudnn", "matmul", "conv", "rnn"))
        name = f"tf32 api {value}"
        if legacy_ok and new_ok:
            yield Result("PASS", name, f"legacy flags and fp32_precision agree: {state}")
        else:
            yield Result("FAIL", name, f"inside tf32_mode({enabled}): {state}")
    after = tf32_state()
    yield Result("PASS" if after == before else "FAIL", "tf32 api restore", f"before {before}, after {after}")


def check_events_vs_wall(ctx: Context) -> Iterator[Result]:
    if not ctx.cuda:
        yield Result("SKIP", "events vs wall", "CUDA only")
        return
    from hgbench.profile.latency import time_callable

    a = torch.randn(8192, 8192, device=ctx.device)

    def long_kernel() -> None:
        for _ in range(4):
            torch.mm(a, a)

    with tf32_mode(False), torch.inference_mode():
        events = time_callable(long_kernel, warmup_iters=2, min_iters=5, min_time_s=0.0, device=ctx.device).p50
        walls = []
        for _ in range(5):
            torch.cuda.synchronize(ctx.device)
            t0 = time.perf_counter()
            long_kernel()
            torch.cuda.synchronize(ctx.device)
            walls.append((time.perf_counter() - t0) * 1e3)
    wall = sorted(walls)[len(walls) // 2]
    gap = abs(events - wall) / wall
    yield Result("PASS" if gap <= 0.05 else "FAIL", "events vs wall",
                 f"CUDA events p50 {events:.2f} ms, wall clock p50 {wall:.2f} ms ({gap:.1%} apart, <= 5 %)")  # fmt: skip


def check_ceilings(ctx: Context) -> Iterator[Result]:
    from hgbench.profile.roofline import CUDA_MATMUL_N, ceilings_key, get_ceilings

    sizes = (
        {"matmul_n": 64, "copy_mib": 1, "conv_shape": (1, 8, 8), "min_time_s": 0.0}
        if ctx.dry_run
        else {"min_time_s": 0.3}
    )
    for precision, tf32 in PRECISION_SETTINGS:
        c = get_ceilings(
            ctx.device, precision, tf32=tf32, threads=None if ctx.cuda else 1, cache_dir=ctx.cache, **sizes
        )
        ctx.ceilings[(precision, tf32)] = c
        ctx.row("ceilings", precision=precision, tf32=tf32, measured_tf32=c.tf32, matmul_n=c.matmul_n,
                mm_tflops=c.mm_tflops, conv_tflops=c.conv_tflops, matmul_tflops=c.matmul_tflops, copy_gib_s=c.copy_gib_s)  # fmt: skip
        expected_tf32 = tf32 and ctx.cuda and precision == "fp32"
        ok = c.tf32 == expected_tf32 and (not ctx.cuda or c.matmul_n == CUDA_MATMUL_N)
        yield Result("PASS" if ok else "FAIL", f"ceilings {settings_label(precision, tf32, False)}",
                     f"matmul {c.mm_tflops:.2f} TFLOP/s (n={c.matmul_n}), conv {c.conv_tflops:.2f}, copy {c.copy_gib_s:.0f} GiB/s, "
                     f"tf32={c.tf32}")  # fmt: skip
    cache = json.loads((ctx.cache / "ceilings.json").read_text())
    threads = None if ctx.cuda else 1
    keys = {ceilings_key(ctx.device, p, threads, tf32=t) for p, t in PRECISION_SETTINGS}
    expected = 4 if ctx.cuda else 3  # the CPU ignores TF32
    yield Result("PASS" if len(keys) == expected and keys <= set(cache) else "FAIL", "ceilings keys",
                 f"{len(keys)} keys cached per (precision, tf32): {sorted(keys)}")  # fmt: skip
    if ctx.tf32_capable():
        ieee, tf32 = ctx.ceilings[("fp32", False)].mm_tflops, ctx.ceilings[("fp32", True)].mm_tflops
        yield Result("PASS" if tf32 > 1.5 * ieee else "FAIL", "ceilings tf32 vs ieee",
                     f"TF32 matmul {tf32:.1f} TFLOP/s vs IEEE {ieee:.1f} (TF32 on for one, off for the other)")  # fmt: skip
    else:
        yield Result("SKIP", "ceilings tf32 vs ieee", "needs a GPU with TF32 (compute capability >= 8.0)")


def check_numerics(ctx: Context) -> Iterator[Result]:
    x = make_input(ctx.batch, ctx.size, ctx.device)
    for name in BACKENDS:
        impl = get_backend(name)
        reason = impl.available(ctx.device)
        for precision, tf32 in PRECISION_SETTINGS:
            for channels_last in (False, True):
                label = f"numerics {name} {settings_label(precision, tf32, channels_last)}"
                settings = RunSettings(precision=precision, tf32=tf32, channels_last=channels_last, cache_dir=ctx.cache)
                refused = impl.unsupported(settings)
                if refused is not None:
                    try:
                        impl.prepare(ctx.model, x, settings)
                        yield Result("FAIL", label, "prepare did not refuse what unsupported() refuses")
                    except RuntimeError as e:
                        yield Result("PASS", label, f"refused: {e}")
                    continue
                if reason is not None:
                    continue  # one SKIP line per backend, below
                if tf32 and not ctx.cuda:
                    yield Result("SKIP", label, "TF32 is CUDA-only")
                    continue
                if ctx.dry_run and name in DRY_RUN_SKIPS:
                    yield Result(
                        "SKIP", label, f"dry run: {DRY_RUN_SKIPS[name]} (tests/profile/test_backends.py runs it)"
                    )
                    continue
                if ctx.dry_run and name != "eager" and (precision, channels_last) != ("fp32", False):
                    yield Result(
                        "SKIP", label, "dry run: fp32 NCHW only beside eager (one export or trace is the plumbing)"
                    )
                    continue
                if name in GPU_SUBSETS and (precision, tf32, channels_last) not in GPU_SUBSETS[name]:
                    subset = ", ".join(settings_label(*s) for s in sorted(GPU_SUBSETS[name]))
                    yield Result("SKIP", label, f"time budget: {name} builds {subset} only")
                    continue
                if name in EXPENSIVE and ctx.elapsed() > EXPENSIVE_SHARE * ctx.budget_s:
                    yield Result("SKIP", label, f"time budget: {ctx.elapsed():.0f} s spent")
                    continue
                yield _numerics_one(ctx, impl, settings, x, label)
        if reason is not None:
            yield Result("SKIP", f"numerics {name}", reason)


def _numerics_one(ctx: Context, impl, settings: RunSettings, x: torch.Tensor, label: str) -> Result:
    prepared = out = None
    try:
        prepared = impl.prepare(ctx.model, x, settings)
        with prepared.context():
            out = prepared.fn(prepared.prepare_input(x))
            error = relative_error(out, ctx.reference64)
        bound = bound_for(settings.precision, settings.tf32)
        ctx.errors[(impl.name, settings.precision, settings.tf32, settings.channels_last)] = error
        ctx.row("numerics", backend=impl.name, precision=settings.precision, tf32=settings.tf32,
                channels_last=settings.channels_last, relative_error=error, bound=bound,
                build_time_s=prepared.build_time_s, notes="; ".join(prepared.notes))  # fmt: skip
        kind = "IEEE" if settings.precision == "fp32" and not settings.tf32 else "tolerance"
        return Result("PASS" if error <= bound else "FAIL", label,
                      f"relative error {error:.2e} vs float64 (<= {bound:.0e}, {kind}); build {prepared.build_time_s:.1f} s")  # fmt: skip
    except Exception as e:  # noqa: BLE001 - one failing setting is one FAIL line
        return Result("FAIL", label, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    finally:
        prepared = out = None
        impl.release()
        free(ctx)


def check_tf32_takes_effect(ctx: Context) -> Iterator[Result]:
    for name in BACKENDS:
        label = f"tf32 takes effect {name}" + (" (use_tf32)" if name == "onnxruntime" else "")
        ieee, tf32 = ctx.errors.get((name, "fp32", False, False)), ctx.errors.get((name, "fp32", True, False))
        if not ctx.tf32_capable():
            yield Result("SKIP", label, "needs a GPU with TF32 (compute capability >= 8.0)")
        elif ieee is None or tf32 is None:
            yield Result("SKIP", label, "fp32 and fp32+tf32 numerics did not both run")
        elif name == "tensorrt":  # disable_tf32=False only lets TensorRT's builder choose TF32
            yield Result("PASS", label, f"TF32 error {tf32:.2e}, IEEE {ieee:.2e} (TensorRT chooses; informational)")
        else:
            ok = ieee <= IEEE_RTOL and tf32 > 2 * ieee
            yield Result("PASS" if ok else "FAIL", label,
                         f"TF32 error {tf32:.2e} vs IEEE {ieee:.2e} (TF32 on when asked, off otherwise: > 2x)")  # fmt: skip


def check_ort_events(ctx: Context) -> Iterator[Result]:
    impl = get_backend("onnxruntime")
    if not ctx.cuda:
        yield Result("SKIP", "ort events", "CUDA only (the CPU path is timed with perf_counter)")
        return
    reason = impl.available(ctx.device)
    if reason is not None:
        yield Result("SKIP", "ort events", reason)
        return
    from hgbench.profile.latency import time_callable

    x = make_input(ctx.batch, ctx.size, ctx.device)
    prepared = impl.prepare(ctx.model, x, RunSettings(cache_dir=ctx.cache))
    try:
        xi = prepared.prepare_input(x)
        with prepared.context():
            events = time_callable(
                lambda: prepared.fn(xi), warmup_iters=3, min_iters=20, min_time_s=0.0, device=ctx.device
            ).p50
            walls = []
            for _ in range(20):
                torch.cuda.synchronize(ctx.device)
                t0 = time.perf_counter()
                prepared.fn(xi)
                torch.cuda.synchronize(ctx.device)
                walls.append((time.perf_counter() - t0) * 1e3)
        wall = sorted(walls)[len(walls) // 2]
        yield Result("PASS" if events >= 0.7 * wall else "FAIL", "ort events",
                     f"CUDA events p50 {events:.3f} ms vs wall clock {wall:.3f} ms (events must bracket ONNX Runtime's "
                     f"kernels: >= 70 %); notes: {'; '.join(prepared.notes)}")  # fmt: skip
    finally:
        prepared = None
        free(ctx)


def _profile(ctx: Context, backend: str, settings: RunSettings, **kw: Any) -> dict[str, Any]:
    from hgbench.profile.run import profile_model

    args = {"variant": ctx.variant, "num_joints": 16, "batch_size": ctx.batch, "input_size": ctx.size,
            "warmup_iters": 2, "min_iters": 5, "min_time_s": 0.0, "threads": None if ctx.cuda else 1,
            "ceilings": ctx.ceilings.get((settings.precision, settings.tf32)), "cache_dir": ctx.cache}  # fmt: skip
    body = profile_model(ctx.model, backend=backend, settings=settings, **{**args, **kw})
    get_backend(backend).release()
    free(ctx)
    return body


def check_peak_memory(ctx: Context) -> Iterator[Result]:
    names = [n for n in BACKENDS if get_backend(n).available(ctx.device) is None]
    if not ctx.cuda:
        names = ["eager"]  # the figures below are CUDA's; the CPU records peak RSS
    for name in names:
        precision = "fp16" if name == "tensorrt" else "fp32"
        if name in EXPENSIVE and ctx.elapsed() > EXPENSIVE_SHARE * ctx.budget_s + 60:
            yield Result("SKIP", f"peak memory {name}", f"time budget: {ctx.elapsed():.0f} s spent")
            continue
        body = _profile(ctx, name, RunSettings(precision=precision, cache_dir=ctx.cache))
        memory = body["memory"] or {}
        ctx.row("memory", backend=name, precision=precision, status=body["status"], peak_memory_mib=body["peak_memory_mib"],
                **{k: v for k, v in memory.items() if k != "method"})  # fmt: skip
        label = f"peak memory {name}"
        if body["status"] != "ok":
            yield Result("FAIL", label, body["error"])
        elif not ctx.cuda:
            ok = memory.get("peak_source") == "rss"
            yield Result(
                "PASS" if ok else "FAIL", label, f"CPU peak RSS increase {body['peak_memory_mib']} MiB ({memory})"
            )
        else:
            allocated, device_wide = memory["allocated_peak_mib"], memory["device_peak_mib"]
            source = get_backend(name).peak_memory_source(RunSettings(precision=precision))
            checks = [device_wide >= allocated - 16, memory["peak_source"] == source,
                      body["peak_memory_mib"] == (device_wide if source == "device" else allocated)]  # fmt: skip
            if name == "eager":
                checks.append(abs(device_wide - allocated) <= 0.25 * allocated + 64)
            elif source == "device":
                checks.append(device_wide > allocated + 1)  # it sees memory past the allocator
            yield Result("PASS" if all(checks) else "FAIL", label,
                         f"peak {body['peak_memory_mib']:.0f} MiB ({source}); allocator {allocated:.0f}, "
                         f"device-wide {device_wide:.0f}, reserved {memory['reserved_peak_mib']:.0f} MiB")  # fmt: skip


def check_compile_release(ctx: Context) -> Iterator[Result]:
    impl = get_backend("compile")
    if not ctx.cuda:
        yield Result("SKIP", "compile release", "CUDA only (CUDA Graph Trees)")
        return
    reason = impl.available(ctx.device)
    if reason is not None:
        yield Result("SKIP", "compile release", reason)
        return
    if ctx.left() < 45:  # a reduce-overhead compile of hg1: about half a minute
        yield Result("SKIP", "compile release", f"time budget: {ctx.elapsed():.0f} s spent")
        return
    free(ctx)
    before = torch.cuda.memory_reserved(ctx.device) / 2**20
    x = make_input(ctx.batch, ctx.size, ctx.device)
    prepared = impl.prepare(ctx.model, x, RunSettings(compile_mode="reduce-overhead"))
    xi = prepared.prepare_input(x)
    with prepared.context():
        for _ in range(3):
            prepared.fn(xi)
    torch.cuda.synchronize(ctx.device)
    prepared = xi = None
    free(ctx)
    held = torch.cuda.memory_reserved(ctx.device) / 2**20
    impl.release()
    free(ctx)
    after = torch.cuda.memory_reserved(ctx.device) / 2**20
    yield Result("PASS" if after <= before + 32 else "FAIL", "compile release",
                 f"reserved {before:.0f} MiB before, {held:.0f} with the dropped setting's CUDA graph trees, "
                 f"{after:.0f} after release() (<= before + 32)")  # fmt: skip


def check_tf32_roofline(ctx: Context) -> Iterator[Result]:
    # ceilings=None: profile_model looks them up itself (get_ceilings by precision and TF32)
    body = _profile(ctx, "eager", RunSettings(tf32=True, cache_dir=ctx.cache), ceilings=None)
    if body["status"] != "ok":
        yield Result("FAIL", "tf32 roofline", body["error"])
        return
    ceilings, efficiency = body["roofline"]["ceilings"], body["roofline"]["efficiency"]
    if ctx.cuda:
        ok = ceilings["tf32"] is True and efficiency <= 1.0
        yield Result("PASS" if ok else "FAIL", "tf32 roofline",
                     f"eager fp32+tf32 divided by the tf32={ceilings['tf32']} ceiling "
                     f"({ceilings['matmul_tflops']:.1f} TFLOP/s): efficiency {efficiency:.2f} (<= 1)")  # fmt: skip
    else:
        yield Result("PASS" if ceilings["tf32"] is False else "FAIL", "tf32 roofline",
                     f"CPU: the IEEE ceiling serves --tf32 (tf32={ceilings['tf32']}); efficiency {efficiency:.2f}")  # fmt: skip


def check_provenance(ctx: Context) -> Iterator[Result]:
    from hgbench.records.provenance import NVML_FIELDS, collect_provenance

    ctx.provenance = prov = collect_provenance(threads=None)
    fields = {k: prov[k] for k in NVML_FIELDS}
    if not ctx.cuda:
        ok = all(v is None for v in fields.values())
        yield Result("PASS" if ok else "FAIL", "provenance", f"CPU: NVML fields None ({fields})")
        return
    try:
        import pynvml  # noqa: F401
    except ImportError:
        yield Result("SKIP", "provenance gpu fields", "nvidia-ml-py not installed: pip install 'hgbench[gpu]'")
        return
    clocks = fields["gpu_clocks_mhz"] or {}  # the power limit may be refused in a VM: reported, not required
    ok = bool(clocks.get("sm_max")) and isinstance(fields["gpu_throttle_reasons"], list)
    yield Result(
        "PASS" if ok else "FAIL", "provenance gpu fields", f"{prov['gpu_name']}, driver {prov['gpu_driver']}: {fields}"
    )
    sampled = [g for body in ctx.records for g in ((body["latency_ms"] or {}).get("gpu") or []) if g]
    if not ctx.records:
        yield Result("SKIP", "gpu state while timed", "no profile record was made")
        return
    medians = sorted(g["sm_mhz"]["median"] for g in sampled if g.get("sm_mhz"))
    ok = len(sampled) == sum(1 for body in ctx.records if body["latency_ms"]) and bool(medians)
    yield Result("PASS" if ok else "FAIL", "gpu state while timed",
                 f"{len(sampled)} of {len(ctx.records)} profile records carry the GPU state of their timed window; "
                 f"median SM clock {medians[0] if medians else None}-{medians[-1] if medians else None} MHz "
                 f"(idle, at provenance time: {clocks.get('sm')} MHz)")  # fmt: skip


@dataclass(frozen=True)
class ProfileItem:
    """One setting of the profile matrix: ``variant`` at :data:`PROFILE_INPUT_PX` (64 px in the
    dry run) under ``backend`` in ``precision`` at ``batch``."""

    variant: str
    backend: str
    precision: str
    batch: int

    @property
    def label(self) -> str:
        return f"profile {self.variant} {self.backend} {self.precision} b{self.batch}"


def profile_items(variants: Iterable[str], backends: Iterable[str], precisions: Iterable[str],
                  batches: Iterable[int]) -> list[ProfileItem]:  # fmt: skip
    """The profile matrix in priority order: first the whole matrix of the backends that build
    in seconds (:data:`PROFILE_COST_S` below 60 s, cheapest first: variant, batch, precision in
    the order given); then the backends whose builds take a minute, each precision on the first
    variant at the first batch (precision by precision, the backends in turn, so that each is
    built once before the budget runs short); then their rest."""
    variants, precisions, batches = list(variants), list(precisions), list(batches)
    order = sorted(backends, key=lambda b: PROFILE_COST_S.get(b, 60.0))
    cheap = [b for b in order if PROFILE_COST_S.get(b, 60.0) < 60.0]
    slow = [b for b in order if b not in cheap]
    first = [ProfileItem(v, b, p, n) for b in cheap for v in variants for n in batches for p in precisions]
    first += [ProfileItem(variants[0], b, p, batches[0]) for p in precisions for b in slow]
    rest = [ProfileItem(v, b, p, n) for b in slow for v in variants for n in batches for p in precisions]
    return first + [item for item in rest if item not in first]


def quantized_items(variants: Iterable[str], backends: Iterable[str], batches: Iterable[int]) -> list[ProfileItem]:
    """The quantized items (:data:`PROFILE_QUANTIZED`) of the backends that build them, in
    :func:`profile_items`' order: after the floating-point matrix in the run."""
    items = profile_items(variants, backends, PROFILE_QUANTIZED, batches)
    return [i for i in items if i.precision in BACKENDS[i.backend].quantized]


def check_profile(ctx: Context) -> Iterator[Result]:
    """The profile matrix (:func:`profile_items`): one line per setting; its records and table."""
    from hgbench.config import get_variant
    from hgbench.profile.complexity import complexity_record
    from hgbench.profile.run import reference_output
    from hgbench.profile.sweep import build_profiled_model

    if ctx.dry_run:  # the CPU's int8 path too: ONNX Runtime's QDQ model
        items, size = profile_items(("hg1",), ("eager", "torchscript"), ("fp32",), (1,)), 64
        items += quantized_items(("hg1",), ("onnxruntime",), (1,))
    else:
        items = profile_items(PROFILE_VARIANTS, BACKENDS, PROFILE_PRECISIONS, PROFILE_BATCHES)
        items += quantized_items(PROFILE_VARIANTS, BACKENDS, PROFILE_BATCHES)
        size = PROFILE_INPUT_PX
    count = 8 if ctx.dry_run else CALIBRATION_COUNT
    calibration = _calibration(size, count) if any(i.precision in PROFILE_QUANTIZED for i in items) else None
    unavailable = {b: get_backend(b).available(ctx.device) for b in dict.fromkeys(i.backend for i in items)}
    for backend, reason in unavailable.items():
        if reason is not None:
            yield Result("SKIP", f"profile {backend}", reason)
    state: dict[str, Any] = {}  # variant -> (model, complexity, {batch: reference})
    for item in items:
        if unavailable[item.backend] is not None:
            continue
        quantized = item.precision in PROFILE_QUANTIZED
        settings = RunSettings(
            precision=item.precision, cache_dir=ctx.cache, calibration=calibration if quantized else None
        )
        refused = get_backend(item.backend).unsupported(settings) or get_backend(item.backend).unsupported_on(
            settings, ctx.device
        )
        if refused is not None:
            yield Result("SKIP", item.label, f"refused by the backend: {refused}")
            continue
        need = PROFILE_COST_S.get(item.backend, 60.0) + PROFILE_RESERVE_S
        if not ctx.dry_run and ctx.left() < need:
            yield Result("SKIP", item.label, f"time budget: {ctx.elapsed():.0f} s spent, {need:.0f} s needed")
            continue
        if item.variant not in state:
            state.clear()  # one network on the device at a time
            free(ctx)
            model = build_profiled_model(get_variant(item.variant), 16, size, ctx.device)
            state[item.variant] = (model, complexity_record(model, size), {})
        model, complexity, references = state[item.variant]
        if item.batch not in references:
            references[item.batch] = reference_output(model, item.batch, size)
        yield _profile_one(ctx, item, model, size, settings, complexity, references[item.batch])
    state.clear()
    free(ctx)


def _calibration(size: int, count: int):
    """``count`` synthetic training crops at ``size`` px (no data folder needed)."""
    from hgbench.profile.calibration_data import CalibrationSpec, calibration_set

    return calibration_set("synthetic", None, CalibrationSpec(count=count), input_size=size)


def _profile_one(ctx: Context, item: ProfileItem, model: Any, size: int, settings: RunSettings,
                 complexity: dict[str, Any], reference: Any) -> Result:  # fmt: skip
    """Profile one item (:func:`~hgbench.profile.run.profile_model`), keep its record and row."""
    from hgbench.profile.run import profile_model

    body = profile_model(model, variant=item.variant, num_joints=16, backend=item.backend, batch_size=item.batch,
                         input_size=size, settings=settings, threads=None if ctx.cuda else 1, warmup_iters=3,
                         min_iters=10, min_time_s=0.0 if ctx.dry_run else 0.2, complexity=complexity,
                         reference=reference, ceilings=ctx.ceilings.get((item.precision, False)), cache_dir=ctx.cache)  # fmt: skip
    get_backend(item.backend).release()
    free(ctx)
    ctx.records.append(body)
    numerics, latency = body["numerics"] or {}, body["latency_ms"] or {}
    gpu = (latency.get("gpu") or [None])[0] or {}
    ctx.row("profiles", variant=item.variant, input_size=size, backend=item.backend, precision=item.precision,
            batch_size=item.batch, p50_ms=latency.get("p50_ms"), throughput_samples_per_s=body["throughput_samples_per_s"],
            peak_memory_mib=body["peak_memory_mib"], peak_source=(body["memory"] or {}).get("peak_source"),
            numerics_ok=numerics.get("ok"), max_abs_error=numerics.get("max_abs_error"),
            efficiency=(body["roofline"] or {}).get("efficiency"), build_time_s=body["build_time_s"],
            sm_mhz_median=(gpu.get("sm_mhz") or {}).get("median"), throttle=";".join(gpu.get("throttle_reasons") or {}),
            cudnn_benchmark=latency.get("cudnn_benchmark"), status=body["status"], error=body["error"])  # fmt: skip
    if body["status"] != "ok":
        return Result("FAIL", item.label, body["error"] or "failed")
    if numerics.get("ok") is False:
        return Result("FAIL", item.label, f"numerics out of tolerance: max abs error {numerics.get('max_abs_error')}")
    return Result("PASS", item.label,
                  f"p50 {latency['p50_ms']:.3f} ms, {body['throughput_samples_per_s']:.0f} samples/s, peak "
                  f"{body['peak_memory_mib']:.0f} MiB, build {body['build_time_s']:.1f} s"
                  + (f", SM {gpu['sm_mhz']['median']} MHz while timed" if gpu.get("sm_mhz") else ""))  # fmt: skip


CHECKS: list[Callable[[Context], Iterable[Result]]] = [
    check_setup,
    # issue 28, in priority order: CUDA training, data parallel, the profile matrix
    check_train_compiled,
    check_train_resume,
    check_ddp,
    check_ceilings,  # before the matrix: its rooflines divide by these
    check_profile,
    # issue 19, with the time left
    check_tf32_api,
    check_events_vs_wall,
    check_numerics,
    check_tf32_takes_effect,
    check_ort_events,
    check_peak_memory,
    check_compile_release,
    check_tf32_roofline,
    check_provenance,
]
"""Every check, in the order run (the module docstring says what each checks)."""


# --- running and writing --------------------------------------------------------------------------


def run_checks(checks: Iterable[Callable[[Context], Iterable[Result]]], ctx: Context | None,
               emit: Callable[[Result], None] = lambda r: print(r.line(), flush=True)) -> list[Result]:  # fmt: skip
    """Run each check, emitting its results as they come; a check that raises is one FAIL line
    (with the exception) and the next check runs."""
    results: list[Result] = []
    for check in checks:
        name = check.__name__.removeprefix("check_").replace("_", " ")
        try:
            for result in check(ctx):
                emit(result)
                results.append(result)
        except Exception as e:  # noqa: BLE001 - a broken check is a FAIL, the others still run
            tail = traceback.format_exc().strip().splitlines()[-3:]
            result = Result(
                "FAIL", name, f"raised {type(e).__name__}: {' '.join(str(e).split())[:300]} ({' / '.join(tail)[:300]})"
            )
            emit(result)
            results.append(result)
    return results


def write_outputs(ctx: Context, results: list[Result], argv: list[str]) -> None:
    """The eight files under ``ctx.out`` (module docstring)."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / "checks.txt").write_text("".join(r.line() + "\n" for r in results))
    for table in ("numerics", "memory", "ceilings", "profiles"):
        rows = ctx.tables.get(table, [])
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with open(ctx.out / f"{table}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    rows = ctx.tables.get("profiles", [])
    lines = ["| variant | px | backend | precision | batch | p50 ms | samples/s | peak MiB | SM MHz | numerics | status |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in rows:
        fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {r['variant']} | {r['input_size']} | {r['backend']} | {r['precision']} | {r['batch_size']} | "
                     f"{fmt(r['p50_ms'], '.3f')} | {fmt(r['throughput_samples_per_s'], '.0f')} | "
                     f"{fmt(r['peak_memory_mib'], '.0f')} | {fmt(r['sm_mhz_median'], '.0f')} | {r['numerics_ok']} | "
                     f"{r['status']} |")  # fmt: skip
    (ctx.out / "profiles.md").write_text("\n".join(lines) + "\n")
    with open(ctx.out / "records.jsonl", "w") as f:
        for body in ctx.records:
            f.write(json.dumps(body.to_body()) + "\n")
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    (ctx.out / "run.json").write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/gpu_check.py", *argv]), "dry_run": ctx.dry_run,
        "device": str(ctx.device), "elapsed_s": round(ctx.elapsed(), 1), "counts": counts, "ieee_rtol": IEEE_RTOL,
        "provenance": ctx.provenance, "train_records": ctx.train_records,
    }, indent=1, default=str) + "\n")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run :data:`CHECKS`, write the tables; 0, or 1 on any FAIL."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="the same plumbing on the CPU with tiny sizes (also SMOKE_ALLOW_CPU=1)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where the tables go (default: $OUT, else ./gpu_check_out)"
    )
    parser.add_argument("--budget-s", type=float, default=None,
                        help=f"seconds for the checks, spent in priority order (default {GPU_BUDGET_S:.0f} on CUDA, "
                        f"{DRY_BUDGET_S:.0f} dry)")  # fmt: skip
    args = parser.parse_args(argv)
    dry_run = args.dry_run or os.environ.get("SMOKE_ALLOW_CPU") == "1"
    if not dry_run and not torch.cuda.is_available():
        print(f"FAIL  cuda: no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda}); run on a GPU, "
              "or pass --dry-run (SMOKE_ALLOW_CPU=1) to check the plumbing on the CPU", flush=True)  # fmt: skip
        return 1
    out = args.out or Path(os.environ.get("OUT") or "gpu_check_out")
    budget = args.budget_s if args.budget_s is not None else (DRY_BUDGET_S if dry_run else GPU_BUDGET_S)
    with tempfile.TemporaryDirectory(prefix="hgbench-gpu-check-") as cache:
        ctx = Context(device=torch.device("cpu" if dry_run else "cuda"), dry_run=dry_run, out=out, cache=Path(cache),
                      budget_s=budget)  # fmt: skip
        if not ctx.cuda:
            torch.set_num_threads(1)
        print(f"gpu_check: {'dry run on the CPU' if dry_run else torch.cuda.get_device_name()}, torch {torch.__version__}, "
              f"budget {budget:.0f} s, tables under {out}", flush=True)  # fmt: skip
        results = run_checks(CHECKS, ctx)
        write_outputs(ctx, results, argv)
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    print(
        f"gpu_check: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['SKIP']} SKIP in {ctx.elapsed():.0f} s",
        flush=True,
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
