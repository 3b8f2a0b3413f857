"""Heatmap decoding and accuracy metrics.

Decoding follows pose-hg-train (``src/util/pose.lua`` ``postprocess``): the argmax of each
heatmap, moved a quarter pixel toward the higher of its two neighbours in x and in y, then
mapped back to original-image pixels through the inverse of the crop transform.

Accuracy on LSP-style data is PCK@0.2 with the torso normaliser: a joint is correct when its
distance to the ground truth is at most 0.2 x the torso size (distance from the right
shoulder to the left hip; the other diagonal where one of those is not annotated; persons
with neither are left out). Joints that are not annotated are left out of numerator and
denominator. Per joint and per group (Head, Shoulder, ... left and right pooled), and Mean
pooled over every annotated joint instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from hgbench.data.base import PoseDataset
from hgbench.data.keypoints import KeypointSet
from hgbench.models.loss import final_heatmaps

PCK_CONVENTION = (
    "PCK@0.2, torso-normalised (right shoulder to left hip, else left shoulder to right hip); "
    "annotated joints only; groups pool left and right; Mean pooled over all annotated joints"
)


def decode_heatmaps(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Joint positions from heatmaps.

    Args:
        heatmaps: ``(B, J, H, W)``.

    Returns:
        ``coords (B, J, 2)`` float32 (x, y) in heatmap pixels, with the quarter-pixel step
        toward the higher neighbour where the argmax is not on the border, and
        ``maxvals (B, J)``, the heatmaps' maxima.
    """
    b, j, h, w = heatmaps.shape
    hm = heatmaps.detach().float()
    maxvals, idx = hm.reshape(b, j, -1).max(dim=-1)
    x = (idx % w).long()
    y = torch.div(idx, w, rounding_mode="floor").long()
    coords = torch.stack([x, y], dim=-1).float()

    inner = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1)
    flat = hm.reshape(b, j, -1)

    def at(dx: int, dy: int) -> Tensor:
        xi = (x + dx).clamp(0, w - 1)
        yi = (y + dy).clamp(0, h - 1)
        return flat.gather(-1, (yi * w + xi).unsqueeze(-1)).squeeze(-1)

    step = torch.stack([torch.sign(at(1, 0) - at(-1, 0)), torch.sign(at(0, 1) - at(0, -1))], dim=-1) * 0.25
    coords = coords + step * inner.unsqueeze(-1)
    return coords, maxvals


def heatmap_to_image(coords: Tensor, matrices: Tensor) -> Tensor:
    """Map ``(B, J, 2)`` heatmap-pixel coordinates to image pixels with ``(B, 2, 3)`` affines."""
    m = matrices.to(torch.float64)
    c = coords.to(torch.float64)
    return torch.einsum("bij,bkj->bki", m[:, :, :2], c) + m[:, None, :, 2]


def pck_correct(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, normalizer: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Per-joint correctness for PCK.

    Args:
        pred, gt: ``(N, J, 2)`` pixels.
        annotated: ``(N, J)`` bool.
        normalizer: ``(N,)`` pixels (NaN: the person is left out).
        threshold: fraction of the normaliser.

    Returns:
        ``(N, J)`` float array: 1 correct, 0 wrong, NaN left out (not annotated, or no
        normaliser).
    """
    dist = np.linalg.norm(np.asarray(pred, np.float64) - np.asarray(gt, np.float64), axis=-1)
    norm = np.asarray(normalizer, np.float64)[:, None]
    correct = (dist <= threshold * norm).astype(np.float64)
    correct[~np.asarray(annotated, bool) | ~np.isfinite(norm).repeat(dist.shape[1], axis=1)] = np.nan
    return correct


@dataclass
class PCKResult:
    """PCK of one model on one split.

    Attributes:
        per_joint: joint name -> PCK in percent (NaN where the joint never occurs).
        groups: report group (Head, Shoulder, ...) -> PCK in percent.
        mean: PCK pooled over all scored joint instances, percent.
        counts: joint name -> number of scored instances.
        num_persons: persons evaluated; ``num_unnormalised``: persons left out for lack of
            a torso normaliser.
    """

    threshold: float
    per_joint: dict[str, float]
    groups: dict[str, float]
    mean: float
    counts: dict[str, int]
    num_persons: int
    num_unnormalised: int
    convention: str = PCK_CONVENTION
    loss: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def summarize_pck(correct: np.ndarray, keypoints: KeypointSet, threshold: float, num_unnormalised: int = 0) -> PCKResult:
    """Aggregate an ``(N, J)`` correctness array (NaN = left out) into a :class:`PCKResult`."""

    def pct(values: np.ndarray) -> float:
        values = values[np.isfinite(values)]
        return float(values.mean() * 100) if values.size else math.nan

    per_joint = {name: pct(correct[:, j]) for j, name in enumerate(keypoints.names)}
    groups = {g: pct(correct[:, list(idx)].ravel()) for g, idx in keypoints.groups.items()}
    counts = {name: int(np.isfinite(correct[:, j]).sum()) for j, name in enumerate(keypoints.names)}
    return PCKResult(threshold, per_joint, groups, pct(correct.ravel()), counts, len(correct), num_unnormalised)


@dataclass
class Predictions:
    """Decoded predictions of a model on a dataset: ``pred``/``gt`` ``(N, J, 2)`` image
    pixels, ``annotated`` ``(N, J)``, ``normalizer`` ``(N,)``, mean heatmap ``loss``."""

    pred: np.ndarray
    gt: np.ndarray
    annotated: np.ndarray
    normalizer: np.ndarray
    loss: float = float("nan")
    extra: dict = field(default_factory=dict)


@torch.no_grad()
def predict(
    model: nn.Module, dataset: PoseDataset, batch_size: int = 16, num_workers: int = 0, progress=None, supervision: str = "intermediate",
    skips: bool = True,
) -> Predictions:
    """Run ``model`` (eval mode, restored afterwards) on every item of ``dataset`` and
    decode its prediction (:func:`hgbench.models.loss.final_heatmaps` for the variant's
    ``supervision``) to image pixels. ``skips=False`` runs it with the hourglasses' upper
    branches switched off (a variant's ``eval_skips``; switched back on afterwards)."""
    was_training = model.training
    model.eval()
    if not skips:
        model.set_skips_enabled(False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    preds, gts, ann, norms = [], [], [], []
    loss_sum, n = 0.0, 0
    try:
        for batch in loader:
            out = final_heatmaps(model(batch["image"]), supervision)
            w = batch["target_weight"][:, :, None, None]
            loss_sum += float((((out - batch["heatmaps"]) ** 2) * w).mean()) * len(out)
            n += len(out)
            coords, _ = decode_heatmaps(out)
            preds.append(heatmap_to_image(coords, batch["heatmap_to_image"]).numpy())
            gts.append(batch["joints"].numpy())
            ann.append(batch["annotated"].numpy())
            norms.append(batch["normalizer"].numpy())
            if progress is not None:
                progress(len(out))
    finally:
        model.train(was_training)
        if not skips:
            model.set_skips_enabled(True)
    return Predictions(np.concatenate(preds), np.concatenate(gts), np.concatenate(ann), np.concatenate(norms), loss_sum / max(n, 1))


def evaluate_pck(
    model: nn.Module, dataset: PoseDataset, threshold: float = 0.2, batch_size: int = 16, progress=None, supervision: str = "intermediate",
    skips: bool = True,
) -> PCKResult:
    """PCK@``threshold`` of ``model`` on ``dataset`` (see the module docstring); ``skips``
    as :func:`predict`."""
    p = predict(model, dataset, batch_size=batch_size, progress=progress, supervision=supervision, skips=skips)
    correct = pck_correct(p.pred, p.gt, p.annotated, p.normalizer, threshold)
    result = summarize_pck(correct, dataset.keypoints, threshold, int((~np.isfinite(p.normalizer)).sum()))
    result.loss = p.loss
    return result
