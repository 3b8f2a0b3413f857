"""`hgbench score` on the inputs of issue 18, one table row each: (input, expected exit code,
words the output must contain). Rows marked real use the MPII files of ../shared/data/mpii in
place (skipped where absent); the others build small files with the same layout."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from hgbench.cli import app

SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
MPII = SHARED_DATA / "mpii"
GT_MAT = MPII / "gt_valid_detections_our_format.mat"
VALID_H5 = MPII / "valid.h5"
N = 5  # persons of the small ground truth


def _small_gt(tmp: Path) -> tuple[Path, np.ndarray]:
    """gt.mat in the MPII evaluation layout: N persons, head size 30 px, every joint annotated."""
    gt = np.stack([np.stack([np.arange(16) * 10.0 + 100, np.full(16, 200.0 + i)], axis=-1) for i in range(N)])
    boxes = np.tile(np.array([[0.0, 0.0], [30.0, 40.0]]), (N, 1, 1))
    path = tmp / "gt.mat"
    scipy.io.savemat(
        path,
        {
            "pos_gt_src": gt.transpose(1, 2, 0),
            "jnt_missing": np.zeros((16, N), np.uint8),
            "headboxes_src": boxes.transpose(1, 2, 0),
        },
    )
    return path, gt


def _real() -> None:
    if not (GT_MAT.is_file() and VALID_H5.is_file()):
        pytest.skip(
            f"MPII validation ground truth not found in {MPII} (set HGBENCH_SHARED_DATA to the shared data folder)"
        )


# Each builder writes its files under tmp and returns the arguments after `hgbench score`.
def gt_mat_as_predictions(tmp: Path) -> list[str]:
    _real()
    return [str(GT_MAT), "--gt", str(GT_MAT)]


def gt_mat_with_key(tmp: Path) -> list[str]:
    _real()
    return [str(GT_MAT), "--gt", str(GT_MAT), "--key", "pos_pred_src"]


def valid_h5_as_predictions(tmp: Path) -> list[str]:
    _real()
    return [str(VALID_H5), "--gt", str(GT_MAT)]


def unrelated_3d_array(tmp: Path) -> list[str]:
    _real()
    scipy.io.savemat(tmp / "heat.mat", {"heat": np.random.default_rng(0).random((16, 64, 64))})
    return [str(tmp / "heat.mat"), "--gt", str(GT_MAT)]


def only_array_read_and_named(tmp: Path) -> list[str]:
    gt_path, gt = _small_gt(tmp)
    scipy.io.savemat(tmp / "heat.mat", {"heat": gt})
    return [str(tmp / "heat.mat"), "--gt", str(gt_path)]


def joints_first_layout(tmp: Path) -> list[str]:
    gt_path, gt = _small_gt(tmp)
    scipy.io.savemat(tmp / "jn.mat", {"preds": gt.transpose(1, 0, 2)})  # (16, N, 2)
    return [str(tmp / "jn.mat"), "--gt", str(gt_path)]


def _nonfinite(tmp: Path) -> tuple[Path, Path]:
    gt_path, gt = _small_gt(tmp)
    pred = gt.copy()
    pred[0, 0] = np.nan
    pred[1, 3] = [np.inf, 0.0]
    pred[2, 15, 1] = -np.inf
    scipy.io.savemat(tmp / "nan.mat", {"preds": pred})
    return tmp / "nan.mat", gt_path


def nonfinite_predictions(tmp: Path) -> list[str]:
    pred, gt = _nonfinite(tmp)
    return [str(pred), "--gt", str(gt)]


def nonfinite_predictions_csv(tmp: Path) -> list[str]:
    pred, gt = _nonfinite(tmp)
    return [str(pred), "--gt", str(gt), "--format", "csv"]


def _h5_without(tmp: Path, drop: str) -> Path:
    _real()
    path = tmp / "valid.h5"
    with h5py.File(VALID_H5, "r") as src, h5py.File(path, "w") as dst:
        for k in src:
            if k != drop:
                dst[k] = src[k][()]
    return path


def valid_h5_without_normalize(tmp: Path) -> list[str]:
    return [str(GT_MAT), "--key", "pos_pred_src", "--gt", str(_h5_without(tmp, "normalize"))]


def valid_h5_without_part(tmp: Path) -> list[str]:
    return [str(GT_MAT), "--key", "pos_pred_src", "--gt", str(_h5_without(tmp, "part"))]


def gt_mat_without_headboxes(tmp: Path) -> list[str]:
    _real()
    mat = scipy.io.loadmat(GT_MAT)
    scipy.io.savemat(tmp / "gt.mat", {k: mat[k] for k in ("pos_gt_src", "jnt_missing", "pos_pred_src")})
    return [str(GT_MAT), "--key", "pos_pred_src", "--gt", str(tmp / "gt.mat")]


CASES: list[tuple[Callable[[Path], list[str]], int, tuple[str, ...]]] = [
    # the ground truth .mat as predictions scored its embedded pos_pred_src without a word
    (
        gt_mat_as_predictions,
        2,
        ("gt_valid_detections_our_format.mat", "'pos_gt_src'", "ground-truth file", "'pos_pred_src'", "--key"),
    ),
    (gt_mat_with_key, 0, ("variable 'pos_pred_src' of", "PCKh@0.5")),
    # valid.h5 as predictions scored the ground truth against itself (99.97 %)
    (valid_h5_as_predictions, 2, ("valid.h5", "'part'", "ground truth itself", "--key")),
    # a file whose only variable is an unrelated 3-D array
    (unrelated_3d_array, 2, ("heat.mat", "variable 'heat'", "(16, 64, 64)", "(2958, 16, 2)", "(16, 2, 2958)")),
    (only_array_read_and_named, 0, ("variable 'heat' of",)),
    (joints_first_layout, 2, ("jn.mat", "variable 'preds'", f"(16, {N}, 2)", f"({N}, 16, 2) or (16, 2, {N})")),
    # NaN or infinite predictions: misses, as the MPII toolkit scores them, now counted and said
    (nonfinite_predictions, 0, ("3 scored joint prediction(s) are NaN or infinite", "misses")),
    (
        nonfinite_predictions_csv,
        0,
        ("threshold,Head", "3 scored joint prediction(s) are NaN or infinite", "variable 'preds'"),
    ),
    # valid.h5 without normalize (or another required field): every cell NaN, exit 0, before
    (valid_h5_without_normalize, 2, ("valid.h5", "'normalize'", "missing", "head size", "valid.h5 (part, normalize)")),
    (valid_h5_without_part, 2, ("valid.h5", "neither 'pos_gt_src' nor 'part'", "gt_valid_detections_our_format.mat")),
    (gt_mat_without_headboxes, 2, ("gt.mat", "'headboxes_src' is missing", "gt_valid_detections_our_format.mat")),
]


@pytest.mark.parametrize("build,exit_code,words", CASES, ids=[c[0].__name__ for c in CASES])
def test_score_input(tmp_path, build, exit_code, words):
    args = build(tmp_path)
    r = CliRunner().invoke(app, ["score", *args])
    output = " ".join(r.output.split())  # rich wraps long messages
    assert r.exit_code == exit_code, r.output
    for word in words:
        assert word in output, (word, r.output)
    if exit_code == 2:
        assert "error:" in output and "Traceback" not in output
    else:
        assert "—" not in output and ",nan" not in output  # every cell a number (md writes NaN as —)


def test_nonfinite_predictions_score_as_misses(tmp_path):
    """The count does not change the rule: the three joints are wrong, the rest right."""
    from hgbench.accuracy.mpii_files import score_files

    pred, gt = _nonfinite(tmp_path)
    r = score_files(pred, gt)
    assert r.num_nonfinite == 3
    assert r.per_joint["right_ankle"] == r.per_joint["left_hip"] == r.per_joint["left_wrist"] == 100.0 * (N - 1) / N
    assert r.mean == pytest.approx(100.0 * (14 * N - 3) / (14 * N))
