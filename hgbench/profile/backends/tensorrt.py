"""TensorRT through Torch-TensorRT's ahead-of-time dynamo path, with the compiled program
saved and reused across runs.

Follows the Torch-TensorRT documentation:

* compile: ``torch_tensorrt.compile(model, ir="dynamo", inputs=[example], ...)``
  ("Compiling Exported Programs with Torch-TensorRT",
  https://pytorch.org/TensorRT/user_guide/dynamo_export.html): the model is captured with
  ``torch.export`` and the supported subgraphs become TensorRT engines, for the example's
  static shape, dtype and memory format.
* precision: the model and the input are *cast* (fp16 / bf16), and
  TensorRT keeps the graph's types (strongly typed, TensorRT 11's only mode: ``use_explicit_typing`` is ignored) ("Compile Mixed
  Precision models with Torch-TensorRT", https://pytorch.org/TensorRT/user_guide/mixed_precision.html;
  weak typing, where ``enabled_precisions`` let the builder pick lower precisions, is
  deprecated in TensorRT 10.12). ``enabled_precisions`` is not passed: torch-tensorrt 2.10
  made ``use_explicit_typing=True`` the default and then rejects ``enabled_precisions``
  other than fp32 (https://github.com/pytorch/TensorRT/issues/4070,
  https://github.com/HolyWu/vs-rife/issues/78), and the current ``torch_tensorrt.compile``
  no longer forwards it to the dynamo path at all (py/torch_tensorrt/_compile.py: "Default
  for legacy FX/TS frontends; not used for the Dynamo path").
* int8 / fp8: post-training quantization with NVIDIA's Model Optimizer (``nvidia-modelopt``,
  ``pip install 'hgbench[tensorrt]'``), as Torch-TensorRT's PTQ example does
  (``examples/dynamo/vgg16_ptq.py``; Torch-TensorRT's "Quantization" guide): ``mtq.quantize(model,
  mtq.INT8_DEFAULT_CFG or mtq.FP8_DEFAULT_CFG, forward_loop)`` inserts calibrated Q/DQ nodes (per-channel
  int8 weights, per-tensor activations; the forward loop runs :attr:`RunSettings.calibration` in
  batches of the engine's batch size), then the model is exported inside ``modelopt``'s
  ``export_torch_mode()`` and compiled with ``torch_tensorrt.dynamo.compile(exported,
  inputs=[example], enabled_precisions={torch.int8} or {torch.float8_e4m3fn}, min_block_size=1)``.
  FP8 needs compute capability 8.9 or later (Ada, Hopper; :meth:`TensorRTBackend.unsupported_on`
  refuses it below, as Torch-TensorRT's FP8 tests skip). The calibration set's digest is part
  of the cache key.
* layout: ``channels_last`` is refused (:meth:`TensorRTBackend.unsupported`).
* TF32: ``disable_tf32=not settings.tf32`` (a ``torch_tensorrt.dynamo.compile`` option;
  TensorRT otherwise allows TF32 for fp32 layers, PyTorch's flags do not reach it).
* save / load: ``torch_tensorrt.save(trt_gm, path, inputs=[example])``, whose default
  ``output_format="exported_program"`` stores the engines inside a ``torch.export``
  package, and ``torch_tensorrt.load(path).module()``
  ("Saving models compiled with Torch-TensorRT",
  https://pytorch.org/TensorRT/user_guide/saving_models.html).

The program is cached under ``<cache_dir>/tensorrt/`` with a name made of the model class,
input shape, precision, TF32 and layout flags and a digest
(:func:`tensorrt_cache_path`, :func:`~hgbench.profile.backends.base.artefact_key`) over
the model's structure and weights, the shape and settings, and the torch, torch-tensorrt
and TensorRT versions and GPU name and compute capability: a program is reused only for
exactly the same model on the same software and GPU. ``build_time_s`` is the engine build
(export + TensorRT build) on a miss, the load time on a hit; the notes say which
("engine built and saved to <path>" / "engine reused from <path>"). A model built with
fresh random weights has a new digest, so reuse across runs needs the same weights (a
checkpoint, or construction under a fixed seed). Files are written through a temporary
file and a rename.

Needs an NVIDIA GPU, a CUDA build of torch and ``pip install 'hgbench[tensorrt]'``, which pins
the torch-tensorrt release built for the torch the README installs (each torch-tensorrt
release requires one torch minor version, e.g. torch-tensorrt 2.13.0: ``torch>=2.13.0,<2.14.0``;
for another torch install ``torch-tensorrt==<that torch's major.minor>.*``). This module was
written against the documentation and has not run in development (no GPU there); the CPU
tests cover :meth:`TensorRTBackend.available`, :meth:`TensorRTBackend.unsupported` and the
cache naming, and ``benchmarks/gpu_check.py`` exercises the rest on a GPU.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from hgbench.profile.backends.base import (
    Backend,
    Prepared,
    RunSettings,
    artefact_key,
    cast_model,
    in_inference_mode,
    input_converter,
    quantized_support,
    run_context,
)

FP8_MIN_CAPABILITY = (8, 9)
"""Compute capability of the first GPUs with FP8 tensor cores (Ada Lovelace 8.9, Hopper 9.0)."""

INSTALL_HINT = (
    "pip install --extra-index-url https://pypi.nvidia.com 'hgbench[tensorrt]' (torch-tensorrt, nvidia-modelopt and "
    "TensorRT's libraries, tensorrt-cu13-libs, which come from NVIDIA's index; README 'Install on a GPU machine'; "
    "needs an NVIDIA GPU with CUDA)"
)


def tensorrt_versions(device: torch.device) -> dict[str, str]:
    """What a TensorRT program depends on besides the model: torch, torch-tensorrt and
    TensorRT versions, GPU name and compute capability (CUDA device required)."""
    import tensorrt as trt
    import torch_tensorrt

    props = torch.cuda.get_device_properties(device)
    return {
        "torch": torch.__version__,
        "torch_tensorrt": torch_tensorrt.__version__,
        "tensorrt": trt.__version__,
        "gpu": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
    }


def tensorrt_cache_path(
    cache_dir: Path, model: nn.Module, input_shape: tuple[int, ...], settings: RunSettings, versions: dict[str, str]
) -> Path:
    """``<cache_dir>/tensorrt/<Model>__<N>x<C>x<H>x<W>__<precision>[__tf32][__cl]__<digest16>.ep``.

    ``<digest16>``: the first 16 hex digits of :func:`artefact_key` over model, shape,
    settings and ``versions``.
    """
    key = artefact_key(model, input_shape, settings, versions)
    flags = ("__tf32" if settings.tf32 else "") + ("__cl" if settings.channels_last else "")
    shape = "x".join(str(d) for d in input_shape)
    return Path(cache_dir) / "tensorrt" / f"{type(model).__name__}__{shape}__{settings.precision}{flags}__{key[:16]}.ep"


class TensorRTBackend(Backend):
    """``torch_tensorrt.compile(ir="dynamo")``, saved with ``torch_tensorrt.save`` and reused."""

    name = "tensorrt"
    quantized = ("int8", "fp8")
    static_shape = True  # engine built for one input shape

    def unsupported_on(self, settings: RunSettings, device: torch.device) -> str | None:
        """fp8 below compute capability 8.9 (module docstring)."""
        device = torch.device(device)
        if settings.precision == "fp8" and device.type == "cuda" and torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability(device)
            if (major, minor) < FP8_MIN_CAPABILITY:
                return (
                    f"fp8 needs compute capability 8.9 or later (Ada, Hopper); {torch.cuda.get_device_name(device)} "
                    f"has {major}.{minor}: use --precision int8 or fp16"
                )
        return None

    def available(self, device: torch.device) -> str | None:
        device = torch.device(device)
        if importlib.util.find_spec("torch_tensorrt") is None:
            return f"torch-tensorrt is not installed: {INSTALL_HINT}"
        if device.type != "cuda" or not torch.cuda.is_available():
            return "needs a CUDA GPU (TensorRT engines run on NVIDIA GPUs) and a CUDA build of torch"
        try:
            import torch_tensorrt  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - installed but broken, typically built for another torch
            return (
                f"torch-tensorrt is installed but does not import ({type(exc).__name__}: {exc}); "
                f"install the torch-tensorrt release built for torch {torch.__version__}"
            )
        return None

    def unsupported(self, settings: RunSettings) -> str | None:
        """``channels_last`` is refused: the Torch-TensorRT runtime makes every input contiguous
        before binding it (``inputs[i].view(shape).contiguous()`` in
        ``core/runtime/execute_engine.cpp``), so each call would copy an NHWC input to NCHW
        inside the timed region while the record said channels_last."""
        reason = quantized_support(self, settings)
        if reason is not None:
            return reason
        if settings.quantized and importlib.util.find_spec("modelopt") is None:
            return f"{settings.precision} needs NVIDIA Model Optimizer (nvidia-modelopt): {INSTALL_HINT}"
        if settings.channels_last:
            return (
                "channels_last does not apply (the Torch-TensorRT runtime copies every input to contiguous NCHW "
                "before binding it); TensorRT picks its own internal layouts: run without --channels-last"
            )
        return None

    def peak_memory_source(self, settings: RunSettings) -> str:
        """``"device"``: TensorRT allocates its engines and their activation memory itself, past
        PyTorch's caching allocator."""
        return "device"

    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        device = example_input.device
        self.check_settings(settings)
        self.check_available(device)
        import torch_tensorrt

        reason = self.unsupported_on(settings, device)
        if reason is not None:
            raise RuntimeError(f"{self.name}: {reason}")
        cast = cast_model(model, settings)
        prepare_input = input_converter(settings, device)
        x = prepare_input(example_input)
        path = None
        notes: list[str] = []
        versions = tensorrt_versions(device)
        if settings.quantized:
            versions["calibration"] = settings.require_calibration().digest
        if settings.cache_dir is not None:
            path = tensorrt_cache_path(settings.cache_dir, model, tuple(example_input.shape), settings, versions)

        start = time.perf_counter()
        compiled = None
        if path is not None and path.is_file():
            try:
                compiled = torch_tensorrt.load(str(path)).module()
                notes.append(f"engine reused from {path}")
            except Exception as exc:  # noqa: BLE001 - a stale or damaged file: rebuild it
                notes.append(f"cached program {path} could not be loaded ({type(exc).__name__}: {exc}); rebuilt")
        built = compiled is None
        if built and settings.quantized:
            compiled = _compile_quantized(torch_tensorrt, cast, x, settings, notes)
        elif built:
            with torch.no_grad():
                compiled = torch_tensorrt.compile(
                    cast,
                    ir="dynamo",
                    inputs=[x],
                    use_explicit_typing=True,
                    disable_tf32=not settings.tf32,
                )
        if built:
            if path is not None:
                _save_atomically(torch_tensorrt, compiled, path, x)
                notes.append(f"engine built and saved to {path}")
            else:
                notes.append("engine built, not saved (no cache_dir)")
        fn = in_inference_mode(compiled)
        fn(x)  # first run: engine deserialisation / context creation
        torch.cuda.synchronize(device)
        build_time_s = time.perf_counter() - start
        return Prepared(
            fn=fn,
            prepare_input=prepare_input,
            build_time_s=build_time_s,
            notes=notes,
            context=run_context(settings, device),
        )


def _compile_quantized(torch_tensorrt, cast: nn.Module, x: Tensor, settings: RunSettings, notes: list[str]):
    """int8 / fp8 (module docstring): Model Optimizer's calibrated Q/DQ, then a TensorRT build."""
    import modelopt.torch.quantization as mtq
    from modelopt.torch.quantization.utils import export_torch_mode

    calibration = settings.require_calibration()
    config = mtq.INT8_DEFAULT_CFG if settings.precision == "int8" else mtq.FP8_DEFAULT_CFG
    device, batch = x.device, x.shape[0]

    def forward_loop(module: nn.Module) -> None:
        for inputs in calibration.batches(batch):
            module(inputs.to(device))

    with torch.no_grad():
        mtq.quantize(cast, config, forward_loop=forward_loop)
        with export_torch_mode():
            exported = torch.export.export(cast, (x,), strict=False)
            compiled = torch_tensorrt.dynamo.compile(
                exported,
                inputs=[x],
                enabled_precisions={torch.int8 if settings.precision == "int8" else torch.float8_e4m3fn},
                min_block_size=1,
                disable_tf32=not settings.tf32,
            )
    notes.append(
        f"{settings.precision}: NVIDIA Model Optimizer mtq.{'INT8' if settings.precision == 'int8' else 'FP8'}_DEFAULT_CFG "
        f"calibrated on {calibration.spec.count} {calibration.dataset} {calibration.spec.split} crops "
        f"(seed {calibration.spec.seed}, digest {calibration.digest})"
    )
    return compiled


def _save_atomically(torch_tensorrt, compiled, path: Path, example: Tensor) -> None:
    """``torch_tensorrt.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".ep", dir=path.parent)
    os.close(fd)
    try:
        torch_tensorrt.save(compiled, tmp, inputs=[example])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
