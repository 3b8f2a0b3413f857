"""PCK on hand-made cases."""

import math

import numpy as np
import pytest

from hgbench.accuracy.pck import pck_correct, summarize_pck
from hgbench.data.base import torso_size
from hgbench.data.keypoints import LSP


def test_pck_threshold_is_inclusive_and_skips_unannotated():
    gt = np.zeros((2, 14, 2))
    pred = gt.copy()
    pred[0, :, 0] = 20.0  # person 0: every joint 20 px off, torso 100 -> 0.2 x 100 = 20: correct
    pred[1, :, 0] = 20.1  # person 1: just beyond
    annotated = np.ones((2, 14), bool)
    annotated[1, 0] = False
    correct = pck_correct(pred, gt, annotated, np.array([100.0, 100.0]), 0.2)
    assert np.all(correct[0] == 1)
    assert np.all(correct[1, 1:] == 0) and math.isnan(correct[1, 0])
    r = summarize_pck(correct, LSP, 0.2)
    assert r.per_joint["right_ankle"] == 100.0  # only person 0 counts
    assert r.per_joint["right_knee"] == 50.0
    assert r.mean == pytest.approx(100 * 14 / 27)
    assert r.counts["right_ankle"] == 1


def test_persons_without_normaliser_are_left_out():
    gt = np.zeros((2, 14, 2))
    correct = pck_correct(gt, gt, np.ones((2, 14), bool), np.array([50.0, np.nan]), 0.2)
    assert np.isnan(correct[1]).all() and (correct[0] == 1).all()


def test_torso_size_uses_right_shoulder_to_left_hip_then_the_other_diagonal():
    joints = np.zeros((14, 2))
    joints[8] = [0, 0]  # right shoulder
    joints[3] = [30, 40]  # left hip
    joints[9] = [0, 0]  # left shoulder
    joints[2] = [60, 80]  # right hip
    annotated = np.ones(14, bool)
    assert torso_size(joints, annotated, LSP) == 50.0
    annotated[3] = False
    assert torso_size(joints, annotated, LSP) == 100.0
    annotated[2] = False
    assert math.isnan(torso_size(joints, annotated, LSP))


def _predictions(pred, gt, annotated, normalizer, visible=None, has_visibility=None):
    from hgbench.accuracy.evaluate import Predictions

    return Predictions(
        np.asarray(pred, float),
        np.asarray(gt, float),
        np.asarray(annotated, bool),
        np.asarray(normalizer, float),
        visible=visible,
        has_visibility=has_visibility,
    )


def test_occlusion_split_pools_visible_and_occluded_joints_separately():
    from hgbench.accuracy.evaluate import score_predictions

    gt = np.zeros((3, 14, 2))
    pred = gt.copy()
    pred[:, 6, 0] = 30.0  # right wrist 30 px off (> 0.2 x 100): wrong for everyone
    pred[2, 7, 0] = 30.0  # person 2's right elbow wrong too
    visible = np.ones((3, 14), bool)
    visible[1:, 6] = False  # persons 1, 2: right wrist occluded
    visible[2, 7] = False  # person 2: right elbow occluded
    has = np.array([True, True, True])
    r = score_predictions(_predictions(pred, gt, np.ones((3, 14), bool), [100.0] * 3, visible, has), LSP)
    assert r.counts_visible["right_wrist"] == 1 and r.counts_occluded["right_wrist"] == 2
    assert r.per_joint_visible["right_wrist"] == 0.0 and r.per_joint_occluded["right_wrist"] == 0.0
    assert r.per_joint_visible["right_elbow"] == 100.0 and r.per_joint_occluded["right_elbow"] == 0.0
    assert r.groups_occluded["Elbow"] == 0.0 and r.groups_visible["Elbow"] == 100.0  # 5 visible elbows, all right
    assert math.isnan(r.per_joint_occluded["head_top"]) and r.counts_occluded["head_top"] == 0
    assert r.mean_occluded == 0.0 and r.mean_visible == pytest.approx(
        100 * 38 / 39
    )  # 42 - 3 occluded; one visible wrist wrong
    # the overall numbers are unchanged by the split
    assert r.per_joint["right_wrist"] == 0.0 and r.per_joint["right_elbow"] == pytest.approx(200 / 3)

    # only persons with a visibility flag enter the split; none: no split at all
    r = score_predictions(
        _predictions(pred, gt, np.ones((3, 14), bool), [100.0] * 3, visible, np.array([False, True, False])), LSP
    )
    assert r.counts_occluded["right_wrist"] == 1 and r.counts_visible["right_wrist"] == 0
    r = score_predictions(_predictions(pred, gt, np.ones((3, 14), bool), [100.0] * 3, visible, np.zeros(3, bool)), LSP)
    assert r.per_joint_visible is None and r.groups_occluded is None and r.mean_visible is None


def test_each_metric_has_its_standard_threshold():
    from hgbench.accuracy.evaluate import score_predictions

    gt = np.zeros((1, 14, 2))
    pred = gt + [30.0, 0.0]  # 0.3 normalisers off
    p = _predictions(pred, gt, np.ones((1, 14), bool), [100.0])
    assert score_predictions(p, LSP, "pck").threshold == 0.2 and score_predictions(p, LSP, "pck").mean == 0.0
    r = score_predictions(p, LSP, "pck_heatmap")
    assert r.threshold == 0.5 and r.mean == 100.0 and "seed 003" in r.convention
    assert score_predictions(p, LSP, "pck", threshold=0.3).mean == 100.0  # inclusive
    with pytest.raises(ValueError, match="unknown metric"):
        score_predictions(p, LSP, "oks")


def test_pckh_dispatch_follows_the_mpii_toolkit():
    from hgbench.accuracy.evaluate import score_predictions
    from hgbench.data.keypoints import MPII

    gt = np.zeros((2, 16, 2))
    pred = gt.copy()
    pred[:, 6] = 100.0  # pelvis far off: not part of the MPII total
    pred[0, 9] = [6.0, 0.0]  # person 0's head top 0.6 head sizes off (head size 10 px)
    r = score_predictions(_predictions(pred, gt, np.ones((2, 16), bool), [10.0, 10.0]), MPII, "pckh")
    assert r.threshold == 0.5 and r.metric == "pckh"
    assert r.per_joint["pelvis"] == 0.0 and r.per_joint["head_top"] == 50.0
    assert r.groups["Head"] == 75.0  # mean of upper neck (100) and head top (50)
    assert r.mean == pytest.approx(100 * 27 / 28)  # 14 joints x 2 persons, pelvis and thorax out
    assert "0.6 x head-box" in r.convention and r.extra["mean_at_0.1"] == pytest.approx(100 * 27 / 28)


def test_items_carry_the_datasets_normaliser_hook():
    from hgbench.data.base import PoseAnnotation, PoseDataset

    class _HeadSized(PoseDataset):
        keypoints = LSP

        def __len__(self):
            return 1

        def annotation(self, index):
            return PoseAnnotation(
                "x", np.full((14, 2), 50.0, np.float32), np.ones(14, bool), np.array([50.0, 50.0]), 80.0
            )

        def load_image(self, index):
            return np.zeros((100, 100, 3), np.uint8)

        def normalizer(self, index, ann, joints, annotated):
            return 0.1 * ann.size_px

    item = _HeadSized(input_size=64, output_size=16)[0]
    assert float(item["normalizer"]) == pytest.approx(8.0)
    assert not bool(item["has_visibility"]) and item["visible"].tolist() == item["annotated"].tolist()


def test_evaluate_refuses_a_dataset_without_any_normaliser():
    """Issue 18: a dataset whose normaliser hook gives NaN for every person (MPII without head
    sizes) scored every cell NaN and exited 0; the metric layer now says so."""
    import torch
    from torch import nn

    from hgbench.accuracy.evaluate import evaluate_pck
    from hgbench.data import DatasetError
    from hgbench.data.base import PoseAnnotation, PoseDataset

    class _NoNorm(PoseDataset):
        keypoints = LSP

        def __len__(self):
            return 2

        def annotation(self, index):
            return PoseAnnotation(
                f"{index}", np.full((14, 2), 50.0, np.float32), np.ones(14, bool), np.array([50.0, 50.0]), 80.0
            )

        def load_image(self, index):
            return np.zeros((100, 100, 3), np.uint8)

        def normalizer(self, index, ann, joints, annotated):
            return float("nan")

    class _Zero(nn.Module):
        def forward(self, x):
            return [torch.zeros(len(x), 14, 16, 16)]

    with pytest.raises(DatasetError, match="none of the 2 persons has a pck normaliser"):
        evaluate_pck(_Zero(), _NoNorm(input_size=64, output_size=16), supervision="final")


def test_groups_and_mean_carry_their_bootstrap_intervals_into_the_record():
    import dataclasses
    import json

    rng = np.random.default_rng(0)
    correct = (rng.random((120, 14)) < 0.65).astype(float)
    correct[rng.random((120, 14)) < 0.1] = np.nan
    r = summarize_pck(correct, LSP, 0.2)
    assert set(r.groups_ci) == set(r.groups) == set(LSP.groups)
    for g, (low, high) in r.groups_ci.items():
        assert low < r.groups[g] < high and high - low > 5  # 240 instances per group: several points wide
    low, high = r.mean_ci
    assert low < r.mean < high and high - low < min(h - lo for lo, h in r.groups_ci.values())  # the Mean pools more
    record = json.loads(json.dumps(dataclasses.asdict(r)))  # as the eval and train records store it
    assert record["mean_ci"] == [low, high] and record["groups_ci"]["Head"] == list(r.groups_ci["Head"])
    assert summarize_pck(correct, LSP, 0.2, intervals=False).mean_ci is None


def test_pckh_intervals_follow_the_official_columns():
    from hgbench.accuracy.evaluate import pckh_official_columns, score_predictions
    from hgbench.accuracy.pckh import compute_pckh, normalized_distances
    from hgbench.data.keypoints import MPII

    rng = np.random.default_rng(1)
    gt = rng.random((150, 16, 2)) * 100
    pred = gt + rng.normal(0, 4, gt.shape)
    annotated = rng.random((150, 16)) > 0.15
    head = np.full(150, 10.0)
    h = compute_pckh(pred, gt, annotated, head, "official", 0.5)
    d = normalized_distances(pred, gt, annotated, head)
    hits = np.where(np.isnan(d), False, d <= 0.5).sum(axis=0).astype(float)
    scored = (~np.isnan(d)).sum(axis=0).astype(float)
    cols = pckh_official_columns(hits, scored)  # the statistic on the full sample is the toolkit's table
    assert list(cols) == pytest.approx([*h.groups.values(), h.mean])
    r = score_predictions(_predictions(pred, gt, annotated, head), MPII, "pckh")
    assert set(r.groups_ci) == set(h.groups)
    for g, (low, high) in r.groups_ci.items():
        assert low <= r.groups[g] <= high
    assert r.mean_ci[0] < r.mean < r.mean_ci[1]
