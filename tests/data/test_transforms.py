"""Crop transforms, heatmap targets and decoding round-trip."""

import numpy as np
import pytest
import torch

from hgbench.accuracy.decode import decode_heatmaps, heatmap_to_image
from hgbench.data.keypoints import LSP
from hgbench.data.transforms import apply_affine, crop_matrix, invert_affine, render_heatmaps


def test_crop_maps_the_square_onto_the_output():
    m = crop_matrix(np.array([100.0, 50.0]), 80.0, 0.0, 64)
    # the square's corners land on the output's outer pixel edges, its centre in the middle
    corners = apply_affine(np.array([[60.0, 10.0], [140.0, 90.0], [100.0, 50.0]]), m)
    np.testing.assert_allclose(corners, [[-0.5, -0.5], [63.5, 63.5], [31.5, 31.5]])


def test_rotation_is_counter_clockwise_and_flip_mirrors():
    c = np.array([50.0, 50.0])
    up = np.array([[50.0, 40.0]])  # a point above the centre
    rotated = apply_affine(up, crop_matrix(c, 100.0, 90.0, 100))
    # turned 90 deg counter-clockwise on screen, "up" goes to the left
    np.testing.assert_allclose(rotated, [[39.5, 49.5]], atol=1e-9)
    right = np.array([[60.0, 50.0]])
    flipped = apply_affine(right, crop_matrix(c, 100.0, 0.0, 100, flip=True))
    np.testing.assert_allclose(flipped, [[39.5, 49.5]], atol=1e-9)


def test_heatmap_peak_is_at_the_joint():
    hm = render_heatmaps(np.array([[10.0, 20.0], [np.nan, np.nan], [200.0, 5.0]]), 64, 1.0)
    assert hm.shape == (3, 64, 64)
    assert hm[0, 20, 10] == pytest.approx(1.0)
    assert hm[0, 20, 11] == pytest.approx(np.exp(-0.5))
    assert hm[1].max() == 0 and hm[2].max() == 0  # not annotated, far outside


@pytest.mark.parametrize("rotation,flip", [(0.0, False), (25.0, False), (-30.0, True)])
def test_encode_decode_round_trip(rotation, flip):
    rng = np.random.default_rng(1)
    joints = rng.uniform(60, 190, size=(14, 2))
    center, size, out = np.array([125.0, 125.0]), 200.0, 64
    to_hm = crop_matrix(center, size, rotation, out, flip)
    order = LSP.flip_permutation if flip else list(range(14))
    hm = render_heatmaps(apply_affine(joints[order], to_hm), out, 1.0)
    coords, maxvals = decode_heatmaps(torch.from_numpy(hm)[None])
    back = heatmap_to_image(coords, torch.from_numpy(invert_affine(to_hm))[None])[0].numpy()
    back = back[np.argsort(order)]  # undo the left/right swap
    # argmax + quarter-pixel step: at most 0.25 heatmap px per heatmap axis, so 0.25 * sqrt(2)
    # in any direction; 1 heatmap px = size/out image px
    err = np.linalg.norm(back - joints, axis=-1).max()
    assert err <= 0.25 * np.sqrt(2) * size / out + 1e-6
    assert (maxvals > 0.6).all()


def test_quarter_pixel_step_goes_toward_the_higher_neighbour():
    hm = torch.zeros(1, 1, 8, 8)
    hm[0, 0, 4, 4] = 1.0
    hm[0, 0, 4, 5] = 0.5  # right neighbour higher than left
    hm[0, 0, 3, 4] = 0.3  # upper neighbour higher than lower
    coords, _ = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [4.25, 3.75]
    hm[0, 0, 4, 4], hm[0, 0, 0, 0] = 0.0, 2.0  # a maximum on the border: no step
    coords, _ = decode_heatmaps(hm)
    assert coords[0, 0].tolist() == [0.0, 0.0]


def test_per_joint_sigma():
    hm = render_heatmaps(np.array([[10.0, 10.0], [20.0, 20.0]]), 32, np.array([1.0, 2.0]))
    assert hm[0, 10, 11] == pytest.approx(np.exp(-1 / 2))
    assert hm[1, 20, 21] == pytest.approx(np.exp(-1 / 8))
    with pytest.raises(ValueError, match="2 values"):
        render_heatmaps(np.zeros((2, 2)), 8, np.array([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="> 0"):
        render_heatmaps(np.zeros((2, 2)), 8, 0.0)


def test_occluded_joints_get_their_own_sigma_only_where_the_dataset_has_a_flag():
    from hgbench.data.base import PoseAnnotation, PoseDataset

    class _One(PoseDataset):
        keypoints = LSP

        def __init__(self, visible, **kw):
            super().__init__(**kw)
            self.visible = visible

        def __len__(self):
            return 1

        def annotation(self, index):
            joints = np.tile(np.array([[40.0, 40.0]], np.float32), (14, 1))
            return PoseAnnotation("x", joints, np.ones(14, bool), np.array([40.0, 40.0]), 64.0, self.visible)

        def load_image(self, index):
            return np.zeros((80, 80, 3), np.uint8)

    visible = np.ones(14, bool)
    visible[3] = False
    # crop 64 image px -> 64 heatmap px: joint (40, 40) sits at heatmap (31.5, 31.5)
    item = _One(visible, input_size=64, output_size=64, sigma=1.0, sigma_occluded=2.0)[0]
    hm = item["heatmaps"].numpy()
    assert hm[0, 31, 33] == pytest.approx(np.exp(-(1.5**2 + 0.5**2) / 2), rel=1e-5)
    assert hm[3, 31, 33] == pytest.approx(np.exp(-(1.5**2 + 0.5**2) / 8), rel=1e-5)
    assert item["visible"].tolist() == visible.tolist() and bool(item["has_visibility"])
    no_flag = _One(None, input_size=64, output_size=64, sigma=1.0, sigma_occluded=2.0)[0]["heatmaps"].numpy()
    assert no_flag[3, 31, 33] == pytest.approx(hm[0, 31, 33], rel=1e-5)
