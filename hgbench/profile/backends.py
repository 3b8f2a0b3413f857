"""Inference backends: how a model is turned into the callable that is timed.

A :class:`Backend` says whether it can run here (:meth:`Backend.available`) and prepares a
model for one example input (:meth:`Backend.prepare`), returning ``fn(x) -> output``.
The output is whatever the model returns (for the hourglass networks, a list of
per-stack heatmap tensors); :func:`hgbench.profile.latency.time_callable` drops it.
"""

from __future__ import annotations

import importlib.util
import warnings
from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import Tensor, nn

Prepared = Callable[[Tensor], object]


class Backend(ABC):
    """One way of running a model. Subclasses set :attr:`name` and implement the two methods."""

    name: str = ""

    def available(self) -> str | None:
        """``None`` when this backend can run here, else a reason that says what to install."""
        return None

    @abstractmethod
    def prepare(self, model: nn.Module, example_input: Tensor) -> Prepared:
        """Put ``model`` in eval mode and return ``fn(x)`` running it on inputs shaped like
        ``example_input`` (on the same device).

        Raises:
            RuntimeError: the backend is not available here (see :meth:`available`).
            Whatever the conversion raises for a model it cannot handle.
        """


class EagerBackend(Backend):
    """Plain PyTorch: ``model(x)`` under ``torch.inference_mode()``."""

    name = "eager"

    def prepare(self, model: nn.Module, example_input: Tensor) -> Prepared:
        model.eval()

        def run(x: Tensor) -> object:
            with torch.inference_mode():
                return model(x)

        return run


class TorchScriptBackend(Backend):
    """``torch.jit.trace`` -> ``torch.jit.freeze`` -> ``torch.jit.optimize_for_inference``.

    TorchScript is deprecated: in torch 2.13 each of these calls emits a
    ``DeprecationWarning`` ("Please switch to torch.compile or torch.export"); they still
    work and are silenced here, because the backend is kept to compare with results reported
    for TorchScript. Tracing records one path through the model: the hourglass networks
    return a *list* of per-stack heatmaps whose length is fixed by the architecture, which
    tracing handles (the traced module returns a list too). With the default
    ``strict=True`` torch only warns about the list output (``TracerWarning``);
    ``strict=False`` says that a fixed-length list is intended. ``check_trace=False`` skips
    the tracer's check, which traces and runs the model again (more preparation time, and
    spurious failures on nondeterministic kernels). On CPU, ``optimize_for_inference``
    folds batch norm into the convolutions and converts them to oneDNN (MKLDNN) layouts.
    """

    name = "torchscript"

    def available(self) -> str | None:
        if not all(hasattr(torch.jit, f) for f in ("trace", "freeze", "optimize_for_inference")):
            return f"this torch ({torch.__version__}) no longer ships torch.jit.trace/freeze/optimize_for_inference"
        return None

    def prepare(self, model: nn.Module, example_input: Tensor) -> Prepared:
        reason = self.available()
        if reason is not None:
            raise RuntimeError(reason)
        model.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
            traced = torch.jit.trace(model, example_input, check_trace=False, strict=False)
            frozen = torch.jit.freeze(traced)
            optimized = torch.jit.optimize_for_inference(frozen)

        def run(x: Tensor) -> object:
            with torch.inference_mode():
                return optimized(x)

        return run


class TensorRTBackend(Backend):
    """Torch-TensorRT, ahead-of-time through its dynamo frontend:
    ``torch_tensorrt.compile(model, ir="dynamo", inputs=[example])`` (FP32, static shape).

    Needs a CUDA GPU, a CUDA build of torch and ``pip install 'hgbench[tensorrt]'``; the
    model and the example input must already be on the GPU. Untested in the CPU-only
    development environment.
    """

    name = "tensorrt"

    def available(self) -> str | None:
        if not torch.cuda.is_available():
            return (
                "tensorrt: torch-tensorrt needs a CUDA GPU and a CUDA build of torch (none here); "
                "on a CUDA machine, pip install 'hgbench[tensorrt]'"
            )
        if importlib.util.find_spec("torch_tensorrt") is None:
            return "tensorrt: torch-tensorrt is not installed; pip install 'hgbench[tensorrt]'"
        return None

    def prepare(self, model: nn.Module, example_input: Tensor) -> Prepared:
        reason = self.available()
        if reason is not None:
            raise RuntimeError(reason)
        if not example_input.is_cuda:
            raise RuntimeError("tensorrt: the model and the example input must be on a CUDA device")
        import torch_tensorrt

        model.eval()
        compiled = torch_tensorrt.compile(model, ir="dynamo", inputs=[example_input])

        def run(x: Tensor) -> object:
            with torch.no_grad():
                return compiled(x)

        return run


BACKENDS: dict[str, type[Backend]] = {b.name: b for b in (EagerBackend, TorchScriptBackend, TensorRTBackend)}


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (one of :data:`BACKENDS`: eager, torchscript, tensorrt).

    Raises:
        ValueError: an unknown name; the message lists the valid ones.
    """
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}") from None
