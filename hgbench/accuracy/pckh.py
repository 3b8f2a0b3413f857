"""PCKh on MPII Human Pose, computed the two ways published tables compute it.

A joint is correct when its distance to the ground truth, divided by the person's head size
(0.6 x the diagonal of the annotated head box), is within a threshold (0.5 for PCKh@0.5).
Joints that are not annotated are left out of numerator and denominator; pelvis and thorax
are left out of the total. Two conventions differ in the details:

``official`` -- the MPII evaluation toolkit (``evalMPII.zip`` from
    human-pose.mpi-inf.mpg.de; ``eval/evaluatePCKh.m``, ``computePCK.m``, ``genTablePCK.m``,
    ``util_get_head_size.m``, ``annolist2matrix.m``; also anibali/eval-mpii-pose
    ``evalMPII.m`` for the validation split):

    - head size ``SC_BIAS * norm([x2 y2] - [x1 y1])`` with ``SC_BIAS = 0.6``;
    - correct when ``dist <= threshold`` (``computePCK``: ``mean(d(~isnan(d)) <= range(k))``);
      a missing ground-truth joint is NaN and left out; a NaN prediction is set to ``inf``
      ("only gt is allowed to have NaN") and counts as wrong;
    - per-joint PCKh, then each table column is the mean of its two joints' PCKh
      (``genTablePCK``: Head ``(pck(13)+pck(14))/2`` = upper neck and head top, Shoulder
      ``(pck(9)+pck(10))/2``, ...);
    - Total pooled over all joint instances of the 14 joints ``annolist2matrix`` keeps
      (pelvis and thorax dropped): ``mean(d(~isnan(d)) <= range(k))`` over the reshaped
      ``dist(1,:,:)``;
    - curve over ``range = 0:0.01:0.5``.

``bearpaw`` -- the table printed by bearpaw/pytorch-pose ``evaluation/eval_PCKh.py``
    (commit 7ce6642; the same code in microsoft/human-pose-estimation.pytorch
    ``lib/dataset/mpii.py`` ``evaluate()`` apart from the points noted):

    - the same head size (``SC_BIAS = 0.6``) and the same left-out joints;
    - correct when ``scaled_uv_err < threshold`` (strict; microsoft uses ``<=``);
    - Head = ``PCKh[head]``, the head top alone; other columns ``0.5 * (left + right)``;
    - Mean = ``np.mean(PCKh)`` with pelvis and thorax masked: the unweighted mean of the
      14 per-joint values (microsoft instead weights by joint counts, i.e. pools, and its
      ``Mean@0.1`` reads ``pckAll[11]``, which is the threshold 0.11);
    - curve ``np.arange(0, 0.5, 0.01)`` (0.5 itself not included).

Here both conventions report the curve at the 51 thresholds 0, 0.01, ..., 0.5 and
``Mean@0.1`` at exactly 0.1. Pixel coordinates are compared as they are: predictions must use
the ground truth's convention (the MATLAB files are 1-based; bearpaw's ``final_preds`` and
pose-hg-demo write 1-based coordinates and ``eval_PCKh.py`` adds nothing; microsoft's
``evaluate()`` adds 1 to its 0-based predictions first, ``zero_based`` of
:func:`hgbench.accuracy.mpii_files.load_predictions`). The head sizes come with the ground
truth (:func:`hgbench.data.mpii.head_size_from_boxes`, ``SC_BIAS = 0.6``); reading the
toolkit's files is :mod:`hgbench.accuracy.mpii_files`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from hgbench.data.keypoints import MPII

CONVENTIONS = ("official", "bearpaw")
THRESHOLDS = np.linspace(0.0, 0.5, 51)  # range = 0:0.01:0.5 (evaluatePCKh.m)
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
NUM_JOINTS = 16
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9
TOTAL_JOINTS = tuple(j for j in range(NUM_JOINTS) if j not in (PELVIS, THORAX))  # annolist2matrix's 14

DEFINITIONS = {
    "official": (
        "MPII toolkit (evalMPII.zip evaluatePCKh.m/computePCK.m/genTablePCK.m): head size 0.6 x head-box "
        "diagonal; correct if distance <= threshold x head size; joints not annotated left out; Head = mean of "
        "upper neck and head top, other columns mean of left and right; Mean pooled over all annotated joint "
        "instances except pelvis and thorax"
    ),
    "bearpaw": (
        "bearpaw/pytorch-pose evaluation/eval_PCKh.py: head size 0.6 x head-box diagonal; correct if distance "
        "< threshold x head size; joints not annotated left out; Head = head top only, other columns mean of "
        "left and right; Mean = unweighted mean of the 14 per-joint values (pelvis and thorax left out)"
    ),
}


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass
class PCKhResult:
    """PCKh of one prediction set (all values in percent).

    Attributes:
        convention: ``official`` or ``bearpaw`` (see the module docstring); ``definition``
            spells it out.
        threshold: the table's threshold as a fraction of the head size (0.5 for PCKh@0.5).
        groups: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle at ``threshold``.
        mean: the Mean column at ``threshold``.
        mean_at_01: the Mean column at threshold 0.1 (``Mean@0.1``).
        per_joint: MPII joint name -> PCKh at ``threshold`` (pelvis and thorax included for
            information; NaN for a joint that is never annotated).
        counts: joint name -> annotated (scored) instances.
        thresholds: the curve's thresholds, 0 to 0.5 in steps of 0.01.
        curve: column (the groups and ``Mean``) -> values at ``thresholds``.
        num_persons: persons in the ground truth; ``num_unnormalised``: persons left out for
            lack of a head size.
        num_scored: joint instances in the Mean (annotated, pelvis and thorax excluded).
        num_nonfinite: scored joint instances (any of the 16) whose prediction is NaN or
            infinite; each counts as a miss (``evaluatePCKh.m``: "only gt is allowed to have
            NaN").
        predictions, ground_truth: the files scored (empty for arrays);
            ``predictions_variable``: the variable of ``predictions`` that was read.
    """

    convention: str
    threshold: float
    groups: dict[str, float]
    mean: float
    mean_at_01: float
    per_joint: dict[str, float]
    counts: dict[str, int]
    thresholds: list[float]
    curve: dict[str, list[float]]
    num_persons: int
    num_scored: int
    num_unnormalised: int = 0
    num_nonfinite: int = 0
    definition: str = ""
    predictions: str = ""
    ground_truth: str = ""
    predictions_variable: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def table_row(self) -> dict[str, float]:
        """Head .. Ankle, Mean at ``threshold`` and Mean@0.1, in the order papers print them."""
        return {**self.groups, "Mean": self.mean, "Mean@0.1": self.mean_at_01}

    def curve_at(self, thresholds) -> list[tuple[float, dict[str, float]]]:
        """Curve rows at the given thresholds (each must be one of ``self.thresholds``)."""
        rows = []
        for t in thresholds:
            k = int(np.argmin(np.abs(np.asarray(self.thresholds) - t)))
            if abs(self.thresholds[k] - t) > 1e-9:
                raise ValueError(f"threshold {t} is not on the curve (0 to 0.5 in steps of 0.01)")
            rows.append((self.thresholds[k], {c: v[k] for c, v in self.curve.items()}))
        return rows

    def to_markdown(self, title: str | None = None) -> str:
        """The PCKh table, the joint counts and the curve at 0.0, 0.1, ..., 0.5 (the full
        51-point curve is in :meth:`to_csv`)."""
        fmt = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"  # noqa: E731
        row = self.table_row()
        lines = [f"### {title or f'PCKh@{self.threshold:g} ({self.convention})'}", ""]
        lines += [
            "| " + " | ".join(row) + " |",
            "|" + "---:|" * len(row),
            "| " + " | ".join(fmt(v) for v in row.values()) + " |",
            "",
        ]
        lines.append(
            f"{self.num_persons} persons, {self.num_scored} joint instances in the Mean"
            + (f", {self.num_unnormalised} persons without a head size left out" if self.num_unnormalised else "")
            + ". Convention: "
            + (self.definition or self.convention)
            + "."
        )
        if self.predictions_variable:
            lines += ["", f"Predictions: variable {self.predictions_variable!r} of {self.predictions}."]
        if self.num_nonfinite:
            lines += ["", self.nonfinite_note()]
        lines += ["", "Annotated joints: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()), ""]
        cols = list(self.curve)
        lines += ["PCKh curve (every 0.1; full curve at every 0.01: `--format csv`):", ""]
        lines += ["| threshold | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
        for t, vals in self.curve_at([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]):
            lines.append(f"| {t:.2f} | " + " | ".join(fmt(vals[c]) for c in cols) + " |")
        return "\n".join(lines) + "\n"

    def nonfinite_note(self) -> str:
        """One line saying how many scored predictions were NaN or infinite (counted as misses)."""
        return (
            f"{self.num_nonfinite} scored joint prediction(s) are NaN or infinite and count as misses "
            "(the MPII toolkit's rule: only the ground truth may be NaN)."
        )

    def to_csv(self) -> str:
        """The full curve: one row per threshold (0.00 to 0.50), columns Head .. Ankle, Mean.
        The PCKh@0.5 table is the row ``0.50`` and Mean@0.1 the Mean of row ``0.10``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        cols = list(self.curve)
        writer.writerow(["threshold", *cols])
        for k, t in enumerate(self.thresholds):
            writer.writerow([f"{t:.2f}", *(f"{self.curve[c][k]:.4f}" for c in cols)])
        return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def normalized_distances(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, head_size: np.ndarray) -> np.ndarray:
    """Distance of each prediction to its ground truth in head sizes.

    Args:
        pred, gt: ``(N, 16, 2)`` pixels (same convention).
        annotated: ``(N, 16)`` bool.
        head_size: ``(N,)`` pixels.

    Returns:
        ``(N, 16)`` float64; NaN where the joint is not annotated or the person has no
        (finite, positive) head size; ``inf`` where the prediction is NaN (as
        ``evaluatePCKh.m``: "only gt is allowed to have NaN").
    """
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    pred = np.where(np.isnan(pred), np.inf, pred)
    with np.errstate(invalid="ignore"):
        dist = np.linalg.norm(pred - gt, axis=-1)
    hs = np.asarray(head_size, np.float64)
    ok = np.isfinite(hs) & (hs > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = dist / np.where(ok, hs, np.nan)[:, None]
    d[~np.asarray(annotated, bool) | ~ok[:, None]] = np.nan
    return d


def _per_joint(d: np.ndarray, thresholds: np.ndarray, convention: str) -> np.ndarray:
    """``(T, 16)`` per-joint PCKh in percent (NaN for a joint with no scored instance)."""
    scored = ~np.isnan(d)
    t = np.asarray(thresholds, np.float64)[:, None, None]
    with np.errstate(invalid="ignore"):
        correct = (d[None] <= t) if convention == "official" else (d[None] < t)
    correct &= scored[None]
    n = scored.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * correct.sum(axis=1) / n


def _columns(pck: np.ndarray, counts: np.ndarray, convention: str) -> dict[str, np.ndarray]:
    """Table columns from per-joint PCKh ``(..., 16)``: the groups and Mean (see the module
    docstring for each convention's Head and Mean)."""
    g = MPII.groups  # Head (8, 9), Shoulder (12, 13), Elbow (11, 14), Wrist (10, 15), Hip, Knee, Ankle
    cols = {}
    for name in GROUPS:
        a, b = g[name]
        if name == "Head" and convention == "bearpaw":
            cols[name] = pck[..., HEAD_TOP]
        else:
            cols[name] = 0.5 * (pck[..., a] + pck[..., b])
    idx = list(TOTAL_JOINTS)
    if convention == "official":  # pooled over joint instances = count-weighted mean of per-joint PCKh
        w = counts[idx].astype(np.float64)
        vals = np.nan_to_num(pck[..., idx])
        cols["Mean"] = (vals * w).sum(axis=-1) / w.sum() if w.sum() > 0 else np.full(pck.shape[:-1], np.nan)
    else:
        cols["Mean"] = np.mean(pck[..., idx], axis=-1)
    return cols


def compute_pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    annotated: np.ndarray,
    head_size: np.ndarray,
    convention: str = "official",
    threshold: float = 0.5,
) -> PCKhResult:
    """PCKh of predictions against MPII ground truth.

    Args:
        pred, gt: ``(N, 16, 2)`` pixel coordinates in one convention (MPII joint order).
        annotated: ``(N, 16)`` bool, False = not annotated (``jnt_missing``).
        head_size: ``(N,)`` pixels, ``0.6 x`` head-box diagonal
            (:func:`hgbench.data.mpii.head_size_from_boxes`, or valid.h5's ``normalize``).
        convention: ``official`` or ``bearpaw`` (module docstring).
        threshold: the table's threshold in head sizes.

    Returns:
        A :class:`PCKhResult`; NaN or infinite predictions of scored joints are misses,
        counted in ``num_nonfinite``.

    Raises:
        ValueError: unknown convention, shapes that disagree, or a threshold outside [0, 1].
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown PCKh convention {convention!r}; use one of: {', '.join(CONVENTIONS)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(
            f"threshold {threshold} is a fraction of the head size; use a value in [0, 1] (0.5 for PCKh@0.5)"
        )
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    annotated = np.asarray(annotated, bool)
    n = len(gt)
    if (
        gt.shape != (n, NUM_JOINTS, 2)
        or pred.shape != gt.shape
        or annotated.shape != (n, NUM_JOINTS)
        or np.shape(head_size) != (n,)
    ):
        raise ValueError(
            f"shapes disagree: pred {pred.shape}, gt {gt.shape}, annotated {annotated.shape}, head_size {np.shape(head_size)}; "
            f"expected ({n}, 16, 2), ({n}, 16, 2), ({n}, 16), ({n},)"
        )
    d = normalized_distances(pred, gt, annotated, head_size)
    counts = (~np.isnan(d)).sum(axis=0)
    curve_joint = _per_joint(d, THRESHOLDS, convention)
    at = _per_joint(d, np.array([threshold, 0.1]), convention)
    cols_at = _columns(at, counts, convention)
    curve = {c: [float(v) for v in vals] for c, vals in _columns(curve_joint, counts, convention).items()}
    hs = np.asarray(head_size, np.float64)
    return PCKhResult(
        convention=convention,
        threshold=float(threshold),
        groups={g: float(cols_at[g][0]) for g in GROUPS},
        mean=float(cols_at["Mean"][0]),
        mean_at_01=float(cols_at["Mean"][1]),
        per_joint={name: float(at[0, j]) for j, name in enumerate(MPII.names)},
        counts={name: int(counts[j]) for j, name in enumerate(MPII.names)},
        thresholds=[float(t) for t in THRESHOLDS],
        curve=curve,
        num_persons=n,
        num_scored=int(counts[list(TOTAL_JOINTS)].sum()),
        num_unnormalised=int((~(np.isfinite(hs) & (hs > 0))).sum()),
        num_nonfinite=int((~np.isfinite(pred).all(axis=-1) & ~np.isnan(d)).sum()),
        definition=DEFINITIONS[convention],
    )
