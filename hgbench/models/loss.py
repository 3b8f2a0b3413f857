"""Training losses on heatmaps."""

from __future__ import annotations

from torch import Tensor


def heatmap_mse(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Mean squared error over ``(B, J, H, W)`` heatmaps, joints weighted by ``weight``
    ``(B, J)`` (0 for joints that are not annotated: no loss). Averaged over all elements,
    as Torch7's ``nn.MSECriterion`` in pose-hg-train."""
    return (((pred - target) ** 2) * weight[:, :, None, None]).mean()


SUPERVISIONS = ("intermediate", "final", "sum")


def stacked_loss(outputs: list[Tensor], target: Tensor, weight: Tensor, supervision: str = "intermediate") -> Tensor:
    """Loss of a stacked network (the supervision ablation of Newell et al., seed
    ``004_f2275e04f372f4f6.txt`` section 3, Figure 4).

    - ``intermediate``: the sum of every stack's heatmap MSE ("intermediate supervision";
      pose.lua's ``ParallelCriterion`` with one MSE per stack; HG-Stacked-Int).
    - ``final``: the last stack's MSE only (no intermediate supervision; HG-Stacked).
    - ``sum``: one MSE on the sum of all stacks' heatmaps (HG-Stacked-Add: "a single loss
      applied to the sum of intermediate and final heatmaps").

    Raises:
        ValueError: unknown ``supervision``.
    """
    if supervision == "intermediate":
        return sum(heatmap_mse(o, target, weight) for o in outputs)
    if supervision in ("final", "sum"):
        return heatmap_mse(final_heatmaps(outputs, supervision), target, weight)
    raise ValueError(f"unknown supervision {supervision!r}; known: {', '.join(SUPERVISIONS)}")


def final_heatmaps(outputs: list[Tensor], supervision: str = "intermediate") -> Tensor:
    """The prediction of a stacked network: the last stack's heatmaps ``(B, J, H, W)``, or
    for ``sum`` supervision the sum over stacks, which is what that loss trains."""
    if supervision == "sum":
        return sum(outputs[1:], outputs[0])
    return outputs[-1]
