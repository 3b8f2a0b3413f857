"""Fetch the official MPII, LSP, LSPET and COCO archives, and check a data folder.

``download(dataset, to)`` fetches each archive of :data:`CATALOGUE` with the standard
library (``urllib``), resuming an interrupted download (an HTTP ``Range`` request on a
``.part`` file; a server that ignores ``Range`` gets a clean restart), verifies it (md5 or
sha256 where one is known, else the size, and says so), renames ``.part`` to the final
name only after it verifies, and extracts it safely: every member must stay inside the
target folder (no absolute path, no ``..``, no link pointing out, no device file), and
members are extracted into a staging folder that is moved into place only when the whole
archive is out, followed by a marker ``.hgbench-extracted-<archive>.json``.

``check(dir)`` reports, per dataset, which of the files the loaders read are present.

Layout under ``DIR`` (what ``--data-root`` of each loader points at)::

    DIR/mpii/images/*.jpg                       mpii_human_pose_v1.tar.gz
    DIR/mpii/annot/{train,valid}.h5             stacked-hourglass annotations (pose-hg-train)
    DIR/mpii/annotations/mpii_{train,val}.json  optional: the JSON layout (mmpose)
    DIR/lsp/{joints.mat,images/}                lsp_dataset.zip
    DIR/lspet/{joints.mat,images/}              lspet_dataset.zip
    DIR/coco/annotations/person_keypoints_{train,val}2017.json
    DIR/coco/val2017/*.jpg                      (train2017/ optional: 19 GB)

Checksums: none of these publishers prints one. The COCO md5 values are the ones that
independent download scripts (MLCommons, torchvision-style loaders, many training repos)
all agree on, and the annotation archive's md5 equals the S3 ``ETag`` its server sends; the
MPII, LSP and LSPET archives have no known checksum, so only their size (where known) is
checked and the download is reported as *not verified*.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http.client import HTTPException
from pathlib import Path

from hgbench.data.base import DatasetError

CHUNK = 1 << 20  # bytes per read and per progress event
RETRY_DELAY_S = 1.0  # wait before retry k: k x this (a dropped connection, a refused one)
MARKER_PREFIX = ".hgbench-extracted-"
DOWNLOADS = ".downloads"  # archives (and their .part files) under DIR


class DownloadError(DatasetError):
    """A download that failed: names the URL or file and the fix."""


class UnsafeArchiveError(DownloadError):
    """An archive with a member that would land outside the target folder."""


@dataclass(frozen=True)
class Archive:
    """One file to fetch.

    Attributes:
        name: file name on the server (and on disk).
        urls: where to fetch it, tried in order (the first is the publisher's).
        dest: folder under ``DIR`` it extracts to (``kind`` ``"file"``: where it is stored).
        kind: ``"zip"``, ``"tar"`` (any compression tarfile reads) or ``"file"`` (kept as is).
        size: bytes, or None where unknown.
        md5, sha256: hex digest, or None where nobody publishes one (then only ``size``).
        checksum_source: where ``size``/digest come from, or why there is none.
        expect: a path relative to ``dest`` that the extracted archive provides; when the
            archive wraps its content in one extra folder, that folder is flattened away.
        provides: what the loaders read from it.
        optional: fetched only with ``include_optional`` (``--all``).
    """

    name: str
    urls: tuple[str, ...]
    dest: str
    kind: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    checksum_source: str = "none published"
    expect: str | None = None
    provides: str = ""
    optional: bool = False


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset: its archives, home page and the citation its publisher asks for."""

    name: str
    title: str
    homepage: str
    cite: str
    archives: tuple[Archive, ...]


_COCO_MD5 = ("md5 not printed on cocodataset.org; the value independent download scripts (MLCommons and others) "
             "agree on")
_HG_ANNOT = "https://raw.githubusercontent.com/princeton-vl/pose-hg-train/master/data/mpii/annot/"

#: The official archives (data, not code). URLs and sizes: the publishers' download pages and
#: the scripts that use them; see the module docstring for the checksums.
CATALOGUE: dict[str, DatasetEntry] = {
    "mpii": DatasetEntry(
        "mpii", "MPII Human Pose", "http://human-pose.mpi-inf.mpg.de/#download",
        "Andriluka et al., 2D Human Pose Estimation: New Benchmark and State of the Art Analysis, CVPR 2014",
        (
            Archive("mpii_human_pose_v1.tar.gz", ("https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr/mpii_human_pose_v1.tar.gz",),
                    "mpii", "tar", None, checksum_source="none published, size not published (about 12.9 GB)",
                    expect="images", provides="images/NNNNNNNNN.jpg: the 24,984 images (train, validation and test)"),
            Archive("train.h5", (_HG_ANNOT + "train.h5",), "mpii/annot", "file",
                    provides="stacked-hourglass training annotations (imgname, center, scale, part, visible, normalize)"),
            Archive("valid.h5", (_HG_ANNOT + "valid.h5",), "mpii/annot", "file",
                    provides="the 2,958-person validation split of Tompson et al. in the same layout"),
            Archive("mpii_annotations.tar", ("https://download.openmmlab.com/mmpose/datasets/mpii_annotations.tar",),
                    "mpii/annotations", "tar", expect="mpii_val.json",
                    provides="optional JSON layout (image, center, scale, joints, joints_vis): mpii_{train,val}.json, "
                             "mpii_gt_val.mat", optional=True),
        ),
    ),
    "lsp": DatasetEntry(
        "lsp", "Leeds Sports Pose (LSP)", "http://sam.johnson.io/research/lsp.html",
        "Johnson & Everingham, Clustered Pose and Nonlinear Appearance Models for Human Pose Estimation, BMVC 2010",
        (
            Archive("lsp_dataset.zip", ("http://sam.johnson.io/research/lsp_dataset.zip",
                                        "http://www.comp.leeds.ac.uk/mat4saj/lsp_dataset.zip"),
                    "lsp", "zip", expect="joints.mat",
                    provides="joints.mat (3, 14, 2000) and images/im0001.jpg..im2000.jpg"),
        ),
    ),
    "lspet": DatasetEntry(
        "lspet", "Leeds Sports Pose Extended (LSPET)", "http://sam.johnson.io/research/lspet.html",
        "Johnson & Everingham, Learning Effective Human Pose Estimation from Inaccurate Annotation, CVPR 2011",
        (
            Archive("lspet_dataset.zip", ("http://sam.johnson.io/research/lspet_dataset.zip",
                                          "http://www.comp.leeds.ac.uk/mat4saj/lspet_dataset.zip"),
                    "lspet", "zip", expect="joints.mat",
                    provides="joints.mat (14, 3, 10000) and images/im00001.jpg..im10000.jpg"),
        ),
    ),
    "coco": DatasetEntry(
        "coco", "COCO 2017 person keypoints", "https://cocodataset.org/#download",
        "Lin et al., Microsoft COCO: Common Objects in Context, ECCV 2014",
        (
            Archive("annotations_trainval2017.zip", ("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",),
                    "coco", "zip", 252_907_541, md5="f4bbac642086de4f52a3fdda2de5fa2c",
                    checksum_source=_COCO_MD5 + "; equals the server's ETag", expect="annotations",
                    provides="annotations/person_keypoints_{train,val}2017.json (and the other COCO tasks)"),
            Archive("val2017.zip", ("http://images.cocodataset.org/zips/val2017.zip",), "coco", "zip", 815_585_330,
                    md5="442b8da7639aecaf257c1dceb8ba8c80", checksum_source=_COCO_MD5, expect="val2017",
                    provides="val2017/: the 5,000 validation images"),
            Archive("train2017.zip", ("http://images.cocodataset.org/zips/train2017.zip",), "coco", "zip", 19_336_861_798,
                    md5="cced6f7f71b7629ddf16f17bbcfab6b2", checksum_source=_COCO_MD5, expect="train2017",
                    provides="train2017/: the 118,287 training images", optional=True),
        ),
    ),
}

DOWNLOADABLE = tuple(CATALOGUE)


@dataclass
class ArchiveResult:
    """What :func:`download` did with one archive.

    ``status``: ``"downloaded"``, ``"reused"`` (a verified archive was already in
    ``.downloads``, now extracted) or ``"skipped"`` (already extracted / present);
    ``verified``: how it was checked (``"md5 ok"``, ``"size ok (no published checksum)"``, ...);
    ``location``: the folder it was extracted to, or the stored file.
    """

    archive: Archive
    status: str
    verified: str
    location: Path
    url: str | None = None
    members: int | None = None
    warnings: list[str] = field(default_factory=list)


Event = Callable[[str, dict], None]


def _entry(dataset: str, catalogue: dict[str, DatasetEntry]) -> DatasetEntry:
    if dataset not in catalogue:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(catalogue)}")
    return catalogue[dataset]


def download(
    dataset: str,
    to: str | Path,
    *,
    catalogue: dict[str, DatasetEntry] | None = None,
    base_url: str | None = None,
    include_optional: bool = False,
    keep_archives: bool = False,
    retries: int = 3,
    timeout: float = 60.0,
    on_event: Event | None = None,
) -> list[ArchiveResult]:
    """Fetch, verify and extract the archives of ``dataset`` under ``to``.

    Args:
        dataset: a key of ``catalogue`` (``mpii``, ``lsp``, ``lspet``, ``coco``).
        to: the data folder (created); see the module docstring for the layout.
        catalogue: archives to use (default :data:`CATALOGUE`; tests point it at a loopback server).
        base_url: a mirror that holds the same file names: ``base_url/<name>`` replaces the URLs.
        include_optional: also the optional archives (COCO train2017, MPII JSON annotations).
        keep_archives: keep the verified archives in ``to/.downloads`` after extraction.
        retries: attempts per URL after a dropped connection (each resumes the ``.part``).
        timeout: seconds a connection may stall.
        on_event: ``on_event(event, info)`` for progress: ``"start"`` (archive, url, total
            bytes or None, resumed_from), ``"bytes"`` (n), ``"restart"``/``"retry"``/``"skip"``
            (reason), ``"verified"`` (detail), ``"extract"`` (archive), ``"done"`` (result).

    An archive whose marker ``.hgbench-extracted-<name>.json`` is in its folder (and names the
    same size and checksum) is skipped without a request; delete the marker to extract it again.

    Returns:
        One :class:`ArchiveResult` per archive handled.

    Raises:
        ValueError: unknown dataset.
        DownloadError: every URL failed (HTTP error, network), the checksum or size differs
            after a fresh retry, or the archive is corrupt. No unverified file is ever left
            under the final name; the ``.part`` of a broken connection is kept for a resume.
        UnsafeArchiveError: a member would land outside ``to``; nothing of it is left in place.
    """
    entry = _entry(dataset, catalogue if catalogue is not None else CATALOGUE)
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda event, info: None)
    results = []
    for archive in entry.archives:
        if archive.optional and not include_optional:
            continue
        if base_url:
            archive = replace(archive, urls=(base_url.rstrip("/") + "/" + archive.name,))
        results.append(_fetch_one(archive, to, keep_archives=keep_archives, retries=retries, timeout=timeout, emit=emit))
    return results


# --------------------------------------------------------------------------- download


def _fetch_one(archive: Archive, to: Path, *, keep_archives: bool, retries: int, timeout: float, emit: Event) -> ArchiveResult:
    dest = to / archive.dest
    if archive.kind == "file":
        final = dest / archive.name
    elif archive.kind in ("zip", "tar"):
        final = to / DOWNLOADS / archive.name
        marker = _read_marker(dest, archive)
        if marker is not None:
            emit("skip", {"archive": archive, "reason": f"already extracted (marker {dest / (MARKER_PREFIX + archive.name + '.json')})"})
            result = ArchiveResult(archive, "skipped", marker.get("verified", "?"), dest, marker.get("url"), marker.get("members"))
            emit("done", {"archive": archive, "result": result})
            return result
    else:
        raise ValueError(f"catalogue entry {archive.name}: kind must be zip, tar or file, got {archive.kind!r}")

    url, verified, status = None, None, "downloaded"
    if final.is_file():
        try:
            verified = _verify(final, archive)
            status = "skipped" if archive.kind == "file" else "reused"
            emit("skip", {"archive": archive, "reason": f"{final} present, {verified}"})
        except DownloadError as e:
            emit("restart", {"archive": archive, "reason": f"{final} present but fails verification ({e}); fetching it again"})
            final.unlink()
    if verified is None:
        url, verified = _download_verified(archive, final, retries=retries, timeout=timeout, emit=emit)
    emit("verified", {"archive": archive, "detail": verified})

    if archive.kind == "file":
        result = ArchiveResult(archive, status, verified, final, url)
    else:
        emit("extract", {"archive": archive, "dest": dest})
        members, warnings = extract(final, dest, kind=archive.kind, expect=archive.expect)
        _write_marker(dest, archive, url=url, verified=verified, members=members)
        if not keep_archives:
            final.unlink()
        result = ArchiveResult(archive, status, verified, dest, url, members, warnings)
    emit("done", {"archive": archive, "result": result})
    return result


def _download_verified(archive: Archive, final: Path, *, retries: int, timeout: float, emit: Event) -> tuple[str, str]:
    """Download ``archive`` to ``final`` through ``final.part``; return (url, verification).

    A checksum or size mismatch deletes the ``.part`` and downloads once more from scratch;
    a second mismatch is an error. Only a verified file is renamed to ``final``.
    """
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in archive.urls:
        for attempt in (1, 2):
            try:
                _download_resumable(url, part, archive, retries=retries, timeout=timeout, emit=emit)
            except _NetworkError as e:
                errors.append(f"{url}: {e}")
                break  # next mirror, the .part stays for a later resume
            try:
                verified = _verify(part, archive)
            except DownloadError as e:
                part.unlink(missing_ok=True)
                if attempt == 1:
                    emit("restart", {"archive": archive, "reason": f"{e}; downloading again from scratch"})
                    continue
                raise DownloadError(
                    f"{url}: the download fails verification twice ({e}). The file on the server differs from the "
                    f"catalogue entry of {archive.name}; fetch it by hand and compare, or use --base-url with a "
                    f"trusted mirror. Nothing was kept.") from None
            os.replace(part, final)
            return url, verified
    resume = f"; {part} ({part.stat().st_size:,} bytes) is kept and the next run resumes it" if part.exists() else ""
    raise DownloadError(
        f"{archive.name}: could not be downloaded ({'; '.join(errors)}){resume}. Check the network and the URL and run "
        f"the same command again, or pass --base-url with a mirror that holds the same file names.")


class _NetworkError(Exception):
    """Internal: a URL that cannot be fetched (HTTP error, unreachable host, retries exhausted)."""


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _download_resumable(url: str, part: Path, archive: Archive, *, retries: int, timeout: float, emit: Event) -> None:
    """Bring ``part`` to the complete file, resuming it with ``Range`` requests.

    A failed attempt counts against ``retries`` unless it grew the ``.part`` beyond its
    largest size so far, so the loop ends even against a server that never completes.

    Raises:
        _NetworkError: an HTTP error status, an unreachable host, or more than ``retries``
        failed attempts in a row without progress.
    """
    failures, best = 0, -1
    while True:
        have = part.stat().st_size if part.exists() else 0
        if have > best:  # progress since the last attempt: a fresh allowance of retries
            failures, best = 0, have
        if archive.size is not None and have == archive.size:
            return  # a complete .part left by an earlier run: verification decides
        if archive.size is not None and have > archive.size:
            emit("restart", {"archive": archive, "reason": f"{part} is larger than the archive; starting again"})
            part.unlink()
            have, best = 0, -1
        headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # range not satisfiable: the .part is complete or wrong
                if archive.size is None:
                    return  # nothing to compare with: verification decides
                part.unlink()
                continue
            raise _NetworkError(f"HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, HTTPException) as e:
            failures += 1
            if failures > retries:
                raise _NetworkError(f"{getattr(e, 'reason', e)}") from None
            emit("retry", {"archive": archive, "reason": f"{e}"})
            time.sleep(RETRY_DELAY_S * failures)
            continue
        with response:
            total, mode = _response_range(response, have)
            if mode == "wb" and have:
                emit("restart", {"archive": archive, "reason": "the server ignored the Range request; downloading from the start"})
                have = 0
            if archive.size is not None and total is not None and total != archive.size:
                raise _NetworkError(f"the server announces {total:,} bytes, the catalogue {archive.size:,} for {archive.name}")
            emit("start", {"archive": archive, "url": url, "total": total if total is not None else archive.size, "resumed_from": have})
            try:
                with open(part, mode) as f:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        emit("bytes", {"archive": archive, "n": len(chunk)})
                    f.flush()
                    os.fsync(f.fileno())
            except (OSError, HTTPException) as e:  # dropped connection, IncompleteRead, timeout
                failures += 1
                if failures > retries and part.stat().st_size <= best:
                    raise _NetworkError(f"connection lost {failures} times (last: {e!r})") from None
                emit("retry", {"archive": archive, "reason": f"connection lost ({e!r}); resuming"})
                time.sleep(RETRY_DELAY_S * failures)
                continue
        got = part.stat().st_size
        if total is not None and got < total:  # closed early without an error
            failures += 1
            if failures > retries and got <= best:
                raise _NetworkError(f"the server closed the connection at {got:,} of {total:,} bytes {failures} times")
            emit("retry", {"archive": archive, "reason": f"stream ended at {got:,} of {total:,} bytes; resuming"})
            time.sleep(RETRY_DELAY_S * failures)
            continue
        return


def _response_range(response, have: int) -> tuple[int | None, str]:
    """(total size or None, file mode): ``"ab"`` to append a 206 that starts at ``have``, else ``"wb"``."""
    if have and response.status == 206:
        m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == have:
            return (None if m.group(3) == "*" else int(m.group(3))), "ab"
    length = response.headers.get("Content-Length")
    if response.status == 206:  # a range we did not ask for: unusable
        raise _NetworkError(f"unexpected partial response (Content-Range {response.headers.get('Content-Range')!r})")
    return (int(length) if length and length.isdigit() else None), "wb"


def _user_agent() -> str:
    from hgbench import __version__

    return f"hgbench/{__version__} (+urllib)"


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks (``hashlib``)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, archive: Archive) -> str:
    """Check size and digest of ``path`` against ``archive``; return what was checked.

    Raises:
        DownloadError: size or digest differs.
    """
    size = path.stat().st_size
    if archive.size is not None and size != archive.size:
        raise DownloadError(f"{path.name}: {size:,} bytes, expected {archive.size:,}")
    for algorithm in ("sha256", "md5"):
        expected = getattr(archive, algorithm)
        if expected:
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                raise DownloadError(f"{path.name}: {algorithm} {actual}, expected {expected}")
            return f"{algorithm} ok"
    if archive.size is not None:
        return "size ok, checksum not verified (none published)"
    return "not verified (no published checksum or size)"


# --------------------------------------------------------------------------- extraction


def _inside(root: Path, name: str, what: str, archive: Path) -> Path:
    """The path member ``name`` extracts to under ``root``.

    Raises:
        UnsafeArchiveError: absolute path, drive letter, ``..`` component, or a path that
        resolves (through links already extracted) outside ``root``.
    """
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        raise UnsafeArchiveError(f"{archive}: {what} {name!r} is an absolute path; refusing to extract this archive")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: {what} {name!r} leaves the target folder ('..'); refusing to extract this archive")
    target = root.joinpath(*parts)
    resolved, base = target.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafeArchiveError(f"{archive}: {what} {name!r} resolves outside the target folder; refusing to extract this archive")
    return target


def check_tar_member(member: tarfile.TarInfo, root: Path, archive: Path) -> Path:
    """Validate one tar member against ``root``; return its target path.

    Regular files and folders must stay inside ``root``; a symbolic link's target (relative
    to the link's folder) and a hard link's target (relative to the archive root) too.

    Raises:
        UnsafeArchiveError: see :func:`_inside`; also device files and FIFOs.
    """
    target = _inside(root, member.name, "member", archive)
    if member.issym() or member.islnk():
        link = member.linkname.replace("\\", "/")
        if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
            raise UnsafeArchiveError(f"{archive}: link {member.name!r} points to the absolute path {member.linkname!r}; refusing")
        # a symbolic link is relative to its folder, a hard link to the archive root; '..' may
        # appear in a link as long as the normalised target stays inside
        base = posixpath.dirname(member.name.replace("\\", "/")) if member.issym() else ""
        norm = posixpath.normpath(posixpath.join(base, link))
        if norm == ".." or norm.startswith("../"):
            raise UnsafeArchiveError(f"{archive}: link {member.name!r} -> {member.linkname!r} points outside the target folder; refusing")
        _inside(root, norm, f"link {member.name!r} ->", archive)
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device file or FIFO; refusing to extract this archive")
    return target


def check_zip_member(info: zipfile.ZipInfo, root: Path, archive: Path) -> Path:
    """Validate one zip member against ``root``; return its target path.

    Raises:
        UnsafeArchiveError: see :func:`_inside`; also symbolic links (Unix mode in the
        external attributes), which :mod:`zipfile` would write as plain files.
    """
    target = _inside(root, info.filename, "member", archive)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract this archive")
    return target


def extract(archive: Path, dest: Path, *, kind: str, expect: str | None = None) -> tuple[int, list[str]]:
    """Extract ``archive`` (``kind`` ``"zip"`` or ``"tar"``) into ``dest`` safely.

    Members go to a staging folder inside ``dest``, each checked before it is written
    (:func:`check_zip_member`, :func:`check_tar_member`; on Python with ``tarfile``'s
    ``filter="data"`` that filter is applied too). When all are out, the staging folder's
    content is moved into ``dest`` (merging folders). When ``expect`` is not at the staging
    top but the staging holds a single folder, that folder is flattened away (repeatedly).

    Returns:
        (number of members, warnings), e.g. an ``expect`` that is still absent.

    Raises:
        UnsafeArchiveError: a member would land outside ``dest``; nothing is left in ``dest``.
        DownloadError: the archive is corrupt or not a zip/tar.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".hgbench-staging-{archive.name}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        if kind == "zip":
            members = _extract_zip(archive, staging)
        elif kind == "tar":
            members = _extract_tar(archive, staging)
        else:
            raise ValueError(f"{archive}: cannot extract kind {kind!r}")
        root = staging
        while expect and not (root / expect).exists():
            children = [c for c in root.iterdir()]
            if len(children) != 1 or not children[0].is_dir() or children[0].is_symlink():
                break
            root = children[0]
        warnings = []
        if expect and not (root / expect).exists():
            warnings.append(f"{archive.name}: expected {expect} in the archive, not found; the layout differs from the catalogue")
        _merge(root, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return members, warnings


def _extract_zip(archive: Path, staging: Path) -> int:
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:  # the central directory lists every member: check all before writing any
                check_zip_member(info, staging, archive)
            for info in infos:
                zf.extract(info, staging)
            return len(infos)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise DownloadError(f"{archive}: not a readable zip archive ({e}); delete it and download again") from e


# Python >= 3.10.12 / 3.11.4 / 3.12 have tarfile's data filter, applied on top of our checks;
# before, our checks alone apply (an empty tuple in an ``except`` clause catches nothing).
_TAR_DATA_FILTER = hasattr(tarfile, "data_filter")
_TAR_FILTER_ERROR = getattr(tarfile, "FilterError", ())


def _extract_tar(archive: Path, staging: Path) -> int:
    kwargs = {"filter": "data"} if _TAR_DATA_FILTER else {}
    count = 0
    try:
        with tarfile.open(archive, mode="r|*") as tf:  # one streaming pass: each member checked before it is written
            for member in tf:
                check_tar_member(member, staging, archive)
                tf.extract(member, staging, **kwargs)
                count += 1
    except _TAR_FILTER_ERROR as e:  # Python's own data filter found the member unsafe too
        raise UnsafeArchiveError(f"{archive}: {e}; refusing to extract this archive") from e
    except (tarfile.TarError, EOFError, OSError, KeyError) as e:  # KeyError: a hard link to a member not in the archive
        raise DownloadError(f"{archive}: not a readable tar archive ({e}); delete it and download again") from e
    return count


def _merge(src: Path, dst: Path) -> None:
    """Move the content of ``src`` into ``dst`` by renames, merging folders that exist."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        if entry.name.startswith(".hgbench-staging-"):
            continue
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _merge(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(entry, target)


def _marker_path(dest: Path, archive: Archive) -> Path:
    return dest / f"{MARKER_PREFIX}{archive.name}.json"


def _write_marker(dest: Path, archive: Archive, *, url: str | None, verified: str, members: int) -> None:
    from hgbench.results import atomic_write_bytes, utc_now

    body = {"archive": archive.name, "url": url, "size": archive.size, "md5": archive.md5, "sha256": archive.sha256,
            "verified": verified, "members": members, "extracted": utc_now()}
    atomic_write_bytes(_marker_path(dest, archive), (json.dumps(body, indent=1) + "\n").encode())


def _read_marker(dest: Path, archive: Archive) -> dict | None:
    """The marker of ``archive`` under ``dest`` if it matches the catalogue entry, else None."""
    path = _marker_path(dest, archive)
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = all(marker.get(k) == getattr(archive, k) for k in ("size", "md5", "sha256"))
    return marker if same and marker.get("archive") == archive.name else None


# --------------------------------------------------------------------------- check


@dataclass
class CheckRow:
    """One requirement of a loader: ``status`` is ``ok``, ``missing``, ``incomplete`` or
    ``optional`` (absent but not needed)."""

    item: str
    status: str
    detail: str


@dataclass
class DatasetCheck:
    """What :func:`check` found for one dataset under ``root``."""

    dataset: str
    root: Path
    rows: list[CheckRow]

    @property
    def complete(self) -> bool:
        return all(r.status in ("ok", "optional") for r in self.rows)

    @property
    def present(self) -> bool:
        return any(r.status in ("ok", "incomplete") for r in self.rows)


def check(data_dir: str | Path, datasets: Iterable[str] | None = None) -> list[DatasetCheck]:
    """Report which files the loaders need are present under ``data_dir``.

    Each dataset is looked for in ``data_dir/<name>`` (layout in the module docstring):

    - ``lsp``/``lspet``: ``joints.mat`` readable with N columns (officially 2,000 / 10,000),
      and ``images/`` holding ``imNNNN.jpg`` (LSP) / ``imNNNNN.jpg`` (LSPET) for all N columns.
    - ``mpii``: annotations ``annot/{train,valid}.h5`` (or ``valid.h5`` at the top, or the
      JSON layout ``annotations/mpii_{train,val}.json``), and every image they name in ``images/``.
    - ``coco``: ``annotations/person_keypoints_val2017.json`` and every image it lists in
      ``val2017/``; train2017 likewise, reported as optional when absent.

    Args:
        datasets: names to check (default: all of :data:`CATALOGUE`).

    Raises:
        FileNotFoundError: ``data_dir`` is not a folder.
        ValueError: unknown dataset name.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such folder; pass the folder given to `hgbench data download --to`")
    names = list(datasets) if datasets else list(CATALOGUE)
    out = []
    for name in names:
        _entry(name, CATALOGUE)
        root = data_dir / name
        rows = _CHECKS[name](root)
        out.append(DatasetCheck(name, root, rows))
    return out


def _images_row(folder: Path, wanted: Iterable[str], what: str) -> CheckRow:
    """How many of the ``wanted`` file names are in ``folder`` (without annotations to
    compare with, ``wanted`` is empty and the folder's file count is reported)."""
    present = _listing(folder)
    wanted = sorted(set(wanted))
    missing = [w for w in wanted if w not in present]
    label = f"{folder.name}/"
    if not wanted:
        if not folder.is_dir():
            return CheckRow(label, "missing", f"{folder} not found")
        return CheckRow(label, "ok", f"{len(present):,} files (not compared: no annotations)")
    if not present:
        return CheckRow(label, "missing", f"{folder}: no {what} (0 of {len(wanted):,})")
    if missing:
        return CheckRow(label, "incomplete", f"{len(wanted) - len(missing):,} of {len(wanted):,} {what} (missing e.g. {missing[0]})")
    return CheckRow(label, "ok", f"{len(wanted):,} {what}")


def _listing(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()


def _check_lsp_family(root: Path, *, digits: int, columns: int) -> list[CheckRow]:
    from hgbench.data.lsp import read_lsp_joints

    rows = []
    n = columns
    mat = root / "joints.mat"
    if not mat.is_file():
        rows.append(CheckRow("joints.mat", "missing", f"{mat} not found"))
    else:
        try:
            joints = read_lsp_joints(mat)[0]  # (N, 14, 2); later items: flags
            n = len(joints)  # the images are compared with these columns, whatever their number
            rows.append(CheckRow("joints.mat", "ok", f"{n:,} persons" + ("" if n == columns else f" (the official file has {columns:,})")))
        except DatasetError as e:
            rows.append(CheckRow("joints.mat", "incomplete", str(e)))
    rows.append(_images_row(root / "images", (f"im{i:0{digits}d}.jpg" for i in range(1, n + 1)), "images"))
    return rows


def _check_lsp(root: Path) -> list[CheckRow]:
    return _check_lsp_family(root, digits=4, columns=2000)


def _check_lspet(root: Path) -> list[CheckRow]:
    return _check_lsp_family(root, digits=5, columns=10000)


def _mpii_names(path: Path) -> list[str]:
    """Image names an MPII annotation file refers to (h5 ``imgname``; JSON ``image`` or ``img_paths``)."""
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as f:
            return [n.decode() if isinstance(n, bytes) else str(n) for n in f["imgname"][()]]
    items = json.loads(path.read_text())
    return [str(d.get("image", d.get("img_paths"))) for d in items]


def _check_mpii(root: Path) -> list[CheckRow]:
    rows, names = [], []
    layouts = [("annot/train.h5", "annot/valid.h5"), (None, "valid.h5"),
               ("annotations/mpii_train.json", "annotations/mpii_val.json"), ("annot/train.json", "annot/valid.json")]
    found = next((lay for lay in layouts if (root / lay[1]).is_file()), None)
    if found is None:
        rows.append(CheckRow("annot/valid.h5", "missing", f"no validation annotations under {root} "
                             f"(looked for {', '.join(lay[1] for lay in layouts)})"))
        rows.append(CheckRow("annot/train.h5", "missing", "no training annotations"))
    else:
        for rel, split in zip(found, ("train", "valid")):
            if rel is None:
                rows.append(CheckRow("annot/train.h5", "missing", f"no training annotations beside {found[1]}"))
                continue
            path = root / rel
            if not path.is_file():
                rows.append(CheckRow(rel, "missing", f"{path} not found"))
                continue
            try:
                persons = _mpii_names(path)
            except (OSError, KeyError, ValueError, TypeError, AttributeError) as e:
                rows.append(CheckRow(rel, "incomplete", f"unreadable ({e})"))
                continue
            names += persons
            rows.append(CheckRow(rel, "ok", f"{len(persons):,} persons ({split})"))
    rows.append(_images_row(root / "images", names, "images named by the annotations"))
    return rows


def _check_coco(root: Path) -> list[CheckRow]:
    rows = []
    for split, required in (("val2017", True), ("train2017", False)):
        ann = root / "annotations" / f"person_keypoints_{split}.json"
        label, images = f"annotations/{ann.name}", root / split
        if not required and not images.is_dir():
            rows.append(CheckRow(f"{split}/", "optional", "not downloaded (hgbench data download coco --all)"))
            continue
        if not ann.is_file():
            rows.append(CheckRow(label, "missing", f"{ann} not found"))
            rows.append(_images_row(images, (), "images"))
            continue
        try:
            data = json.loads(ann.read_text())
            file_names = [im["file_name"] for im in data["images"]]
            persons = sum(1 for a in data["annotations"] if a.get("num_keypoints", 0) > 0)
        except (OSError, ValueError, KeyError, TypeError) as e:
            rows.append(CheckRow(label, "incomplete", f"unreadable ({e})"))
            rows.append(_images_row(images, (), "images"))
            continue
        rows.append(CheckRow(label, "ok", f"{len(file_names):,} images, {persons:,} persons with keypoints"))
        rows.append(_images_row(images, file_names, "images"))
    return rows


_CHECKS: dict[str, Callable[[Path], list[CheckRow]]] = {
    "mpii": _check_mpii, "lsp": _check_lsp, "lspet": _check_lspet, "coco": _check_coco,
}
