"""COCO person keypoints on the four real images of ../shared/data/coco (skipped where absent):
dataset, crop, encode/decode round trip, OKS AP through pycocotools, seed 003's PCK, bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hgbench.accuracy.coco import (
    OKS_STAT_NAMES,
    coco_results,
    coco_sigmas,
    dataset_oks_ap,
    keypoint_oks,
    oks_ap,
    pck_from_heatmaps,
    pck_heatmap_correct,
    person_scores,
    run_cocoeval,
)
from hgbench.accuracy.decode import decode_heatmaps, heatmap_to_image
from hgbench.data import DatasetError, make_dataset
from hgbench.data.coco import COCODataset, box_to_center_size, clean_box, heatmap_normalizer_px
from hgbench.data.keypoints import COCO
from hgbench.data.transforms import apply_affine, crop_matrix

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("HGBENCH_SHARED_DATA", REPO.parent / "shared" / "data"))  # as tests/conftest.py


@pytest.fixture(scope="module")
def coco_root() -> Path:
    root = SHARED_DATA / "coco"
    if not (root / "person_keypoints_sample.json").is_file():
        pytest.skip(f"real COCO sample not found at {root} (set HGBENCH_SHARED_DATA to the shared data folder)")
    return root


@pytest.fixture(scope="module")
def raw(coco_root) -> dict:
    return json.loads((coco_root / "person_keypoints_sample.json").read_text())


@pytest.fixture(scope="module")
def ds(coco_root) -> COCODataset:
    return COCODataset(coco_root, "val", input_size=256, output_size=64)


def _persons_in_file(raw: dict) -> list[dict]:
    return [a for a in raw["annotations"] if a["category_id"] == 1 and not a["iscrowd"] and a["num_keypoints"] > 0]


def test_keypoint_set_is_coco_order_and_flips_left_with_right():
    assert COCO.num_joints == 17
    for a, b in COCO.flip_pairs:
        assert COCO.names[a].startswith("left_") and COCO.names[b] == "right_" + COCO.names[a][5:]
    assert sorted(j for g in COCO.groups.values() for j in g) == list(range(17))


def test_every_person_with_keypoints_loads_with_its_flags(ds, raw):
    expected = _persons_in_file(raw)
    assert len(ds) == len(expected) == 12  # 14 annotations, 2 with num_keypoints 0
    files = {img["id"]: img["file_name"] for img in raw["images"]}
    assert [p.ann_id for p in ds.persons] == [a["id"] for a in expected]  # file order
    for i, a in enumerate(expected):
        ann = ds.annotation(i)
        kp = np.asarray(a["keypoints"], np.float64).reshape(17, 3)
        assert ann.image_id == files[a["image_id"]]
        np.testing.assert_allclose(ann.joints, kp[:, :2], rtol=1e-6)
        np.testing.assert_array_equal(ann.annotated, kp[:, 2] > 0)
        np.testing.assert_array_equal(ann.visible, kp[:, 2] == 2)
        assert ann.annotated.sum() == a["num_keypoints"]
    assert (
        sum((ds.annotation(i).annotated & ~ds.annotation(i).visible).sum() for i in range(len(ds))) > 0
    )  # v = 1 occurs
    item = ds[1]
    assert item["image"].shape == (3, 256, 256) and item["heatmaps"].shape == (17, 64, 64)
    assert bool(item["has_visibility"]) and (item["visible"].numpy() == ds.annotation(1).visible).all()


def test_crop_follows_box2cs_of_the_common_code(ds):
    # Worked by hand from microsoft/human-pose-estimation.pytorch lib/dataset/coco.py (_box2cs):
    # annotation 442619, bbox [280.79, 44.73, 218.7, 346.68] in a 640x425 image: clean box
    # w = 217.7, h = 345.68; centre (280.79 + 108.85, 44.73 + 172.84); side 1.25 x 345.68.
    by_id = {p.ann_id: i for i, p in enumerate(ds.persons)}
    ann = ds.annotation(by_id[442619])
    np.testing.assert_allclose(ann.center, [389.64, 217.57], atol=1e-9)
    assert ann.size_px == pytest.approx(432.1)
    # annotation 543117, bbox [0.5, 43.74, 90.1, 220.09]: clean w = 89.1, h = 219.09.
    ann = ds.annotation(by_id[543117])
    np.testing.assert_allclose(ann.center, [0.5 + 44.55, 43.74 + 109.545], atol=1e-9)
    assert ann.size_px == pytest.approx(1.25 * 219.09)
    # Clipping to the image (x2 = min(W - 1, ...), y1 = max(0, y)) and the aspect-ratio fix.
    np.testing.assert_allclose(clean_box([600, -10, 100, 50], 640, 480), [600, 0, 39, 49])
    assert clean_box([700, 10, 5, 5], 640, 480) is None
    center, side = box_to_center_size([0, 0, 100, 40], aspect_ratio=0.75)  # 192x256 input of the common code
    np.testing.assert_allclose(center, [50, 20])
    assert side == pytest.approx(1.25 * 100 / 0.75)


def test_crop_contains_every_annotated_keypoint(ds):
    for i in range(len(ds)):
        ann = ds.annotation(i)
        pts = apply_affine(ann.joints, crop_matrix(ann.center, ann.size_px, 0.0, 256))[ann.annotated]
        assert (pts >= 0).all() and (pts <= 255).all(), (i, pts.min(0), pts.max(0))


def test_encode_decode_round_trips_within_a_pixel(ds):
    batch = [ds[i] for i in range(len(ds))]
    heatmaps = torch.stack([b["heatmaps"] for b in batch])
    coords, maxvals = decode_heatmaps(heatmaps)
    back = heatmap_to_image(coords, torch.stack([b["heatmap_to_image"] for b in batch])).numpy()
    for i, b in enumerate(batch):
        ann = b["annotated"].numpy()
        err_hm = np.linalg.norm(back[i] - b["joints"].numpy(), axis=-1)[ann] / (ds.annotation(i).size_px / 64)
        assert err_hm.max() <= 0.36  # quarter-pixel decoding: at most sqrt(2)/4 heatmap px
        assert (maxvals[i].numpy()[ann] > 0.5).all() and (maxvals[i].numpy()[~ann] == 0).all()


def test_ground_truth_scores_oks_ap_one(ds):
    coords = np.stack([ds.annotation(i).joints for i in range(len(ds))])
    stats = dataset_oks_ap(ds, coords)
    assert list(stats) == list(OKS_STAT_NAMES)
    assert all(v == pytest.approx(1.0) for v in stats.values()), stats  # APm and APl both have persons here


def test_known_perturbation_gives_the_closed_form_oks(ds, raw):
    # computeOks (pycocotools cocoeval.py): OKS = mean over v > 0 of exp(-d^2 / (2 s^2 k^2)),
    # s^2 = area, k = 2 sigma. Move every joint by d_i = k_i s sqrt(2 c): each term is exp(-c).
    target = 0.77
    i = next(i for i, p in enumerate(ds.persons) if p.ann_id == 442619)  # alone in image 785
    p = ds.persons[i]
    k, s = 2 * coco_sigmas(), math.sqrt(p.area)
    d = k * s * math.sqrt(2 * -math.log(target))
    angle = np.linspace(0, 2 * np.pi, 17, endpoint=False)
    pred = p.keypoints[:, :2] + d[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    assert keypoint_oks(pred, p.keypoints, p.area) == pytest.approx(target, abs=1e-9)
    ev = run_cocoeval(ds.coco, coco_results([p.image_id], pred[None]), image_ids=[p.image_id])
    assert ev.ious[(p.image_id, 1)][0, 0] == pytest.approx(target, abs=1e-9)
    # One person, one prediction: matched at the OKS thresholds 0.50..0.75, not at 0.80..0.95.
    stats = {n: v for n, v in zip(OKS_STAT_NAMES, ev.stats, strict=True)}
    assert (
        stats["AP"] == pytest.approx(0.6)
        and stats["AP50"] == pytest.approx(1.0)
        and stats["AP75"] == pytest.approx(1.0)
    )
    assert stats["AR"] == pytest.approx(0.6) and stats["APm"] == -1  # no medium person in this image


def test_random_perturbation_matches_pycocotools_and_skips_unlabelled(ds):
    # Image 40083: two persons with v = 0 joints, and a third annotation without keypoints (ignored).
    rng = np.random.default_rng(0)
    idx = [i for i, p in enumerate(ds.persons) if p.image_id == 40083]
    assert len(idx) == 2 and all((ds.persons[i].keypoints[:, 2] == 0).any() for i in idx)
    preds = [ds.persons[i].keypoints[:, :2] + rng.normal(0, 4, (17, 2)) for i in idx]
    for i, pred in zip(idx, preds, strict=True):
        pred[ds.persons[i].keypoints[:, 2] == 0] = 1e4  # unlabelled joints must not count
    results = coco_results([40083, 40083], np.stack(preds), maxvals=np.array([[0.9] * 17, [0.8] * 17]))
    ev = run_cocoeval(ds.coco, results, image_ids=[40083])
    ious = ev.ious[(40083, 1)]  # rows: results by descending score; columns: ground truths in _gts order
    cols = [g["id"] for g in ev._gts[(40083, 1)]]
    for row, (i, pred) in enumerate(zip(idx, preds, strict=True)):
        p = ds.persons[i]
        expected = keypoint_oks(pred, p.keypoints, p.area)
        assert 0.1 < expected < 0.99
        assert ious[row, cols.index(p.ann_id)] == pytest.approx(expected, rel=1e-12)


def test_person_score_is_the_common_codes_rescoring():
    maxvals = np.array([[0.1] * 15 + [0.6, 1.0], [0.1] * 17, [0.2] * 16 + [0.3]])
    np.testing.assert_allclose(person_scores(maxvals), [0.8, 0.0, 0.3])  # > 0.2 strictly
    np.testing.assert_allclose(person_scores(maxvals, box_scores=np.array([0.5, 1, 2])), [0.4, 0.0, 0.6])
    res = coco_results([5, 6, 7], np.zeros((3, 17, 2)), maxvals)
    assert [r["score"] for r in res] == pytest.approx([0.8, 0.0, 0.3])
    assert len(res[0]["keypoints"]) == 51 and res[0]["keypoints"][2::3] == pytest.approx(list(maxvals[0]))
    assert res[0]["category_id"] == 1 and type(res[0]["image_id"]) is int


def test_seed_pck_algorithm_on_heatmaps():
    # Seed 003, Algorithm 1 and Sec. 5.1: c = 64 / 10 = 6.4, r = 0.5, correct when dist / c < r.
    gt = torch.zeros(1, 6, 64, 64)
    gt[0, :, 30, 30] = 1.0
    pred = torch.zeros(1, 6, 64, 64)
    for j, (dx, dy) in enumerate([(3, 0), (3, 1), (1, -3), (0, 4), (3, 2), (0, 0)]):
        pred[0, j, 30 + dy, 30 + dx] = 1.0
    annotated = np.array([[True, True, True, True, True, False]])
    correct = pck_from_heatmaps(pred, gt, annotated)
    np.testing.assert_array_equal(correct[0, :5], [1, 1, 1, 0, 0])  # 3, sqrt(10) < 3.2 < 4, sqrt(13)
    assert np.isnan(correct[0, 5])
    # At 32x32, c = 3.2 and r c = 1.6: sqrt(2) passes, 2 does not.
    gt32, pred32 = torch.zeros(1, 2, 32, 32), torch.zeros(1, 2, 32, 32)
    gt32[0, :, 10, 10] = 1
    pred32[0, 0, 11, 11] = pred32[0, 1, 10, 12] = 1
    np.testing.assert_array_equal(pck_from_heatmaps(pred32, gt32, np.ones((1, 2), bool))[0], [1, 0])


def test_seed_pck_normaliser_maps_heatmap_tenths_into_image_pixels(ds):
    # The dataset's normaliser is 6.4 heatmap pixels mapped through that crop's heatmap-to-image affine.
    batch = [ds[i] for i in range(len(ds))]
    for i, b in enumerate(batch):
        m = b["heatmap_to_image"][None]
        ends = heatmap_to_image(torch.tensor([[[10.0, 20.0], [16.4, 20.0]]], dtype=torch.float64), m)[0].numpy()
        assert float(b["normalizer"]) == pytest.approx(np.linalg.norm(ends[1] - ends[0]), rel=1e-9)
        assert float(b["normalizer"]) == pytest.approx(heatmap_normalizer_px(ds.annotation(i).size_px, 64))
    # Same correctness in heatmap pixels (c = 6.4) and image pixels (dataset normaliser).
    rng = np.random.default_rng(1)
    gt_hm = rng.uniform(8, 56, (len(batch), 17, 2))
    radius = rng.uniform(2.2, 4.2, (len(batch), 17))
    radius[np.abs(radius - 3.2) < 1e-3] = 3.0
    angle = rng.uniform(0, 2 * np.pi, radius.shape)
    pred_hm = gt_hm + radius[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    mats = torch.stack([b["heatmap_to_image"] for b in batch])
    gt_img = heatmap_to_image(torch.from_numpy(gt_hm), mats).numpy()
    pred_img = heatmap_to_image(torch.from_numpy(pred_hm), mats).numpy()
    annotated = np.stack([b["annotated"].numpy() for b in batch])
    in_hm = pck_heatmap_correct(pred_hm, gt_hm, annotated, np.full(len(batch), 6.4))
    in_img = pck_heatmap_correct(pred_img, gt_img, annotated, np.array([float(b["normalizer"]) for b in batch]))
    np.testing.assert_array_equal(in_hm, in_img)
    assert np.nanmean(in_hm) == pytest.approx(np.mean(radius[annotated] < 3.2))
    assert 0.2 < np.nanmean(in_hm) < 0.8


def _write_sample(tmp_path: Path, coco_root: Path, data: dict, images: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "person_keypoints_sample.json").write_text(json.dumps(data))
    if images:
        (tmp_path / "images").mkdir()
        for img in data.get("images", []):
            (tmp_path / "images" / img["file_name"]).symlink_to(coco_root / "images" / img["file_name"])
    return tmp_path


def test_wrong_layout_names_the_file_field_and_fix(tmp_path, coco_root, raw):
    no_ann = {k: v for k, v in raw.items() if k != "annotations"}
    root = _write_sample(tmp_path / "a", coco_root, no_ann)
    with pytest.raises(
        DatasetError, match=r"person_keypoints_sample\.json: field 'annotations' is missing.*person_keypoints"
    ):
        COCODataset(root)

    short = json.loads(json.dumps(raw))
    short["annotations"][3]["keypoints"] = short["annotations"][3]["keypoints"][:48]
    root = _write_sample(tmp_path / "b", coco_root, short)
    with pytest.raises(
        DatasetError, match=r"person_keypoints_sample\.json: annotations\[3\] .*'keypoints' has 48 values; expected 51"
    ):
        make_dataset("coco", root, "val")

    flags = json.loads(json.dumps(raw))
    flags["annotations"][0]["keypoints"][2] = 3
    with pytest.raises(DatasetError, match=r"visibility flags.*expected 0 \(not labelled\)"):
        COCODataset(_write_sample(tmp_path / "c", coco_root, flags))

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "person_keypoints_val2017.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"person_keypoints_val2017\.json: not valid JSON"):
        COCODataset(tmp_path / "d")

    (tmp_path / "e").mkdir()
    with pytest.raises(DatasetError, match="no COCO keypoints file found"):
        COCODataset(tmp_path / "e")
    with pytest.raises(ValueError, match="needs --data-root"):
        make_dataset("coco", None, "val")


def test_missing_image_names_the_file_or_is_skipped_and_counted(tmp_path, coco_root, raw):
    root = _write_sample(tmp_path, coco_root, raw)
    (root / "images" / "000000040083.jpg").unlink()
    ds = COCODataset(root)
    i = next(i for i, p in enumerate(ds.persons) if p.file_name == "000000040083.jpg")
    with pytest.raises(DatasetError, match=r"000000040083\.jpg: image missing"):
        ds[i]
    data = (root / "images" / "000000197388.jpg").read_bytes()
    (root / "images" / "000000197388.jpg").unlink()
    (root / "images" / "000000197388.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    skipping = COCODataset(root, bad_samples="skip")
    # one entry per skipped person (PoseDataset.skipped), naming its unreadable file
    names = [Path(f).name for f, _ in skipping.skipped]
    assert sorted(set(names)) == ["000000040083.jpg", "000000197388.jpg"]
    assert names.count("000000040083.jpg") == 2 and names.count("000000197388.jpg") == 5  # persons per image
    assert len(skipping) == len(ds) - 2 - 5
    # Persons of skipped images are not counted as missed: the ground truth still scores 1.
    coords = np.stack([skipping.annotation(i).joints for i in range(len(skipping))])
    assert dataset_oks_ap(skipping, coords)["AP"] == pytest.approx(1.0)


def test_image_folder_layouts(tmp_path, coco_root, raw):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text(json.dumps(raw))
    (tmp_path / "images" / "val2017").mkdir(parents=True)
    for img in raw["images"]:
        (tmp_path / "images" / "val2017" / img["file_name"]).symlink_to(coco_root / "images" / img["file_name"])
    ds = COCODataset(tmp_path, "val")
    assert ds.image_dir == tmp_path / "images" / "val2017" and ds[0]["image"].shape == (3, 256, 256)
    with pytest.raises(DatasetError, match="person_keypoints_train2017.json|no COCO keypoints file"):
        COCODataset(tmp_path, "train")
    shutil.move(tmp_path / "images" / "val2017", tmp_path / "val2017")
    assert COCODataset(tmp_path, "val").image_dir == tmp_path / "val2017"


def test_results_for_unknown_images_or_none_are_refused(ds):
    with pytest.raises(ValueError, match="empty"):
        oks_ap(ds.coco, [])
    with pytest.raises(ValueError, match="not in the ground truth"):
        oks_ap(ds.coco, coco_results([123], np.zeros((1, 17, 2))))
