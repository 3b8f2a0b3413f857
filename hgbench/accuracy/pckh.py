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
the ground truth file's convention (the MATLAB files are 1-based; bearpaw's ``final_preds``
and pose-hg-demo write 1-based coordinates and ``eval_PCKh.py`` adds nothing; microsoft's
``evaluate()`` adds 1 to its 0-based predictions first, see ``zero_based`` below).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from hgbench.data.base import DatasetError
from hgbench.data.keypoints import MPII

CONVENTIONS = ("official", "bearpaw")
SC_BIAS = 0.6  # head size = SC_BIAS x head-box diagonal (util_get_head_size.m, eval_PCKh.py)
THRESHOLDS = np.linspace(0.0, 0.5, 51)  # range = 0:0.01:0.5 (evaluatePCKh.m)
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
NUM_JOINTS = 16
# Joint names of the MPII evaluation files (`dataset_joints` of detections_our_format.mat).
MATLAB_JOINT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
                      "rwri", "relb", "rsho", "lsho", "lelb", "lwri")
PELVIS, THORAX, UPPER_NECK, HEAD_TOP = 6, 7, 8, 9
TOTAL_JOINTS = tuple(j for j in range(NUM_JOINTS) if j not in (PELVIS, THORAX))  # annolist2matrix's 14
# Variable names that prediction files use, in order of preference.
PREDICTION_KEYS = ("preds", "pred", "predictions", "pos_pred_src", "joints", "keypoints", "coords")

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


@dataclass(frozen=True)
class MPIIGroundTruth:
    """MPII ground truth for PCKh.

    Attributes:
        joints: ``(N, 16, 2)`` float64 pixels in the file's own convention (the MPII files
            are 1-based MATLAB pixel coordinates).
        annotated: ``(N, 16)`` bool; False joints are left out of every score.
        head_size: ``(N,)`` float64 pixels, ``0.6 x`` head-box diagonal (NaN where unknown:
            that person's joints are left out and counted in ``num_unnormalised``).
        path: the file it was read from.
    """

    joints: np.ndarray
    annotated: np.ndarray
    head_size: np.ndarray
    path: str = ""

    def __len__(self) -> int:
        return len(self.joints)


def head_size_from_boxes(headboxes: np.ndarray) -> np.ndarray:
    """PCKh normaliser from head boxes.

    Args:
        headboxes: ``(N, 2, 2)`` ``[[x1, y1], [x2, y2]]`` pixels per person (the
            ``headboxes_src`` of the MPII evaluation files, transposed to persons first).

    Returns:
        ``(N,)`` float64 ``0.6 x ||(x2, y2) - (x1, y1)||`` pixels (``util_get_head_size.m``,
        ``SC_BIAS = 0.6``; the same in bearpaw ``eval_PCKh.py``).
    """
    boxes = np.asarray(headboxes, np.float64)
    return SC_BIAS * np.linalg.norm(boxes[:, 1, :] - boxes[:, 0, :], axis=-1)


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
    definition: str = ""
    predictions: str = ""
    ground_truth: str = ""
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
        lines += ["| " + " | ".join(row) + " |", "|" + "---:|" * len(row), "| " + " | ".join(fmt(v) for v in row.values()) + " |", ""]
        lines.append(
            f"{self.num_persons} persons, {self.num_scored} joint instances in the Mean"
            + (f", {self.num_unnormalised} persons without a head size left out" if self.num_unnormalised else "")
            + ". Convention: " + (self.definition or self.convention) + "."
        )
        lines += ["", "Annotated joints: " + ", ".join(f"{k} {v}" for k, v in self.counts.items()), ""]
        cols = list(self.curve)
        lines += ["PCKh curve (every 0.1; full curve at every 0.01: `--format csv`):", ""]
        lines += ["| threshold | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
        for t, vals in self.curve_at([0.0, 0.1, 0.2, 0.3, 0.4, 0.5]):
            lines.append(f"| {t:.2f} | " + " | ".join(fmt(vals[c]) for c in cols) + " |")
        return "\n".join(lines) + "\n"

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


def compute_pckh(pred: np.ndarray, gt: np.ndarray, annotated: np.ndarray, head_size: np.ndarray,
                 convention: str = "official", threshold: float = 0.5) -> PCKhResult:
    """PCKh of predictions against MPII ground truth.

    Args:
        pred, gt: ``(N, 16, 2)`` pixel coordinates in one convention (MPII joint order).
        annotated: ``(N, 16)`` bool, False = not annotated (``jnt_missing``).
        head_size: ``(N,)`` pixels, ``0.6 x`` head-box diagonal (:func:`head_size_from_boxes`,
            or valid.h5's ``normalize``).
        convention: ``official`` or ``bearpaw`` (module docstring).
        threshold: the table's threshold in head sizes.

    Returns:
        A :class:`PCKhResult`.

    Raises:
        ValueError: unknown convention, shapes that disagree, or a threshold outside [0, 1].
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown PCKh convention {convention!r}; use one of: {', '.join(CONVENTIONS)}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is a fraction of the head size; use a value in [0, 1] (0.5 for PCKh@0.5)")
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    annotated = np.asarray(annotated, bool)
    n = len(gt)
    if gt.shape != (n, NUM_JOINTS, 2) or pred.shape != gt.shape or annotated.shape != (n, NUM_JOINTS) or np.shape(head_size) != (n,):
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
        definition=DEFINITIONS[convention],
    )


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Numeric arrays of a ``.mat`` (MATLAB v5 via scipy, v7.3 via h5py) or ``.h5`` file."""
    suffix = path.suffix.lower()
    if suffix not in (".mat", ".h5", ".hdf5"):
        raise ValueError(f"{path}: unknown file type {suffix!r}; expected a .mat (MATLAB) or .h5 (HDF5) file")
    import h5py

    if suffix == ".mat" and not h5py.is_hdf5(path):  # MATLAB v7.3 files are HDF5, read below
        import scipy.io

        try:
            mat = scipy.io.loadmat(path)
        except Exception as e:  # scipy raises several types for a damaged file
            raise ValueError(f"{path}: not a readable MATLAB file ({e}); re-export it with MATLAB/scipy savemat") from e
        return {k: v for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray)}

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[name] = obj[()]
            f.visititems(visit)
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e
    return {k: np.asarray(v) for k, v in out.items()}


def _as_persons_joints_xy(arr: np.ndarray, n: int, where: str) -> np.ndarray:
    """Reorder a 3-D array whose axes are persons (``n``), joints (16) and coordinates
    (2 = x, y, or 3 = x, y, score) to ``(n, 16, 2)``; the axes are told apart by their sizes,
    so (N, 16, 2), (16, 2, N) (the MATLAB "our format") and their transposes all work.

    Raises:
        ValueError: not 3-D, no such axes, or sizes that leave the layout ambiguous.
    """
    expected = f"expected ({n}, 16, 2) or (16, 2, {n}) pixel coordinates, {n} persons being the ground truth's count"
    if arr.ndim != 3:
        raise ValueError(f"{where} has shape {arr.shape}; {expected}")
    layouts = [
        (p, j, c) for p in range(3) for j in range(3) for c in range(3)
        if len({p, j, c}) == 3 and arr.shape[p] == n and arr.shape[j] == NUM_JOINTS and arr.shape[c] in (2, 3)
    ]
    if not layouts:
        hint = ""
        if NUM_JOINTS in arr.shape and any(s in (2, 3) for s in arr.shape):
            other = [s for s in arr.shape if s not in (NUM_JOINTS, 2, 3)]
            if other:
                hint = f" (it holds {other[0]} persons: predictions for another split or a subset?)"
        raise ValueError(f"{where} has shape {arr.shape}{hint}; {expected}, in the ground truth's order")
    if len(layouts) > 1:
        raise ValueError(f"{where} has shape {arr.shape}: with {n} persons the axes cannot be told apart; save it as ({n}, 16, 2)")
    p, j, c = layouts[0]
    return np.transpose(np.asarray(arr, np.float64), (p, j, c))[:, :, :2]


def load_predictions(path: str | Path, num_persons: int, key: str | None = None, zero_based: bool = False) -> np.ndarray:
    """Read a prediction file.

    Args:
        path: ``.mat`` (MATLAB v5 or v7.3) or ``.h5``, holding the validation split's
            predictions in the ground truth's order.
        num_persons: the ground truth's person count (2958 for the MPII validation split).
        key: the variable to read; default the first of :data:`PREDICTION_KEYS` present, else
            the file's only 3-D numeric array.
        zero_based: the file uses 0-based pixel coordinates (OpenCV, hgbench); 1 is added to
            compare them with the 1-based MATLAB ground truth, as microsoft's ``evaluate()``
            does (``preds[:, :, 0:2] + 1.0``).

    Returns:
        ``(num_persons, 16, 2)`` float64 pixels.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, no prediction variable, or a wrong shape/length (the
            message names the file, the variable, and the expected shape).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prediction file not found")
    arrays = _read_arrays(path)
    numeric = {k: v for k, v in arrays.items() if v.dtype.kind in "fiu"}
    if key is not None:
        if key not in numeric:
            raise ValueError(f"{path}: no numeric variable {key!r} (found: {', '.join(sorted(numeric)) or 'none'}); pass --key with one of them")
        name = key
    else:
        name = next((k for k in PREDICTION_KEYS if k in numeric), None)
        if name is None:
            three_d = [k for k, v in numeric.items() if v.ndim == 3]
            if len(three_d) != 1:
                raise ValueError(
                    f"{path}: no prediction variable named {', '.join(PREDICTION_KEYS)} and "
                    f"{'several' if three_d else 'no'} 3-D arrays (found: {', '.join(sorted(numeric)) or 'none'}); pass --key VARIABLE"
                )
            name = three_d[0]
    preds = _as_persons_joints_xy(numeric[name], num_persons, f"{path}: variable {name!r}")
    return preds + 1.0 if zero_based else preds


def load_ground_truth(path: str | Path) -> MPIIGroundTruth:
    """Read MPII validation ground truth for PCKh.

    Two files are accepted:

    - ``gt_valid_detections_our_format.mat`` / ``gt_valid.mat`` (bearpaw, microsoft, mmpose):
      ``pos_gt_src`` (16, 2, N) px, ``jnt_missing`` (16, N) (1 = not annotated),
      ``headboxes_src`` (2, 2, N) ``[x1 y1; x2 y2]``; head size from the boxes.
    - pose-hg-train's ``valid.h5``: ``part`` (N, 16, 2), ``normalize`` (N,) = 0.6 x head-box
      diagonal (pose-hg-train ``src/misc/mpii.py`` ``normalization()``); a joint is not
      annotated where ``part`` is (0, 0) (``partinfo()`` writes zeros for missing joints).
      Its coordinates are the same annotation truncated to integers (``partinfo()`` casts to
      ``int``), so scores against it can differ slightly from scores against the ``.mat``.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: a missing field or a wrong shape (names the file, the field, the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ground truth file not found; pass --gt gt_valid_detections_our_format.mat or valid.h5")
    arrays = _read_arrays(path)
    fix = "use gt_valid_detections_our_format.mat (pos_gt_src, jnt_missing, headboxes_src) or pose-hg-train's valid.h5 (part, normalize)"
    if "pos_gt_src" in arrays:
        for k in ("jnt_missing", "headboxes_src"):
            if k not in arrays:
                raise DatasetError(f"{path}: field {k!r} is missing next to 'pos_gt_src'; {fix}")
        pos = np.asarray(arrays["pos_gt_src"], np.float64)
        miss = np.asarray(arrays["jnt_missing"])
        boxes = np.asarray(arrays["headboxes_src"], np.float64)
        if path.suffix.lower() == ".mat" and pos.shape[:2] != (NUM_JOINTS, 2) and pos.shape[-2:] == (2, NUM_JOINTS):
            pos, miss, boxes = pos.T, miss.T, boxes.T  # MATLAB v7.3 via h5py: axes reversed
        if pos.ndim != 3 or pos.shape[:2] != (NUM_JOINTS, 2):
            raise DatasetError(f"{path}: field 'pos_gt_src' has shape {pos.shape}; expected (16, 2, N); {fix}")
        n = pos.shape[2]
        if miss.shape != (NUM_JOINTS, n):
            raise DatasetError(f"{path}: field 'jnt_missing' has shape {miss.shape}; expected (16, {n})")
        if boxes.shape != (2, 2, n):
            raise DatasetError(f"{path}: field 'headboxes_src' has shape {boxes.shape}; expected (2, 2, {n})")
        names = arrays.get("dataset_joints")
        if names is not None and names.dtype == object:
            found = tuple(str(np.asarray(x).ravel()[0]) for x in np.asarray(names).ravel())
            if found != MATLAB_JOINT_NAMES:
                raise DatasetError(f"{path}: field 'dataset_joints' is {found}; expected the MPII order {MATLAB_JOINT_NAMES}")
        return MPIIGroundTruth(
            joints=pos.transpose(2, 0, 1).copy(),
            annotated=miss.T == 0,
            head_size=head_size_from_boxes(boxes.transpose(2, 0, 1)),
            path=str(path),
        )
    if "part" in arrays:
        part = np.asarray(arrays["part"], np.float64)
        if part.ndim != 3 or part.shape[1:] != (NUM_JOINTS, 2):
            raise DatasetError(f"{path}: field 'part' has shape {part.shape}; expected (N, 16, 2); {fix}")
        if "normalize" not in arrays:
            raise DatasetError(
                f"{path}: field 'normalize' (the head size, 0.6 x head-box diagonal) is missing, so PCKh cannot be computed; {fix}"
            )
        norm = np.asarray(arrays["normalize"], np.float64).reshape(-1)
        if norm.shape != (len(part),):
            raise DatasetError(f"{path}: field 'normalize' has {norm.size} values for {len(part)} persons in 'part'")
        norm = np.where(norm > 0, norm, np.nan)  # pose-hg-train writes -1 where no head box exists
        return MPIIGroundTruth(joints=part, annotated=~np.all(part == 0, axis=-1), head_size=norm, path=str(path))
    raise DatasetError(f"{path}: neither 'pos_gt_src' nor 'part' found (fields: {', '.join(sorted(arrays)) or 'none'}); {fix}")


def score_files(predictions: str | Path, gt: str | Path, convention: str = "official", threshold: float = 0.5,
                key: str | None = None, zero_based: bool = False) -> PCKhResult:
    """Score a prediction file against an MPII ground truth file (see :func:`load_predictions`,
    :func:`load_ground_truth`, :func:`compute_pckh`)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown PCKh convention {convention!r}; use one of: {', '.join(CONVENTIONS)}")
    truth = load_ground_truth(gt)
    preds = load_predictions(predictions, len(truth), key=key, zero_based=zero_based)
    result = compute_pckh(preds, truth.joints, truth.annotated, truth.head_size, convention, threshold)
    result.predictions, result.ground_truth = str(predictions), str(gt)
    return result
