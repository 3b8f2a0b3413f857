"""Inference backends: how a model is turned into the callable that is timed.

One module per backend, all behind the interface of :mod:`.base`, which
:func:`hgbench.profile.run.profile_model` calls::

    backend = get_backend("torchscript")
    reason = backend.available(device)          # None, or what to install / which device
    prepared = backend.prepare(model, x, RunSettings(precision="fp16"))
    out = prepared.fn(prepared.prepare_input(x))

Backends: eager (:mod:`.eager`), torchscript (:mod:`.torchscript`), compile
(:mod:`.torch_compile`), cudagraphs (:mod:`.cudagraphs`), onnxruntime
(:mod:`.onnx_runtime`), tensorrt (:mod:`.tensorrt`). Each module imports its optional
library (onnxruntime, torch_tensorrt) only inside ``prepare``/``available``, so importing
this package needs nothing beyond torch.
"""

from __future__ import annotations

from hgbench.config import axes
from hgbench.profile.backends.base import PRECISIONS, Backend, Prepared, RunSettings
from hgbench.profile.backends.cudagraphs import CudaGraphsBackend
from hgbench.profile.backends.eager import EagerBackend
from hgbench.profile.backends.onnx_runtime import OnnxRuntimeBackend
from hgbench.profile.backends.tensorrt import TensorRTBackend
from hgbench.profile.backends.torch_compile import CompileBackend
from hgbench.profile.backends.torchscript import TorchScriptBackend

_CLASSES = {
    b.name: b
    for b in (EagerBackend, TorchScriptBackend, CompileBackend, CudaGraphsBackend, OnnxRuntimeBackend, TensorRTBackend)
}
BACKENDS: dict[str, type[Backend]] = {name: _CLASSES[name] for name in axes.BACKENDS}
"""Backend name -> class, in the order of :data:`hgbench.config.axes.BACKENDS`, the one list of
names (``tests/config/test_registry.py`` checks that every name there has a class here and the reverse)."""


def get_backend(name: str) -> Backend:
    """A new instance of the backend called ``name`` (a key of :data:`BACKENDS`).

    Raises:
        ValueError: an unknown name; the message lists the known ones.
    """
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}") from None


__all__ = ["BACKENDS", "PRECISIONS", "Backend", "Prepared", "RunSettings", "get_backend"]
