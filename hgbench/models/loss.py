"""Training losses on heatmaps."""

from __future__ import annotations

from torch import Tensor


def heatmap_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error over ``(B, J, H, W)`` heatmaps, joints weighted by ``weight``
    ``(B, J)`` (0 for joints that are not annotated: no loss). Averaged over all elements,
    as Torch7's ``nn.MSECriterion`` in pose-hg-train."""
    return (((pred - target) ** 2) * weight[:, :, None, None]).mean()


def stacked_loss(outputs: list[Tensor], target: Tensor, weight: Tensor, supervision: str = "intermediate") -> Tensor:
    """Loss of a stacked network.

    ``intermediate``: the sum of every stack's heatmap MSE (Newell et al., section 2:
    "intermediate supervision"; pose.lua's ``ParallelCriterion`` with one MSE per stack).

    Raises:
        ValueError: unknown ``supervision``.
    """
    if supervision == "intermediate":
        return sum(heatmap_mse(o, target, weight) for o in outputs)
    raise ValueError(f"unknown supervision {supervision!r}")
