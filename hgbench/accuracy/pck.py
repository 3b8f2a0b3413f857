"""PCK: per-joint correctness against a per-person normaliser, pooled per joint, per group and
overall, with the visible/occluded split.

Accuracy on LSP-style data is PCK@0.2 with the torso normaliser: a joint is correct when its
distance to the ground truth is at most 0.2 x the torso size (distance from the right
shoulder to the left hip; the other diagonal where one of those is not annotated; persons
with neither are left out). The torso size is the datasets' default normaliser hook
(:func:`hgbench.data.base.torso_size`, :meth:`hgbench.data.base.PoseDataset.normalizer`);
the functions here take any normaliser (MPII's head size, seed 003's heatmap tenth) as an
``(N,)`` array. Joints that are not annotated are left out of numerator and denominator. Per
joint and per group (Head, Shoulder, ... left and right pooled), and Mean pooled over every
annotated joint instance.

**Occlusion split** (Newell et al., ECCV 2016, report accuracy separately for visible and
occluded joints; the replication in seed 000, Rockwell et al., Sec. 4 and Fig. 9, finds
occlusion the main failure): where the dataset has a visibility flag, the same correctness
is also pooled over the visible and over the occluded (annotated, not visible) joints only.

**Intervals**: each group's and the Mean's PCK comes with a 95 % confidence interval, a
bootstrap over persons of the pooled ratio (:mod:`hgbench.accuracy.interval`); the per-joint
values and the occlusion split have none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hgbench.accuracy.interval import pooled_cis
from hgbench.data.keypoints import KeypointSet

PCK_CONVENTION = (
    "PCK@0.2, torso-normalised (right shoulder to left hip, else left shoulder to right hip); "
    "annotated joints only; groups pool left and right; Mean pooled over all annotated joints"
)


def pck_correct(
    pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, normalizer: np.ndarray, threshold: float = 0.2
) -> np.ndarray:
    """Per-joint correctness for PCK: ``distance <= threshold x normalizer`` (inclusive).

    Args:
        pred, gt: ``(N, J, 2)`` pixels.
        annotated: ``(N, J)`` bool.
        normalizer: ``(N,)`` pixels (NaN: the person is left out).
        threshold: fraction of the normaliser.

    Returns:
        ``(N, J)`` float array: 1 correct, 0 wrong (a NaN or infinite prediction is wrong),
        NaN left out (not annotated, or no normaliser).
    """
    with np.errstate(invalid="ignore"):
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
        padded: whether the last batch was padded to a static-shape artifact's batch size
            (the padding's outputs dropped before scoring; :mod:`hgbench.accuracy.evaluate`).
        per_joint_visible, per_joint_occluded: joint name -> percent over the visible /
            the occluded (annotated, not visible) instances only; None where the dataset
            has no visibility flag. ``counts_visible``, ``counts_occluded``,
            ``groups_visible``, ``groups_occluded`` likewise.
        num_skipped: samples (persons) left out for an unreadable image
            (``bad_samples="skip"``); ``skipped`` lists each such file once as
            ``(file, "missing" | "corrupt")``.
        extra: metric-specific results (PCKh: ``mean_at_0.1`` and the curve over the
            thresholds 0 to 0.5, :class:`hgbench.accuracy.pckh.PCKhResult`).
        mean_ci: ``(low, high)`` percent, the 95 % confidence interval of ``mean`` (a bootstrap
            over persons, :mod:`hgbench.accuracy.interval`); ``groups_ci``: group -> the same
            for ``groups``. NaN ends where the interval is undefined (fewer than two persons
            scored; a group too rare to be drawn in every resample); None where it was not
            computed (records written before intervals existed; metrics without one).
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
    mean_ci: tuple[float, float] | None = None
    groups_ci: dict[str, tuple[float, float]] | None = None
    padded: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _pct(values: np.ndarray) -> float:
    """Percent of ones among the finite entries (NaN where there is none)."""
    values = values[np.isfinite(values)]
    return float(values.mean() * 100) if values.size else math.nan


def pool_by_joint(
    correct: np.ndarray, keypoints: KeypointSet
) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """Pool an ``(N, J)`` correctness array (1, 0, NaN = not scored) per joint and per group.

    Returns:
        ``(per_joint, groups, counts)``: joint name -> percent, group (``keypoints.groups``,
        left and right pooled) -> percent, joint name -> scored instances. A joint or group
        with no scored instance is NaN.
    """
    per_joint = {name: _pct(correct[:, j]) for j, name in enumerate(keypoints.names)}
    groups = {g: _pct(correct[:, list(idx)].ravel()) for g, idx in keypoints.groups.items()}
    counts = {name: int(np.isfinite(correct[:, j]).sum()) for j, name in enumerate(keypoints.names)}
    return per_joint, groups, counts


def summarize_pck(
    correct: np.ndarray,
    keypoints: KeypointSet,
    threshold: float,
    num_unnormalised: int = 0,
    visible: np.ndarray | None = None,
    intervals: bool = True,
) -> PCKResult:
    """Aggregate an ``(N, J)`` correctness array (NaN = left out) into a :class:`PCKResult`,
    with the 95 % intervals of the groups and the Mean (:func:`pck_intervals`).

    Args:
        correct: ``(N, J)``, :func:`pck_correct`.
        keypoints: the layout (joint names and report groups).
        threshold: recorded in the result.
        num_unnormalised: persons left out for lack of a normaliser.
        visible: ``(N, J)`` bool, True for visible joints, for the occlusion split
            (:func:`occlusion_split`) when every person has a visibility flag; None: no split.
        intervals: False leaves ``mean_ci`` and ``groups_ci`` None.
    """
    per_joint, groups, counts = pool_by_joint(correct, keypoints)
    result = PCKResult(threshold, per_joint, groups, _pct(correct.ravel()), counts, len(correct), num_unnormalised)
    if intervals:
        result.groups_ci, result.mean_ci = pck_intervals(correct, keypoints)
    if visible is not None:
        occlusion_split(result, correct, visible, keypoints)
    return result


def pck_intervals(
    correct: np.ndarray, keypoints: KeypointSet
) -> tuple[dict[str, tuple[float, float]], tuple[float, float]]:
    """95 % intervals of the pooled groups and Mean of :func:`pool_by_joint`, from one bootstrap
    over persons (:func:`hgbench.accuracy.interval.pooled_cis`: each a ratio of sums over the
    resampled persons, not a mean of per-person accuracies).

    Args:
        correct: ``(N, J)`` (1, 0, NaN = not scored).

    Returns:
        ``(groups_ci, mean_ci)``: group -> ``(low, high)`` percent, and the Mean's.
    """
    columns = {**{g: tuple(idx) for g, idx in keypoints.groups.items()}, _MEAN: tuple(range(correct.shape[1]))}
    cis = pooled_cis(correct, columns)
    mean_ci = cis.pop(_MEAN)
    return cis, mean_ci


_MEAN = "(all joints)"  # the Mean's column in pck_intervals: not a group name of any layout


def occlusion_split(result: PCKResult, correct: np.ndarray, visible: np.ndarray, keypoints: KeypointSet) -> PCKResult:
    """Fill ``result``'s visible/occluded fields.

    Args:
        result: filled in place and returned.
        correct: ``(M, J)`` (NaN = not scored) of the persons that have a visibility flag.
        visible: ``(M, J)`` bool.
    """
    visible = np.asarray(visible, dtype=bool)
    on = np.where(visible, correct, np.nan)
    off = np.where(~visible, correct, np.nan)
    result.per_joint_visible, result.groups_visible, result.counts_visible = pool_by_joint(on, keypoints)
    result.per_joint_occluded, result.groups_occluded, result.counts_occluded = pool_by_joint(off, keypoints)
    result.mean_visible, result.mean_occluded = _pct(on.ravel()), _pct(off.ravel())
    return result
