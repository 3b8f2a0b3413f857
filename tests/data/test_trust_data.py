"""Trust in a shared results folder, the data side (issue 26): a run's identity covers the data
it read, eval records are keyed by the data they scored and go stale when the run is retrained,
``data check`` opens every image, annotations are range-checked against their image, a trickling
download ends, an empty protocols folder says so.

The LSPET folders are small views (symbolic links) of the real subset in ``../shared/data/lspet``,
read in place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.config import get_variant, load_protocol
from tests.conftest import tiny_protocol_yaml

pytestmark = pytest.mark.usefixtures("one_thread")
runner = CliRunner()


def _view(lspet_root: Path, folder: Path, n: int) -> Path:
    """An LSPET folder holding the first ``n`` images of the shared subset (links) and its
    ``joints.mat``."""
    (folder / "images").mkdir(parents=True)
    (folder / "joints.mat").symlink_to(lspet_root / "joints.mat")
    for name in sorted(os.listdir(lspet_root / "images"))[:n]:
        (folder / "images" / name).symlink_to(lspet_root / "images" / name)
    return folder


@pytest.fixture
def tiny(tmp_path):
    """hg1 under a protocol of one step of two 64 px samples (seconds a run)."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_protocol_yaml(epochs=1, steps_per_epoch=1, batch_size=2, val_max_samples=2))
    return get_variant("hg1"), load_protocol(path)


# --------------------------------------------------------------------------- 1. run identity


def test_fingerprint_covers_annotations_image_names_and_sizes(lspet_root, tmp_path):
    from hgbench.data.fingerprint import training_data

    a = training_data("lspet", _view(lspet_root, tmp_path / "a", 44))
    assert a == training_data("lspet", tmp_path / "a")  # stable
    assert sum(a.images.values()) == 44 and a.folder == str((tmp_path / "a").resolve())
    assert training_data("lspet", _view(lspet_root, tmp_path / "b", 120)).digest != a.digest
    c = _view(lspet_root, tmp_path / "c", 44)  # the same data in another folder: the same fingerprint
    assert training_data("lspet", c).digest == a.digest
    first = sorted((c / "images").iterdir())[0]
    first.unlink()
    first.write_bytes(b"\xff\xd8 not the same image")  # same name, another size
    assert training_data("lspet", c).digest != a.digest
    synthetic = training_data("synthetic", None)
    assert synthetic.folder is None and synthetic.images == {"train": 2000, "val": 200}
    assert synthetic.digest == training_data("synthetic", None).digest


def test_a_complete_run_on_other_data_is_not_skipped(lspet_root, tmp_path, tiny):
    from hgbench.train import train_variant
    from hgbench.train.setup import DataMismatchError

    spec, protocol = tiny
    small, full = _view(lspet_root, tmp_path / "small", 44), _view(lspet_root, tmp_path / "full", 120)
    results = tmp_path / "r"
    first = train_variant(spec, protocol, "lspet", small, results, device="cpu")
    assert first["data_fingerprint"] and first["data_images"] == {"train": 40, "val": 4}
    assert train_variant(spec, protocol, "lspet", small, results, device="cpu")["skipped"]  # same data: reused
    with pytest.raises(DataMismatchError) as err:
        train_variant(spec, protocol, "lspet", full, results, device="cpu")
    msg = str(err.value)
    assert str(small.resolve()) in msg and str(full.resolve()) in msg and "--force" in msg and "--results" in msg
    assert "40 train + 4 val" in msg and "108 train + 12 val" in msg
    again = train_variant(spec, protocol, "lspet", full, results, device="cpu", force=True)
    assert not again.get("skipped") and again["data_images"] == {"train": 108, "val": 12}


def test_cli_train_on_other_data_exits_2_naming_both_folders(lspet_root, tmp_path, tiny):
    spec, protocol = tiny
    small, full = _view(lspet_root, tmp_path / "small", 44), _view(lspet_root, tmp_path / "full", 120)
    args = ["train", "hg1", "--protocol", str(tmp_path / "tiny.yaml"), "--dataset", "lspet", "--device", "cpu"]
    args += ["--results", str(tmp_path / "r")]
    assert runner.invoke(app, [*args, "--data-root", str(small)]).exit_code == 0
    r = runner.invoke(app, [*args, "--data-root", str(full)])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "complete, skipped" not in out and "--force" in out, out


def test_a_checkpoint_of_other_data_is_not_resumed(lspet_root, tmp_path, tiny):
    from hgbench.train import train_variant
    from hgbench.train.setup import DataMismatchError

    spec, protocol = tiny
    small, full = _view(lspet_root, tmp_path / "small", 44), _view(lspet_root, tmp_path / "full", 120)
    record = train_variant(spec, protocol, "lspet", small, tmp_path / "r", device="cpu")
    Path(record.path).unlink()  # the checkpoint stays: an interrupted run
    with pytest.raises(DataMismatchError, match="the checkpoint there was trained on"):
        train_variant(spec, protocol, "lspet", full, tmp_path / "r", device="cpu")


def test_slurm_submission_refuses_a_complete_run_on_other_data(lspet_root, tmp_path, tiny):
    from hgbench.data.fingerprint import training_data
    from hgbench.train import train_variant
    from hgbench.train.launch import _slurm_todo
    from hgbench.train.setup import DataMismatchError

    spec, protocol = tiny
    small, full = _view(lspet_root, tmp_path / "small", 44), _view(lspet_root, tmp_path / "full", 120)
    folder = Path(train_variant(spec, protocol, "lspet", small, tmp_path / "r", device="cpu").path).parent
    todo, skipped = _slurm_todo([spec], {spec.name: folder}, False, training_data("lspet", small))
    assert not todo and [s.reason for s in skipped] == ["complete run found (--force retrains)"]
    with pytest.raises(DataMismatchError, match="--force"):
        _slurm_todo([spec], {spec.name: folder}, False, training_data("lspet", full))
    assert _slurm_todo([spec], {spec.name: folder}, True, training_data("lspet", full))[0] == [spec]


def test_old_records_without_a_fingerprint_are_still_reused(tmp_path, tiny):
    from hgbench.train import train_variant

    spec, protocol = tiny
    record = train_variant(spec, protocol, "synthetic", None, tmp_path / "r", device="cpu")
    body = json.loads(Path(record.path).read_text())
    assert body["data_fingerprint"] and body["data_folder"] is None
    for field in ("data_fingerprint", "data_folder", "data_images"):
        del body[field]  # as written before the field
    Path(record.path).write_text(json.dumps(body))
    assert train_variant(spec, protocol, "synthetic", None, tmp_path / "r", device="cpu")["skipped"]


def test_committed_reference_records_still_read():
    from hgbench.records import scan

    folders = sorted(Path("benchmarks/reference").glob("*/records"))
    assert folders
    found = scan(folders)
    assert found.records and not [s for s in found.skipped if "malformed" in s[1]]


# --------------------------------------------------------------------------- 2. eval records


def test_evaluation_on_other_data_is_another_record_and_a_retrained_run_makes_it_stale(lspet_root, tmp_path, tiny):
    from hgbench.analysis.rows import read_store
    from hgbench.train import train_variant
    from hgbench.train.evaluation import evaluate_checkpoint

    spec, protocol = tiny
    small, full = _view(lspet_root, tmp_path / "small", 44), _view(lspet_root, tmp_path / "full", 120)
    results = tmp_path / "r"
    run = train_variant(spec, protocol, "lspet", small, results, device="cpu")
    ckpt = Path(run["checkpoint"])
    on_small = evaluate_checkpoint(ckpt, data_root=small, flip_test=False).record
    on_full = evaluate_checkpoint(ckpt, data_root=full, flip_test=False).record
    assert on_small.path != on_full.path and Path(on_small.path).is_file() and Path(on_full.path).is_file()
    assert Path(on_small.path).name == "eval-lspet-val-pck-t0.2-noflip.json"  # the first data keeps the plain name
    assert on_full["data_fingerprint"] != on_small["data_fingerprint"]
    assert on_full["data_images"] == {"val": 12} and on_small["checkpoint_sha256"] == run["checkpoint_sha256"]
    again = evaluate_checkpoint(ckpt, data_root=small, flip_test=False).record  # same data: replaces its own
    assert again.path == on_small.path
    store = read_store([results])
    assert sorted(a["eval_persons"] for a in store.accuracy) == [4, 12]
    assert not [s for s in store.skipped if "superseded" in s[1]]

    train_variant(spec, protocol, "lspet", small, results, device="cpu", force=True)
    store = read_store([results])
    stale = {Path(p).name: why for p, why in store.skipped if "stale" in why}
    assert set(stale) == {Path(on_small.path).name, Path(on_full.path).name}
    assert all("re-run `hgbench evaluate`" in why for why in stale.values())
    assert [a["accuracy_record"].endswith("train.json") for a in store.accuracy] == [True]


def test_an_old_eval_record_without_a_checkpoint_digest_is_stale_when_older_than_its_run():
    from hgbench.analysis.rows import stale_evaluation

    run = {"_checkpoint_sha256": None, "_created": "2026-02-01T00:00:00+00:00"}
    old = {"_checkpoint_sha256": None, "_created": "2026-01-01T00:00:00+00:00"}
    assert "before the run completed" in stale_evaluation(old, run)
    assert stale_evaluation({**old, "_created": "2026-03-01T00:00:00+00:00"}, run) is None


# --------------------------------------------------------------------------- 3. data check


def _complete_lspet(lspet_root: Path, folder: Path, n: int = 4) -> Path:
    """A complete LSPET layout of ``n`` images (``joints.mat`` of n columns, real JPEGs linked)."""
    import numpy as np
    import scipy.io

    (folder / "images").mkdir(parents=True)
    scipy.io.savemat(folder / "joints.mat", {"joints": np.ones((14, 3, n))})
    real = sorted((lspet_root / "images").iterdir())
    for i in range(1, n + 1):
        (folder / "images" / f"im{i:05d}.jpg").symlink_to(real[i])
    return folder


def test_data_check_opens_every_image_and_fails_on_zero_byte_or_non_image_files(lspet_root, tmp_path):
    from hgbench.data.download import check

    root = _complete_lspet(lspet_root, tmp_path / "lspet")
    (rep,) = check(tmp_path, ["lspet"])
    assert rep.complete, rep.rows
    images = root / "images"
    for name, content in (("im00002.jpg", b""), ("im00003.jpg", b"<html>not found</html>")):
        (images / name).unlink()
        (images / name).write_bytes(content)
    (rep,) = check(tmp_path, ["lspet"])
    row = rep.rows[1]
    assert not rep.complete and row.status == "incomplete"
    assert f"2 of 4 images are not readable images (first: {images / 'im00002.jpg'}: zero bytes)" in row.detail
    r = runner.invoke(app, ["data", "check", str(tmp_path), "--dataset", "lspet"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "incomplete: lspet" in out and "im00002.jpg" in out, out


def test_image_problem_tells_zero_bytes_other_files_and_truncated_jpegs(lspet_root, tmp_path):
    from hgbench.data.base import image_problem

    real = sorted((lspet_root / "images").iterdir())[0]
    assert image_problem(real) is None
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"GIF89a....")
    (tmp_path / "cut.jpg").write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    assert image_problem(tmp_path / "empty.jpg") == "zero bytes"
    assert image_problem(tmp_path / "text.jpg").startswith("not a JPEG or PNG file (first bytes 47 49 46 38")
    assert image_problem(tmp_path / "cut.jpg") == "truncated JPEG (no End-Of-Image marker)"
    assert image_problem(tmp_path / "absent.jpg").startswith("unreadable")


# --------------------------------------------------------------------------- 6. protocols folder


def test_an_empty_protocols_folder_says_there_are_none_and_where_it_looked(tmp_path, monkeypatch):
    from hgbench.config import ConfigError

    (tmp_path / "protocols").mkdir()
    monkeypatch.setenv("HGBENCH_VARIANTS_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        load_protocol("smoke")
    msg = str(err.value)
    assert "available: " not in msg and f"no protocol *.yaml in {tmp_path / 'protocols'}" in msg


# --------------------------------------------------------------------------- 4. annotations against their image


def _lspet_with(lspet_root: Path, folder: Path, edit) -> tuple[Path, str]:
    """A view of the shared LSPET subset whose ``joints.mat`` (a copy) went through
    ``edit(joints (14, 3, N), column)``, where ``column`` is that of the first validation image
    present; returns the folder and that image's name."""
    import numpy as np
    import scipy.io

    (folder / "images").mkdir(parents=True)
    names = sorted(os.listdir(lspet_root / "images"))
    for name in names:
        (folder / "images" / name).symlink_to(lspet_root / "images" / name)
    val = next(n for n in names if int(n[2:7]) % 10 == 0)
    joints = np.array(scipy.io.loadmat(lspet_root / "joints.mat")["joints"], np.float64)
    edit(joints, int(val[2:7]) - 1)
    scipy.io.savemat(folder / "joints.mat", {"joints": joints})
    return folder, val


def test_nan_coordinates_are_refused_naming_the_file_and_the_person(lspet_root, tmp_path):
    from hgbench.data import DatasetError, make_dataset

    def nan(joints, col):
        joints[2, :2, col] = float("nan")  # joint 2 (right hip), annotated (flag 1)
        joints[2, 2, col] = 1

    root, image = _lspet_with(lspet_root, tmp_path / "l", nan)
    with pytest.raises(DatasetError) as err:
        make_dataset("lspet", root, "val")
    msg = str(err.value)
    assert str(root / "joints.mat") in msg and image in msg and "right_hip" in msg and "not finite" in msg
    assert "normaliser" not in msg
    from hgbench.data.download import check

    (tmp_path / "lspet").symlink_to(root)  # data check reads it too
    (rep,) = check(tmp_path, ["lspet"])
    assert rep.rows[0].status == "incomplete" and image in rep.rows[0].detail and "not finite" in rep.rows[0].detail
    assert runner.invoke(app, ["data", "check", str(tmp_path), "--dataset", "lspet"]).exit_code == 1


def test_coordinates_far_outside_the_image_are_refused_naming_the_file_and_the_person(lspet_root, tmp_path):
    from hgbench.data import DatasetError, make_dataset

    def far(joints, col):
        joints[0, :2, col] = (5000.0, 100.0)  # right ankle 5000 px right: LSPET images are ~250 px wide
        joints[0, 2, col] = 1

    root, image = _lspet_with(lspet_root, tmp_path / "l", far)
    ds = make_dataset("lspet", root, "val", input_size=64, output_size=16)
    index = next(i for i in range(len(ds)) if ds.annotation(i).image_id == image)
    ds[index - 1 if index else index + 1]  # the other persons load
    with pytest.raises(DatasetError) as err:
        ds[index]
    msg = str(err.value)
    assert str(root / "joints.mat") in msg and f"person {index} (image {image})" in msg
    assert "right_ankle" in msg and "more than 1 image side outside" in msg


def test_annotation_problem_allows_a_little_outside_the_image():
    import numpy as np

    from hgbench.data.base import PoseAnnotation, annotation_problem

    names = [f"j{i}" for i in range(3)]
    joints = np.array([[-50.0, 10.0], [290.0, 250.0], [100.0, 100.0]], np.float32)  # cut by the frame: fine
    ann = PoseAnnotation("x.jpg", joints, np.ones(3, bool), np.array([100.0, 100.0]), 150.0)
    assert annotation_problem(ann, 200, 240, names) is None
    far = PoseAnnotation("x.jpg", joints * [1, 3], np.ones(3, bool), np.array([100.0, 100.0]), 150.0)
    assert "j1" in annotation_problem(far, 200, 240, names)  # y = 750 > 2 x 240
    hidden = PoseAnnotation("x.jpg", joints * [1, 3], np.array([True, False, True]), np.array([100.0, 100.0]), 150.0)
    assert annotation_problem(hidden, 200, 240, names) is None  # a joint not annotated is not scored
    inf = PoseAnnotation("x.jpg", joints, np.ones(3, bool), np.array([np.inf, 1.0]), 150.0)
    assert "crop centre" in annotation_problem(inf, 200, 240, names)


def test_mpii_nan_coordinates_are_refused_naming_the_entry_and_its_image(tmp_path):
    import h5py

    from hgbench.data import DatasetError
    from hgbench.data.mpii import read_mpii_annotations
    from tests.conftest import SHARED_DATA

    src = SHARED_DATA / "mpii" / "valid.h5"
    if not src.is_file():
        pytest.skip(f"real MPII sample not found at {src}")
    with h5py.File(src, "r") as f, h5py.File(tmp_path / "valid.h5", "w") as g:
        for k in f:
            g[k] = f[k][()]
        part = g["part"][()]
        part[3, 5] = float("nan")
        g["part"][...] = part
        name = f["imgname"][3].decode()
    with pytest.raises(DatasetError) as err:
        read_mpii_annotations(tmp_path / "valid.h5")
    msg = str(err.value)
    assert str(tmp_path / "valid.h5") in msg and f"entry 3 (image {name})" in msg and "left_ankle" in msg


# --------------------------------------------------------------------------- 5. a trickling download


class _Trickle:
    """A loopback HTTP server that answers every GET with a 1 MB ``Content-Length`` and then
    one byte every ``every_s`` seconds for at most 10 s (``headers=True``: the status line and
    headers trickle too, a byte at a time); ``requests`` counts the requests, and a fourth gets a
    404 (a client that never gives up fails a test instead of hanging it)."""

    def __init__(self, every_s: float, headers: bool = False) -> None:
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        trickle = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                trickle.requests += 1
                if trickle.requests > 3:  # bounded, so that a client that never gives up fails the test, not hangs it
                    self.send_error(404)
                    return
                deadline = time.monotonic() + 10
                head = b"HTTP/1.0 200 OK\r\nContent-Length: 1000000\r\n\r\n"
                try:
                    if headers:
                        for i in range(len(head)):
                            if trickle.stop.wait(every_s):
                                return
                            self.wfile.write(head[i : i + 1])
                            self.wfile.flush()
                    else:
                        self.wfile.write(head)
                    while not trickle.stop.wait(every_s) and time.monotonic() < deadline:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                except OSError:  # the client hung up: what the test wants
                    return

            def log_message(self, *args):
                pass

        self.requests, self.stop = 0, threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trickle():
    servers = []

    def start(every_s: float, headers: bool = False) -> _Trickle:
        servers.append(_Trickle(every_s, headers))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _one_file(url: str):
    from hgbench.data.download import Archive, DatasetEntry

    return {
        "toy": DatasetEntry("toy", "", "", "", (Archive("big.bin", (f"{url}/big.bin",), "toy", "file", 1_000_000),))
    }


def test_a_trickling_body_ends_after_the_timeout_whatever_trickles_in(trickle, tmp_path, monkeypatch):
    import time

    from hgbench.data.download import NetworkFaultError, download, fetch

    monkeypatch.setattr(fetch, "RETRY_DELAY_S", 0.0)
    srv = trickle(0.1)  # 10 bytes/s: every read returns well within the timeout
    start = time.monotonic()
    with pytest.raises(NetworkFaultError) as err:
        download("toy", tmp_path, catalogue=_one_file(srv.url), timeout=1.0, retries=1)
    elapsed = time.monotonic() - start
    assert 1.8 < elapsed < 6  # (retries + 1) x timeout: the few trickled bytes are no progress
    msg = str(err.value)
    assert f"{srv.url}/big.bin: connection lost, 2 attempts without progress (last: no progress within 1 s" in msg
    assert "the server trickles" in msg and "--timeout" in msg and srv.requests == 2, msg


def test_trickling_headers_end_too(trickle, tmp_path, monkeypatch):
    import time

    from hgbench.data.download import NetworkFaultError, download, fetch

    monkeypatch.setattr(fetch, "RETRY_DELAY_S", 0.0)
    srv = trickle(0.1, headers=True)
    start = time.monotonic()
    with pytest.raises(NetworkFaultError, match=r"no progress within 0\.5 s \(the response headers took longer"):
        download("toy", tmp_path, catalogue=_one_file(srv.url), timeout=0.5, retries=0)
    assert time.monotonic() - start < 4


def test_cli_download_from_a_server_sending_a_byte_every_two_seconds_ends_exit_1(trickle, tmp_path):
    import time

    srv = trickle(2.0)  # the server: one byte every two seconds
    start = time.monotonic()
    r = runner.invoke(
        app,
        ["data", "download", "lspet", "--to", str(tmp_path / "d"), "--base-url", srv.url, "--timeout", "3"]
        + ["--retries", "0"],
    )
    elapsed = time.monotonic() - start
    out = " ".join(r.output.split())
    assert r.exit_code == 1, out
    assert elapsed < 12 and f"{srv.url}/lspet_dataset.zip: connection lost" in out, (elapsed, out)
    assert "no progress within 3 s" in out and "trickles" in out, out
