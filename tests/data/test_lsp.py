"""The LSPET dataset on the real files of ../shared/data/lspet (skipped where absent)."""

import numpy as np
import pytest
import scipy.io
import torch

from hgbench.accuracy.decode import decode_heatmaps, heatmap_to_image
from hgbench.data import DatasetError, make_dataset
from hgbench.data.keypoints import LSP
from hgbench.data.lsp import LSPDataset


def test_split_is_deterministic_disjoint_and_covers_the_images(lspet_root):
    train = LSPDataset(lspet_root, "train")
    val = LSPDataset(lspet_root, "val")
    names_train = {train.annotation(i).image_id for i in range(len(train))}
    names_val = {val.annotation(i).image_id for i in range(len(val))}
    assert not names_train & names_val
    assert all(int(n[2:7]) % 10 == 0 for n in names_val)
    n_images = len(list((lspet_root / "images").glob("im*.jpg")))
    assert len(names_train) + len(names_val) <= n_images
    assert 0.05 < len(val) / (len(train) + len(val)) < 0.15
    assert [val.annotation(i).image_id for i in range(5)] == [
        LSPDataset(lspet_root, "val").annotation(i).image_id for i in range(5)
    ]


def test_annotation_matches_joints_mat_and_flags(lspet_root):
    raw = scipy.io.loadmat(lspet_root / "joints.mat")["joints"]
    ds = LSPDataset(lspet_root, "all")
    for i in (0, 7, len(ds) - 1):
        ann = ds.annotation(i)
        col = int(ann.image_id[2:7]) - 1
        np.testing.assert_allclose(ann.joints, raw[:, :2, col], rtol=1e-6)
        np.testing.assert_array_equal(ann.annotated, raw[:, 2, col] > 0.5)


def test_targets_put_each_annotated_joint_back_where_it_was(lspet_root):
    ds = LSPDataset(lspet_root, "val", input_size=256, output_size=64, sigma=1.0)
    item = ds[3]
    assert item["image"].shape == (3, 256, 256) and item["image"].dtype == torch.float32
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["heatmaps"].shape == (14, 64, 64)
    coords, _ = decode_heatmaps(item["heatmaps"][None])
    back = heatmap_to_image(coords, item["heatmap_to_image"][None])[0].numpy()
    ann = item["annotated"].numpy()
    assert (item["target_weight"].numpy() == ann).all()
    err = np.linalg.norm(back - item["joints"].numpy(), axis=-1)[ann]
    scale = ds.annotation(3).size_px / 64
    assert err.max() <= 0.36 * scale  # the quarter-pixel decoding bound


def test_flip_augmentation_swaps_left_and_right(lspet_root):
    from hgbench.config import Augmentation

    ds = LSPDataset(lspet_root, "val", input_size=64, output_size=16, augmentation=Augmentation(flip=True))
    plain = LSPDataset(lspet_root, "val", input_size=64, output_size=16)
    ann = plain.annotation(0)
    flipped = None
    for seed in range(20):
        torch.manual_seed(seed)
        item = ds[0]
        if not np.allclose(item["joints"].numpy(), ann.joints):
            flipped = item
            break
    assert flipped is not None, "no flip in 20 draws at p = 0.5"
    np.testing.assert_allclose(flipped["joints"].numpy(), ann.joints[LSP.flip_permutation])
    np.testing.assert_allclose(flipped["image"].numpy(), plain[0]["image"].numpy()[:, :, ::-1], atol=1e-6)


def test_bad_root_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="joints.mat.*--data-root"):
        make_dataset("lspet", tmp_path, "train")
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": np.zeros((5, 3, 4))})
    with pytest.raises(DatasetError, match=r"shape \(5, 3, 4\)"):
        make_dataset("lspet", tmp_path, "train")


def test_corrupt_image_names_the_file(tmp_path):
    joints = np.zeros((14, 3, 20))
    joints[:, 0, :], joints[:, 1, :], joints[:, 2, :] = 10.0, np.arange(14)[:, None] * 5.0, 1.0
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": joints})
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "im00010.jpg").write_bytes(b"not a jpeg")
    ds = make_dataset("lspet", tmp_path, "val")
    with pytest.raises(DatasetError, match="im00010.jpg.*corrupt"):
        ds[0]


def test_lsp_third_row_is_occlusion_lspet_flag_is_annotation(tmp_path, lspet_root):
    from hgbench.data.lsp import read_lsp_joints

    raw = np.zeros((3, 14, 12))
    raw[:2] = 20.0 + np.arange(14)[None, :, None]
    raw[2, 6, :] = 1.0  # LSP: 1 = occluded (bearpaw/pytorch-pose miscs/gen_lsp.m inverts it)
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": raw})
    _, annotated, visible = read_lsp_joints(tmp_path / "joints.mat")
    assert annotated.all() and visible.shape == (12, 14)
    assert not visible[:, 6].any() and visible[:, [j for j in range(14) if j != 6]].all()

    # LSPET: every flag-0 joint sits at a placeholder (x = 0 or y = 0), so flag 0 = not annotated
    # and there is no occlusion flag
    j, annotated, visible = read_lsp_joints(lspet_root / "joints.mat")
    assert visible is None
    assert ((j[~annotated] <= 0).any(axis=-1)).all()
    item = LSPDataset(lspet_root, "val", input_size=64, output_size=16)[0]
    assert not bool(item["has_visibility"]) and torch.equal(item["visible"], item["annotated"])


def test_lsp_visibility_follows_the_flip(tmp_path):
    import cv2

    from hgbench.config import Augmentation

    raw = np.zeros((3, 14, 10))
    raw[:2] = np.random.default_rng(0).uniform(10, 50, (2, 14, 10))
    raw[2, 6, :] = 1.0  # right wrist occluded
    scipy.io.savemat(tmp_path / "joints.mat", {"joints": raw})
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "im0010.jpg"), np.zeros((60, 60, 3), np.uint8))
    ds = LSPDataset(tmp_path, "val", input_size=64, output_size=16, augmentation=Augmentation(flip=True))
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        item = ds[0]
        assert bool(item["has_visibility"])
        flipped = not np.allclose(item["joints"].numpy(), raw[:2, :, 9].T)
        occluded = np.flatnonzero(~item["visible"].numpy()).tolist()
        assert occluded == ([11] if flipped else [6])  # left wrist after the left/right swap
        seen.add(flipped)
    assert seen == {True, False}
