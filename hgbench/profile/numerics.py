"""Numerical check of a backend against eager fp32: is a fast backend also right?

The reference is the eager fp32 model's output on the same input; the candidate is a
backend's output (any precision). Both are what the hourglass networks return: a list of
per-stack heatmaps ``(N, J, H, W)``, or a single tensor. The check compares the *final
stack's* heatmaps (``outputs[-1]``, the network's prediction; :func:`hgbench.models.loss.final_heatmaps`
with the default supervision) after casting the candidate to float32, and reports
(the ``numerics`` field of a ``"profile"`` record, :mod:`hgbench.profile.run`):

* ``max_abs_error``: ``max |candidate - reference|`` over all heatmap values, in heatmap
  units (a trained network's heatmaps peak near 1, the Gaussian target's peak);
  ``inf`` when the candidate has NaN/inf where the reference is finite.
* ``argmax_moved_fraction``: the fraction of (sample, joint) pairs whose peak pixel (plain
  ``argmax`` over the ``H x W`` map: the integer peak that
  :func:`hgbench.accuracy.decode.decode_heatmaps` starts from, without its quarter-pixel step)
  differs between candidate and reference. This is what moves a predicted joint and so
  PCK; it is reported, not thresholded (see below).
* ``ok``: ``max_abs_error <= tolerance["max_abs_error"]``.
* ``tolerance``: the bound and how it was set (:class:`Tolerance`).

Tolerance. The bound is ``rtol * max(1, max|reference|)``: relative to the reference's
largest magnitude (random-weight hourglasses grow with depth: measured ``max|ref|`` 0.8 for
hg1 and 27 for hg8 at 64 x 64), but never below ``rtol`` heatmap units. ``rtol`` by
precision, from the unit roundoff ``u`` of each format and measured errors of correct
eager runs on the CPU (hg1, hg2, hg4, hg8, hru8, hg1-ghost, hg2-sum at 64 x 64, hg8 at
128 x 128, hg1 and hg2 at 256 x 256; random weights, batch 2, 16 joints; relative error =
max_abs_error / max|ref|):

=========  ========  ================================================  =====
precision  u         measured relative error (worst)                   rtol
=========  ========  ================================================  =====
fp32       6.0e-8    < 1e-6 (torchscript, onnxruntime, compile, NHWC)  1e-3
tf32       4.9e-4    not measured (no GPU); treated as fp16            1e-2
fp16       4.9e-4    1.0e-3 .. 2.2e-3                                  1e-2
bf16       3.9e-3    8e-3 .. 2.3e-2                                    8e-2
int8       (scales)  1.9e-2 .. 2.7e-2 (hg1, onnxruntime and compile)   0.25
fp8        6.3e-2    not measured (no GPU); treated as int8            0.25
=========  ========  ================================================  =====

int8 and fp8 (post-training quantized) are compared on calibration crops, not on noise (their
activation scales fit images; :func:`hgbench.profile.run.profile_model`); their error is set by the
calibrated scales rather than a unit roundoff, and it moves many flat random-weight argmaxes
(54 % to 71 % in the measurement above, hg1 at 64 px, batch 1 and 8, 256 LSPET calibration
crops). Their bound catches a broken artifact (zeroed or swapped weights give errors of the
heatmaps' own size), not an accuracy loss: the deployed accuracy (``hgbench profile --evaluate``)
is what says what quantization cost.

fp32's 1e-3 is loose against rounding (three orders above what reordering sums costs) yet
far below what a wrong result costs: heatmaps shifted by one pixel, or swapped joints,
differ by a sizeable fraction of the peak. fp16 and bf16 get about four times their worst
measured error. TF32 (CUDA matmuls/convolutions with a 10-bit mantissa, like fp16) gets
fp16's bound.

Why the argmax is reported but not thresholded: if ``max_abs_error <= e``, a moved peak
``b`` (candidate) vs ``a`` (reference) satisfies ``ref[a] - ref[b] <= 2e``
(``ref[b] >= cand[b] - e >= cand[a] - e >= ref[a] - 2e``): within the error bound a peak can
only move to a pixel that nearly ties with the reference's peak, and a peak that moves
farther already fails the bound. Random-weight heatmaps are flat and full of near-ties:
correct bf16 runs moved 3 % to 50 % of peaks in the measurements above, so a fixed cap on the
fraction would flag correct low-precision backends; on trained, peaked heatmaps the
fraction is the number to read next to PCK.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from hgbench.profile.backends.base import PRECISIONS

RTOL: dict[str, float] = {"fp32": 1e-3, "tf32": 1e-2, "fp16": 1e-2, "bf16": 8e-2, "int8": 0.25, "fp8": 0.25}
"""Relative bound on the final heatmaps' max abs error, by precision (see the module docstring)."""


@dataclass(frozen=True)
class Tolerance:
    """How far a candidate may be from the eager fp32 reference.

    Attributes:
        precision: the key of :data:`RTOL` used (``"tf32"`` for fp32 with TF32 allowed).
        rtol: the relative bound.
    """

    precision: str
    rtol: float

    def bound(self, reference_scale: float) -> float:
        """``rtol * max(1, reference_scale)``, in heatmap units."""
        return self.rtol * max(1.0, reference_scale)


def tolerance_for(precision: str, tf32: bool = False) -> Tolerance:
    """The :class:`Tolerance` of a run in ``precision`` (``"fp32"``, ``"fp16"``, ``"bf16"``);
    ``tf32=True`` with fp32 gives TF32's looser bound (pass it only where TF32 could apply,
    i.e. on CUDA; passing it on the CPU merely loosens the check).

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISIONS)}")
    key = "tf32" if precision == "fp32" and tf32 else precision
    return Tolerance(precision=key, rtol=RTOL[key])


def final_stack(output: Tensor | Sequence[Tensor]) -> Tensor:
    """The final stack's heatmaps ``(N, J, H, W)`` of a model output (a list of per-stack
    heatmaps, or one tensor).

    Raises:
        ValueError: an empty list, or a tensor that is not 4-D.
    """
    if isinstance(output, Tensor):
        heatmaps = output
    else:
        if len(output) == 0:
            raise ValueError("the model returned an empty list of heatmaps")
        heatmaps = output[-1]
    if heatmaps.dim() != 4:
        raise ValueError(f"expected heatmaps of shape (N, J, H, W), got {tuple(heatmaps.shape)}")
    return heatmaps


def compare_outputs(
    reference: Tensor | Sequence[Tensor],
    candidate: Tensor | Sequence[Tensor],
    tolerance: Tolerance | None = None,
) -> dict[str, Any]:
    """Compare a backend's output with the eager fp32 reference on the same input.

    Args:
        reference: eager fp32 output: a list of per-stack heatmaps ``(N, J, H, W)`` or one tensor.
        candidate: the backend's output, same structure, any floating dtype and device.
        tolerance: from :func:`tolerance_for`; default fp32.

    Returns:
        ``{"max_abs_error": float, "argmax_moved_fraction": float, "ok": bool,
        "tolerance": {"precision", "rtol", "reference_scale", "max_abs_error",
        "compared", "argmax"}}`` (see the module docstring; plain Python values).

    Raises:
        ValueError: the outputs differ in number of stacks or in shape (a backend returning
            something else is broken in a way no tolerance describes).
    """
    tolerance = tolerance or tolerance_for("fp32")
    if not isinstance(reference, Tensor) and not isinstance(candidate, Tensor) and len(reference) != len(candidate):
        raise ValueError(f"the backend returned {len(candidate)} stacks of heatmaps, eager returned {len(reference)}")
    ref = final_stack(reference).detach().float().cpu()
    cand = final_stack(candidate).detach().float().cpu()
    if ref.shape != cand.shape:
        raise ValueError(f"final heatmaps of shape {tuple(cand.shape)} from the backend, {tuple(ref.shape)} from eager")

    diff = (cand - ref).abs()
    max_abs_error = float(diff.max()) if bool(torch.isfinite(cand).all()) else float("inf")
    n, j = ref.shape[:2]
    moved = ref.reshape(n, j, -1).argmax(dim=-1) != cand.reshape(n, j, -1).argmax(dim=-1)
    scale = float(ref.abs().max())
    bound = tolerance.bound(scale)
    return {
        "max_abs_error": max_abs_error,
        "argmax_moved_fraction": float(moved.float().mean()),
        "ok": bool(max_abs_error <= bound),
        "tolerance": {
            **asdict(tolerance),
            "reference_scale": scale,
            "max_abs_error": bound,
            "compared": "final stack heatmaps, candidate cast to float32",
            "argmax": "plain argmax over H x W per joint; reported, not thresholded",
        },
    }
