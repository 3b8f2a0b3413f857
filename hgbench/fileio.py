"""Atomic file writes and time stamps: the bottom layer every hgbench module may use.

A write goes to a temporary file in the destination's folder (named ``.<name>.<random>.tmp``),
is flushed and ``fsync``-ed, then renamed over the destination with ``os.replace`` (atomic on
POSIX and Windows when both names are on one file system, hence the same folder). A reader sees
either the old file or the complete new one; an interrupted write leaves no half-written file,
and a failed one leaves no temporary file. This module imports nothing from hgbench.

**No write through a link.** A destination that is a symbolic link is refused
(:class:`LinkedFileError`) instead of being replaced: in a results folder that others can write,
a link planted where hgbench writes must neither redirect the write nor vanish unseen. The
temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` (``tempfile.mkstemp``'s flags),
so it can never be a link either. Folders above the destination may be links (a results or
``runs`` folder moved to another disk and linked back): only the file's own name is checked.

**Errors name the file.** An ``OSError`` of a write (a full disk meets ``write`` or ``fsync``,
which say no file name) is raised again with the destination as its ``filename``, so every
message says which file could not be written.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "TMP_SUFFIX",
    "LinkedFileError",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "refuse_link",
    "utc_now",
]

TMP_SUFFIX = ".tmp"
"""Suffix of the temporary file of a write in progress (``.<name>.<random>.tmp`` beside the
destination); a process killed mid-write leaves one, which its owner may glob and delete."""


class LinkedFileError(ValueError):
    """A file hgbench would write (or lock) is a symbolic link; the message names the file, where
    the link points and the fix (the command line exits with status 2)."""


def refuse_link(path: str | Path, what: str = "file") -> None:
    """Raise :class:`LinkedFileError` when ``path`` itself is a symbolic link (folders above it
    may be links); anything else, including no file, passes.

    Raises:
        LinkedFileError: naming ``path`` (``what`` says what it is, e.g. "lock file"), the
            link's target and the fix (remove the link).
    """
    path = Path(path)
    if not path.is_symlink():
        return
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    raise LinkedFileError(
        f"{path}: this {what} is a symbolic link (to {target}); hgbench never writes through a link: "
        f"remove the link (rm {path}) and run the command again"
    )


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds and offset (``2026-01-31T12:00:00+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers see either the old file or the complete new one, never a partial write. Missing
    parent folders are created; the new file gets the usual mode (``0o666`` less the umask).

    Raises:
        LinkedFileError: ``path`` is a symbolic link (:func:`refuse_link`; nothing is written).
        OSError: the folder cannot be created or written (disk full, read-only, a file in the
            way), or ``path`` is a folder (``IsADirectoryError`` naming it, before anything is
            written); its ``filename`` is ``path`` (or the folder that could not be made); the
            old file, if any, is unchanged and no temporary file is left.
    """
    path = Path(path)
    refuse_link(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # mkstemp opens with O_CREAT | O_EXCL | O_NOFOLLOW: the temporary file is new, never a link
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        refuse_link(path)  # a link planted while the file was written is not replaced either
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise OSError(e.errno, e.strerror, str(path)) from e  # write and fsync name no file
        raise


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` (encoded with ``encoding``) atomically to ``path``; see :func:`atomic_write_bytes`.

    Raises:
        OSError: as :func:`atomic_write_bytes`.
        UnicodeEncodeError: ``text`` cannot be encoded (nothing is written).
    """
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 1,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """Write ``obj`` as JSON (``json.dumps`` with ``indent``, ``sort_keys``, ``default``) and a
    final newline, atomically to ``path``; see :func:`atomic_write_bytes`.

    Raises:
        TypeError, ValueError: ``obj`` is not JSON-serialisable (nothing is written).
        OSError: as :func:`atomic_write_bytes`.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    atomic_write_bytes(path, text.encode())


def _umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
