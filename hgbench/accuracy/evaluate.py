"""Heatmap decoding, flip test and accuracy metrics, the same for every dataset.

**Flip test** (pose-hg-train ``src/train.lua`` ``step``, validation branch): the network
also sees the horizontal mirror of each crop; its heatmaps are mirrored back, the left and
right channels swapped (``src/util/img.lua`` ``flip`` and ``shuffleLR``), and the two
predictions averaged before decoding (:func:`flip_back`). The common PyTorch ports differ in
the "one-pixel shift": bearpaw/pytorch-pose (``example/main.py`` ``validate``,
``pose/utils/transforms.py`` ``flip_back``) does as pose-hg-train, no shift;
microsoft/human-pose-estimation.pytorch (``lib/core/function.py`` ``validate``,
``TEST.SHIFT_HEATMAP``) moves the mirrored-back heatmaps one pixel to the right, because its
targets put input pixel ``x`` at heatmap pixel ``x / 4`` (``JointsDataset.generate_target``:
``int(x / feat_stride + 0.5)``), so mirroring the 256 px input (``x -> 255 - x``) lands at
``63.75 - u`` and mirroring the 64 px heatmap back at ``u - 0.75``, which the shift rounds to
``u + 0.25``. hgbench's crops (:func:`hgbench.data.transforms.crop_matrix`) put the square's
edges on the outer pixel edges of both the input and the heatmap, so input pixel ``x`` is at
heatmap ``(x - 1.5) / 4``; the input mirror ``x -> 255 - x`` is heatmap ``u -> 63 - u``,
exactly the heatmap array's mirror, and a crop with ``flip=True`` is exactly the array mirror
of the plain crop. So no shift is applied (``tests/test_flip.py`` proves both in continuous
coordinates and with an oracle model).

**Decoding** follows pose-hg-train (``src/util/pose.lua`` ``postprocess``): the argmax of each
heatmap, moved a quarter pixel toward the higher of its two neighbours in x and in y, then
mapped back to original-image pixels through the inverse of the crop transform.

**Metric** by the dataset's ``metric`` (:class:`hgbench.data.base.PoseDataset`), each with
the dataset's normaliser (:meth:`~hgbench.data.base.PoseDataset.normalizer`): ``"pck"``
(below), ``"pck_heatmap"`` (seed 003: normaliser one tenth of the heatmap side in image
pixels, threshold 0.5; :mod:`hgbench.accuracy.coco`), ``"pckh"`` (MPII, head normaliser,
threshold 0.5; :mod:`hgbench.accuracy.pckh`).

Accuracy on LSP-style data is PCK@0.2 with the torso normaliser: a joint is correct when its
distance to the ground truth is at most 0.2 x the torso size (distance from the right
shoulder to the left hip; the other diagonal where one of those is not annotated; persons
with neither are left out). Joints that are not annotated are left out of numerator and
denominator. Per joint and per group (Head, Shoulder, ... left and right pooled), and Mean
pooled over every annotated joint instance.

**Occlusion split** (Newell et al., ECCV 2016, report accuracy separately for visible and
occluded joints; the replication in seed 000, Rockwell et al., Sec. 4 and Fig. 9, finds
occlusion the main failure): where the dataset has a visibility flag, the same correctness
is also pooled over the visible and over the occluded (annotated, not visible) joints only.
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

METRICS = ("pck", "pckh", "pck_heatmap")
# Each metric's standard threshold (fraction of the normaliser): PCK@0.2 on LSP (Johnson &
# Everingham's PCK as used by the LSP tables), PCKh@0.5 (MPII, Andriluka et al. 2014), and
# seed 003's r = 0.5 (Sec. 5.1).
DEFAULT_THRESHOLDS = {"pck": 0.2, "pckh": 0.5, "pck_heatmap": 0.5}

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


def flip_back(heatmaps: Tensor, flip_permutation: list[int] | Tensor) -> Tensor:
    """Heatmaps predicted for the mirrored crop, mapped back onto the plain crop.

    Each map is mirrored horizontally (``u -> W - 1 - u``, pose-hg-train ``flip``) and the
    left and right channels swapped (``shuffleLR``): channel ``j`` of the mirrored person is
    joint ``flip_permutation[j]`` of the plain one. No shift: mirroring is exact in hgbench's
    crop convention (module docstring).

    Args:
        heatmaps: ``(B, J, H, W)``, the network's output for the mirrored input.
        flip_permutation: ``(J,)``, :attr:`hgbench.data.keypoints.KeypointSet.flip_permutation`.

    Returns:
        ``(B, J, H, W)``.
    """
    perm = torch.as_tensor(flip_permutation, dtype=torch.long, device=heatmaps.device)
    inverse = torch.argsort(perm)  # out[:, perm[j]] = mirrored[:, j]
    return heatmaps[:, inverse].flip(-1)


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
        threshold: fraction of the normaliser.
        per_joint: joint name -> PCK in percent (NaN where the joint never occurs).
        groups: report group (Head, Shoulder, ...) -> PCK in percent.
        mean: PCK pooled over all scored joint instances, percent.
        counts: joint name -> number of scored instances.
        num_persons: persons evaluated; ``num_unnormalised``: persons left out for lack of
            a normaliser.
        convention: the metric's definition in words.
        loss: mean heatmap MSE of the plain (unmirrored) prediction.
        metric: ``"pck"``, ``"pckh"`` or ``"pck_heatmap"``.
        flip_test: whether the flip test was applied.
        per_joint_visible, per_joint_occluded: joint name -> percent over the visible /
            the occluded (annotated, not visible) instances only; None where the dataset
            has no visibility flag. ``counts_visible``, ``counts_occluded``,
            ``groups_visible``, ``groups_occluded`` likewise.
        num_skipped: samples (persons) left out for an unreadable image
            (``bad_samples="skip"``); ``skipped`` lists each such file once as
            ``(file, "missing" | "corrupt")``.
        extra: metric-specific results (PCKh: ``mean_at_0.1`` and the curve over the
            thresholds 0 to 0.5, :class:`hgbench.accuracy.pckh.PCKhResult`).
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
    metric: str = "pck"
    flip_test: bool = False
    per_joint_visible: dict[str, float] | None = None
    per_joint_occluded: dict[str, float] | None = None
    counts_visible: dict[str, int] | None = None
    counts_occluded: dict[str, int] | None = None
    groups_visible: dict[str, float] | None = None
    groups_occluded: dict[str, float] | None = None
    mean_visible: float | None = None
    mean_occluded: float | None = None
    num_skipped: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _pct(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(values.mean() * 100) if values.size else math.nan


def _per_joint_and_groups(correct: np.ndarray, keypoints: KeypointSet) -> tuple[dict, dict, dict]:
    per_joint = {name: _pct(correct[:, j]) for j, name in enumerate(keypoints.names)}
    groups = {g: _pct(correct[:, list(idx)].ravel()) for g, idx in keypoints.groups.items()}
    counts = {name: int(np.isfinite(correct[:, j]).sum()) for j, name in enumerate(keypoints.names)}
    return per_joint, groups, counts


def summarize_pck(
    correct: np.ndarray, keypoints: KeypointSet, threshold: float, num_unnormalised: int = 0, visible: np.ndarray | None = None,
) -> PCKResult:
    """Aggregate an ``(N, J)`` correctness array (NaN = left out) into a :class:`PCKResult`.

    Args:
        visible: ``(N, J)`` bool, True for visible joints, for the occlusion split
            (:func:`occlusion_split`) when every person has a visibility flag; None: no split.
    """
    per_joint, groups, counts = _per_joint_and_groups(correct, keypoints)
    result = PCKResult(threshold, per_joint, groups, _pct(correct.ravel()), counts, len(correct), num_unnormalised)
    if visible is not None:
        occlusion_split(result, correct, visible, keypoints)
    return result


def occlusion_split(result: PCKResult, correct: np.ndarray, visible: np.ndarray, keypoints: KeypointSet) -> PCKResult:
    """Fill ``result``'s visible/occluded fields from ``correct (N, J)`` (NaN = not scored)
    and ``visible (N, J)`` bool of persons that have a visibility flag; returns ``result``."""
    visible = np.asarray(visible, dtype=bool)
    on = np.where(visible, correct, np.nan)
    off = np.where(~visible, correct, np.nan)
    result.per_joint_visible, result.groups_visible, result.counts_visible = _per_joint_and_groups(on, keypoints)
    result.per_joint_occluded, result.groups_occluded, result.counts_occluded = _per_joint_and_groups(off, keypoints)
    result.mean_visible, result.mean_occluded = _pct(on.ravel()), _pct(off.ravel())
    return result


@dataclass
class Predictions:
    """Decoded predictions of a model on a dataset.

    Attributes:
        pred, gt: ``(N, J, 2)`` image pixels.
        annotated: ``(N, J)`` bool.
        normalizer: ``(N,)`` image pixels, from the dataset's normaliser hook.
        loss: mean heatmap MSE of the plain (unmirrored) prediction.
        visible: ``(N, J)`` bool, annotated and not occluded (``annotated`` where there is
            no flag); ``has_visibility``: ``(N,)`` bool, whether a person has the flag.
        maxvals: ``(N, J)`` heatmap maxima (of the averaged heatmaps with the flip test).
        flip_test: whether the flip test was applied.
    """

    pred: np.ndarray
    gt: np.ndarray
    annotated: np.ndarray
    normalizer: np.ndarray
    loss: float = float("nan")
    extra: dict = field(default_factory=dict)
    visible: np.ndarray | None = None
    has_visibility: np.ndarray | None = None
    maxvals: np.ndarray | None = None
    flip_test: bool = False


def base_dataset(dataset):
    """The :class:`PoseDataset` under ``torch.utils.data.Subset`` wrappers (or ``dataset``
    itself)."""
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset


@torch.no_grad()
def predict(
    model: nn.Module, dataset: PoseDataset, batch_size: int = 16, num_workers: int = 0, progress=None, supervision: str = "intermediate",
    skips: bool = True, flip_test: bool = True,
) -> Predictions:
    """Run ``model`` (eval mode, restored afterwards) on every item of ``dataset`` and
    decode its prediction (:func:`hgbench.models.loss.final_heatmaps` for the variant's
    ``supervision``) to image pixels. ``skips=False`` runs it with the hourglasses' upper
    branches switched off (a variant's ``eval_skips``; switched back on afterwards).

    With ``flip_test`` each batch is run together with its horizontal mirror (one forward
    pass on ``2B`` crops) and the two predictions are averaged (:func:`flip_back`, module
    docstring); it needs the dataset's ``keypoints.flip_permutation``, and a dataset
    without ``keypoints`` (not a :class:`PoseDataset`) is run without it
    (``Predictions.flip_test`` says which). The loss is that of the plain prediction, as
    pose-hg-train's validation loss.
    """
    keypoints = getattr(base_dataset(dataset), "keypoints", None)
    flip_test = bool(flip_test and keypoints is not None)
    was_training = model.training
    model.eval()
    if not skips:
        model.set_skips_enabled(False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    preds, gts, ann, norms, vis, has_vis, maxes = [], [], [], [], [], [], []
    loss_sum, n = 0.0, 0
    try:
        for batch in loader:
            images = batch["image"]
            b = len(images)
            if flip_test:
                both = final_heatmaps(model(torch.cat([images, images.flip(-1)])), supervision)
                out = both[:b]
                heatmaps = (out + flip_back(both[b:], keypoints.flip_permutation)) / 2
            else:
                out = heatmaps = final_heatmaps(model(images), supervision)
            w = batch["target_weight"][:, :, None, None]
            loss_sum += float((((out - batch["heatmaps"]) ** 2) * w).mean()) * b
            n += b
            coords, maxvals = decode_heatmaps(heatmaps)
            preds.append(heatmap_to_image(coords, batch["heatmap_to_image"]).numpy())
            maxes.append(maxvals.numpy())
            gts.append(batch["joints"].numpy())
            ann.append(batch["annotated"].numpy())
            vis.append(batch["visible"].numpy() if "visible" in batch else batch["annotated"].numpy())
            has_vis.append(batch["has_visibility"].numpy() if "has_visibility" in batch else np.zeros(b, dtype=bool))
            norms.append(batch["normalizer"].numpy())
            if progress is not None:
                progress(b)
    finally:
        model.train(was_training)
        if not skips:
            model.set_skips_enabled(True)
    return Predictions(
        np.concatenate(preds), np.concatenate(gts), np.concatenate(ann), np.concatenate(norms), loss_sum / max(n, 1),
        visible=np.concatenate(vis).astype(bool), has_visibility=np.concatenate(has_vis).astype(bool),
        maxvals=np.concatenate(maxes), flip_test=flip_test,
    )


def score_predictions(p: Predictions, keypoints: KeypointSet, metric: str = "pck", threshold: float | None = None) -> PCKResult:
    """Score decoded predictions with ``metric`` (module docstring) at ``threshold``
    (None: the metric's standard, :data:`DEFAULT_THRESHOLDS`), with the occlusion split
    over the persons that have a visibility flag.

    Raises:
        ValueError: unknown ``metric``.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[metric]
    if metric == "pck_heatmap":  # seed 003, Algorithm 1: strict distance test
        from hgbench.accuracy.coco import pck_heatmap_correct

        correct = pck_heatmap_correct(p.pred, p.gt, p.annotated, p.normalizer, threshold)
    else:
        correct = pck_correct(p.pred, p.gt, p.annotated, p.normalizer, threshold)
    num_unnormalised = int((~np.isfinite(p.normalizer)).sum())
    result = summarize_pck(correct, keypoints, threshold, num_unnormalised)
    if metric == "pck_heatmap":
        from hgbench.accuracy.coco import PCK_HEATMAP_CONVENTION

        result.convention = PCK_HEATMAP_CONVENTION
    elif metric == "pckh":
        # The MPII toolkit's PCKh (hgbench.accuracy.pckh, "official": Head = mean of upper neck and head
        # top, Mean pooled without pelvis and thorax), with the dataset's head normaliser. Its
        # distance test (<=) is pck_correct's, so the occlusion split below agrees with it.
        from hgbench.accuracy.pckh import compute_pckh

        h = compute_pckh(p.pred, p.gt, p.annotated, p.normalizer, convention="official", threshold=threshold)
        result.per_joint, result.groups, result.mean, result.counts = h.per_joint, h.groups, h.mean, h.counts
        result.convention = h.definition
        result.extra = {"mean_at_0.1": h.mean_at_01, "thresholds": h.thresholds, "curve": h.curve}
    result.metric = metric
    if p.has_visibility is not None and p.has_visibility.any():
        rows = p.has_visibility
        occlusion_split(result, correct[rows], p.visible[rows], keypoints)
    return result


def evaluate_pck(
    model: nn.Module, dataset: PoseDataset, threshold: float | None = None, batch_size: int = 16, progress=None,
    supervision: str = "intermediate", skips: bool = True, flip_test: bool = True,
) -> PCKResult:
    """Accuracy of ``model`` on ``dataset`` with the dataset's metric (``dataset.metric``,
    default ``"pck"``) and normaliser, at ``threshold`` (None: the metric's standard, 0.2 for
    PCK, 0.5 for PCKh and seed 003's PCK); ``skips`` and ``flip_test`` as :func:`predict`.
    The result counts the samples the dataset skipped as unreadable (``num_skipped``)."""
    base = base_dataset(dataset)
    p = predict(model, dataset, batch_size=batch_size, progress=progress, supervision=supervision, skips=skips, flip_test=flip_test)
    result = score_predictions(p, base.keypoints, getattr(base, "metric", "pck"), threshold)
    result.loss = p.loss
    result.flip_test = p.flip_test
    if hasattr(dataset, "coco") and hasattr(dataset, "persons"):  # COCO, whole split: OKS AP/AR on GT boxes too
        from hgbench.accuracy.coco import dataset_oks_ap

        result.extra = {**(result.extra or {}), "oks": dataset_oks_ap(dataset, p.pred, p.maxvals)}
    skipped = [tuple(item) for item in getattr(base, "skipped", [])]
    result.num_skipped = len(skipped)
    result.skipped = list(dict.fromkeys(skipped))  # each bad file once, in order
    return result
