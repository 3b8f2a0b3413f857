"""`hgbench data download` / `data check` against a loopback HTTP server (no internet).

The server (127.0.0.1, port 0) serves archives the tests build in tmp_path and honours
``Range`` requests (or ignores them, drops the connection once, or stalls: accepts and never
answers, or stops in the middle of the body, on request), and logs every request so that a
test can see that a resume asked for the right range.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

from hgbench.cli import app
from hgbench.data import download as dl
from hgbench.data.download import (
    Archive,
    DatasetEntry,
    DownloadError,
    UnsafeArchiveError,
    check,
    download,
    extract,
    fetch,
    inventory,
)

runner = CliRunner()


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        name = self.path.lstrip("/")
        rng = self.headers.get("Range")
        srv.requests.append((name, rng))
        data = srv.files.get(name)
        if data is None:
            self.send_error(404, "not here")
            return
        stall = srv.stall.get(name)
        if stall == "answer":  # accept the request, never answer
            srv.release.wait(30)
            return
        start = 0
        if rng and not srv.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if stall == "body":  # a third of the body, then silence until the test ends (once)
            del srv.stall[name]
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            srv.sent += len(body) // 3
            srv.release.wait(30)
            return
        if name in srv.drop_once or srv.drop_always:  # send a part, then close: the client sees IncompleteRead
            srv.drop_once.discard(name)
            self.wfile.write(body[: len(body) // 3])
            srv.sent += len(body) // 3
            return
        self.wfile.write(body)
        srv.sent += len(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.ignore_range, srv.drop_once, srv.drop_always, srv.sent = {}, [], False, set(), False, 0
    srv.stall, srv.release = {}, threading.Event()  # name -> "answer" | "body"; release ends the stalls
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _no_retry_wait(monkeypatch):
    monkeypatch.setattr(fetch, "RETRY_DELAY_S", 0.0)


# --------------------------------------------------------------------------- archives


def _payload(seed: int, n: int = 150_000) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def _tar(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def _link(name: str, target: str, kind=tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


ZIP_MEMBERS = {"toy_dataset/joints.mat": _payload(1), "toy_dataset/images/im00001.jpg": _payload(2)}
TAR_MEMBERS = [("images/a.jpg", _payload(3)), ("images/b.jpg", _payload(4))]


def _toy(srv, *, zip_md5: str | None = None, size: bool = True) -> dict[str, DatasetEntry]:
    """A one-dataset catalogue served by ``srv``: a zip (md5, wrapped in one folder), a
    tar.gz (sha256) and a plain file (size only)."""
    z, t, f = _zip(ZIP_MEMBERS), _tar(TAR_MEMBERS), _payload(5, 20_000)
    srv.files.update({"toy.zip": z, "toy.tar.gz": t, "annot.h5": f})
    archives = (
        Archive(
            "toy.zip",
            (f"{srv.url}/toy.zip",),
            "toy",
            "zip",
            len(z) if size else None,
            md5=zip_md5 or hashlib.md5(z).hexdigest(),
            expect="joints.mat",
        ),
        Archive(
            "toy.tar.gz",
            (f"{srv.url}/toy.tar.gz",),
            "toy",
            "tar",
            len(t),
            sha256=hashlib.sha256(t).hexdigest(),
            expect="images",
        ),
        Archive("annot.h5", (f"{srv.url}/annot.h5",), "toy/annot", "file", len(f)),
    )
    return {"toy": DatasetEntry("toy", "toy", "", "", archives)}


def _events():
    seen = []
    return seen, lambda event, info: seen.append((event, info))


# --------------------------------------------------------------------------- download


def test_full_download_verifies_and_extracts_then_skips(server, tmp_path):
    cat = _toy(server)
    seen, on_event = _events()
    results = download("toy", tmp_path, catalogue=cat, on_event=on_event)
    assert [r.status for r in results] == ["downloaded"] * 3
    assert [r.verified for r in results] == ["md5 ok", "sha256 ok", "size ok, checksum not verified (none published)"]
    root = tmp_path / "toy"
    # the zip's single wrapping folder is flattened away, because 'joints.mat' is expected at the top
    assert (root / "joints.mat").read_bytes() == ZIP_MEMBERS["toy_dataset/joints.mat"]
    assert (root / "images/im00001.jpg").read_bytes() == ZIP_MEMBERS["toy_dataset/images/im00001.jpg"]
    assert (root / "images/a.jpg").read_bytes() == TAR_MEMBERS[0][1]  # the tar merges into the same images/
    assert (root / "annot/annot.h5").read_bytes() == server.files["annot.h5"]
    marker = json.loads((root / ".hgbench-extracted-toy.zip.json").read_text())
    assert marker["verified"] == "md5 ok" and marker["members"] == 2 and marker["url"].endswith("/toy.zip")
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))
    assert not list((tmp_path / ".downloads").iterdir())  # archives removed after extraction (no --keep-archives)
    assert not any(p.name.startswith(".hgbench-staging") for p in root.iterdir())
    assert sum(info["n"] for e, info in seen if e == "bytes") == sum(len(v) for v in server.files.values())

    n = len(server.requests)
    again = download("toy", tmp_path, catalogue=cat)
    assert [r.status for r in again] == ["skipped"] * 3 and len(server.requests) == n  # nothing fetched


def test_resumed_download_asks_for_the_rest(server, tmp_path):
    cat = _toy(server)
    data = server.files["toy.zip"]
    half = len(data) // 2
    part = tmp_path / ".downloads" / "toy.zip.part"
    part.parent.mkdir()
    part.write_bytes(data[:half])
    seen, on_event = _events()
    (res,) = download(
        "toy", tmp_path, catalogue={"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[:1])}, on_event=on_event
    )
    assert server.requests == [("toy.zip", f"bytes={half}-")]
    assert server.sent == len(data) - half  # only the missing half crossed the wire
    assert [info["resumed_from"] for e, info in seen if e == "start"] == [half]
    assert (
        res.verified == "md5 ok" and (tmp_path / "toy/joints.mat").read_bytes() == ZIP_MEMBERS["toy_dataset/joints.mat"]
    )


def test_resume_of_a_corrupt_part_restarts_from_scratch(server, tmp_path):
    cat = _toy(server)
    part = tmp_path / ".downloads" / "toy.zip.part"
    part.parent.mkdir()
    half = len(server.files["toy.zip"]) // 2
    part.write_bytes(b"\0" * half)  # wrong bytes: the md5 must catch it
    seen, on_event = _events()
    (res,) = download(
        "toy", tmp_path, catalogue={"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[:1])}, on_event=on_event
    )
    assert res.verified == "md5 ok"
    assert [r for _, r in server.requests] == [f"bytes={half}-", None]  # resumed, failed the md5, fetched whole
    assert any(e == "restart" and "md5" in info["reason"] for e, info in seen)


def test_corrupted_download_is_an_error_and_leaves_no_file(server, tmp_path):
    cat = _toy(server, zip_md5="0" * 32)
    with pytest.raises(DownloadError, match=r"toy\.zip.*fails verification twice.*md5") as err:
        download("toy", tmp_path, catalogue=cat)
    assert server.url in str(err.value)
    assert [n for n, _ in server.requests] == ["toy.zip", "toy.zip"]  # one fresh retry, then the error
    assert not (tmp_path / ".downloads/toy.zip").exists() and not (tmp_path / ".downloads/toy.zip.part").exists()
    assert not (tmp_path / "toy/joints.mat").exists()


def test_existing_file_that_fails_verification_is_replaced(server, tmp_path):
    cat = _toy(server)
    plain = {"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[2:])}
    target = tmp_path / "toy/annot/annot.h5"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    (res,) = download("toy", tmp_path, catalogue=plain)
    assert res.status == "downloaded" and target.read_bytes() == server.files["annot.h5"]


def test_server_that_ignores_range_gets_a_clean_restart(server, tmp_path):
    cat = _toy(server)
    server.ignore_range = True
    data = server.files["toy.tar.gz"]
    part = tmp_path / ".downloads" / "toy.tar.gz.part"
    part.parent.mkdir()
    part.write_bytes(data[: len(data) // 2])
    seen, on_event = _events()
    (res,) = download(
        "toy", tmp_path, catalogue={"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[1:2])}, on_event=on_event
    )
    assert server.requests == [("toy.tar.gz", f"bytes={len(data) // 2}-")]  # asked for a range, got the whole file
    assert res.verified == "sha256 ok"  # not the half prepended to the whole
    assert any(e == "restart" and "ignored the Range" in info["reason"] for e, info in seen)


def test_dropped_connection_resumes_within_the_run(server, tmp_path):
    cat = _toy(server)
    server.drop_once.add("toy.tar.gz")
    data = server.files["toy.tar.gz"]
    (res,) = download("toy", tmp_path, catalogue={"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[1:2])})
    assert res.verified == "sha256 ok"
    assert server.requests == [("toy.tar.gz", None), ("toy.tar.gz", f"bytes={len(data) // 3}-")]


def test_a_server_that_never_completes_ends_in_an_error(server, tmp_path):
    cat = _toy(server)
    server.ignore_range, server.drop_always = True, True  # no resume possible, every response cut short
    one = {"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[1:2])}
    with pytest.raises(DownloadError, match=r"closed the connection at .* is kept and the next run resumes it"):
        download("toy", tmp_path, catalogue=one, retries=2)
    # attempt 1 makes progress (a fresh allowance), then 3 attempts without progress: the third over the limit
    assert len(server.requests) == 4
    assert not (tmp_path / ".downloads/toy.tar.gz").exists() and (tmp_path / ".downloads/toy.tar.gz.part").exists()


def test_kept_archive_is_reused_without_a_request(server, tmp_path):
    cat = _toy(server)
    one = {"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[:1])}
    download("toy", tmp_path, catalogue=one, keep_archives=True)
    assert (tmp_path / ".downloads/toy.zip").read_bytes() == server.files["toy.zip"]
    (tmp_path / "toy/.hgbench-extracted-toy.zip.json").unlink()
    (tmp_path / "toy/joints.mat").unlink()
    (res,) = download("toy", tmp_path, catalogue=one)
    assert res.status == "reused" and res.verified == "md5 ok" and len(server.requests) == 1
    assert (tmp_path / "toy/joints.mat").exists() and not (tmp_path / ".downloads/toy.zip").exists()


def test_dead_mirror_falls_back_and_http_errors_name_the_url(server, tmp_path):
    z = _zip({"joints.mat": b"x"})
    server.files["ok.zip"] = z
    first = Archive(
        "ok.zip", (f"{server.url}/gone/ok.zip", f"{server.url}/ok.zip"), "m", "zip", len(z), expect="joints.mat"
    )
    (res,) = download("m", tmp_path, catalogue={"m": DatasetEntry("m", "", "", "", (first,))})
    assert res.url == f"{server.url}/ok.zip" and (tmp_path / "m/joints.mat").read_bytes() == b"x"

    dead = Archive("none.zip", (f"{server.url}/none.zip",), "n", "zip")
    with pytest.raises(DownloadError, match=rf"none\.zip.*{re.escape(server.url)}/none\.zip: HTTP 404"):
        download("n", tmp_path, catalogue={"n": DatasetEntry("n", "", "", "", (dead,))})


def test_a_server_that_never_answers_gives_up_after_the_timeout_naming_the_url(server, tmp_path):
    cat = _toy(server)
    server.stall["toy.tar.gz"] = "answer"
    one = {"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[1:2])}
    seen, on_event = _events()
    start = time.monotonic()
    with pytest.raises(
        DownloadError, match=rf"{re.escape(server.url)}/toy\.tar\.gz: no answer within 0\.5 s, 3 attempts"
    ) as err:
        download("toy", tmp_path, catalogue=one, timeout=0.5, retries=2, on_event=on_event)
    elapsed = time.monotonic() - start
    assert 1.4 < elapsed < 6  # (retries + 1) x timeout: each attempt waited its 0.5 s, no longer
    assert "\n" not in str(err.value) and "--timeout" in str(err.value)
    assert server.requests == [("toy.tar.gz", None)] * 3
    assert [info["reason"] for e, info in seen if e == "retry"] == [
        f"{server.url}/toy.tar.gz: no answer within 0.5 s; attempt {k} of 3" for k in (2, 3)
    ]
    assert not (tmp_path / ".downloads/toy.tar.gz").exists()


def test_a_stall_in_the_middle_of_the_body_resumes_after_the_timeout(server, tmp_path):
    cat = _toy(server)
    server.stall["toy.tar.gz"] = "body"
    one = {"toy": DatasetEntry("toy", "", "", "", cat["toy"].archives[1:2])}
    seen, on_event = _events()
    (res,) = download("toy", tmp_path, catalogue=one, timeout=0.5, retries=0, on_event=on_event)
    assert res.verified == "sha256 ok"
    assert len(server.requests) == 2  # the stalled attempt, then one that completes
    assert any(e == "retry" and "no answer within 0.5 s" in info["reason"] for e, info in seen)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"retries": -1},
        {"retries": 1.5},
    ],
)
def test_bad_timeout_or_retries_is_refused_before_any_request(server, tmp_path, kwargs):
    cat = _toy(server)
    (name,) = kwargs
    with pytest.raises(ValueError, match=rf"^{name}: {re.escape(repr(kwargs[name]))} is not"):
        download("toy", tmp_path / "data", catalogue=cat, **kwargs)
    assert server.requests == [] and not (tmp_path / "data").exists()


# --------------------------------------------------------------------------- safe extraction


UNSAFE_ZIPS = {"dotdot": "../escape.txt", "absolute": "/tmp/hgbench-abs-escape.txt", "nested": "a/../../escape.txt"}


@pytest.mark.parametrize("bad", list(UNSAFE_ZIPS.values()), ids=list(UNSAFE_ZIPS))
def test_zip_with_a_member_escaping_the_folder_is_refused(tmp_path, bad):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"fine.txt": b"ok", bad: b"pwned"}))
    assert bad in zipfile.ZipFile(archive).namelist()  # the archive really carries the name
    dest = tmp_path / "box" / "dest"
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(bad))):
        extract(archive, dest, kind="zip")
    assert list(dest.iterdir()) == []  # not even the safe member
    assert not (tmp_path / "box/escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/hgbench-abs-escape.txt").exists()


UNSAFE_TARS = {
    "dotdot": [("../escape.txt", b"pwned")],
    "absolute": [("/tmp/hgbench-abs-escape.txt", b"pwned")],
    "symlink-out": [_link("out", "../.."), ("out/escape.txt", b"pwned")],
    "symlink-out-nested": [_link("a/b/out", "../../../escape.txt")],
    "symlink-absolute": [_link("out", "/tmp")],
    "hardlink-out": [_link("hard", "../escape.txt", tarfile.LNKTYPE)],
}


@pytest.mark.parametrize("data_filter", [False, True], ids=["own-checks", "with-data-filter"])
@pytest.mark.parametrize("members", list(UNSAFE_TARS.values()), ids=list(UNSAFE_TARS))
def test_tar_with_a_member_escaping_the_folder_is_refused(tmp_path, monkeypatch, members, data_filter):
    if data_filter and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile data filter (< 3.10.12 / 3.11.4)")
    monkeypatch.setattr(fetch, "_TAR_DATA_FILTER", data_filter)  # without it: our checks alone, as on older Pythons
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_tar([("fine.txt", b"ok"), *members]))
    dest = tmp_path / "box" / "dest"
    with pytest.raises(UnsafeArchiveError, match="refusing"):
        extract(archive, dest, kind="tar")
    assert list(dest.iterdir()) == []  # the safe member went to staging only, which is gone
    assert sorted(p.name for p in (tmp_path / "box").iterdir()) == ["dest"]
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/hgbench-abs-escape.txt").exists()


@pytest.mark.parametrize("data_filter", [False, True], ids=["own-checks", "with-data-filter"])
def test_links_that_stay_inside_are_extracted(tmp_path, monkeypatch, data_filter):
    monkeypatch.setattr(fetch, "_TAR_DATA_FILTER", data_filter and hasattr(tarfile, "data_filter"))
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(
        _tar(
            [
                ("data/x.txt", b"x"),
                _link("data/y.txt", "x.txt"),
                _link("data/sub/w.txt", "../x.txt"),
                _link("z.txt", "data/x.txt", tarfile.LNKTYPE),
            ]
        )
    )
    members, warnings = extract(archive, tmp_path / "d", kind="tar")
    assert members == 4 and warnings == []
    for name in ("data/y.txt", "data/sub/w.txt", "z.txt"):
        assert (tmp_path / "d" / name).read_bytes() == b"x", name


def test_download_of_an_unsafe_archive_is_an_error(server, tmp_path):
    z = _zip({"../escape.txt": b"pwned"})
    server.files["evil.zip"] = z
    a = Archive("evil.zip", (f"{server.url}/evil.zip",), "evil", "zip", len(z), md5=hashlib.md5(z).hexdigest())
    with pytest.raises(UnsafeArchiveError, match=r"evil\.zip.*'\.\./escape\.txt'"):
        download("evil", tmp_path / "data", catalogue={"evil": DatasetEntry("evil", "", "", "", (a,))})
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "data/escape.txt").exists()
    assert not (tmp_path / "data/evil/.hgbench-extracted-evil.zip.json").exists()


# --------------------------------------------------------------------------- check


def _lspet(root: Path, n: int = 3) -> None:
    (root / "images").mkdir(parents=True)
    scipy.io.savemat(root / "joints.mat", {"joints": np.ones((14, 3, n))})
    for i in range(1, n + 1):
        (root / f"images/im{i:05d}.jpg").write_bytes(JPEG)


JPEG = b"\xff\xd8\xff\xe0" + bytes(12) + b"\xff\xd9"  # starts and ends as a JPEG (what data check looks at)


def _complete_tree(d: Path) -> None:
    _lspet(d / "lspet")
    (d / "lsp/images").mkdir(parents=True)
    scipy.io.savemat(d / "lsp/joints.mat", {"joints": np.ones((3, 14, 2))})
    for i in (1, 2):
        (d / f"lsp/images/im{i:04d}.jpg").write_bytes(JPEG)
    (d / "mpii/annot").mkdir(parents=True)
    (d / "mpii/images").mkdir()
    # pose-hg-train's layout; the train file names one image twice (two persons), listed once
    for split, names in (
        ("train", [b"000000001.jpg", b"000000002.jpg", b"000000002.jpg"]),
        ("valid", [b"000000003.jpg"]),
    ):
        n = len(names)
        with h5py.File(d / f"mpii/annot/{split}.h5", "w") as f:
            f["imgname"] = np.array(names, dtype="S13")
            f["center"], f["scale"] = np.full((n, 2), 100.0), np.ones(n)
            f["part"] = np.full((n, 16, 2), 50.0)
        for name in names:
            (d / "mpii/images" / name.decode()).write_bytes(JPEG)
    (d / "coco/annotations").mkdir(parents=True)
    (d / "coco/val2017").mkdir()
    person = {"id": 1, "image_id": 785, "category_id": 1, "iscrowd": 0, "bbox": [10, 10, 50, 100], "area": 5000.0}
    (d / "coco/annotations/person_keypoints_val2017.json").write_text(
        json.dumps(
            {
                "images": [{"id": 785, "file_name": "000000000785.jpg", "width": 640, "height": 425}],
                "annotations": [
                    {**person, "num_keypoints": 17, "keypoints": [20, 20, 2] * 17},
                    {**person, "id": 2, "num_keypoints": 0, "keypoints": [0, 0, 0] * 17},
                ],
                "categories": [{"id": 1, "name": "person"}],
            }
        )
    )
    (d / "coco/val2017/000000000785.jpg").write_bytes(JPEG)


def test_check_complete_and_incomplete(tmp_path):
    _complete_tree(tmp_path)
    reports = {r.dataset: r for r in check(tmp_path)}
    assert all(r.complete and r.present for r in reports.values()), reports
    coco = reports["coco"].rows
    assert [(r.item, r.status) for r in coco] == [
        ("annotations/person_keypoints_val2017.json", "ok"),
        ("annotations/person_keypoints_train2017.json", "optional"),
        ("val2017/", "ok"),
    ]
    assert coco[0].detail == "1 images listed (val)"
    mpii = reports["mpii"].rows
    assert [(r.item, r.status) for r in mpii] == [("annot/train.h5", "ok"), ("annot/valid.h5", "ok"), ("images/", "ok")]
    assert mpii[0].detail == "2 images listed (train)" and mpii[2].detail == "3 images"

    (tmp_path / "lspet/images/im00002.jpg").unlink()
    (tmp_path / "mpii/annot/train.h5").unlink()
    reports = {r.dataset: r for r in check(tmp_path)}
    lspet = reports["lspet"]
    assert not lspet.complete and lspet.rows[1].status == "incomplete" and "2 of 3" in lspet.rows[1].detail
    assert "im00002.jpg" in lspet.rows[1].detail
    mpii = reports["mpii"]
    assert not mpii.complete and [r.status for r in mpii.rows] == ["missing", "ok", "ok"]
    assert "annot/train.h5 not found" in mpii.rows[0].detail
    assert reports["lsp"].complete and reports["coco"].complete

    (tmp_path / "coco/annotations/person_keypoints_val2017.json").write_text('{"images": 3}')
    (tmp_path / "lsp/joints.mat").unlink()
    reports = {r.dataset: r for r in check(tmp_path)}
    coco = reports["coco"].rows[0]
    assert coco.status == "incomplete" and "field 'images'" in coco.detail  # the loader's own message
    assert [(r.item, r.status) for r in reports["lsp"].rows] == [("joints.mat", "missing")]
    assert reports["lsp"].present and not reports["lsp"].complete  # images/ is still there


def test_check_uses_the_loaders_on_the_shared_samples():
    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "mpii/valid.h5").is_file() or not list(SHARED_DATA.glob("coco/person_keypoints_*.json")):
        pytest.skip(f"real MPII/COCO samples not found under {SHARED_DATA}")
    mpii, coco = check(SHARED_DATA, ["mpii", "coco"])
    with h5py.File(SHARED_DATA / "mpii/valid.h5", "r") as f:
        names = {n.decode() for n in f["imgname"][()]}
    have = len(names & {p.name for p in (SHARED_DATA / "mpii/images").iterdir()})
    assert [(r.item, r.status) for r in mpii.rows] == [
        ("annot/train.h5", "missing"),
        ("valid.h5", "ok"),
        ("images/", "incomplete"),
    ]
    assert mpii.rows[2].detail.startswith(f"{have:,} of {len(names):,} images")
    (ann,) = SHARED_DATA.glob("coco/person_keypoints_*.json")
    listed = {im["file_name"] for im in json.loads(ann.read_text())["images"]}
    # the sample's one keypoints file serves every split, as the loader reads it
    assert [(r.item, r.status) for r in coco.rows] == [(ann.name, "ok"), (ann.name, "ok"), ("images/", "ok")]
    assert coco.rows[2].detail == f"{len(listed):,} images"


def test_check_reads_the_shared_lspet_subset(lspet_root):
    (rep,) = check(lspet_root.parent, ["lspet"])
    assert rep.rows[0].detail == "10,000 images listed (all)"  # LSPET's 10,000 images (Johnson & Everingham 2011)
    assert rep.rows[1].status == "incomplete" and rep.rows[1].detail.startswith("2,500 of 10,000")


def test_catalogue_entries_are_well_formed():
    for name, entry in dl.CATALOGUE.items():
        assert entry.name == name and entry.archives and entry.cite
        for a in entry.archives:
            assert (
                a.kind in ("zip", "tar", "file")
                and a.urls
                and all(u.startswith(("http://", "https://")) for u in a.urls)
            )
            assert all(u.rsplit("/", 1)[1] == a.name for u in a.urls), a  # --base-url relies on the file name
            assert a.md5 is None or re.fullmatch(r"[0-9a-f]{32}", a.md5)
            assert a.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", a.sha256)
            assert a.kind == "file" or a.expect, a
    assert not any(a.md5 or a.sha256 for k in ("mpii", "lsp", "lspet") for a in dl.CATALOGUE[k].archives)
    assert set(inventory.CHECKED_SPLITS) == set(dl.CATALOGUE)  # check knows each one


# --------------------------------------------------------------------------- CLI


def _lspet_zip(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    _lspet(src)
    return _zip({p.relative_to(src).as_posix(): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()})


def test_cli_download_with_base_url_then_check(server, tmp_path):
    server.files["lspet_dataset.zip"] = _lspet_zip(tmp_path)
    data = tmp_path / "data"
    r = runner.invoke(app, ["data", "download", "lspet", "--to", str(data), "--base-url", server.url])
    assert r.exit_code == 0, r.output
    assert "not verified" in r.output  # LSPET has no published checksum, and the output says so
    assert server.requests == [("lspet_dataset.zip", None)]
    r = runner.invoke(app, ["data", "check", str(data), "--dataset", "lspet"])
    assert r.exit_code == 0, r.output
    assert "complete: lspet" in r.output

    (data / "lspet/images/im00003.jpg").unlink()
    r = runner.invoke(app, ["data", "check", str(data)])
    assert r.exit_code == 1 and "incomplete: lspet" in r.output
    r = runner.invoke(app, ["data", "check", str(data), "--dataset", "lsp"])
    assert r.exit_code == 1  # asked for, absent


def test_cli_errors_exit_2(server, tmp_path):
    data = str(tmp_path / "data")
    r = runner.invoke(app, ["data", "download", "lspet", "--to", data, "--base-url", server.url + "/nothing"])
    assert r.exit_code == 2 and "HTTP 404" in r.output and "lspet_dataset.zip" in r.output

    server.files["lspet_dataset.zip"] = _zip({"../escape.txt": b"pwned"})
    r = runner.invoke(app, ["data", "download", "lspet", "--to", data, "--base-url", server.url])
    assert r.exit_code == 2 and "refusing" in r.output and not (tmp_path / "escape.txt").exists()

    # the real COCO entry knows the size: a server offering other bytes is refused before download
    server.files["annotations_trainval2017.zip"] = b"not the archive"
    r = runner.invoke(app, ["data", "download", "coco", "--to", data, "--base-url", server.url])
    assert r.exit_code == 2 and "252,907,541" in r.output
    assert not (tmp_path / "data/.downloads/annotations_trainval2017.zip").exists()

    assert runner.invoke(app, ["data", "download", "nope", "--to", data]).exit_code == 2
    assert server.stall == {}
    assert runner.invoke(app, ["data", "check", str(tmp_path / "absent")]).exit_code == 2
    assert runner.invoke(app, ["data", "check", data]).exit_code == 1  # nothing there


def test_cli_download_from_a_server_that_never_answers_ends_quickly_naming_the_url(server, tmp_path):
    server.files["lspet_dataset.zip"] = b"never sent"
    server.stall["lspet_dataset.zip"] = "answer"
    start = time.monotonic()
    r = runner.invoke(
        app,
        [
            "data",
            "download",
            "lspet",
            "--to",
            str(tmp_path / "data"),
            "--base-url",
            server.url,
            "--timeout",
            "1",
            "--retries",
            "1",
        ],
    )
    elapsed = time.monotonic() - start
    assert r.exit_code == 1, r.output  # a fault of the network (NetworkFaultError), not of the input
    assert 1.9 < elapsed < 10  # (1 + 1 retry) x 1 s, where 4 x 60 s was the only choice before
    out = " ".join(r.output.split())
    assert f"{server.url}/lspet_dataset.zip: no answer within 1 s, 2 attempts" in out
    assert f"{server.url}/lspet_dataset.zip: no answer within 1 s; attempt 2 of 2" in out  # the retry, as it happens
    assert len(server.requests) == 2


def test_a_full_disk_while_downloading_is_a_fault_of_the_machine_naming_the_part(server, tmp_path, monkeypatch):
    import errno
    import io

    server.files["lspet_dataset.zip"] = _payload(7)

    class Full(io.FileIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch, "open", lambda path, mode: Full(path, mode), raising=False)
    data = tmp_path / "data"
    with pytest.raises(dl.NetworkFaultError, match=r"lspet_dataset\.zip\.part: cannot be written .*free space") as err:
        download("lspet", data, base_url=server.url, retries=3)
    assert isinstance(err.value, OSError) and isinstance(err.value, DownloadError)
    assert len(server.requests) == 1  # a full disk is not retried as a network error
    r = runner.invoke(app, ["data", "download", "lspet", "--to", str(data), "--base-url", server.url])
    assert r.exit_code == 1 and "No space left on device" in r.output and "Traceback" not in r.output, r.output
    assert not (data / ".downloads/lspet_dataset.zip").exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("--timeout", "0"),
        ("--timeout", "-5"),
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "100000"),
        ("--retries", "-1"),
        ("--retries", "x"),
    ],
)
def test_cli_bad_timeout_or_retries_exit_2_naming_the_option(server, tmp_path, option, value):
    r = runner.invoke(
        app, ["data", "download", "lspet", "--to", str(tmp_path / "data"), "--base-url", server.url, option, value]
    )
    assert r.exit_code == 2, r.output
    assert option in r.output
    assert value == "x" or value.lstrip("-") in r.output  # typer's own message for "x" does not repeat it
    assert server.requests == [] and not (tmp_path / "data").exists()
