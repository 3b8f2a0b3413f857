"""PCKh the MPII way (hgbench.accuracy.pckh, .mpii_files) and `hgbench score`: both conventions on the real MPII
validation ground truth of ../shared/data/mpii (skipped where absent), hand-built cases with
known answers, file layouts and bad input.

Published tables: no published per-joint table could be tied to a prediction file present
here (``pos_pred_src`` of gt_valid_detections_our_format.mat holds Tompson et al. CVPR'15's
validation predictions, for which only test-set tables are published), so the real-data tests
check the code against the toolkits' own formulas transcribed line by line
(bearpaw/pytorch-pose evaluation/eval_PCKh.py; the MPII toolkit's computePCK.m and
genTablePCK.m) instead of against printed numbers.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from hgbench.accuracy.mpii_files import load_predictions, score_files
from hgbench.accuracy.pckh import THRESHOLDS, compute_pckh
from hgbench.cli import app
from hgbench.data import DatasetError
from hgbench.data.mpii import head_size_from_boxes, load_ground_truth

SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")


@pytest.fixture(scope="module")
def gt_mat() -> Path:
    path = SHARED_DATA / "mpii" / "gt_valid_detections_our_format.mat"
    if not path.is_file():
        pytest.skip(
            f"MPII validation ground truth not found at {path} (set HGBENCH_SHARED_DATA to the shared data folder)"
        )
    return path


@pytest.fixture(scope="module")
def valid_h5() -> Path:
    path = SHARED_DATA / "mpii" / "valid.h5"
    if not path.is_file():
        pytest.skip(f"pose-hg-train valid.h5 not found at {path} (set HGBENCH_SHARED_DATA to the shared data folder)")
    return path


# --------------------------------------------------------------------------------------------
# Real ground truth
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["official", "bearpaw"])
def test_ground_truth_scored_against_itself_is_100(gt_mat, valid_h5, convention):
    for gt in (gt_mat, valid_h5):
        truth = load_ground_truth(gt)
        r = compute_pckh(truth.joints, truth.joints, truth.annotated, truth.head_size, convention)
        assert all(v == 100.0 for v in r.table_row().values()), (gt, r.table_row())
        assert r.num_persons == 2958
    # the .mat scored through the files: its own pos_gt_src passed as predictions
    r = score_files(gt_mat, gt_mat, convention, key="pos_gt_src")
    assert r.mean == 100.0 and r.groups["Head"] == 100.0
    # threshold 0: official counts distance 0 as correct (<=), bearpaw does not (<)
    assert r.curve["Mean"][0] == (100.0 if convention == "official" else 0.0)


def test_valid_h5_normalize_is_06_times_the_head_box_diagonal(gt_mat, valid_h5):
    mat, h5 = load_ground_truth(gt_mat), load_ground_truth(valid_h5)
    np.testing.assert_allclose(h5.head_size, mat.head_size, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(h5.annotated, mat.annotated)  # part == (0, 0) <=> jnt_missing
    # valid.h5's part is the same annotation truncated to integers (pose-hg-train partinfo)
    diff = np.abs(h5.joints - mat.joints)[mat.annotated]
    assert np.mean(diff.max(axis=-1) < 1.0) > 0.999


def _bearpaw_eval_pckh(preds_n16x2: np.ndarray, gt_dict: dict, threshold: float = 0.5) -> list[float]:
    """bearpaw/pytorch-pose evaluation/eval_PCKh.py (commit 7ce6642), transcribed line by line."""
    dataset_joints = gt_dict["dataset_joints"]
    jnt_missing = gt_dict["jnt_missing"]
    pos_gt_src = gt_dict["pos_gt_src"]
    headboxes_src = gt_dict["headboxes_src"]
    pos_pred_src = np.transpose(preds_n16x2, [1, 2, 0])
    idx = {
        n: np.where(dataset_joints == n)[1][0]
        for n in (
            "head",
            "lsho",
            "lelb",
            "lwri",
            "lhip",
            "lkne",
            "lank",
            "rsho",
            "relb",
            "rwri",
            "rkne",
            "rank",
            "rhip",
        )
    }
    jnt_visible = 1 - jnt_missing
    uv_error = pos_pred_src - pos_gt_src
    uv_err = np.linalg.norm(uv_error, axis=1)
    headsizes = headboxes_src[1, :, :] - headboxes_src[0, :, :]
    headsizes = np.linalg.norm(headsizes, axis=0)
    headsizes *= 0.6
    scale = np.multiply(headsizes, np.ones((len(uv_err), 1)))
    scaled_uv_err = np.divide(uv_err, scale)
    scaled_uv_err = np.multiply(scaled_uv_err, jnt_visible)
    jnt_count = np.sum(jnt_visible, axis=1)
    less_than_threshold = np.multiply((scaled_uv_err < threshold), jnt_visible)
    PCKh = np.divide(100.0 * np.sum(less_than_threshold, axis=1), jnt_count)
    PCKh = np.ma.array(PCKh, mask=False)
    PCKh.mask[6:8] = True
    return [
        PCKh[idx["head"]],
        0.5 * (PCKh[idx["lsho"]] + PCKh[idx["rsho"]]),
        0.5 * (PCKh[idx["lelb"]] + PCKh[idx["relb"]]),
        0.5 * (PCKh[idx["lwri"]] + PCKh[idx["rwri"]]),
        0.5 * (PCKh[idx["lhip"]] + PCKh[idx["rhip"]]),
        0.5 * (PCKh[idx["lkne"]] + PCKh[idx["rkne"]]),
        0.5 * (PCKh[idx["lank"]] + PCKh[idx["rank"]]),
        float(np.mean(PCKh)),
    ]


def _mpii_toolkit(
    pred_16x2xn: np.ndarray, gt_16x2xn: np.ndarray, missing: np.ndarray, headboxes: np.ndarray, r: float
) -> list[float]:
    """The MPII toolkit (evalMPII.zip): annolist2matrix keeps 14 joints (pelvis and thorax
    dropped, missing ones NaN), getDistPCKh, computePCK (``<=``, NaN ignored, total over all
    joints pooled) and genTablePCK's columns, transcribed."""
    keep = [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9]  # LSP-like order of annolist2matrix
    gt = gt_16x2xn[keep].astype(float).copy()
    gt = np.where(missing[keep][:, None, :].astype(bool), np.nan, gt)
    pred = pred_16x2xn[keep].astype(float)
    pred = np.where(np.isnan(pred), np.inf, pred)
    head = 0.6 * np.array([np.linalg.norm(headboxes[1, :, i] - headboxes[0, :, i]) for i in range(gt.shape[2])])
    dist = np.sqrt(((pred - gt) ** 2).sum(axis=1)) / head[None, :]  # (14, N)
    pck = []
    for j in range(14):
        d = dist[j]
        pck.append(100 * np.mean(d[~np.isnan(d)] <= r))
    d = dist.reshape(-1)
    total = 100 * np.mean(d[~np.isnan(d)] <= r)
    p = [None] + pck  # 1-based as in MATLAB
    return [
        (p[13] + p[14]) / 2,
        (p[9] + p[10]) / 2,
        (p[8] + p[11]) / 2,
        (p[7] + p[12]) / 2,
        (p[3] + p[4]) / 2,
        (p[2] + p[5]) / 2,
        (p[1] + p[6]) / 2,
        total,
    ]


@pytest.mark.parametrize("threshold", [0.5, 0.1, 0.25])
def test_tompson_predictions_match_the_toolkits_own_formulas(gt_mat, threshold):
    """pos_pred_src (Tompson et al. CVPR'15, validation split) through both conventions,
    against the transcribed toolkit code: equal to 1e-9 (published tables reproduce to two
    decimals when the prediction file is available)."""
    d = scipy.io.loadmat(gt_mat)
    preds = np.transpose(d["pos_pred_src"], [2, 0, 1])
    bearpaw = score_files(gt_mat, gt_mat, "bearpaw", threshold=threshold, key="pos_pred_src")
    np.testing.assert_allclose(
        [*bearpaw.groups.values(), bearpaw.mean], _bearpaw_eval_pckh(preds, d, threshold), atol=1e-9
    )
    official = score_files(gt_mat, gt_mat, "official", threshold=threshold, key="pos_pred_src")
    expected = _mpii_toolkit(d["pos_pred_src"], d["pos_gt_src"], d["jnt_missing"], d["headboxes_src"], threshold)
    np.testing.assert_allclose([*official.groups.values(), official.mean], expected, atol=1e-9)
    # the two conventions differ where the issue says they do, and nowhere else
    assert official.groups["Head"] != bearpaw.groups["Head"] and official.mean != bearpaw.mean
    for g in GROUPS[1:]:
        assert official.groups[g] == pytest.approx(bearpaw.groups[g], abs=1e-9)


def test_curve_and_mean_at_01_are_the_table_at_those_thresholds(gt_mat):
    for convention in ("official", "bearpaw"):
        r = score_files(gt_mat, gt_mat, convention, key="pos_pred_src")
        assert len(r.thresholds) == 51 and r.thresholds[0] == 0.0 and r.thresholds[-1] == 0.5
        at01 = score_files(gt_mat, gt_mat, convention, threshold=0.1, key="pos_pred_src")
        assert r.mean_at_01 == pytest.approx(at01.mean, abs=1e-12)
        assert r.curve["Mean"][10] == pytest.approx(at01.mean, abs=1e-12)
        assert r.curve["Mean"][50] == pytest.approx(r.mean, abs=1e-12)
        assert all(a <= b + 1e-12 for a, b in zip(r.curve["Mean"], r.curve["Mean"][1:], strict=False))  # non-decreasing
        rows = r.to_csv().strip().splitlines()
        assert rows[0] == "threshold,Head,Shoulder,Elbow,Wrist,Hip,Knee,Ankle,Mean" and len(rows) == 52
        assert rows[-1].split(",")[0] == "0.50" and float(rows[-1].split(",")[-1]) == pytest.approx(r.mean, abs=1e-4)
        md = r.to_markdown()
        assert (
            f"| {r.groups['Head']:.2f} | {r.groups['Shoulder']:.2f} |" in md
            and f"| 0.10 | {r.curve['Head'][10]:.2f} |" in md
        )


# --------------------------------------------------------------------------------------------
# Hand-built cases with known answers
# --------------------------------------------------------------------------------------------


def _people(n: int):
    """n persons, every joint annotated at distinct places, head box 30 x 40 px (diagonal 50,
    head size 0.6 x 50 = 30 px)."""
    gt = np.stack([np.stack([np.arange(16) * 10.0 + 100, np.full(16, 200.0 + i)], axis=-1) for i in range(n)])
    boxes = np.tile(np.array([[0.0, 0.0], [30.0, 40.0]]), (n, 1, 1))
    return gt, np.ones((n, 16), bool), head_size_from_boxes(boxes)


def test_head_size_boundary_is_inclusive_for_official_and_strict_for_bearpaw():
    gt, ann, hs = _people(1)
    assert hs[0] == 30.0
    for offset, official, bearpaw in ((14.9, 100.0, 100.0), (15.0, 100.0, 0.0), (15.1, 0.0, 0.0)):
        pred = gt + np.array([offset, 0.0])  # 15 px = exactly 0.5 head sizes
        assert compute_pckh(pred, gt, ann, hs, "official").mean == official
        assert compute_pckh(pred, gt, ann, hs, "bearpaw").mean == bearpaw


def test_missing_joints_are_left_out_and_nan_predictions_count_as_wrong():
    gt, ann, hs = _people(4)
    pred = gt.copy()
    ann[0, 10] = False  # right wrist of person 0 not annotated ...
    pred[0, 10] = [1e6, 1e6]  # ... so its far-off prediction does not count
    pred[1, 15] = np.nan  # left wrist of person 1: a NaN prediction is wrong
    pred[2, 0] = [np.inf, 0.0]  # right ankle of person 2: so is an infinite one
    pred[3, 6] = np.nan  # pelvis: scored per joint (not in the Mean), counted
    for convention in ("official", "bearpaw"):
        r = compute_pckh(pred, gt, ann, hs, convention)
        assert r.counts["right_wrist"] == 3 and r.per_joint["right_wrist"] == 100.0
        assert r.per_joint["left_wrist"] == 75.0 and r.groups["Wrist"] == 87.5
        assert r.per_joint["right_ankle"] == 75.0 and r.per_joint["pelvis"] == 75.0
        assert r.num_nonfinite == 3 and "3 scored joint prediction(s) are NaN or infinite" in r.to_markdown()
    pred[0, 10] = np.nan  # a NaN for a joint that is not annotated is not scored, so not counted
    assert compute_pckh(pred, gt, ann, hs).num_nonfinite == 3
    assert (
        compute_pckh(gt, gt, ann, hs).num_nonfinite == 0
        and "NaN or infinite" not in compute_pckh(gt, gt, ann, hs).to_markdown()
    )
    # a person without a head size is left out entirely and counted
    hs2 = hs.copy()
    hs2[1] = np.nan
    r = compute_pckh(pred, gt, ann, hs2, "official")
    assert r.num_unnormalised == 1 and r.per_joint["left_wrist"] == 100.0 and r.counts["left_wrist"] == 3


def test_pooled_mean_and_head_differ_between_conventions_as_defined():
    gt, ann, hs = _people(4)
    ann[1:, [0, 5]] = False  # ankles annotated in person 0 only
    pred = gt.copy()
    pred[0, [0, 5]] += 100.0  # ... and both wrong
    pred[0, 8] += 100.0  # upper neck of person 0 wrong
    pred[:, [6, 7]] += 100.0  # pelvis and thorax wrong everywhere: never in the Mean
    off = compute_pckh(pred, gt, ann, hs, "official")
    bp = compute_pckh(pred, gt, ann, hs, "bearpaw")
    # official: 4 x 12 other joints + 2 ankles = 50 instances, 3 wrong -> 94 % pooled
    assert off.num_scored == 50 and off.mean == pytest.approx(100 * 47 / 50)
    # bearpaw: mean of 14 per-joint values: 11 at 100, neck 75, two ankles at 0
    assert bp.mean == pytest.approx((11 * 100 + 75 + 0 + 0) / 14)
    assert off.groups["Head"] == pytest.approx((75 + 100) / 2) and bp.groups["Head"] == 100.0
    assert off.groups["Ankle"] == bp.groups["Ankle"] == 0.0
    assert off.per_joint["pelvis"] == 0.0 and off.counts["pelvis"] == 4


# --------------------------------------------------------------------------------------------
# Files: layouts, variable names, bad input
# --------------------------------------------------------------------------------------------


def _tiny_gt(tmp_path: Path, n: int = 5) -> tuple[Path, np.ndarray]:
    gt, ann, _ = _people(n)
    boxes = np.tile(np.array([[0.0, 0.0], [30.0, 40.0]]), (n, 1, 1))
    path = tmp_path / "gt.mat"
    scipy.io.savemat(
        path,
        {
            "pos_gt_src": gt.transpose(1, 2, 0),
            "jnt_missing": (~ann).T.astype(np.uint8),
            "headboxes_src": boxes.transpose(1, 2, 0),
        },
    )
    return path, gt


def test_prediction_layouts_and_names_are_detected(tmp_path):
    gt_path, gt = _tiny_gt(tmp_path)
    layouts = {"n162": gt, "162n": gt.transpose(1, 2, 0)}
    for name, arr in layouts.items():
        for var in ("preds", "pos_pred_src", "joints"):
            p = tmp_path / f"{name}_{var}.mat"
            scipy.io.savemat(p, {var: arr})
            preds, variable = load_predictions(p, 5)
            np.testing.assert_array_equal(preds, gt)
            assert variable == var
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f["preds"] = np.concatenate([gt, np.ones((5, 16, 1))], axis=-1)  # x, y, score
    r = score_files(tmp_path / "p.h5", gt_path)
    assert r.mean == 100.0 and r.predictions_variable == "preds" and "variable 'preds' of" in r.to_markdown()
    for name, arr in (("v73.mat", gt.transpose(2, 1, 0)), ("v73b.mat", gt.transpose(0, 2, 1))):
        with h5py.File(tmp_path / name, "w") as f:  # MATLAB v7.3 = HDF5, axes reversed: (2, 16, N), (N, 2, 16)
            f["preds"] = arr
        np.testing.assert_array_equal(load_predictions(tmp_path / name, 5)[0], gt)
    # the only 3-D array is read whatever its name, and the name is said
    scipy.io.savemat(tmp_path / "other.mat", {"heat": gt, "n": np.arange(3)})
    assert load_predictions(tmp_path / "other.mat", 5)[1] == "heat"
    # 0-based predictions: --zero-based adds the 1 pixel back
    scipy.io.savemat(tmp_path / "zero.mat", {"preds": gt - 1.0})
    assert score_files(tmp_path / "zero.mat", gt_path, zero_based=True).mean == 100.0
    assert score_files(tmp_path / "zero.mat", gt_path, threshold=0.01).mean == 0.0  # 1 px > 0.01 x 30 px


def test_bad_prediction_files_name_the_file_the_variable_and_the_shape(tmp_path):
    gt_path, gt = _tiny_gt(tmp_path)
    scipy.io.savemat(tmp_path / "short.mat", {"preds": gt[:3]})
    with pytest.raises(
        ValueError, match=r"short\.mat: variable 'preds' has shape \(3, 16, 2\).*expected \(5, 16, 2\) or \(16, 2, 5\)"
    ):
        score_files(tmp_path / "short.mat", gt_path)
    scipy.io.savemat(tmp_path / "two.mat", {"a": gt, "b": gt})
    with pytest.raises(ValueError, match="two.mat.*--key"):
        score_files(tmp_path / "two.mat", gt_path)
    with pytest.raises(ValueError, match="no numeric variable 'x'"):
        score_files(tmp_path / "two.mat", gt_path, key="x")
    # only (N, 16, 2) and (16, 2, N) (and their reversal in HDF5 files): (16, N, 2) is refused, shape named
    scipy.io.savemat(tmp_path / "jn.mat", {"preds": gt.transpose(1, 0, 2)})
    with pytest.raises(ValueError, match=r"jn\.mat: variable 'preds' has shape \(16, 5, 2\).*expected \(5, 16, 2\)"):
        score_files(tmp_path / "jn.mat", gt_path)
    (tmp_path / "2").mkdir()
    gt2_path, gt2 = _tiny_gt(tmp_path / "2", n=2)
    with h5py.File(tmp_path / "amb.h5", "w") as f:  # (2, 16, 2): (N, 16, 2) or reversed (2, 16, N)?
        f["preds"] = gt2
    with pytest.raises(ValueError, match="cannot be told apart"):
        score_files(tmp_path / "amb.h5", gt2_path)
    (tmp_path / "p.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"\.mat \(MATLAB\) or \.h5"):
        score_files(tmp_path / "p.txt", gt_path)
    with pytest.raises(FileNotFoundError):
        score_files(tmp_path / "nope.mat", gt_path)


def test_bad_ground_truth_names_the_field_and_the_fix(tmp_path):
    scipy.io.savemat(tmp_path / "gt.mat", {"pos_gt_src": np.zeros((16, 2, 3)), "jnt_missing": np.zeros((16, 3))})
    with pytest.raises(DatasetError, match="'headboxes_src' is missing.*gt_valid_detections_our_format.mat"):
        load_ground_truth(tmp_path / "gt.mat")
    with h5py.File(tmp_path / "valid.h5", "w") as f:
        f["part"] = np.zeros((3, 16, 2))
    with pytest.raises(DatasetError, match="valid.h5: field 'normalize'.*missing"):
        load_ground_truth(tmp_path / "valid.h5")
    scipy.io.savemat(tmp_path / "other.mat", {"joints": np.zeros((14, 3, 5))})
    with pytest.raises(DatasetError, match="neither 'pos_gt_src' nor 'part'"):
        load_ground_truth(tmp_path / "other.mat")


def test_score_cli_exit_codes_and_output(tmp_path):
    runner = CliRunner()
    gt_path, gt = _tiny_gt(tmp_path)
    scipy.io.savemat(tmp_path / "ok.mat", {"preds": gt})
    r = runner.invoke(app, ["score", str(tmp_path / "ok.mat"), "--gt", str(gt_path), "--convention", "bearpaw"])
    assert r.exit_code == 0, r.output
    assert "| 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 |" in r.output
    r = runner.invoke(
        app,
        ["score", str(tmp_path / "ok.mat"), "--gt", str(gt_path), "--format", "csv", "--out", str(tmp_path / "c.csv")],
    )
    assert r.exit_code == 0 and (tmp_path / "c.csv").read_text().count("\n") == 52
    scipy.io.savemat(tmp_path / "short.mat", {"preds": gt[:4]})
    r = runner.invoke(app, ["score", str(tmp_path / "short.mat"), "--gt", str(gt_path)])
    assert r.exit_code == 2 and "short.mat" in r.output and "'preds'" in r.output and "(5, 16, 2)" in r.output
    r = runner.invoke(app, ["score", str(tmp_path / "ok.mat"), "--gt", str(gt_path), "--convention", "pooled"])
    assert r.exit_code == 2 and "official, bearpaw" in r.output
    r = runner.invoke(app, ["score", str(tmp_path / "ok.mat"), "--gt", str(tmp_path / "missing.mat")])
    assert r.exit_code == 2


def test_threshold_list_matches_the_toolkit_range():
    np.testing.assert_allclose(THRESHOLDS, np.arange(0, 51) * 0.01, atol=1e-15)
