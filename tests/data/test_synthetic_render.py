"""Tests of the procedural figure renderer (hgbench.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from hgbench.data.keypoints import LSP
from hgbench.data.synthetic import (
    HEAD_TOP,
    L_HIP,
    L_SHOULDER,
    L_WRIST,
    NECK,
    R_HIP,
    R_SHOULDER,
    R_WRIST,
    render_background,
    render_figure,
    render_figure_with_meta,
)

SIZE = 256
N = 150  # samples for the statistical tests


@pytest.fixture(scope="module")
def samples():
    out = []
    for seed in range(N):
        img, joints, visible, meta = render_figure_with_meta(np.random.default_rng(seed), SIZE)
        out.append((img, joints, visible, meta))
    return out


def _cross(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _facing_sign(joints):
    """cross(neck->hip-mid, neck->right shoulder) and cross(neck->hip-mid, hip-mid->right hip)."""
    neck = joints[NECK]
    hip_mid = (joints[R_HIP] + joints[L_HIP]) / 2
    axis = hip_mid - neck
    return _cross(axis, joints[R_SHOULDER] - neck), _cross(axis, joints[R_HIP] - hip_mid)


@pytest.mark.parametrize("size", [64, 128, 256, 368])
def test_shapes_and_dtypes(size):
    img, joints, visible = render_figure(np.random.default_rng(size), size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    assert joints.shape == (14, 2) and joints.dtype == np.float32
    assert visible.shape == (14,) and visible.dtype == np.bool_
    assert np.isfinite(joints).all()


def test_deterministic_and_seed_dependent():
    a = render_figure(np.random.default_rng(123))
    b = render_figure(np.random.default_rng(123))
    c = render_figure(np.random.default_rng(124))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert np.abs(a[0].astype(int) - c[0]).mean() > 10
    assert np.abs(a[1] - c[1]).max() > 5
    # a stream of figures from one generator differs from figure to figure
    rng = np.random.default_rng(5)
    first, second = render_figure(rng)[0], render_figure(rng)[0]
    assert np.abs(first.astype(int) - second).mean() > 10


def test_joints_mostly_inside_and_visible_matches_bounds(samples):
    all_inside = 0
    for _, joints, visible, meta in samples:
        in_bounds = np.all((joints >= 0) & (joints <= SIZE - 1), axis=1)
        np.testing.assert_array_equal(visible, in_bounds)
        all_inside += visible.all()
        assert visible.mean() >= 0.5  # never more than half the figure outside
        assert 0.4 * SIZE - 1e-3 <= meta["height_px"] <= 0.75 * SIZE + 1e-3
    assert all_inside / len(samples) >= 0.8
    assert all_inside < len(samples)  # truncated figures do occur


def test_facing_rule(samples):
    facing = np.array([m["facing_camera"] for *_, m in samples])
    for _, joints, _, meta in samples:
        shoulder, hip = _facing_sign(joints.astype(np.float64))
        assert (shoulder > 0) == meta["facing_camera"], meta
        assert (hip > 0) == meta["facing_camera"], meta
    assert 0.65 <= facing.mean() <= 0.92


def test_facing_rule_survives_mirror_with_label_swap(samples):
    perm = LSP.flip_permutation
    for _, joints, _, meta in samples[:50]:
        mirrored = joints.astype(np.float64).copy()
        mirrored[:, 0] = SIZE - 1 - mirrored[:, 0]
        mirrored = mirrored[perm]  # joint j of the flipped image is joint perm[j] of the original
        shoulder, hip = _facing_sign(mirrored)
        # a face stays a face under a mirror, so the rule must still say "facing" for it
        assert (shoulder > 0) == meta["facing_camera"]
        assert (hip > 0) == meta["facing_camera"]


def test_head_top_above_neck(samples):
    for _, joints, _, meta in samples:
        up = joints[NECK] - (joints[R_HIP] + joints[L_HIP]) / 2
        head = joints[HEAD_TOP] - joints[NECK]
        assert head @ up > 0
        assert 0.08 * meta["height_px"] < np.linalg.norm(head) < 0.3 * meta["height_px"]


def test_pose_variety(samples):
    """Raised arms, arms crossing the body axis and tilted figures all occur."""
    raised = crossed = tilted = 0
    for _, joints, _, meta in samples:
        neck = joints[NECK].astype(np.float64)
        axis = (joints[R_HIP] + joints[L_HIP]) / 2 - neck
        for wrist, shoulder in ((R_WRIST, R_SHOULDER), (L_WRIST, L_SHOULDER)):
            raised += (joints[wrist] - neck) @ axis < 0  # wrist above the neck
            side_w = _cross(axis, joints[wrist] - neck)
            side_s = _cross(axis, joints[shoulder] - neck)
            crossed += side_w * side_s < 0
        tilted += abs(meta["rotation_deg"]) > 20
    assert raised >= 0.05 * N and crossed >= 0.03 * N and tilted >= 0.05 * N


def test_background_is_the_same_image_without_the_figure(samples):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    contrasts = []
    for seed in range(40):
        img, joints, _, meta = samples[seed]
        bg = render_background(np.random.default_rng(seed), SIZE)
        diff = np.abs(img.astype(int) - bg).sum(2)
        # the figure is drawn: the torso centre clearly differs from the background
        cx, cy = meta["torso_center"]
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= max(2.0, 0.03 * meta["height_px"]) ** 2
        assert disc.any()
        contrasts.append(diff[disc].mean() / 3)
        # ... and nothing is drawn far from the figure's joints
        margin = 0.15 * meta["height_px"] + 4
        lo, hi = joints.min(0) - margin, joints.max(0) + margin
        far = (xx < lo[0]) | (xx > hi[0]) | (yy < lo[1]) | (yy > hi[1])
        assert not diff[far].any()
        # and the background differs from the figure image only in a minority of pixels
        assert 0.01 < (diff > 0).mean() < 0.6
    assert min(contrasts) > 8 and np.median(contrasts) > 30


def test_backgrounds_vary():
    bgs = [render_background(np.random.default_rng(1000 + s), 128).astype(float) for s in range(16)]
    pair_diffs = [np.abs(a - b).mean() for i, a in enumerate(bgs) for b in bgs[i + 1 :]]
    assert np.median(pair_diffs) > 30 and min(pair_diffs) > 5
    means = np.array([b.mean(axis=(0, 1)) for b in bgs])
    assert means.std(0).min() > 10  # different colours, not one palette
    stds = np.array([b.std() for b in bgs])
    assert stds.max() > 2 * stds.min()  # some flat/low-contrast, some busy
