"""The paired difference of two predictions of the same persons: a deployed artifact against the
eager fp32 checkpoint it was built from, with a bootstrap interval.

Both predictions score the same persons (the same crops of the same split), so the difference is
measured per person and the persons are resampled *once for both* (a paired cluster bootstrap,
:func:`hgbench.accuracy.interval.bootstrap_ci` on the two correctness arrays side by side): the
interval of the difference is then far narrower than what two independent intervals would
suggest, because most persons are right or wrong under both. The statistic is the difference of
the pooled accuracies the results report (a ratio of sums over the resampled persons, as
:mod:`hgbench.accuracy.interval` describes): each group and the Mean of
:func:`hgbench.accuracy.pck.pool_by_joint` for PCK and seed 003's PCK, the MPII toolkit's columns
(:func:`hgbench.accuracy.evaluate.pckh_official_columns`) for PCKh. On the full sample it equals
the difference of the two results' point estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hgbench.accuracy.evaluate import DEFAULT_THRESHOLDS, METRICS, Predictions, metric_correct, pckh_official_columns
from hgbench.accuracy.interval import bootstrap_ci
from hgbench.accuracy.pckh import GROUPS as PCKH_GROUPS
from hgbench.accuracy.pckh import normalized_distances
from hgbench.data.keypoints import KeypointSet


@dataclass
class PairedDifference:
    """Accuracy of predictions ``a`` minus that of ``reference`` on the same persons, in
    percentage points (negative: ``a`` is worse).

    Attributes:
        mean: difference of the Mean; ``mean_ci``: its 95 % interval (paired bootstrap over persons).
        groups, groups_ci: the same per report group.
        persons: persons scored.
        metric, threshold: what was compared.
    """

    mean: float
    mean_ci: tuple[float, float]
    groups: dict[str, float]
    groups_ci: dict[str, tuple[float, float]]
    persons: int
    metric: str
    threshold: float


def _columns(keypoints: KeypointSet, metric: str):
    """``(names, f)``: the reported columns (groups, then ``"Mean"``) and ``f(hits, scored)``
    mapping per-joint totals ``(J, ...)`` to those columns in percent ``(K, ...)``."""
    if metric == "pckh":
        return [*PCKH_GROUPS, "Mean"], pckh_official_columns
    groups = list(keypoints.groups)
    weights = np.zeros((keypoints.num_joints, len(groups) + 1))
    for k, g in enumerate(groups):
        weights[list(keypoints.groups[g]), k] = 1.0
    weights[:, -1] = 1.0

    def pooled(hits: np.ndarray, scored: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 100.0 * np.tensordot(weights.T, hits, axes=1) / np.tensordot(weights.T, scored, axes=1)

    return [*groups, "Mean"], pooled


def _correct(p: Predictions, metric: str, threshold: float) -> np.ndarray:
    """``(P, J)`` correctness as the metric's interval scores it (PCKh: the head-size distance of
    :func:`hgbench.accuracy.pckh.normalized_distances`, as :func:`~hgbench.accuracy.evaluate.pckh_intervals`)."""
    if metric == "pckh":
        d = normalized_distances(p.pred, p.gt, p.annotated, p.normalizer)
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(d), np.nan, (d <= threshold).astype(np.float64))
    return metric_correct(p, metric, threshold)


def paired_difference(
    a: Predictions, reference: Predictions, keypoints: KeypointSet, metric: str = "pck", threshold: float | None = None
) -> PairedDifference:
    """``a``'s accuracy minus ``reference``'s on the same persons, per group and Mean, each with a
    95 % paired bootstrap interval (module docstring).

    Args:
        a, reference: predictions of two models on the same dataset, in the same order.
        keypoints: the dataset's layout (report groups).
        metric, threshold: as :func:`hgbench.accuracy.evaluate.score_predictions`.

    Raises:
        ValueError: an unknown metric, or predictions of different persons (other ground truth
            or annotations).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[metric]
    same = (
        a.gt.shape == reference.gt.shape
        and np.array_equal(a.gt, reference.gt, equal_nan=True)
        and np.array_equal(a.annotated, reference.annotated)
    )
    if not same:
        raise ValueError(
            f"paired difference: the two predictions are not of the same persons ({len(a.gt)} and {len(reference.gt)} persons, "
            "or other ground truth); evaluate both on the same split in the same order"
        )
    names, columns = _columns(keypoints, metric)
    ca, cr = _correct(a, metric, threshold), _correct(reference, metric, threshold)
    joints = ca.shape[1]
    # a joint instance is scored by both or by neither (same ground truth, same normaliser)
    both = np.concatenate([ca, cr], axis=1)

    def difference(hits: np.ndarray, scored: np.ndarray) -> np.ndarray:
        return columns(hits[:joints], scored[:joints]) - columns(hits[joints:], scored[joints:])

    hits = np.nan_to_num(both)
    scored = np.isfinite(both).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = difference(hits.sum(axis=0), scored.sum(axis=0))
    low, high = bootstrap_ci(both, difference)
    cis = [(float(lo), float(hi)) for lo, hi in zip(low, high, strict=True)]
    return PairedDifference(
        mean=float(point[-1]),
        mean_ci=cis[-1],
        groups={g: float(v) for g, v in zip(names[:-1], point[:-1], strict=True)},
        groups_ci=dict(zip(names[:-1], cis[:-1], strict=True)),
        persons=len(a.gt),
        metric=metric,
        threshold=float(threshold),
    )
