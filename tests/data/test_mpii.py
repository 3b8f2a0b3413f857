"""MPII Human Pose dataset (hgbench.data.mpii) on the real files of ../shared/data/mpii
(valid.h5, the five validation images, mmpose's JSON of them; skipped where absent): both
annotation layouts, crops onto the person, encode/decode round trips, head sizes, bad input."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from hgbench.accuracy.decode import decode_heatmaps, heatmap_to_image
from hgbench.data import DatasetError, make_dataset
from hgbench.data.keypoints import MPII
from hgbench.data.mpii import MPIIDataset, read_mpii_annotations
from hgbench.data.transforms import apply_affine, crop_matrix, invert_affine

SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
FIVE = ["005808361.jpg", "052475643.jpg", "051423444.jpg", "004645041.jpg", "060754485.jpg"]  # valid.h5 rows 0-4


@pytest.fixture(scope="module")
def mpii_root() -> Path:
    root = SHARED_DATA / "mpii"
    if not (root / "valid.h5").is_file() or not (root / "images").is_dir():
        pytest.skip(f"real MPII data not found at {root} (set HGBENCH_SHARED_DATA to the shared data folder)")
    return root


@pytest.fixture(scope="module")
def h5_dataset(mpii_root) -> MPIIDataset:
    return MPIIDataset(mpii_root, "val", bad_samples="skip")


def _raw_json_entries(valid_h5: Path, rows: range) -> list[dict]:
    """valid.h5 rows written back in the microsoft/mmpose JSON layout: MPII's raw objpos and
    scale (undoing convert_annot.py's +15 x scale and x 1.25), joints, joints_vis."""
    with h5py.File(valid_h5, "r") as f:
        out = []
        for i in rows:
            s = float(f["scale"][i]) / 1.25
            c = f["center"][i] - np.array([0.0, 15.0 * s])
            part = f["part"][i]
            out.append(
                {
                    "image": f["imgname"][i].decode(),
                    "center": c.tolist(),
                    "scale": s,
                    "joints": part.tolist(),
                    "joints_vis": (~np.all(part == 0, axis=-1)).astype(int).tolist(),
                }
            )
    return out


def _gt_subset(mpii_root: Path, path: Path, rows: list[int]) -> Path:
    """The MPII ground truth .mat of the given validation rows (head boxes for a JSON layout)."""
    mat = scipy.io.loadmat(mpii_root / "gt_valid_detections_our_format.mat")
    scipy.io.savemat(path, {k: mat[k][..., rows] for k in ("pos_gt_src", "jnt_missing", "headboxes_src")})
    return path


def test_hdf5_layout_loads_the_five_present_persons(mpii_root, h5_dataset):
    assert len(h5_dataset) == 5 and h5_dataset.num_skipped == len(h5_dataset.skipped) == 2953  # one entry per person
    assert len({f for f, _ in h5_dataset.skipped}) == 2724  # distinct images
    assert h5_dataset.metric == "pckh"
    np.testing.assert_allclose([h5_dataset[i]["normalizer"].item() for i in range(5)], h5_dataset.head_sizes)
    assert [h5_dataset.annotation(i).image_id for i in range(5)] == FIVE
    with h5py.File(mpii_root / "valid.h5", "r") as f:
        part, center, scale, visible = f["part"][:5], f["center"][:5], f["scale"][:5], f["visible"][:5]
    for i in range(5):
        a = h5_dataset.annotation(i)
        np.testing.assert_allclose(a.joints[a.annotated], part[i][a.annotated] - 1.0)  # 1-based MATLAB -> 0-based
        np.testing.assert_array_equal(a.annotated, ~np.all(part[i] == 0, axis=-1))
        np.testing.assert_allclose(a.center, center[i] - 1.0)
        assert a.size_px == pytest.approx(200.0 * scale[i])  # convert_annot.py already applied the 1.25
        np.testing.assert_array_equal(a.visible, (visible[i] > 0) & a.annotated)
    a = h5_dataset.annotation(2)  # 051423444.jpg: ankles not annotated, right wrist/elbow occluded
    assert not a.annotated[[0, 5]].any() and a.annotated[[10, 11]].all() and not a.visible[[10, 11]].any()


def test_missing_images_are_an_error_unless_skipped(mpii_root):
    with pytest.raises(DatasetError, match=r"2953 of 2958 images listed in .*valid.h5 are missing.*--skip-bad-samples"):
        MPIIDataset(mpii_root, "val")
    assert len(make_dataset("mpii", mpii_root, "val", bad_samples="skip")) == 5
    with pytest.raises(ValueError, match="--data-root"):
        make_dataset("mpii", None, "val")


def test_json_layout_gives_the_same_persons_and_crops(mpii_root, h5_dataset, tmp_path):
    path = tmp_path / "valid.json"
    path.write_text(json.dumps(_raw_json_entries(mpii_root / "valid.h5", range(5))))
    gt = _gt_subset(mpii_root, tmp_path / "gt_valid.mat", list(range(5)))  # found beside valid.json
    js = MPIIDataset(mpii_root, "val", annotation_file=path, bad_samples="skip")
    assert js.gt_file == gt
    # mmpose's own JSON of the same five persons (scale with six decimals)
    mm = MPIIDataset(
        mpii_root, "val", annotation_file=mpii_root / "mmpose_val_first5.json", gt_file=gt, bad_samples="skip"
    )
    assert read_mpii_annotations(path).layout == "json" and len(js) == len(mm) == 5
    for i in range(5):
        a, b, c = h5_dataset.annotation(i), js.annotation(i), mm.annotation(i)
        assert a.image_id == b.image_id == c.image_id
        np.testing.assert_allclose(b.center, a.center, atol=1e-9)
        assert b.size_px == pytest.approx(a.size_px, abs=1e-9)
        np.testing.assert_allclose(c.center, a.center, atol=1e-3)  # +15 x scale and x 1.25 applied to the raw values
        assert c.size_px == pytest.approx(a.size_px, abs=1e-3)
        np.testing.assert_array_equal(c.annotated, a.annotated)
        # valid.h5 truncated the annotation to integers; mmpose kept the decimals
        assert np.abs(c.joints - a.joints)[a.annotated].max() < 1.0
        assert c.visible is None and a.visible is not None  # joints_vis is the annotation flag


def test_bearpaw_json_layout_with_split_flag(mpii_root, tmp_path):
    entries = []
    for k, e in enumerate(_raw_json_entries(mpii_root / "valid.h5", range(5))):
        joints = np.array(e["joints"])
        vis = np.array(e["joints_vis"])
        entries.append(
            {
                "img_paths": e["image"],
                "objpos": e["center"],
                "scale_provided": e["scale"],
                "joint_self": np.concatenate([joints, vis[:, None]], axis=1).tolist(),
                "isValidation": float(k != 1),
            }
        )
    path = tmp_path / "mpii_annotations.json"
    path.write_text(json.dumps(entries))
    _gt_subset(mpii_root, tmp_path / "gt_valid.mat", [0, 2, 3, 4])
    val = MPIIDataset(mpii_root, "val", annotation_file=path, bad_samples="skip")
    train = MPIIDataset(mpii_root, "train", annotation_file=path, bad_samples="skip")
    assert [val.annotation(i).image_id for i in range(len(val))] == [FIVE[0], *FIVE[2:]]
    assert [train.annotation(i).image_id for i in range(len(train))] == [FIVE[1]]
    assert read_mpii_annotations(path, "val").layout == "bearpaw"


def test_the_five_real_images_crop_onto_the_person_and_round_trip(h5_dataset):
    for i in range(len(h5_dataset)):
        a = h5_dataset.annotation(i)
        image = h5_dataset.load_image(i)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        m = crop_matrix(a.center, a.size_px, 0.0, 256)
        pts = apply_affine(a.joints[a.annotated], m)
        # every annotated joint inside the crop, with a margin, and the person fills it
        assert pts.min() >= 8 and pts.max() <= 248, (a.image_id, pts.min(), pts.max())
        assert np.ptp(pts[:, 1]) > 100  # the person is more than 100 of 256 px tall in the crop
        back = apply_affine(pts, invert_affine(m))
        assert np.abs(back - a.joints[a.annotated]).max() < 1e-6
        # joint pixels are inside the image (the crop is on image content, not padding)
        xy = np.round(a.joints[a.annotated]).astype(int)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < image.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < image.shape[0])
        assert inside.mean() > 0.9


def test_heatmap_targets_decode_back_to_the_joints(h5_dataset):
    for i in range(len(h5_dataset)):
        item = h5_dataset[i]
        assert item["image"].shape == (3, 256, 256) and item["heatmaps"].shape == (16, 64, 64)
        assert item["image"].mean() > 0.1  # a photo, not the black padding
        coords, _ = decode_heatmaps(item["heatmaps"][None])
        back = heatmap_to_image(coords, item["heatmap_to_image"][None])[0].numpy()
        ann = item["annotated"].numpy()
        px_per_heatmap_px = h5_dataset.annotation(i).size_px / 64
        err = np.linalg.norm(back - item["joints"].numpy(), axis=-1)[ann] / px_per_heatmap_px
        assert err.max() <= 0.36  # within the quarter-pixel decoding bound, in heatmap pixels
        assert torch.equal(item["target_weight"] > 0, item["annotated"])


def test_head_sizes_are_06_times_the_head_box_diagonal(mpii_root, h5_dataset, tmp_path):
    mat = scipy.io.loadmat(mpii_root / "gt_valid_detections_our_format.mat")
    boxes = mat["headboxes_src"][:, :, :5]
    expected = 0.6 * np.linalg.norm(boxes[1] - boxes[0], axis=0)
    np.testing.assert_allclose(h5_dataset.head_sizes, expected, rtol=1e-6)
    assert h5_dataset.head_size(0) == pytest.approx(expected[0], rel=1e-6)
    # the JSON layout has no head boxes: refused up front on the val split (PCKh would be NaN in every
    # cell; the ground truth beside it has 2958 persons, not these 5), an error at use on the train split
    with pytest.raises(
        DatasetError, match=r"mmpose_val_first5\.json: the json layout has no head boxes.*gt_valid\.mat"
    ):
        MPIIDataset(mpii_root, "val", annotation_file=mpii_root / "mmpose_val_first5.json", bad_samples="skip")
    js = MPIIDataset(mpii_root, "train", annotation_file=mpii_root / "mmpose_val_first5.json", bad_samples="skip")
    with pytest.raises(DatasetError, match="no head size.*gt_file"):
        js.head_size(0)
    small = {k: mat[k][..., :5] for k in ("pos_gt_src", "jnt_missing", "headboxes_src")}
    scipy.io.savemat(tmp_path / "gt_valid.mat", small)
    js = MPIIDataset(
        mpii_root,
        "val",
        annotation_file=mpii_root / "mmpose_val_first5.json",
        gt_file=tmp_path / "gt_valid.mat",
        bad_samples="skip",
    )
    np.testing.assert_allclose(js.head_sizes, expected, rtol=1e-12)
    shuffled = {k: v[..., [1, 0, 2, 3, 4]] for k, v in small.items()}  # other persons in the same count
    scipy.io.savemat(tmp_path / "wrong.mat", shuffled)
    with pytest.raises(DatasetError, match="joints disagree"):
        MPIIDataset(
            mpii_root,
            "val",
            annotation_file=mpii_root / "mmpose_val_first5.json",
            gt_file=tmp_path / "wrong.mat",
            bad_samples="skip",
        )
    with pytest.raises(DatasetError, match="2958 persons but .* has 5"):
        MPIIDataset(
            mpii_root,
            "val",
            annotation_file=mpii_root / "mmpose_val_first5.json",
            gt_file=mpii_root / "gt_valid_detections_our_format.mat",
            bad_samples="skip",
        )


def test_bad_annotation_files_name_the_file_the_field_and_the_fix(mpii_root, tmp_path):
    root = tmp_path / "mpii"
    (root / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no MPII annotation file for split 'val'.*valid.h5"):
        MPIIDataset(root, "val")
    (root / "valid.json").write_text(json.dumps({"image": "a.jpg"}))
    with pytest.raises(DatasetError, match="valid.json: expected a non-empty JSON list"):
        MPIIDataset(root, "val")
    entries = _raw_json_entries(mpii_root / "valid.h5", range(2))
    del entries[1]["scale"]
    (root / "valid.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="valid.json: entry 1 has no field 'scale'"):
        MPIIDataset(root, "val")
    entries = _raw_json_entries(mpii_root / "valid.h5", range(2))
    entries[0]["joints"] = entries[0]["joints"][:14]  # an LSP-sized entry
    (root / "valid.json").write_text(json.dumps(entries))
    with pytest.raises(DatasetError, match="'joints'.*expected \\(16, 2\\)"):
        MPIIDataset(root, "val")
    (root / "valid.json").unlink()
    with h5py.File(mpii_root / "valid.h5", "r") as src, h5py.File(root / "valid.h5", "w") as dst:
        for k in ("imgname", "part", "scale"):
            dst[k] = src[k][:10]
        dst["center"] = src["center"][:9]  # wrong length
    with pytest.raises(DatasetError, match=r"valid.h5: field 'center' has shape \(9, 2\); expected \(10, 2\)"):
        MPIIDataset(root, "val")
    with h5py.File(root / "valid.h5", "w") as dst:
        dst["imgname"] = np.array([b"a.jpg"])
    with pytest.raises(DatasetError, match="valid.h5: field 'center' is missing"):
        MPIIDataset(root, "val")
    # issue 18: valid.h5 without normalize scored every PCKh cell NaN; now refused before any image is read
    with h5py.File(mpii_root / "valid.h5", "r") as src, h5py.File(root / "valid.h5", "w") as dst:
        for k in ("imgname", "part", "scale", "center", "visible"):
            dst[k] = src[k][:10]
    with pytest.raises(
        DatasetError, match=r"valid.h5: field 'normalize' \(the PCKh head size.*missing.*annot/valid.h5"
    ):
        MPIIDataset(root, "val")
    assert (
        len(read_mpii_annotations(root / "valid.h5")) == 10
    )  # the file itself reads; the train split would not need it
    with pytest.raises(ValueError, match="split"):
        MPIIDataset(root, "all")


def test_corrupt_image_names_the_file(mpii_root, tmp_path):
    root = tmp_path / "mpii"
    (root / "images").mkdir(parents=True)
    shutil.copy(mpii_root / "images" / FIVE[0], root / "images" / FIVE[0])
    (root / "images" / FIVE[1]).write_bytes(b"not a jpeg")
    (root / "valid.json").write_text(json.dumps(_raw_json_entries(mpii_root / "valid.h5", range(2))))
    _gt_subset(mpii_root, root / "gt_valid.mat", [0, 1])
    ds = MPIIDataset(root, "val")
    assert ds.load_image(0).shape == (720, 1280, 3)
    with pytest.raises(DatasetError, match=f"{FIVE[1]}.*corrupt"):
        ds[1]
    ds = MPIIDataset(root, "val", bad_samples="skip")  # left out, listed and counted
    assert len(ds) == 1 and ds.num_skipped == 1 and ds.skipped == [(str(root / "images" / FIVE[1]), "corrupt")]


def test_flip_permutation_is_mpii_left_right():
    names = MPII.names
    for j, k in enumerate(MPII.flip_permutation):
        assert names[k] == names[j].replace("left", "TMP").replace("right", "left").replace("TMP", "right")
