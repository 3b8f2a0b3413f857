"""``torch.compile`` with the inductor backend, in one of its modes.

Follows the PyTorch documentation of :func:`torch.compile`
(https://pytorch.org/docs/stable/generated/torch.compile.html): ``backend="inductor"``,
``mode`` one of ``"default"``, ``"reduce-overhead"`` (CUDA graphs to cut launch overhead)
and ``"max-autotune"`` (Triton/template autotuning and CUDA graphs on the GPU), from
:attr:`RunSettings.compile_mode`.

Compilation is lazy: the first call traces (Dynamo) and generates code (Inductor). It
happens inside :meth:`CompileBackend.prepare`, whose ``build_time_s`` is the time of the
warm-up calls: the first (compiling) call, plus two more in the CUDA-graph modes on CUDA,
where the second call warms up and the third records the graph ("CUDA Graph Trees",
https://pytorch.org/docs/stable/torch.compiler_cudagraph_trees.html). CUDA work is
synchronised before the clock is read. Choices:

* ``dynamic=False``: the graph is specialised to the example's shape, as the TensorRT and
  CUDA-graph backends are (a new batch size is a new ``prepare``).
* ``torch._dynamo.reset()`` before compiling: every hourglass variant shares one
  ``forward`` code object, and Dynamo gives each code object a bounded number of
  recompilations (``torch._dynamo.config.recompile_limit``) before silently running it
  eagerly; a sweep over variants and batch sizes in one process would hit it. Resetting
  means a compiled ``fn`` from an earlier ``prepare`` recompiles if called again.
  :meth:`CompileBackend.release` (called by the sweep after each setting) resets too, so that
  the CUDA Graph Trees of a setting do not outlive it.
* In the CUDA-graph modes each call is preceded by
  ``torch.compiler.cudagraph_mark_step_begin()`` (see the CUDA Graph Trees page), so that
  outputs of the previous call may be overwritten without an error.
* Inductor's defaults otherwise (no ``freezing``), including its on-disk caches: a
  graph compiled before (same model structure, shape, dtype, torch) is loaded from the FX
  graph cache, which makes ``build_time_s`` much shorter; the notes say how many graphs
  came from the cache (``torch._dynamo.utils.counters["inductor"]["fxgraph_cache_hit"]``).

``int8`` (CPU only) goes through torchao's PT2E quantization with the x86 Inductor quantizer
(:func:`hgbench.profile.quantization.quantize_pt2e_x86`), compiled with Inductor's freezing.

On the CPU Inductor generates C++ and needs a working C++ compiler (``g++`` by default,
``torch._inductor.config.cpp.cxx`` or ``$CXX``) and Python headers; on CUDA it generates
Triton kernels and needs the ``triton`` package (shipped with CUDA builds of torch).
"""

from __future__ import annotations

import gc
import importlib.util
import sysconfig
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    cast_model,
    device_flags,
    in_inference_mode,
    input_converter,
    quantized_support,
    run_context,
)

CUDAGRAPH_MODES = ("reduce-overhead", "max-autotune")
"""``torch.compile`` modes that record CUDA graphs on the GPU."""


def _cpp_compiler_problem() -> str | None:
    """``None`` when Inductor finds a C++ compiler that runs (``<cxx> --version``) and the
    Python headers its generated code includes, else why not."""
    try:
        from torch._inductor import cpp_builder

        cpp_builder.get_cpp_compiler()
    except Exception as exc:  # noqa: BLE001 - InvalidCxxCompiler, or an import problem of the private module
        return (
            f"torch.compile (inductor) on the CPU needs a C++ compiler and none works here ({type(exc).__name__}); "
            "install g++ (e.g. apt-get install g++) or set CXX to a working compiler"
        )
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        return (
            f"torch.compile (inductor) on the CPU needs the Python headers and {include / 'Python.h'} is missing; "
            "install them (e.g. apt-get install python3-dev)"
        )
    return None


class CompileBackend(Backend):
    """``torch.compile(model, backend="inductor", mode=settings.compile_mode, dynamic=False)``."""

    name = "compile"
    quantized = ("int8",)
    static_shape = True  # dynamic=False: another shape recompiles
    keepable = False
    """Not kept between repetitions: :meth:`release` (``torch._dynamo.reset()``, needed after each
    setting) makes every earlier compiled function recompile on its next call, and without it
    the compiled settings of one model class would share Dynamo's per-code-object cache and its
    recompile limit (then run eagerly)."""

    def unsupported(self, settings: RunSettings) -> str | None:
        """fp8 is refused (:func:`quantized_support`); int8 needs torchao
        (:func:`hgbench.profile.quantization.torchao_problem`)."""
        reason = quantized_support(self, settings)
        if reason is None and settings.precision == "int8":
            from hgbench.profile.quantization import torchao_problem

            reason = torchao_problem()
        return reason

    def unsupported_on(self, settings: RunSettings, device: torch.device) -> str | None:
        """int8 runs on the CPU only (torchao's x86 Inductor quantizer); on CUDA, int8 is TensorRT's."""
        if settings.quantized and torch.device(device).type != "cpu":
            return (
                f"{settings.precision} on compile runs on the CPU only (torchao's x86 Inductor quantizer): "
                "use --backend tensorrt on CUDA"
            )
        return None

    def available(self, device: torch.device) -> str | None:
        device = torch.device(device)
        if not torch._dynamo.is_dynamo_supported():
            return f"torch.compile is not supported with this Python/torch ({torch.__version__}); use a supported Python version"
        if device.type == "cpu":
            return _cpp_compiler_problem()
        if device.type == "cuda" and importlib.util.find_spec("triton") is None:
            return "torch.compile (inductor) on CUDA needs Triton: pip install triton (matching your torch)"
        return None

    def peak_memory_source(self, settings: RunSettings) -> str:
        """``"device"`` in the CUDA-graph modes (the graphs' activations live in CUDA Graph
        Trees' private memory pool, which a replay does not allocate from), else ``"allocator"``."""
        return "device" if settings.compile_mode in CUDAGRAPH_MODES else "allocator"

    def release(self) -> None:
        """``torch._dynamo.reset()``, then hand the freed CUDA blocks back to the driver.

        The compiled graphs, and in the CUDA-graph modes the CUDA Graph Trees with their
        private memory pools, are process-wide state that outlives the :class:`Prepared`:
        torch 2.13's ``torch._dynamo.reset()`` clears the code caches and calls
        ``torch._inductor.cudagraph_trees.reset_cudagraph_trees()`` ("Reset cudagraph trees
        unconditionally since they are global state", ``torch/_dynamo/__init__.py``). Without
        it they lived until the next compile setting's ``prepare``, inflating the next
        settings' peak memory (and running a large sweep out of memory). Compiled functions
        from earlier ``prepare`` calls recompile if called again (Inductor's on-disk FX graph
        cache makes that quick).
        """
        torch._dynamo.reset()
        gc.collect()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        self.check_settings(settings)
        self.check_available(device)
        reason = self.unsupported_on(settings, device)
        if reason is not None:
            raise RuntimeError(f"{self.name}: {reason}")
        if settings.quantized:
            return _prepare_int8(model, example_input, settings)
        cast = cast_model(model, settings)
        prepare_input = input_converter(settings, device)
        x = prepare_input(example_input)
        uses_cudagraphs = device.type == "cuda" and settings.compile_mode in CUDAGRAPH_MODES

        torch._dynamo.reset()
        compiled = torch.compile(cast, backend="inductor", mode=settings.compile_mode, dynamic=False)

        if uses_cudagraphs:

            def step(inp: Tensor) -> object:
                torch.compiler.cudagraph_mark_step_begin()
                return compiled(inp)

        else:
            step = compiled
        fn = in_inference_mode(step)

        from torch._dynamo.utils import counters as dynamo_counters

        counters = dynamo_counters["inductor"]
        hits, misses = counters["fxgraph_cache_hit"], counters["fxgraph_cache_miss"]
        start = time.perf_counter()
        with device_flags(settings, device):
            for _ in range(3 if uses_cudagraphs else 1):
                fn(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
        build_time_s = time.perf_counter() - start

        notes = [
            f"mode={settings.compile_mode}",
            (
                f"inductor FX graph cache: {counters['fxgraph_cache_hit'] - hits} hit(s), "
                f"{counters['fxgraph_cache_miss'] - misses} miss(es)"
            ),
        ]
        if uses_cudagraphs:
            notes.append("CUDA graph trees: outputs are overwritten by the next call")
        return Prepared(
            fn=fn,
            prepare_input=prepare_input,
            build_time_s=build_time_s,
            notes=notes,
            context=run_context(settings, device),
        )


def _prepare_int8(model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
    """int8 on the CPU: torchao's PT2E flow with the x86 Inductor quantizer, compiled by Inductor
    with freezing (:func:`hgbench.profile.quantization.quantize_pt2e_x86`), calibrated on the
    setting's calibration set. ``build_time_s`` is export, calibration, conversion and compilation."""
    from hgbench.profile.quantization import quantize_pt2e_x86

    calibration = settings.require_calibration()
    torch._dynamo.reset()
    quantized = quantize_pt2e_x86(cast_model(model, settings), example_input, calibration)
    notes = [
        f"mode=default, int8: torchao PT2E, X86InductorQuantizer default config (per-channel int8 weights, "
        f"uint8 activations, reduce_range={quantized.reduce_range}), Inductor freezing; calibrated on "
        f"{calibration.spec.count} {calibration.dataset} {calibration.spec.split} crops "
        f"(seed {calibration.spec.seed}, digest {calibration.digest})"
    ]
    return Prepared(
        fn=quantized.fn,  # under torch.no_grad(), as it was compiled
        prepare_input=input_converter(settings, example_input.device),
        build_time_s=quantized.seconds,
        notes=notes,
    )
