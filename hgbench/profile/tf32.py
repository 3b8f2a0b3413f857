"""TF32 on or off for CUDA matmuls and cuDNN convolutions, through the API torch reads.

PyTorch has two ways of saying whether float32 matmuls and convolutions may use TF32 tensor
cores ("TensorFloat-32 (TF32) on Ampere (and later) devices",
https://docs.pytorch.org/docs/stable/notes/cuda.html#tensorfloat-32-tf32-on-ampere-and-later-devices):

* the legacy flags ``torch.backends.cuda.matmul.allow_tf32`` and
  ``torch.backends.cudnn.allow_tf32`` (every torch);
* from torch 2.9 on, ``fp32_precision`` settings, ``"tf32"`` or ``"ieee"``, per backend and
  operator: ``torch.backends.cuda.matmul.fp32_precision``, ``torch.backends.cudnn.conv.fp32_precision``,
  ``torch.backends.cudnn.rnn.fp32_precision`` and their parent ``torch.backends.cudnn.fp32_precision``
  (torch 2.13: ``torch/backends/cuda/__init__.py``, ``torch/backends/cudnn/__init__.py``;
  the parent is the getter/setter pair ``("cuda", "all")``).

Why both are set here (read in torch 2.13's sources and checked on its CPU build, where the
flags exist too):

* Inductor reads the new settings: its Triton convolution template takes
  ``ALLOW_TF32=torch.backends.cudnn.fp32_precision == "tf32"``
  (``torch/_inductor/kernel/conv.py``) and its matmul heuristics
  ``torch.backends.cuda.matmul.fp32_precision == "tf32"`` (``torch/_inductor/utils.py``).
  The legacy setters leave the parent ``torch.backends.cudnn.fp32_precision`` at ``"none"``,
  so ``torch.compile`` would pick IEEE convolution templates for a ``--tf32`` run.
* Other readers still use the legacy getters (Dynamo's ``graph_region_tracker`` calls
  ``torch._C._get_cublas_allow_tf32()``; Inductor's convolution backward template reads
  ``torch.backends.cudnn.allow_tf32``), and a legacy getter raises ``RuntimeError`` ("...you
  have used a mix of the legacy and new APIs to set the TF32 flags") as soon as the new
  setting disagrees with the legacy one: after ``torch.backends.cudnn.conv.fp32_precision =
  "ieee"`` alone, reading ``torch.backends.cudnn.allow_tf32`` raises.

So :func:`tf32_mode` sets the legacy flags first (they also rewrite some of the new ones),
then every new setting to the same value, which leaves one consistent state that both kinds of
reader accept; on exit it restores the legacy flags (when they could be read) and then every
new setting, parent before children. On a torch without ``fp32_precision`` (< 2.9) only the
legacy flags exist and only they are set. The settings only change CUDA kernels; on the CPU
they are inert.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# (getter, setter) of every new-API setting, parent first: restoring the parent after its
# children would overwrite them.
_NEW_API = (
    ("cudnn", lambda: torch.backends.cudnn.fp32_precision, lambda v: setattr(torch.backends.cudnn, "fp32_precision", v)),
    ("matmul", lambda: torch.backends.cuda.matmul.fp32_precision,
     lambda v: setattr(torch.backends.cuda.matmul, "fp32_precision", v)),
    ("conv", lambda: torch.backends.cudnn.conv.fp32_precision, lambda v: setattr(torch.backends.cudnn.conv, "fp32_precision", v)),
    ("rnn", lambda: torch.backends.cudnn.rnn.fp32_precision, lambda v: setattr(torch.backends.cudnn.rnn, "fp32_precision", v)),
)  # fmt: skip


def has_fp32_precision_api() -> bool:
    """Whether this torch has the ``fp32_precision`` settings (torch >= 2.9)."""
    return hasattr(torch.backends.cuda.matmul, "fp32_precision") and hasattr(torch.backends.cudnn, "conv")


def _legacy() -> tuple[bool, bool] | None:
    """``(matmul.allow_tf32, cudnn.allow_tf32)``, or ``None`` when torch refuses to read them
    (the process already mixed the two APIs inconsistently)."""
    try:
        return bool(torch.backends.cuda.matmul.allow_tf32), bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:
        return None


def _set_legacy(matmul: bool, cudnn: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = cudnn


def readable_flags() -> None:
    """Make the legacy ``cudnn.allow_tf32`` readable again when the process mixed the two APIs
    so that cuDNN's conv and RNN settings disagree (torch then refuses the read, and
    ``torch.export`` reads it while tracing, so an ONNX export or a PT2E quantization would fail):
    both are set again through the legacy setters, to what the convolutions' and the matmuls'
    new-API settings say (the legacy setters make every new-API setting agree). Nothing changes
    when the flags are readable; on the CPU they change no result."""
    if _legacy() is None and has_fp32_precision_api():
        _set_legacy(
            torch.backends.cuda.matmul.fp32_precision == "tf32", torch.backends.cudnn.conv.fp32_precision == "tf32"
        )


def tf32_state() -> dict[str, object]:
    """What the TF32 settings say now: ``{"cudnn", "matmul", "conv", "rnn"}`` (new API, ``"tf32"``,
    ``"ieee"`` or ``"none"``; absent before torch 2.9) and ``"legacy"`` (``(matmul, cudnn)``
    allow_tf32, or ``None`` when torch refuses to read them). For tests and the GPU check."""
    state: dict[str, object] = {"legacy": _legacy()}
    if has_fp32_precision_api():
        state.update({name: get() for name, get, _ in _NEW_API})
    return state


@contextlib.contextmanager
def tf32_mode(enabled: bool) -> Iterator[None]:
    """TF32 allowed (``enabled``) or not (IEEE fp32) for CUDA matmuls and cuDNN convolutions
    inside the block, through both APIs (see the module docstring); everything is restored on
    exit, also on error.

    PyTorch's defaults differ (matmul IEEE, cuDNN convolutions TF32), so ``tf32_mode(False)``
    switches convolutions to IEEE as well: fp32 then means IEEE fp32 everywhere.
    """
    new_api = has_fp32_precision_api()
    old_legacy = _legacy()
    old_new = [(set_, get()) for _, get, set_ in _NEW_API] if new_api else []
    value = "tf32" if enabled else "ieee"
    try:
        _set_legacy(enabled, enabled)
        for _, _, set_ in _NEW_API if new_api else ():
            set_(value)
        yield
    finally:
        if old_legacy is not None:
            _set_legacy(*old_legacy)
        for set_, old in old_new:
            set_(old)
