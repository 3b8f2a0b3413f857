"""Missing and corrupt images: a clear error naming the file and the fix, or with
``bad_samples="skip"`` / ``--skip-bad-samples`` a skip that is counted and reported."""

import dataclasses

import cv2
import numpy as np
import pytest
import scipy.io
import torch
from typer.testing import CliRunner

from hgbench.accuracy.evaluate import evaluate_pck
from hgbench.cli import app
from hgbench.config import get_variant, load_protocol
from hgbench.data import DatasetError, make_dataset
from hgbench.data.base import read_image
from hgbench.models import create_model


def _jpeg(path, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (90, 80, 3), dtype=np.uint8), (5, 5), 0)
    assert cv2.imwrite(str(path), img)
    return path


def _lsp_folder(root):
    """Original-LSP layout (3, 14, N): four validation images im0010..im0040, of which
    im0020 is a dangling link (missing file) and im0030 a truncated JPEG."""
    rng = np.random.default_rng(0)
    joints = np.zeros((3, 14, 40))
    joints[:2] = rng.uniform(15, 65, (2, 14, 40))
    joints[2, 7] = 1.0  # LSP's third row: right elbow occluded everywhere
    scipy.io.savemat(root / "joints.mat", {"joints": joints})
    images = root / "images"
    images.mkdir()
    for n in (10, 40):
        _jpeg(images / f"im{n:04d}.jpg", n)
    (images / "im0020.jpg").symlink_to(root / "nowhere" / "im0020.jpg")
    whole = _jpeg(root / "whole.jpg").read_bytes()
    (images / "im0030.jpg").write_bytes(whole[: len(whole) // 2])
    return root


def test_read_image_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.jpg: image missing.*restore.*--skip-bad-samples"):
        read_image(tmp_path / "nope.jpg")
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"junk\.jpg: cannot be decoded as an image: corrupt image"):
        read_image(tmp_path / "junk.jpg")
    (tmp_path / "folder.jpg").mkdir()
    with pytest.raises(DatasetError, match=r"folder\.jpg: is a folder, not an image file"):
        read_image(tmp_path / "folder.jpg")
    png = cv2.imencode(".png", np.full((9, 8, 3), 200, np.uint8))[1].tobytes()
    (tmp_path / "png.jpg").write_bytes(png)  # a PNG under a JPEG name is read as the PNG it is
    assert read_image(tmp_path / "png.jpg").shape == (9, 8, 3)
    whole = _jpeg(tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert cv2.imread(str(tmp_path / "cut.jpg")) is not None  # OpenCV alone decodes it, grey-filled
    with pytest.raises(DatasetError, match=r"cut\.jpg.*truncated"):
        read_image(tmp_path / "cut.jpg")
    assert read_image(tmp_path / "whole.jpg").shape == (90, 80, 3)


def test_bad_images_stop_the_evaluation_by_default(tmp_path):
    ds = make_dataset("lsp", _lsp_folder(tmp_path), "val", input_size=64, output_size=16)
    assert len(ds) == 4 and ds.skipped == []
    with pytest.raises(DatasetError, match=r"im0020\.jpg: image missing"):
        ds[1]
    with pytest.raises(DatasetError, match=r"im0030\.jpg: truncated JPEG"):
        ds[2]
    model = create_model(get_variant("hg1"), 14, input_size=64)
    with pytest.raises(DatasetError, match=r"im0020\.jpg"):
        evaluate_pck(model, ds, batch_size=4)


def test_skip_leaves_bad_images_out_counts_and_reports_them(tmp_path):
    ds = make_dataset("lsp", _lsp_folder(tmp_path), "val", input_size=64, output_size=16, bad_samples="skip")
    assert [ds.annotation(i).image_id for i in range(len(ds))] == ["im0010.jpg", "im0040.jpg"]
    assert [(p.rsplit("/", 1)[1], why) for p, why in ds.skipped] == [
        ("im0020.jpg", "missing"),
        ("im0030.jpg", "corrupt"),
    ]
    torch.manual_seed(0)
    result = evaluate_pck(create_model(get_variant("hg1"), 14, input_size=64), ds, batch_size=4)
    assert result.num_skipped == 2 and result.num_persons == 2
    assert sum(result.counts.values()) == 2 * 14
    # LSP has an occlusion flag: the split is reported, right elbow all occluded
    assert result.counts_occluded["right_elbow"] == 2 and result.counts_visible["right_elbow"] == 0
    assert sum(result.counts_occluded.values()) == 2
    assert "im0020.jpg" in str(dataclasses.asdict(result)["skipped"])


def test_bad_samples_must_be_error_or_skip(tmp_path):
    with pytest.raises(ValueError, match="bad_samples"):
        make_dataset("synthetic", None, "val", bad_samples="ignore")


def _checkpoint(path):
    spec, protocol = get_variant("hg1"), load_protocol("smoke")
    model = create_model(spec, 14, input_size=protocol.input_size)
    torch.save(
        {
            "variant": spec.name,
            "spec": dataclasses.asdict(spec),
            "protocol": dataclasses.asdict(protocol),
            "dataset": "lsp",
            "num_joints": 14,
            "model_state": model.state_dict(),
        },
        path,
    )
    return path


def test_cli_evaluate_reports_skips_or_fails_naming_the_file(tmp_path):
    (tmp_path / "lsp").mkdir()
    root = _lsp_folder(tmp_path / "lsp")
    ckpt = _checkpoint(tmp_path / "checkpoint.pt")
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", str(ckpt), "--data-root", str(root)])
    out = r.output.replace("\n", "")  # rich wraps long lines
    assert r.exit_code == 2 and "im0020.jpg: image missing" in out and "--skip-bad-samples" in out
    r = runner.invoke(app, ["evaluate", str(ckpt), "--data-root", str(root), "--skip-bad-samples", "--no-flip"])
    out = r.output.replace("\n", "")
    assert r.exit_code == 0, r.output
    assert "skipped 2" in out and "im0030.jpg (corrupt)" in out and "no flip test" in out
    assert "occluded" in out  # LSP's occlusion split
    assert (tmp_path / "eval-lsp-val-pck-t0.2-noflip.json").is_file()


def test_protocol_rejects_a_non_positive_occluded_sigma(tmp_path):
    from hgbench.config import ConfigError

    path = tmp_path / "p.yaml"
    path.write_text("heatmap_sigma_occluded: 0\ninput_size: 64\noutput_size: 16\n")
    with pytest.raises(ConfigError, match=r"p\.yaml.*heatmap_sigma_occluded.*> 0"):
        load_protocol(path)
    path.write_text("heatmap_sigma_occluded: 0.5\nflip_test: false\ninput_size: 64\noutput_size: 16\n")
    p = load_protocol(path)
    assert p.heatmap_sigma_occluded == 0.5 and p.flip_test is False


def test_keep_readable_counts_samples_and_decodes_each_file_once(tmp_path, monkeypatch):
    from hgbench.data import base

    good = _jpeg(tmp_path / "good.jpg")
    items = [
        ("a", good),
        ("b", tmp_path / "gone.jpg"),
        ("c", tmp_path / "gone.jpg"),
        ("d", good),
    ]  # two persons per image
    calls = []
    real = base.read_image
    monkeypatch.setattr(base, "read_image", lambda p: calls.append(p) or real(p))

    class _Persons(base.PoseDataset):
        keypoints = None

    ds = _Persons(bad_samples="skip")
    kept = ds.keep_readable(items, lambda it: it[1])
    assert [k for k, _ in kept] == ["a", "d"]
    assert ds.skipped == [(str(tmp_path / "gone.jpg"), "missing")] * 2
    assert len(calls) == 2  # good.jpg and gone.jpg, once each
    assert _Persons(bad_samples="error").keep_readable(items, lambda it: it[1]) == items


def test_train_stops_on_a_bad_image_naming_it_or_skips_it_with_skip_bad_samples(tmp_path):
    import json

    (tmp_path / "lsp").mkdir()
    root = _lsp_folder(tmp_path / "lsp")
    for n in range(1, 41):
        if n % 10:  # the training split: good images; the bad ones are im0020 and im0030 of the validation split
            _jpeg(root / "images" / f"im{n:04d}.jpg", n)
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text(
        "epochs: 1\nsteps_per_epoch: 1\nbatch_size: 2\ninput_size: 64\noutput_size: 16\nval_max_samples: 4\n"
    )
    args = [
        "train",
        "hg1",
        "--protocol",
        str(protocol),
        "--dataset",
        "lsp",
        "--data-root",
        str(root),
        "--results",
        str(tmp_path / "r"),
    ]
    r = CliRunner().invoke(app, args)
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "im0020.jpg: image missing" in out and "--skip-bad-samples" in out
    r = CliRunner().invoke(app, [*args, "--skip-bad-samples"])
    assert r.exit_code == 0, r.output
    (record,) = (tmp_path / "r").glob("runs/lsp/tiny-*/hg1-*/train.json")
    skipped = json.loads(record.read_text())["split"]["skipped_samples"]
    assert sorted({f.rsplit("/", 1)[-1] for f, _ in skipped}) == ["im0020.jpg", "im0030.jpg"]
