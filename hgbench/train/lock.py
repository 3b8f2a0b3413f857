"""One owner per run folder: an exclusive lock on ``<run>/.lock`` while a process trains the run.

The lock is ``fcntl.flock`` (advisory, exclusive, taken without blocking): the kernel releases it
when the owner exits, however it exits (return, exception, SIGKILL, out-of-memory kill), so a
lock can never be stale. A ``.lock`` file left behind by a dead process is only a file: the next
``train`` of the run takes it over. The file holds the owner's pid, host and start time (one JSON
line), which the message of a second ``train`` of the same run names.

The file is never deleted: deleting it would let two processes lock two different files of one
name (one holding the old, unlinked file, the other a new one). Its contents are cleared when
the owner releases it.

The file is opened with ``O_NOFOLLOW``: a ``.lock`` that is a symbolic link (planted in a shared
results folder to make ``train`` empty the file it points to) is refused with
:class:`hgbench.fileio.LinkedFileError` (the CLI exits with status 2), never opened, written or
truncated; :func:`lock_owner` sees nobody holding such a lock.

Within one process the lock is re-entrant: the launcher of a Slurm job and the engine may both
take it around the same run (a second ``flock`` by the same process on another descriptor would
otherwise refuse the process itself).

Across machines: on NFS (v4, or v3 with lockd) Linux implements ``flock`` with a lock held by the
server, so two hosts sharing a results folder exclude each other too. A file system without
locks (some Lustre mounts lack ``-o flock``) makes ``flock`` fail with ``ENOLCK`` or
``EOPNOTSUPP``: the run then trains unlocked, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from hgbench.fileio import LinkedFileError, refuse_link

LOCK_FILE = ".lock"
"""Name of the lock file in a run folder (hidden, so the record scan never reads it)."""
WAIT_S = 2.0
"""How long :func:`run_lock` retries a lock that is taken before giving up, seconds: long enough
to ride out a probe of ``hgbench runs`` (:func:`lock_owner` holds the lock for microseconds)."""
_POLL_S = 0.05

_held: dict[Path, list] = {}  # lock path -> [descriptor, count] of the locks this process holds
_held_guard = threading.Lock()


class RunLockedError(ValueError):
    """Another process trains this run now. ``path`` is the lock file; ``owner`` what it holds
    (``pid``, ``host``, ``started``; empty when unreadable). The CLI exits with status 2."""

    def __init__(self, path: Path, owner: dict) -> None:
        self.path, self.owner = Path(path), owner
        pid, host = owner.get("pid"), owner.get("host")
        who = f"pid {pid} on {host}" if pid is not None else "another process (pid unknown)"
        since = f" since {owner['started']}" if owner.get("started") else ""
        if pid is not None and host == socket.gethostname():
            fix = f"wait for it to finish, or stop it (kill {pid}) and run the command again to resume"
        else:
            fix = "wait for it to finish, or stop it and run the command again to resume"
        super().__init__(
            f"{self.path.parent}: this run is being trained by {who}{since} (lock {self.path} is taken); {fix}"
        )


def _read_owner(fd: int) -> dict:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        owner = json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _lock_path(run_folder: str | Path) -> Path:
    """The run folder's lock file: the folder resolved (it may be reached through links), the
    file's own name kept (never resolved: a link there is refused, not followed)."""
    return Path(run_folder).resolve() / LOCK_FILE


def _open_lock(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_NOFOLLOW)``, a link refused by name.

    Raises:
        LinkedFileError: ``path`` is a symbolic link (:func:`hgbench.fileio.refuse_link`).
        OSError: as ``os.open``.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_link(path, "lock file")
        raise


def _try_flock(fd: int) -> bool:
    """Take the exclusive lock without blocking: True when taken, False when another holds it.

    Raises:
        OSError: ``flock`` is not supported here (``ENOLCK``, ``EOPNOTSUPP``) or failed otherwise.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


@contextmanager
def run_lock(run_folder: str | Path, wait_s: float = WAIT_S) -> Iterator[Path]:
    """Hold the run folder's lock while the block runs (the folder is created if missing).

    Args:
        run_folder: the run folder (:func:`hgbench.train.run_folder`).
        wait_s: retry a taken lock for this many seconds before raising.

    Yields:
        The lock file's path.

    Raises:
        RunLockedError: another live process holds the lock; the message names the lock file,
            the owner's pid and host, and the fix.
        LinkedFileError: the lock file is a symbolic link (module docstring).
    """
    path = _lock_path(run_folder)
    with _held_guard:
        if path in _held:  # re-entrant within this process
            _held[path][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield path
        finally:
            with _held_guard:
                _held[path][1] -= 1
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_lock(path, os.O_RDWR | os.O_CREAT)
    locked = False
    try:
        try:
            deadline = time.monotonic() + wait_s
            while not (locked := _try_flock(fd)):
                if time.monotonic() >= deadline:
                    owner = _read_owner(fd)
                    raise RunLockedError(path, owner)
                time.sleep(_POLL_S)
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            warnings.warn(
                f"{path}: this file system has no file locks ({os.strerror(e.errno)}); training the run "
                "without a lock (two trainings of the same run at once would not be refused)",
                stacklevel=3,
            )
        if locked:
            owner = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        with _held_guard:
            _held[path] = [fd, 1]
        try:
            yield path
        finally:
            with _held_guard:
                del _held[path]
            if locked:
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def lock_owner(run_folder: str | Path) -> dict | None:
    """Who holds the run folder's lock now: ``{"pid", "host", "started"}`` (possibly empty when
    the file is unreadable), or None when nobody does (no lock file, or a free one).

    A probe: it takes the lock for an instant when it is free (a ``train`` starting in that
    instant waits for it, :data:`WAIT_S`). A lock this process holds is reported as held. A lock
    file that is a symbolic link is never opened: nobody can hold it (:func:`run_lock` refuses it).
    """
    path = _lock_path(run_folder)
    with _held_guard:
        if path in _held:
            return _read_owner(_held[path][0])
    try:
        fd = _open_lock(path, os.O_RDWR)  # NFS implements flock as a POSIX lock: exclusive needs write access
        mode = fcntl.LOCK_EX
    except PermissionError:  # another user's run: a shared lock conflicts with the owner's exclusive one too
        fd, mode = _open_lock(path, os.O_RDONLY), fcntl.LOCK_SH
    except (FileNotFoundError, LinkedFileError):
        return None
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            free = True
        except BlockingIOError:
            free = False
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                return None  # no locks on this file system: nobody can be seen holding one
            free = False
        if free:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _read_owner(fd)
    finally:
        os.close(fd)
