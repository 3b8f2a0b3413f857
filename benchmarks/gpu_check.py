"""One prepared check of every CUDA path of the profiler (issue 19), in under 8 minutes on one
H100/H200, printing one line per check and exiting 1 on any FAIL.

Usage (from the repository root)::

    python benchmarks/gpu_check.py                 # on a CUDA machine
    python benchmarks/gpu_check.py --dry-run       # the same plumbing on the CPU, tiny sizes
    SMOKE_ALLOW_CPU=1 python benchmarks/gpu_check.py   # the same as --dry-run

Each line is ``PASS|FAIL|SKIP  <check>: <detail>``; the last one counts them. The tables go to
``$OUT`` (default ``./gpu_check_out``), at most eight files, flat (what the device tool brings
back): ``checks.txt`` (the lines), ``numerics.csv``, ``memory.csv``, ``ceilings.csv``,
``registry.csv`` and ``registry.md`` (the registry table), ``records.jsonl`` (its profile
records, one per line) and ``run.json`` (command, versions, provenance, elapsed time). Caches
(ceilings, ONNX files, TensorRT programs) go to a temporary folder, so every run measures anew.

What is checked, in order (the defect of issue 19 each one would catch in brackets):

1. ``tf32 api``: inside :func:`~hgbench.profile.tf32.tf32_mode` torch's new ``fp32_precision``
   settings (which Inductor reads) and the legacy flags agree, and both are restored (7).
2. ``events vs wall``: CUDA-event timing of a long kernel (4 matmuls of 8192^2, ~70 ms) agrees
   with the wall clock of synchronised calls within 5 %.
3. ``ceilings``: fp32 IEEE, fp32 TF32, bf16 and fp16 ceilings measured and cached under four
   keys; the CUDA matmul is 8192^3 (no launch-bound probe); the TF32 matmul ceiling is above
   the IEEE one on a GPU with TF32 (3, 10).
4. ``numerics``: every backend x {fp32, fp32+TF32, bf16, fp16} x {NCHW, channels_last} on hg1
   at 128 px, batch 8, against a float64 CPU reference; fp32 without TF32 must be IEEE-sized
   (relative error <= :data:`IEEE_RTOL`), the others within the profiler's tolerances; the
   refused combinations (ONNX Runtime bf16 and channels_last, TensorRT channels_last) must be
   refused (1, 4, 7). ``torch.compile`` and TensorRT build three settings each
   (:data:`GPU_SUBSETS`), for time.
5. ``tf32 takes effect``: per backend, the TF32 run's error is larger than the IEEE run's
   (TF32 on when asked, off otherwise); for ONNX Runtime this is ``use_tf32`` (1).
6. ``ort events``: CUDA events around an ONNX Runtime call bracket its kernels (event time
   near the wall time of a synchronised call; with the null stream they read ~0) (6, 11).
7. ``peak memory``: per backend, ``profile_model``'s record: the device-wide figure covers the
   allocator's, the backends whose memory bypasses the allocator report it, eager's two figures
   agree (2).
8. ``compile release``: the reserved CUDA memory after ``CompileBackend.release()`` of a
   ``reduce-overhead`` setting (CUDA Graph Trees) is back to where it was before (5).
9. ``tf32 roofline``: an eager fp32 ``--tf32`` profile is divided by the TF32 ceiling and its
   efficiency is at most 1 (3).
10. ``provenance``: the GPU fields read through NVML (clocks, power limit, throttle reasons).
11. ``registry``: the registry table (eager, TorchScript, CUDA graphs, then compile; fp32, bf16,
    fp16; batch 1 and 32; 256 px or the variant's fixed size) for as many distinct
    architectures as the time budget allows.

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

GPU_BUDGET_S, DRY_BUDGET_S = 450.0, 300.0
"""Default time budget of the checks (the registry table fills what is left). The dry run's
sizes are fixed small enough to finish within a minute on 2 cores; its budget only guards."""

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


REGISTRY_BACKENDS = ("eager", "torchscript", "cudagraphs", "compile")
REGISTRY_PRECISIONS = ("fp32", "bf16", "fp16")
REGISTRY_BATCHES = (1, 32)


def check_registry(ctx: Context) -> Iterator[Result]:
    """The registry table: cheap backends for every distinct architecture first, then compile
    for as many as the time allows."""
    from hgbench.config import list_variants
    from hgbench.profile.complexity import complexity_record
    from hgbench.profile.run import profile_model, reference_output
    from hgbench.profile.sweep import build_profiled_model

    if ctx.dry_run:
        specs, backends, precisions, batches = (
            [s for s in list_variants() if s.name == "hg1"],
            ("eager", "torchscript"),
            ("fp32",),
            (1,),
        )
    else:
        seen, specs = set(), []
        for spec in list_variants():
            key = repr(spec.architecture)
            if key not in seen:
                seen.add(key)
                specs.append(spec)
        backends, precisions, batches = REGISTRY_BACKENDS, REGISTRY_PRECISIONS, REGISTRY_BATCHES
    backends = [b for b in backends if get_backend(b).available(ctx.device) is None]
    cheap = [b for b in backends if b not in EXPENSIVE]
    phases = [cheap, [b for b in backends if b in EXPENSIVE]]
    failed, done, stopped = [], 0, None
    state: dict[str, Any] = {}  # variant -> (model, size, complexity, references)
    for phase in phases:
        for spec in specs:
            if not phase:
                break
            need = 60 if phase[0] in EXPENSIVE else 10
            if ctx.left() < need:
                stopped = stopped or f"{spec.name} ({'/'.join(phase)})"
                break
            size = 64 if ctx.dry_run else (spec.architecture.input_size or 256)
            if spec.name not in state:
                model = build_profiled_model(spec, 16, size, ctx.device)
                state[spec.name] = (model, complexity_record(model, size), {})
            model, complexity, references = state[spec.name]
            for bs in batches:
                if bs not in references:
                    references[bs] = reference_output(model, bs, size)
                for backend in phase:
                    for precision in precisions:
                        if ctx.left() < need:
                            stopped = stopped or f"{spec.name} {backend} {precision} batch {bs}"
                            break
                        body = profile_model(
                            model, variant=spec.name, num_joints=16, backend=backend, batch_size=bs, input_size=size,
                            settings=RunSettings(precision=precision, cache_dir=ctx.cache), threads=None if ctx.cuda else 1,
                            warmup_iters=3, min_iters=10, min_time_s=0.0 if ctx.dry_run else 0.2, complexity=complexity,
                            reference=references[bs], ceilings=ctx.ceilings.get((precision, False)), cache_dir=ctx.cache,
                        )  # fmt: skip
                        get_backend(backend).release()
                        free(ctx)
                        done += 1
                        ctx.records.append(body)
                        numerics = body["numerics"] or {}
                        ctx.row("registry", variant=spec.name, input_size=size, backend=backend, precision=precision,
                                batch_size=bs, p50_ms=(body["latency_ms"] or {}).get("p50_ms"),
                                throughput_samples_per_s=body["throughput_samples_per_s"],
                                peak_memory_mib=body["peak_memory_mib"], peak_source=(body["memory"] or {}).get("peak_source"),
                                numerics_ok=numerics.get("ok"), max_abs_error=numerics.get("max_abs_error"),
                                efficiency=(body["roofline"] or {}).get("efficiency"), build_time_s=body["build_time_s"],
                                status=body["status"], error=body["error"])  # fmt: skip
                        if body["status"] != "ok" or numerics.get("ok") is False:
                            failed.append(
                                f"{spec.name} {backend} {precision} b{bs}: {body['error'] or 'numerics out of tolerance'}"
                            )
        state.clear()
        free(ctx)
    variants = sorted({r["variant"] for r in ctx.tables.get("registry", [])})
    detail = (f"{done} settings of {len(variants)} architectures ({', '.join(variants)})"
              + (f"; stopped at {stopped} (time budget)" if stopped else ""))  # fmt: skip
    if failed:
        yield Result("FAIL", "registry", f"{detail}; {len(failed)} failed: {' | '.join(failed)[:800]}")
    else:
        yield Result("PASS" if done else "FAIL", "registry", detail)


CHECKS: list[Callable[[Context], Iterable[Result]]] = [
    check_setup,
    check_tf32_api,
    check_events_vs_wall,
    check_ceilings,
    check_numerics,
    check_tf32_takes_effect,
    check_ort_events,
    check_peak_memory,
    check_compile_release,
    check_tf32_roofline,
    check_provenance,
    check_registry,
]
"""Every check, in the order run."""


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
    for table in ("numerics", "memory", "ceilings", "registry"):
        rows = ctx.tables.get(table, [])
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with open(ctx.out / f"{table}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    rows = ctx.tables.get("registry", [])
    lines = ["| variant | px | backend | precision | batch | p50 ms | samples/s | peak MiB | numerics | status |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]  # fmt: skip
    for r in rows:
        fmt = lambda v, spec: "" if v is None else format(v, spec)  # noqa: E731
        lines.append(f"| {r['variant']} | {r['input_size']} | {r['backend']} | {r['precision']} | {r['batch_size']} | "
                     f"{fmt(r['p50_ms'], '.3f')} | {fmt(r['throughput_samples_per_s'], '.0f')} | "
                     f"{fmt(r['peak_memory_mib'], '.0f')} | {r['numerics_ok']} | {r['status']} |")  # fmt: skip
    (ctx.out / "registry.md").write_text("\n".join(lines) + "\n")
    with open(ctx.out / "records.jsonl", "w") as f:
        for body in ctx.records:
            f.write(json.dumps(body.to_body()) + "\n")
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    (ctx.out / "run.json").write_text(json.dumps({
        "command": " ".join(["python", "benchmarks/gpu_check.py", *argv]), "dry_run": ctx.dry_run,
        "device": str(ctx.device), "elapsed_s": round(ctx.elapsed(), 1), "counts": counts, "ieee_rtol": IEEE_RTOL,
        "provenance": ctx.provenance,
    }, indent=1) + "\n")  # fmt: skip


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
                        help=f"seconds for the checks; the registry table fills the rest (default {GPU_BUDGET_S:.0f} on CUDA, "
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
