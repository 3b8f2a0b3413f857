"""Fetch, verify and safely extract the archives of :mod:`hgbench.data.download.catalogue`.

:func:`download` fetches each archive with the standard library (``urllib``), resuming an
interrupted download (an HTTP ``Range`` request on a ``.part`` file; a server that ignores
``Range`` gets a clean restart), verifies it (md5 or sha256 where one is known, else the size,
and says so), renames ``.part`` to the final name only after it verifies, and extracts it
safely: every member must stay inside the target folder (no absolute path, no ``..``, no link
pointing out, no device file), and members are extracted into a staging folder that is moved
into place only when the whole archive is out, followed by a marker
``.hgbench-extracted-<archive>.json``.

Every network read waits at most ``timeout`` seconds (the socket timeout of ``urllib``: the
connection, the response headers and each read of the body), so a server that accepts a
connection and never answers costs ``(retries + 1) x timeout`` seconds per URL, plus the
waits between attempts, and the error names the URL. A server that answers but trickles
(a byte every few seconds, so that no single read ever waits ``timeout``) is ended too
(:class:`_Watchdog`): an attempt whose body brings fewer than :data:`MIN_PROGRESS_BYTES` bytes
in ``timeout`` seconds, or whose response headers are not complete within
:data:`HEADERS_TIMEOUTS` x ``timeout``, fails as a stall ("no progress within"), and an attempt
counts as progress for ``retries`` only when it grew the ``.part`` by that many bytes, so
whatever trickles in, the download ends (exit 1) after ``retries + 1`` such attempts.

A download that fails for a fault of the network or the machine (no answer within the timeout,
a refused or reset connection, a name that does not resolve, an HTTP 408, 429 or 5xx status, a
full disk) raises :class:`NetworkFaultError` (the command line exits 1: running it again later
can succeed); a wrong URL or option (an HTTP 404 or another 4xx, a server offering other bytes
than the catalogue's) raises :class:`DownloadError` (exit 2).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.client import HTTPException
from pathlib import Path

from hgbench.data.base import DatasetError
from hgbench.data.download.catalogue import Archive, DatasetEntry, dataset_entry
from hgbench.fileio import atomic_write_json, utc_now
from hgbench.paths import MachineFaultError, check_writable_folder, is_machine_fault

CHUNK = 1 << 20  # the most bytes per read (and per progress event)
RETRY_DELAY_S = 1.0  # wait before retry k: k x this (a dropped connection, a refused one, a stall)
DEFAULT_TIMEOUT_S = 30.0  # seconds one network read may wait (connect, headers, each body read)
MAX_TIMEOUT_S = 86_400.0  # one day; far larger values overflow the socket's timeval
DEFAULT_RETRIES = 3  # failed attempts per URL without progress before giving up on it
MIN_PROGRESS_BYTES = 1024  # progress: at least this many bytes within --timeout (a trickle is none; _Watchdog)
HEADERS_TIMEOUTS = 2  # the response headers must be complete within this many --timeout (_Watchdog)
MARKER_PREFIX = ".hgbench-extracted-"
DOWNLOADS = ".downloads"  # archives (and their .part files) under DIR


class DownloadError(DatasetError):
    """A download that failed: names the URL or file and the fix."""


class UnsafeArchiveError(DownloadError):
    """An archive with a member that would land outside the target folder."""


class NetworkFaultError(DownloadError, MachineFaultError):
    """A download that failed for a fault of the network or the machine, not of the input: no
    answer within the timeout, a refused or reset connection, a host name that does not resolve,
    a server error (HTTP 408, 429, 5xx), or a disk that cannot take the file. The message names
    the URL or file, the timeout used and the fix (run again later, a longer ``--timeout``, free
    space); the command line exits 1."""


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


def check_network_options(timeout: float, retries: int, *, prefix: str = "") -> None:
    """Check the ``timeout`` (seconds per network read) and ``retries`` of :func:`download`.

    Args:
        prefix: put before the names in the message (``"--"`` for the command line options).

    Raises:
        ValueError: ``timeout`` is not a number in (0, :data:`MAX_TIMEOUT_S`] (0, negative,
            NaN, infinite), or ``retries`` is not an integer >= 0.
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not math.isfinite(timeout)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise ValueError(
            f"{prefix}timeout: {timeout!r} is not a number of seconds in (0, {MAX_TIMEOUT_S:,.0f}]; "
            f"give the longest wait for one network read, e.g. {prefix}timeout {DEFAULT_TIMEOUT_S:g}"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(
            f"{prefix}retries: {retries!r} is not an integer >= 0; give the attempts per URL after "
            f"the first, e.g. {prefix}retries {DEFAULT_RETRIES}"
        )


def check_download_request(
    datasets: list[str], timeout: float, retries: int, to: str | Path | None = None, base_url: str | None = None
) -> None:
    """Check ``hgbench data download``'s arguments before anything is fetched.

    Args:
        to: the data folder (``--to``): created if missing, and checked writable.
        base_url: ``--base-url``: an ``http``, ``https``, ``ftp`` or ``file`` URL.

    Raises:
        ValueError: an unknown dataset name (naming the known ones), bad network options
            (:func:`check_network_options`), a ``--base-url`` that is not such a URL, or a
            ``--to`` that is a file (``NotADirectoryError``).
        hgbench.paths.MachineFaultError: ``--to`` cannot be written (read-only, full).
    """
    from urllib.parse import urlsplit

    from hgbench.data.download.catalogue import CATALOGUE

    for name in datasets:
        if name not in CATALOGUE:
            raise ValueError(f"unknown dataset {name!r}; known: {', '.join(CATALOGUE)}")
    check_network_options(timeout, retries, prefix="--")
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https", "ftp", "file") or (parts.scheme != "file" and not parts.netloc):
            raise ValueError(
                f"--base-url {base_url!r}: not an http(s), ftp or file URL; give the mirror's folder, "
                "e.g. --base-url https://mirror.example.org/lspet"
            )
    if to is not None:
        check_writable_folder(Path(to), "--to")


def download(
    dataset: str,
    to: str | Path,
    *,
    catalogue: dict[str, DatasetEntry] | None = None,
    base_url: str | None = None,
    include_optional: bool = False,
    keep_archives: bool = False,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT_S,
    on_event: Event | None = None,
) -> list[ArchiveResult]:
    """Fetch, verify and extract the archives of ``dataset`` under ``to``.

    Args:
        dataset: a key of ``catalogue`` (``mpii``, ``lsp``, ``lspet``, ``coco``).
        to: the data folder (created); layout: :mod:`hgbench.data.download.catalogue`.
        catalogue: archives to use (default :data:`~hgbench.data.download.catalogue.CATALOGUE`;
            tests point it at a loopback server).
        base_url: a mirror that holds the same file names: ``base_url/<name>`` replaces the URLs.
        include_optional: also the optional archives (COCO train2017, MPII JSON annotations).
        keep_archives: keep the verified archives in ``to/.downloads`` after extraction.
        retries: attempts per URL after a failed one (refused, dropped or stalled connection;
            each resumes the ``.part``); an attempt that grew the ``.part`` does not count.
        timeout: seconds one network read may wait (connecting, the response headers, each
            read of the body) before the attempt counts as failed.
        on_event: ``on_event(event, info)`` for progress: ``"start"`` (archive, url, total
            bytes or None, resumed_from), ``"bytes"`` (n), ``"restart"``/``"retry"``/``"skip"``
            (reason), ``"verified"`` (detail), ``"extract"`` (archive), ``"done"`` (result).

    An archive whose marker ``.hgbench-extracted-<name>.json`` is in its folder (and names the
    same size and checksum) is skipped without a request; delete the marker to extract it again.

    Returns:
        One :class:`ArchiveResult` per archive handled.

    Raises:
        ValueError: unknown dataset, or ``timeout``/``retries`` out of range
            (:func:`check_network_options`).
        NetworkFaultError: every URL failed and one of them for a fault of the network (no
            answer within ``timeout`` ``retries + 1`` times, refused, reset, unresolved, HTTP
            408/429/5xx) or the disk (full, read-only): running the command again later can
            succeed. The message names each URL, and the timeout where one stalled.
        DownloadError: every URL failed for a wrong URL (HTTP 404 or another 4xx, a server
            offering other bytes than the catalogue's), the checksum or size differs after a
            fresh retry, or the archive is corrupt. No unverified file is ever left under the
            final name; the ``.part`` of a broken connection is kept for a resume.
        UnsafeArchiveError: a member would land outside ``to``; nothing of it is left in place.
    """
    entry = dataset_entry(dataset, catalogue)
    check_network_options(timeout, retries)
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda event, info: None)
    results = []
    for archive in entry.archives:
        if archive.optional and not include_optional:
            continue
        if base_url:
            archive = replace(archive, urls=(base_url.rstrip("/") + "/" + archive.name,))
        results.append(
            _fetch_one(archive, to, keep_archives=keep_archives, retries=retries, timeout=timeout, emit=emit)
        )
    return results


# --------------------------------------------------------------------------- download


def _fetch_one(
    archive: Archive, to: Path, *, keep_archives: bool, retries: int, timeout: float, emit: Event
) -> ArchiveResult:
    dest = to / archive.dest
    if archive.kind == "file":
        final = dest / archive.name
    elif archive.kind in ("zip", "tar"):
        final = to / DOWNLOADS / archive.name
        marker = _read_marker(dest, archive)
        if marker is not None:
            emit(
                "skip",
                {
                    "archive": archive,
                    "reason": f"already extracted (marker {dest / (MARKER_PREFIX + archive.name + '.json')})",
                },
            )
            result = ArchiveResult(
                archive, "skipped", marker.get("verified", "?"), dest, marker.get("url"), marker.get("members")
            )
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
            emit(
                "restart",
                {"archive": archive, "reason": f"{final} present but fails verification ({e}); fetching it again"},
            )
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
    errors, faults = [], 0
    for url in archive.urls:
        for attempt in (1, 2):
            try:
                _download_resumable(url, part, archive, retries=retries, timeout=timeout, emit=emit)
            except _NetworkError as e:
                errors.append(f"{url}: {e}")
                faults += e.fault
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
                    f"trusted mirror. Nothing was kept."
                ) from None
            os.replace(part, final)
            return url, verified
    resume = f"; {part} ({part.stat().st_size:,} bytes) is kept and the next run resumes it" if part.exists() else ""
    stalled = (
        " (or a longer --timeout, more --retries)" if any(_STALL in e or _NO_PROGRESS in e for e in errors) else ""
    )
    raise (NetworkFaultError if faults else DownloadError)(
        f"{archive.name}: could not be downloaded ({'; '.join(errors)}){resume}. Check the network and the URL and run "
        f"the same command again{' later' if faults else ''}{stalled}, or pass --base-url with a mirror that holds "
        "the same file names."
    )


class _NetworkError(Exception):
    """Internal: a URL that cannot be fetched (HTTP error, unreachable host, retries exhausted);
    ``fault``: a fault of the network or the server (trying again later can succeed), not a
    wrong URL."""

    def __init__(self, message: str, fault: bool) -> None:
        super().__init__(message)
        self.fault = fault


def _http_fault(code: int) -> bool:
    """Whether an HTTP status is a transient fault of the server (408 Request Timeout, 429 Too
    Many Requests, 5xx; RFC 9110 section 15 and RFC 6585 section 4), not a wrong URL."""
    return code in (408, 429) or code >= 500


def _local_file_error(error: BaseException) -> bool:
    """Whether a failed ``file://`` request failed for the path itself (missing, a folder, no
    permission): a wrong URL, not a fault of the network."""
    cause = getattr(error, "reason", error)
    return isinstance(cause, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError))


_STALL = "no answer within"
_NO_PROGRESS = "no progress within"


class _Stalled(TimeoutError):
    """Internal: an attempt that :class:`_Watchdog` ended (a trickle, or headers too slow)."""


class _Watchdog:
    """Ends an HTTP attempt that makes no progress although bytes keep trickling in, which the
    per-read socket timeout never sees (each read waits less than ``timeout``).

    Progress is :data:`MIN_PROGRESS_BYTES` bytes of body (:meth:`count`) or the response headers
    complete (:meth:`progressed`). The attempt is cut (its socket shut down, so that the blocked
    read returns, and :attr:`stalled` set) when, ``timeout`` seconds after the last progress,
    a byte arrived within the last ``0.9 x timeout`` seconds (a trickle; a silent server is the
    socket timeout's, with its own message), or when the headers are not complete
    :data:`HEADERS_TIMEOUTS` x ``timeout`` seconds after the request (their bytes are read
    inside ``http.client``, out of sight). A context manager: the watching thread runs inside it.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stalled: _Stalled | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._mark = self._last = time.monotonic()
        self._pending = 0
        self._headers = False

    def __enter__(self) -> _Watchdog:
        threading.Thread(target=self._watch, name="hgbench-download-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()

    def attach(self, sock: socket.socket) -> None:
        """The connection's socket (what :meth:`_cut` shuts down)."""
        with self._lock:
            self._sock = sock

    def progressed(self) -> None:
        """The response headers are complete: progress."""
        self._headers, self._mark, self._pending = True, time.monotonic(), 0

    def count(self, n: int) -> None:
        """``n`` bytes of body arrived."""
        self._last = time.monotonic()
        self._pending += n
        if self._pending >= MIN_PROGRESS_BYTES:
            self._mark, self._pending = self._last, 0

    def _watch(self) -> None:
        while not self._done.wait(min(0.05, self.timeout / 10)):
            now = time.monotonic()
            if not self._headers and now - self._mark > HEADERS_TIMEOUTS * self.timeout:
                why = f"the response headers took longer than {HEADERS_TIMEOUTS * self.timeout:g} s"
            elif self._headers and now - self._mark > self.timeout and now - self._last < 0.9 * self.timeout:
                why = f"{self._pending:,} bytes in {now - self._mark:.0f} s: the server trickles"
            else:
                continue
            with self._lock:
                self.stalled = _Stalled(f"{_NO_PROGRESS} {self.timeout:g} s ({why})")
                if self._sock is not None:
                    try:
                        self._sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            return


def _watched_opener(watchdog: _Watchdog) -> urllib.request.OpenerDirector:
    """A ``urllib`` opener whose HTTP(S) connections hand their socket to ``watchdog``."""

    def watched(base: type) -> type:
        class Connection(base):
            def connect(self) -> None:
                super().connect()
                watchdog.attach(self.sock)

        return Connection

    http_conn, https_conn = watched(http.client.HTTPConnection), watched(http.client.HTTPSConnection)

    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(http_conn, req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(https_conn, req, context=self._context)

    return urllib.request.build_opener(HTTP, HTTPS)


def _reason(error: BaseException, timeout: float) -> str:
    """A short reason for a failed attempt; a timeout says how long was waited."""
    cause = getattr(error, "reason", error)  # URLError wraps the socket error
    if isinstance(error, _Stalled):
        return str(error)
    if isinstance(error, TimeoutError) or isinstance(cause, TimeoutError):
        return f"{_STALL} {timeout:g} s"
    return str(cause) if isinstance(error, urllib.error.URLError) else repr(error)


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _download_resumable(url: str, part: Path, archive: Archive, *, retries: int, timeout: float, emit: Event) -> None:
    """Bring ``part`` to the complete file, resuming it with ``Range`` requests.

    A failed attempt counts against ``retries`` unless it grew the ``.part`` beyond its
    largest size so far (:class:`_Attempts`), so the loop ends even against a server that never
    completes. One attempt: where to resume (:func:`_resume_point`), the request
    (:func:`_request`), the body (:func:`_transfer`), and whether that completed it (:func:`_settle`).

    Raises:
        _NetworkError: an HTTP error status, or more than ``retries`` failed attempts in a
        row without progress (unreachable host, dropped connection, or no answer within
        ``timeout`` seconds).
    """
    attempts = _Attempts(url, archive, emit)
    while True:
        have = _resume_point(part, archive, attempts, emit)
        if have is None:
            return  # a complete .part left by an earlier run: verification decides
        with _Watchdog(timeout) as watchdog:
            try:
                response = _request(url, have, timeout, watchdog)
            except urllib.error.HTTPError as e:
                if e.code == 416 and have:  # range not satisfiable: the .part is complete or wrong
                    if archive.size is None:
                        return  # nothing to compare with: verification decides
                    part.unlink()
                    continue
                raise _NetworkError(f"HTTP {e.code} {e.reason}", _http_fault(e.code)) from None
            except (urllib.error.URLError, OSError, HTTPException) as e:  # refused, reset, timed out, cut
                failures = attempts.fail()
                reason = _reason(watchdog.stalled or e, timeout)
                if failures > retries:
                    raise _NetworkError(
                        f"{reason}, {failures} attempt{'s' * (failures > 1)}", not _local_file_error(e)
                    ) from None
                attempts.wait(f"{url}: {reason}; attempt {failures + 1} of {retries + 1}")
                continue
            watchdog.progressed()
            with response:
                total, lost = _transfer(response, url, part, archive, have, emit, watchdog)
        if _settle(part, total, lost, attempts, retries=retries, timeout=timeout):
            return


@dataclass
class _Attempts:
    """Internal: the failed attempts at one URL in a row. ``best`` is the largest size the
    ``.part`` has had (-1: none yet); growing beyond it (:meth:`saw`) starts a fresh count."""

    url: str
    archive: Archive
    emit: Event
    failures: int = 0
    best: int = -1

    def grew(self, size: int) -> bool:
        """Whether a ``.part`` of ``size`` bytes is progress: none seen yet, or at least
        :data:`MIN_PROGRESS_BYTES` beyond the largest so far (a few trickled bytes are not)."""
        return self.best < 0 or size >= self.best + MIN_PROGRESS_BYTES

    def saw(self, size: int) -> None:
        """The ``.part`` has ``size`` bytes: progress since the last attempt (:meth:`grew`)
        resets the count."""
        if self.grew(size):
            self.failures, self.best = 0, size

    def forget(self) -> None:
        """The ``.part`` was deleted: any size from now on is progress."""
        self.best = -1

    def fail(self) -> int:
        """Count one more failed attempt; return the count."""
        self.failures += 1
        return self.failures

    def wait(self, reason: str) -> None:
        """Say why the next attempt comes (a ``retry`` event), then wait ``failures`` x
        :data:`RETRY_DELAY_S` seconds."""
        self.emit("retry", {"archive": self.archive, "reason": reason})
        time.sleep(RETRY_DELAY_S * self.failures)


def _resume_point(part: Path, archive: Archive, attempts: _Attempts, emit: Event) -> int | None:
    """The size of ``part`` to resume from (0: from the start), or None when it already has the
    catalogue's size (verification decides). A ``.part`` larger than the archive is deleted (a
    ``restart`` event)."""
    have = part.stat().st_size if part.exists() else 0
    attempts.saw(have)
    if archive.size is not None and have == archive.size:
        return None
    if archive.size is not None and have > archive.size:
        emit("restart", {"archive": archive, "reason": f"{part} is larger than the archive; starting again"})
        part.unlink()
        have = 0
        attempts.forget()
    return have


def _request(url: str, have: int, timeout: float, watchdog: _Watchdog):
    """Open ``url`` (``urllib``, its HTTP(S) connections watched by ``watchdog``), asking for the
    bytes from ``have`` on when ``have`` > 0.

    Raises:
        urllib.error.HTTPError, urllib.error.URLError, OSError, HTTPException: as ``urlopen``.
    """
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    return _watched_opener(watchdog).open(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(
    response, url: str, part: Path, archive: Archive, have: int, emit: Event, watchdog: _Watchdog
) -> tuple[int | None, BaseException | None]:
    """Append the body of ``response`` to ``part`` (or rewrite it when the server ignored the
    ``Range`` request: a ``restart`` event); return (the total size the server announced or
    None, the network error that cut the body short or None).

    Raises:
        _NetworkError: an unusable partial response, or a total size other than the catalogue's.
        NetworkFaultError: ``part`` cannot be written for a fault of the machine (:func:`_receive`).
    """
    total, mode = _response_range(response, have)
    if mode == "wb" and have:
        emit(
            "restart",
            {"archive": archive, "reason": "the server ignored the Range request; downloading from the start"},
        )
        have = 0
    if archive.size is not None and total is not None and total != archive.size:
        raise _NetworkError(
            f"the server announces {total:,} bytes, the catalogue {archive.size:,} for {archive.name}", False
        )
    emit(
        "start",
        {"archive": archive, "url": url, "total": total if total is not None else archive.size, "resumed_from": have},
    )
    return total, _receive(response, part, mode, archive, emit, watchdog)


def _settle(
    part: Path, total: int | None, lost: BaseException | None, attempts: _Attempts, *, retries: int, timeout: float
) -> bool:
    """Whether an attempt that ended with ``lost`` (see :func:`_transfer`) left ``part`` as long
    as the ``total`` the server announced. If not, count the failure and wait for the next
    attempt (False), or give up.

    Raises:
        _NetworkError: more than ``retries`` failed attempts in a row without progress.
    """
    if lost is not None:  # dropped connection, IncompleteRead, timeout
        failures = attempts.fail()
        reason = _reason(lost, timeout)
        if failures > retries and not attempts.grew(part.stat().st_size):
            raise _NetworkError(
                f"connection lost, {failures} attempts without progress (last: {reason})", True
            ) from None
        attempts.wait(f"{attempts.url}: connection lost ({reason}); resuming")
        return False
    got = part.stat().st_size
    if total is not None and got < total:  # closed early without an error
        failures = attempts.fail()
        if failures > retries and not attempts.grew(got):
            raise _NetworkError(
                f"the server closed the connection at {got:,} of {total:,} bytes {failures} times", True
            )
        attempts.wait(f"stream ended at {got:,} of {total:,} bytes; resuming")
        return False
    return True


def _receive(
    response, part: Path, mode: str, archive: Archive, emit: Event, watchdog: _Watchdog
) -> BaseException | None:
    """Write the body of ``response`` to ``part`` (opened with ``mode``); return the network
    error that ended it early (a dropped connection, an ``IncompleteRead``, a timeout, a trickle
    that ``watchdog`` cut), or None.

    Raises:
        NetworkFaultError: ``part`` cannot be written for a fault of the machine (disk full,
            read-only; :func:`hgbench.paths.is_machine_fault`); what was received is kept.
    """
    lost = None
    try:
        with open(part, mode) as f:
            while True:
                try:  # read1: what one socket read brings, so a stall loses nothing already received
                    chunk = response.read1(CHUNK)
                except (OSError, HTTPException) as e:
                    lost = e
                    break
                if not chunk:
                    break
                watchdog.count(len(chunk))
                f.write(chunk)
                emit("bytes", {"archive": archive, "n": len(chunk)})
            f.flush()
            os.fsync(f.fileno())
        if watchdog.stalled is not None and not isinstance(lost, TimeoutError):
            lost = watchdog.stalled  # the cut socket reads as a clean end or a reset: say why
    except OSError as e:
        if not is_machine_fault(e):
            raise
        raise NetworkFaultError(
            f"{part}: cannot be written ({e.strerror}); free space in that folder (or give another --to) and run the "
            "same command again: the bytes received so far are kept and resumed"
        ) from None
    return lost


def _response_range(response, have: int) -> tuple[int | None, str]:
    """(total size or None, file mode): ``"ab"`` to append a 206 that starts at ``have``, else ``"wb"``."""
    if have and response.status == 206:
        m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if m and int(m.group(1)) == have:
            return (None if m.group(3) == "*" else int(m.group(3))), "ab"
    length = response.headers.get("Content-Length")
    if response.status == 206:  # a range we did not ask for: unusable
        raise _NetworkError(
            f"unexpected partial response (Content-Range {response.headers.get('Content-Range')!r})", False
        )
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
        raise UnsafeArchiveError(
            f"{archive}: {what} {name!r} leaves the target folder ('..'); refusing to extract this archive"
        )
    target = root.joinpath(*parts)
    resolved, base = target.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafeArchiveError(
            f"{archive}: {what} {name!r} resolves outside the target folder; refusing to extract this archive"
        )
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
            raise UnsafeArchiveError(
                f"{archive}: link {member.name!r} points to the absolute path {member.linkname!r}; refusing"
            )
        # a symbolic link is relative to its folder, a hard link to the archive root; '..' may
        # appear in a link as long as the normalised target stays inside
        base = posixpath.dirname(member.name.replace("\\", "/")) if member.issym() else ""
        norm = posixpath.normpath(posixpath.join(base, link))
        if norm == ".." or norm.startswith("../"):
            raise UnsafeArchiveError(
                f"{archive}: link {member.name!r} -> {member.linkname!r} points outside the target folder; refusing"
            )
        _inside(root, norm, f"link {member.name!r} ->", archive)
    elif not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"{archive}: member {member.name!r} is a device file or FIFO; refusing to extract this archive"
        )
    return target


def check_zip_member(info: zipfile.ZipInfo, root: Path, archive: Path) -> Path:
    """Validate one zip member against ``root``; return its target path.

    Raises:
        UnsafeArchiveError: see :func:`_inside`; also symbolic links (Unix mode in the
        external attributes), which :mod:`zipfile` would write as plain files.
    """
    target = _inside(root, info.filename, "member", archive)
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(
            f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract this archive"
        )
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
            warnings.append(
                f"{archive.name}: expected {expect} in the archive, not found; the layout differs from the catalogue"
            )
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
    except OSError as e:
        if not is_machine_fault(e):
            raise
        raise _extract_fault(archive, staging, e) from e


def _extract_fault(archive: Path, staging: Path, error: OSError) -> NetworkFaultError:
    """The error of an extraction that a full or read-only disk stopped (the archive is fine)."""
    return NetworkFaultError(
        f"{error.filename or staging}: cannot be written while extracting {archive.name} ({error.strerror}); "
        "free space and run the same command again (the verified archive is reused)"
    )


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
        if is_machine_fault(e):
            raise _extract_fault(archive, staging, e) from e
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
    """Write the marker that says ``archive`` was verified and extracted under ``dest`` (atomically)."""
    body = {
        "archive": archive.name,
        "url": url,
        "size": archive.size,
        "md5": archive.md5,
        "sha256": archive.sha256,
        "verified": verified,
        "members": members,
        "extracted": utc_now(),
    }
    atomic_write_json(_marker_path(dest, archive), body, indent=1)


def _read_marker(dest: Path, archive: Archive) -> dict | None:
    """The marker of ``archive`` under ``dest`` if it matches the catalogue entry, else None."""
    path = _marker_path(dest, archive)
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = all(marker.get(k) == getattr(archive, k) for k in ("size", "md5", "sha256"))
    return marker if same and marker.get("archive") == archive.name else None
