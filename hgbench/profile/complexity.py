"""Model size and compute: parameter count and multiply-accumulates (MACs).

Two independent counters are run, because the literature quotes both and they disagree
on everything that is not a convolution or a linear layer:

* **fvcore** (``FlopCountAnalysis``) traces the model with the TorchScript tracer and
  counts per aten operator. Despite its name it counts "one fused multiply-add as one
  flop" (fvcore's own docstring), so its total is in **MACs**. Besides conv/linear/matmul
  it also counts, by default, batch norm (1 per element, 2 with affine), group/layer/
  instance norm, upsampling (nearest: 1 per output element, bilinear: 4) and adaptive
  average pooling. Operators without a handler (e.g. ``aten::add`` of the residual
  connections, ``aten::relu``, ``aten::max_pool2d``) count 0 and are listed in
  :attr:`MacCounts.fvcore_skipped`.
* **thop** (``thop.profile``) hooks leaf ``nn.Module`` s of known types and returns
  **MACs**. It never sees functional calls (``torch.add``, ``F.interpolate``, ``x + y``)
  and counts 0 for a leaf module of an unknown type; batch norm counts 2 per element
  (4 with affine).

Neither counts the bias addition of a convolution: for ``Conv2d`` both give
``C_out * H_out * W_out * (C_in / groups) * k_h * k_w`` MACs per sample (checked in
``tests/test_profile.py``). FLOPs, where wanted, are 2 x MACs for conv/linear (see
``DESIGN.md``); this module reports MACs only.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

# Deprecation noise from the counters themselves: fvcore's import scripts a loss function
# (torch.jit.script is deprecated in torch 2.13) and thop 0.1.1 uses distutils' LooseVersion.
_NOISE = (r"`torch\.jit\.\w+` is deprecated", r"distutils Version classes are deprecated")


@dataclass(frozen=True)
class MacCounts:
    """Multiply-accumulates of one forward pass, from two counters.

    Attributes:
        fvcore_macs: fvcore ``FlopCountAnalysis(...).total()``, in MACs.
        thop_macs: ``thop.profile(...)[0]``, in MACs.
        fvcore_skipped: operators fvcore had no handler for (counted as 0), with how many
            times each was called, e.g. ``{"aten::add": 24}``.
        fvcore_by_operator: fvcore's MACs per operator kind, e.g. ``{"conv": ..., "batch_norm": ...}``.
    """

    fvcore_macs: int
    thop_macs: int
    fvcore_skipped: dict[str, int] = field(default_factory=dict)
    fvcore_by_operator: dict[str, int] = field(default_factory=dict)

    @property
    def fvcore_gmacs(self) -> float:
        """fvcore's count in GMACs (10^9 MACs)."""
        return self.fvcore_macs / 1e9

    @property
    def thop_gmacs(self) -> float:
        """thop's count in GMACs (10^9 MACs)."""
        return self.thop_macs / 1e9


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable and frozen); buffers (e.g. batch-norm running
    statistics) are not counted, and a parameter shared by several modules counts once."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacCounts:
    """Count the MACs of one forward pass of ``model`` on a zero tensor of ``input_shape``.

    The count is for the whole input, batch dimension included: pass a batch of 1 for
    per-sample MACs. The model runs in eval mode under ``torch.no_grad()`` on the device and
    dtype of its parameters (CPU for a fresh model); its training mode is restored
    afterwards, and thop works on a deep copy (it adds buffers and hooks while it counts).
    The counters' own log lines, prints and deprecation warnings are silenced; what fvcore
    skipped is returned in :attr:`MacCounts.fvcore_skipped`.

    Raises:
        Whatever the model's forward raises on such an input; ImportError if fvcore or thop
        is not installed.
    """
    with warnings.catch_warnings():
        for message in _NOISE:
            warnings.filterwarnings("ignore", message=message)
        from fvcore.nn import FlopCountAnalysis
        import thop

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(input_shape, device=device, dtype=dtype)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            for message in _NOISE:
                warnings.filterwarnings("ignore", message=message)
            analysis = (
                FlopCountAnalysis(model, (x,))
                .unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False)
                .tracer_warnings("none")
            )
            fvcore_total = analysis.total()
            skipped = dict(analysis.unsupported_ops())
            by_operator = {op: int(round(n)) for op, n in analysis.by_operator().items()}

            thop_model = copy.deepcopy(model)
            with contextlib.redirect_stdout(io.StringIO()):  # thop prints "[INFO] Register ..."
                thop_total, _ = thop.profile(thop_model, inputs=(x,), verbose=False)
            del thop_model
    finally:
        model.train(was_training)

    return MacCounts(
        fvcore_macs=int(round(fvcore_total)),
        thop_macs=int(round(thop_total)),  # thop returns a float
        fvcore_skipped=skipped,
        fvcore_by_operator=by_operator,
    )
