"""PCK on hand-made cases."""

import math

import numpy as np
import pytest

from hgbench.data.base import torso_size
from hgbench.data.keypoints import LSP
from hgbench.evaluate import pck_correct, summarize_pck


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
