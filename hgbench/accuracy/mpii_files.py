"""MPII prediction files and their PCKh against the ground truth files (``hgbench score``).

A prediction file is a ``.mat`` (MATLAB v5 or v7.3) or ``.h5`` holding one numeric variable of
the validation persons' joint positions, in the ground truth's person order: ``(N, 16, 2)``
(Python, pose-hg-train's ``preds``) or ``(16, 2, N)`` (the MATLAB "our format" of
``pos_pred_src``), optionally with a third coordinate (a score) that is dropped; HDF5 files
written from MATLAB hold the same arrays with the axes reversed, ``(2, 16, N)`` and
``(N, 2, 16)``, which are read as such. Every other shape is refused with the shape named.

The variable read is ``key`` when given, else the first of :data:`PREDICTION_KEYS` present,
else the file's only 3-D numeric array; which one is returned with the predictions so that
the caller can say it. A ground-truth file (one holding ``pos_gt_src`` or ``part``, the
fields :func:`hgbench.data.mpii.load_ground_truth` reads) is refused as predictions unless
``key`` names the variable: ``gt_valid_detections_our_format.mat`` also carries
``pos_pred_src`` (Tompson et al.'s predictions) and ``valid.h5``'s ``part`` is the ground
truth itself, so reading either by default scores something the user did not name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hgbench.accuracy.pckh import CONVENTIONS, NUM_JOINTS, PCKhResult, compute_pckh
from hgbench.data.mpii import GROUND_TRUTH_FIELDS, load_ground_truth, read_arrays

# Variable names that prediction files use, in order of preference.
PREDICTION_KEYS = ("preds", "pred", "predictions", "pos_pred_src", "joints", "keypoints", "coords")
# Axis orders (persons, joints, coordinates) of a prediction array: as written, and for HDF5
# files also reversed (MATLAB writes column-major).
_LAYOUTS = ((0, 1, 2), (2, 0, 1))  # (N, 16, C), (16, C, N)
_REVERSED_LAYOUTS = ((2, 1, 0), (0, 2, 1))  # (C, 16, N), (N, C, 16)


def _as_persons_joints_xy(arr: np.ndarray, n: int, where: str, hdf5: bool) -> np.ndarray:
    """``arr`` in one of the accepted layouts (module docstring) as ``(n, 16, 2)`` float64.

    Raises:
        ValueError: another shape, or one that two layouts fit (names the shape).
    """
    expected = (
        f"expected ({n}, 16, 2) or (16, 2, {n}) pixel coordinates of the ground truth's {n} persons, in its order"
    )
    layouts = _LAYOUTS + (_REVERSED_LAYOUTS if hdf5 else ())
    fits = (
        []
        if arr.ndim != 3
        else [
            (p, j, c)
            for p, j, c in layouts
            if arr.shape[p] == n and arr.shape[j] == NUM_JOINTS and arr.shape[c] in (2, 3)
        ]
    )
    if not fits:
        hint = ""
        if arr.ndim == 3 and NUM_JOINTS in arr.shape and any(s in (2, 3) for s in arr.shape):
            other = [s for s in arr.shape if s not in (NUM_JOINTS, 2, 3)]
            if other and other[0] != n:
                hint = f" (it holds {other[0]} persons: predictions for another split or a subset?)"
            elif other:
                hint = " (the persons and joints are there, in another axis order)"
        raise ValueError(f"{where} has shape {arr.shape}{hint}; {expected}")
    if len(fits) > 1:
        raise ValueError(
            f"{where} has shape {arr.shape}: with {n} persons the axes cannot be told apart; save it as ({n}, 16, 2)"
        )
    return np.transpose(np.asarray(arr, np.float64), fits[0])[:, :, :2]


def load_predictions(
    path: str | Path, num_persons: int, key: str | None = None, zero_based: bool = False
) -> tuple[np.ndarray, str]:
    """Read a prediction file (module docstring: layouts and which variable is read).

    Args:
        path: ``.mat`` (MATLAB v5 or v7.3) or ``.h5``, holding the validation split's
            predictions in the ground truth's order.
        num_persons: the ground truth's person count (2958 for the MPII validation split).
        key: the variable to read; None: the first of :data:`PREDICTION_KEYS` present, else
            the file's only 3-D numeric array (refused for a ground-truth file).
        zero_based: the file uses 0-based pixel coordinates (OpenCV, hgbench); 1 is added to
            compare them with the 1-based MATLAB ground truth, as microsoft's ``evaluate()``
            does (``preds[:, :, 0:2] + 1.0``).

    Returns:
        ``(predictions, variable)``: ``(num_persons, 16, 2)`` float64 pixels, and the name
        of the variable read.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable file, no prediction variable, a ground-truth file without
            ``key``, or a wrong shape (the message names the file, the variable, the shape
            and the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prediction file not found")
    arrays = read_arrays(path)
    numeric = {k: v for k, v in arrays.items() if v.dtype.kind in "fiu"}
    found = ", ".join(sorted(numeric)) or "none"
    if key is not None:
        if key not in numeric:
            raise ValueError(f"{path}: no numeric variable {key!r} (found: {found}); pass --key with one of them")
        name = key
    else:
        gt_field = next((k for k in GROUND_TRUTH_FIELDS if k in numeric), None)
        if gt_field is not None:
            would = (
                "'pos_pred_src', the predictions the ground truth file carries (Tompson et al. CVPR'15)"
                if "pos_pred_src" in numeric
                else "the ground truth itself"
            )
            raise ValueError(
                f"{path}: holds {gt_field!r}, so it is an MPII ground-truth file, not predictions; scoring it would read {would}. "
                f"Pass your prediction file, or --key VARIABLE to score one of its variables on purpose (found: {found})"
            )
        name = next((k for k in PREDICTION_KEYS if k in numeric), None)
        if name is None:
            three_d = [k for k, v in numeric.items() if v.ndim == 3]
            if len(three_d) != 1:
                raise ValueError(
                    f"{path}: no prediction variable named {', '.join(PREDICTION_KEYS)} and "
                    f"{'several' if three_d else 'no'} 3-D arrays (found: {found}); pass --key VARIABLE"
                )
            name = three_d[0]
    import h5py

    preds = _as_persons_joints_xy(numeric[name], num_persons, f"{path}: variable {name!r}", hdf5=h5py.is_hdf5(path))
    return (preds + 1.0 if zero_based else preds), name


def score_files(
    predictions: str | Path,
    gt: str | Path,
    convention: str = "official",
    threshold: float = 0.5,
    key: str | None = None,
    zero_based: bool = False,
) -> PCKhResult:
    """Score a prediction file against an MPII ground truth file.

    Args:
        predictions: the prediction file (:func:`load_predictions`, with ``key`` and
            ``zero_based``).
        gt: ``gt_valid_detections_our_format.mat`` or ``valid.h5``
            (:func:`hgbench.data.mpii.load_ground_truth`).
        convention, threshold: as :func:`hgbench.accuracy.pckh.compute_pckh`.

    Returns:
        The :class:`PCKhResult`, with ``predictions``, ``ground_truth`` and
        ``predictions_variable`` set.

    Raises:
        FileNotFoundError, ValueError, DatasetError: as the readers, or an unknown convention.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown PCKh convention {convention!r}; use one of: {', '.join(CONVENTIONS)}")
    truth = load_ground_truth(gt)
    preds, variable = load_predictions(predictions, len(truth), key=key, zero_based=zero_based)
    result = compute_pckh(preds, truth.joints, truth.annotated, truth.head_size, convention, threshold)
    result.predictions, result.ground_truth, result.predictions_variable = str(predictions), str(gt), variable
    return result


def _check_out(out: Path, predictions: Path, gt: Path) -> None:
    """Raises: ValueError: ``out`` is a folder, or the predictions or ground-truth file (which the
    report would replace)."""
    if out.is_dir():
        raise ValueError(f"--out {out}: is a folder; give a file name, e.g. --out {out / 'pckh.md'}")
    for option, given in (("PREDICTIONS", predictions), ("--gt", gt)):
        if out.exists() and given.exists() and out.samefile(given):
            raise ValueError(
                f"--out {out}: is the {option} file, which the report would replace; give another file name"
            )


def score_report(predictions: str | Path, gt: str | Path, convention: str = "official", fmt: str = "md",
                 threshold: float = 0.5, key: str | None = None, zero_based: bool = False,
                 out: str | Path | None = None) -> tuple[str, list[str]]:  # fmt: skip
    """``hgbench score``: :func:`score_files` rendered as Markdown (the table and the curve every
    0.1) or CSV (the full curve), written to ``out`` too when given; returns ``(text, notes)``,
    the notes being what a CSV cannot say (which variable was read, NaN or infinite predictions
    scored as misses).

    Raises:
        ValueError: ``fmt`` not md or csv, a threshold not in (0, 1], an ``out`` that is a folder
            or one of the input files (checked before anything is read); as :func:`score_files`.
    """
    import math

    from hgbench.records import atomic_write_bytes

    if fmt not in ("md", "csv"):
        raise ValueError(f"--format {fmt!r}: expected md or csv")
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and 0 < threshold <= 1):
        raise ValueError(
            f"--threshold {threshold}: expected a fraction of the head size in (0, 1], e.g. 0.5 for PCKh@0.5"
        )
    if out is not None:
        _check_out(Path(out), Path(predictions), Path(gt))
    result = score_files(predictions, gt, convention=convention, threshold=threshold, key=key, zero_based=zero_based)
    if fmt == "csv":
        text = result.to_csv()
        notes = [f"predictions: variable {result.predictions_variable!r} of {predictions}"]
        if result.num_nonfinite:
            notes.append(result.nonfinite_note())
    else:
        text = result.to_markdown(
            f"{Path(predictions).name}: PCKh@{threshold:g} ({convention}) against {Path(gt).name}"
        )
        notes = []
    if out is not None:
        atomic_write_bytes(Path(out), text.encode())
    return text, notes
