"""The backend interface shared by every inference backend, and the casting helpers they use.

A :class:`Backend` says
whether it can run on a device (:meth:`Backend.available`) and turns a model into a
:class:`Prepared` callable for one example input and one :class:`RunSettings`
(:meth:`Backend.prepare`).

Precisions and layouts are applied the same way by every backend (:func:`cast_model`,
:func:`input_converter`):

* ``fp32`` / ``fp16`` / ``bf16``: the model's floating-point parameters and buffers and the
  input are cast to ``torch.float32`` / ``torch.float16`` / ``torch.bfloat16``
  (``nn.Module.to(dtype)``, which leaves integer buffers such as batch norm's
  ``num_batches_tracked`` alone). On the CPU some half-precision kernels may be missing or
  slow; nothing here hides that: the backend runs, or ``prepare`` raises and the caller
  records the reason.
* ``int8`` / ``fp8``: post-training static quantization (:mod:`hgbench.profile.quantization`),
  on the backends that declare it (:attr:`Backend.quantized`: ONNX Runtime and compile int8,
  TensorRT int8 and fp8); the model and its input stay fp32 (:data:`PRECISIONS`) and the backend
  quantizes with the scales of :attr:`RunSettings.calibration`. Every other backend refuses them
  before any work (:meth:`Backend.unsupported`, naming the backends that have them).
* ``channels_last``: ``model.to(memory_format=torch.channels_last)`` and
  ``x.contiguous(memory_format=torch.channels_last)`` (PyTorch tutorial "Channels Last
  Memory Format", https://pytorch.org/tutorials/intermediate/memory_format_tutorial.html).
* ``tf32``: :func:`~hgbench.profile.tf32.tf32_mode` allows TF32 (``settings.tf32``) or
  forces IEEE fp32 for CUDA matmuls and cuDNN convolutions, through torch's ``fp32_precision``
  settings and the legacy ``allow_tf32`` flags alike (see :mod:`hgbench.profile.tf32` for
  why both). PyTorch's defaults differ (matmul off, cuDNN convolutions *on*), so
  ``tf32=False`` switches TF32 off for the convolutions as well: fp32 then means IEEE fp32
  everywhere. Backends apply it while preparing (compilers and graph capture fix their
  kernels then), and :attr:`Prepared.context` applies it around a *run* of calls: the caller
  enters it once around warm-up and timed calls, not per call, so that no backend pays for
  switching process-wide flags inside its timed calls. The flags only affect CUDA; on the CPU
  they are left alone.

The caller's model is never modified: :func:`cast_model` works on a deep copy, so the eager
fp32 reference used by the numerical check stays intact.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from hgbench.config.axes import COMPILE_MODES, QUANTIZED_PRECISIONS, spoken
from hgbench.paths import source_digest
from hgbench.profile.calibration_data import CalibrationSet
from hgbench.profile.tf32 import tf32_mode

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.float32, "fp8": torch.float32,
}  # fmt: skip
"""Precision name (:data:`hgbench.config.axes.INFERENCE_PRECISIONS`, a test keeps the two equal) ->
the dtype the model and the input are cast to (fp32 for the quantized precisions: the backend
quantizes the fp32 model, and the artifact takes fp32 input)."""


@dataclass(frozen=True)
class RunSettings:
    """How a backend runs the model.

    Attributes:
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"``, ``"int8"`` or ``"fp8"`` (see :data:`PRECISIONS`).
        tf32: allow TF32 matmuls and cuDNN convolutions on CUDA (ignored on the CPU).
        channels_last: model and input in ``torch.channels_last`` (NHWC) memory format.
        compile_mode: ``torch.compile`` mode (only the ``compile`` backend reads it).
        cache_dir: where backends that build artefacts (ONNX files, frozen TorchScript modules, TensorRT programs) save
            and reuse them; ``None``: a temporary directory, nothing reused.
        calibration: the inputs whose activation ranges set the scales of a quantized precision
            (needed by ``int8``/``fp8``, ignored otherwise); not compared (two settings that differ
            only in it are equal: its digest is in every artefact's cache key instead).

    Raises:
        ValueError: an unknown precision or compile mode.
    """

    precision: str = "fp32"
    tf32: bool = False
    channels_last: bool = False
    compile_mode: str = "default"
    cache_dir: Path | None = None
    calibration: CalibrationSet | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid precisions: {', '.join(PRECISIONS)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"unknown compile mode {self.compile_mode!r}; valid modes: {', '.join(COMPILE_MODES)}")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of :attr:`precision`."""
        return PRECISIONS[self.precision]

    @property
    def quantized(self) -> bool:
        """Whether :attr:`precision` is a quantized one (:data:`hgbench.config.axes.QUANTIZED_PRECISIONS`)."""
        return self.precision in QUANTIZED_PRECISIONS

    def require_calibration(self) -> CalibrationSet:
        """The calibration set of a quantized setting.

        Raises:
            ValueError: there is none (what to pass, naming the options).
        """
        if self.calibration is None:
            raise ValueError(
                f"--precision {self.precision} needs calibration data: pass --dataset (and --data-root) or profile "
                "variants trained into --results (their dataset's training split is drawn)"
            )
        return self.calibration


@dataclass
class Prepared:
    """A model made ready by a backend.

    Attributes:
        fn: runs one batch: takes the output of :attr:`prepare_input` (on the device, in the
            run's precision and layout) and returns what the model returns (for the
            hourglass networks, a list of per-stack heatmaps ``(N, J, H/4, W/4)``).
        prepare_input: fp32 NCHW tensor ``(N, 3, H, W)`` -> what ``fn`` expects (cast,
            memory format, device). Not part of the timed region.
        build_time_s: conversion / compile / engine build time, s (0 when there is none).
        notes: remarks for the record, e.g. ``"engine reused from <path>"``.
        context: makes the context ``fn`` must run in (on CUDA the setting's TF32 flags,
            :func:`device_flags`): enter it *once* around a run of calls (warm-up and timed
            calls, the numerical check), never per call. Default: nothing to set.
    """

    fn: Callable[[Tensor], list[Tensor] | Tensor]
    prepare_input: Callable[[Tensor], Tensor]
    build_time_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


class Backend(ABC):
    """One way of running a model. Subclasses set :attr:`name` and implement the two methods."""

    name: str = ""
    quantized: tuple[str, ...] = ()
    """The quantized precisions (:data:`hgbench.config.axes.QUANTIZED_PRECISIONS`) this backend can
    build; :meth:`unsupported` refuses the others."""
    static_shape: bool = False
    """Whether a :class:`Prepared` runs only batches shaped like its example input (an exported
    or compiled graph, a captured CUDA graph, an engine): a deployed evaluation then gives every
    call exactly that many crops, padding the last batch (:mod:`hgbench.profile.deployed`)."""
    keepable: bool = True
    """Whether a :class:`Prepared` stays valid while other settings are prepared and released, so
    that a sweep may keep it from its first repetition to its last instead of preparing it again
    (:mod:`hgbench.profile.sweep`); False where preparing or releasing another setting resets
    process-wide state the artefact depends on."""

    def available(self, device: torch.device) -> str | None:
        """``None`` when this backend can run on ``device``, else a one-line reason that says
        what to install or which device it needs."""
        return None

    def unsupported(self, settings: RunSettings) -> str | None:
        """``None`` when this backend can run ``settings`` as the record would describe them,
        else a one-line reason (e.g. a layout the runtime does not keep). :meth:`prepare`
        raises it before building anything. Default: every floating-point setting runs, a
        quantized precision only when :attr:`quantized` names it (:func:`quantized_support`)."""
        return quantized_support(self, settings)

    def unsupported_on(self, settings: RunSettings, device: torch.device) -> str | None:
        """Like :meth:`unsupported`, for what depends on the device too (e.g. fp8 needs compute
        capability 8.9); ``None`` by default. Checked before any work where the device is known."""
        return None

    def peak_memory_source(self, settings: RunSettings) -> str:
        """Which CUDA figure is this backend's peak memory (:class:`hgbench.profile.memory.PeakMemory`):
        ``"allocator"`` (PyTorch's caching allocator peak, which sees every activation of a
        backend that allocates through it) or ``"device"`` (device-wide use, for backends whose
        working memory bypasses it: CUDA-graph pools, ONNX Runtime's arena, TensorRT).
        Default: ``"allocator"``."""
        return "allocator"

    def check_settings(self, settings: RunSettings) -> None:
        """Raise ``RuntimeError(reason)`` when :meth:`unsupported` gives a reason."""
        reason = self.unsupported(settings)
        if reason is not None:
            raise RuntimeError(f"{self.name}: {reason}")

    @abstractmethod
    def prepare(self, model: nn.Module, example_input: Tensor, settings: RunSettings) -> Prepared:
        """Make ``model`` ready to run batches shaped like ``example_input``.

        Args:
            model: an ``nn.Module`` on the target device, fp32; it is not modified (backends
                work on a copy when they cast).
            example_input: fp32 NCHW ``(N, 3, H, W)`` on the same device; fixes the shape for
                backends that specialise on it.
            settings: precision, TF32, layout, compile mode, cache directory.

        Returns:
            A :class:`Prepared`; nothing half-built is left behind when this raises.

        Raises:
            RuntimeError: the backend is not available on this device (see :meth:`available`).
            Whatever the conversion raises for a model, precision or layout it cannot handle.
        """

    def release(self) -> None:  # noqa: B027 - a no-op for backends without process-wide state
        """Free process-wide state this backend's earlier :meth:`prepare` calls left behind, once
        every :class:`Prepared` they returned has been dropped (the sweep calls it after each
        setting). Default: nothing to free."""

    def check_available(self, device: torch.device) -> None:
        """Raise ``RuntimeError(reason)`` when :meth:`available` gives a reason."""
        reason = self.available(device)
        if reason is not None:
            raise RuntimeError(f"{self.name}: {reason}")


def quantized_support(backend: Backend, settings: RunSettings) -> str | None:
    """``None`` unless ``settings`` asks for a quantized precision that ``backend`` does not build
    (:attr:`Backend.quantized`); then why, naming the backends that do."""
    if not settings.quantized or settings.precision in backend.quantized:
        return None
    from hgbench.profile.backends import BACKENDS

    having = [name for name, cls in BACKENDS.items() if settings.precision in cls.quantized]
    return f"{settings.precision} is not built by {backend.name}: use --backend {spoken(having)}"


def cast_model(model: nn.Module, settings: RunSettings) -> nn.Module:
    """A deep copy of ``model`` in eval mode, in the settings' dtype and memory format.

    ``model`` itself is left as it was (same dtype, layout and training flag).
    """
    copied = copy.deepcopy(model).eval()
    copied = copied.to(dtype=settings.dtype)
    if settings.channels_last:
        copied = copied.to(memory_format=torch.channels_last)
    return copied


def input_converter(settings: RunSettings, device: torch.device) -> Callable[[Tensor], Tensor]:
    """``x -> x`` on ``device``, in the settings' dtype and memory format (for
    :attr:`Prepared.prepare_input`)."""
    dtype = settings.dtype
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format

    def convert(x: Tensor) -> Tensor:
        return x.to(device=device, dtype=dtype).contiguous(memory_format=memory_format)

    return convert


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a stateless model."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def in_inference_mode(fn: Callable[[Tensor], object]) -> Callable[[Tensor], object]:
    """``fn`` called under ``torch.inference_mode()`` (no autograd recording), and nothing else:
    process-wide flags belong in :attr:`Prepared.context`, entered once around a run of calls."""

    def run(x: Tensor) -> object:
        with torch.inference_mode():
            return fn(x)

    return run


def device_flags(settings: RunSettings, device: torch.device) -> contextlib.AbstractContextManager:
    """The flags to prepare (trace, compile, capture) and run in: :func:`tf32_mode` with
    ``settings.tf32`` on CUDA, else nothing (on the CPU the flags change nothing)."""
    return tf32_mode(settings.tf32) if device.type == "cuda" else contextlib.nullcontext()


def run_context(settings: RunSettings, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A :attr:`Prepared.context` factory: :func:`device_flags` for ``settings`` on ``device``."""
    return lambda: device_flags(settings, device)


def model_code_digest() -> str:
    """SHA-256 (16 hex digits) of the sources of :mod:`hgbench.models`
    (:func:`hgbench.paths.source_digest`): in the key of an artefact traced or exported from the
    model's ``forward``, so that a change of the model code that leaves the module structure and
    weights alone (an upsampling mode, how the stacks are combined) builds anew instead of
    loading the old graph."""
    return source_digest("models")[:16]


def artefact_key(
    model: nn.Module, input_shape: tuple[int, ...], settings: RunSettings, versions: dict[str, str]
) -> str:
    """A SHA-256 hex digest naming a built artefact (ONNX file, frozen TorchScript module, TensorRT program).

    It covers everything the artefact depends on: the model's class and structure
    (``repr(model)``), every parameter and buffer (name, dtype, shape and bytes: two models
    with different weights never share an artefact), the input shape, the precision, the
    memory format, TF32, and ``versions`` (e.g. torch, torch-tensorrt, TensorRT, GPU name
    and compute capability), so an upgrade or another GPU builds anew.

    The floating-point tensors are hashed as :func:`cast_model` casts them (in
    ``settings.dtype``, row-major bytes), so ``model`` and its cast copy name the same artefact:
    a backend names its artefact from the caller's model and copies it only when it must build
    (a copy of hg8 takes about 1 s on one CPU core, more than loading its ONNX session).
    """
    digest = hashlib.sha256()

    def add(text: str) -> None:
        digest.update(text.encode())
        digest.update(b"\0")

    add(type(model).__qualname__)
    add(repr(model))
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor = tensor.to(settings.dtype)
        add(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}")
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    add(f"input={tuple(input_shape)}")
    add(f"precision={settings.precision} tf32={settings.tf32} channels_last={settings.channels_last}")
    for key in sorted(versions):
        add(f"{key}={versions[key]}")
    return digest.hexdigest()
