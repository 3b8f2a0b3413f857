"""The records store: atomic writes, one reader for one file, one scan for folders.

Every write goes through :func:`hgbench.fileio.atomic_write_json` (a temporary file in the
same folder and ``os.replace``), so an interrupted command never leaves a half-written record and
never clobbers a complete one; a record written by a newer hgbench is never replaced
(:class:`NewerSchemaError`). Reading applies the schema rule of :mod:`hgbench.records.schema` and
returns typed records; :func:`scan` is the only way hgbench reads a folder of records, and says
what it skipped and why.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hgbench.fileio import atomic_write_json, utc_now
from hgbench.paths import walk
from hgbench.records.schema import (
    InvalidRecordError,
    NewerSchemaError,
    Record,
    RecordError,
    RecordKey,
    check_schema,
    new_record,
    parse_record,
)


def refuse_newer(path: Path) -> None:
    """Raise :class:`NewerSchemaError` if ``path`` holds a record of a newer schema (so that no
    writer replaces it); anything else (no file, an older or unreadable record) passes."""
    path = Path(path)
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return
    try:
        check_schema(data, str(path))
    except NewerSchemaError:
        raise
    except RecordError:
        return


def write_record(path: Path, kind: str, body: dict[str, Any], provenance: dict | None = None) -> Record:
    """Validate ``body`` as a record of ``kind`` (``schema`` and ``created`` added) and write it
    atomically to ``path``; return the typed record (its ``path`` set).

    Raises:
        NewerSchemaError: ``path`` holds a record written by a newer hgbench (left unchanged).
        RecordError: ``body`` lacks a field of its kind (a writer's bug), or holds a value its
            readers would refuse (:class:`InvalidRecordError`, naming ``path``; nothing written).
        OSError: the file cannot be written (the old one is unchanged).
    """
    path = Path(path)
    refuse_newer(path)
    record = new_record(kind, body, utc_now(), provenance, where=str(path))  # type: ignore[arg-type]
    atomic_write_json(path, record.to_dict(), indent=1, default=_json_default)
    record._path = str(path)
    return record


def read_record(path: Path) -> Record:
    """Read one record file through the schema rule.

    Raises:
        RecordError: the file is not readable JSON, or the schema rule refuses it (the message
            names the file and what to do; :class:`NewerSchemaError` for a newer hgbench's).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RecordError(f"{path}: not a readable JSON record ({reason})") from e
    record = parse_record(data, str(path))
    record._path = str(path)
    return record


@dataclass
class ScanResult:
    """What :func:`scan` found: the records (newest of each key, in key order), the files it
    left out with the reason, and how many files it looked at. ``invalid`` are the skipped files
    of the wanted kinds whose values break a rule of :mod:`hgbench.records.validation`
    (:class:`InvalidRecordError`; also in ``skipped``): a reader that must not go on without
    them (``hgbench compare``) refuses them."""

    records: list[Record] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Record]:
        """The records of one kind."""
        return [r for r in self.records if r.kind == kind]

    def by_key(self) -> dict[RecordKey, Record]:
        """The records by their key."""
        return {r.key(): r for r in self.records}


def record_files(paths: Sequence[str | Path]) -> list[Path]:
    """Every ``*.json`` file under ``paths`` (folders searched recursively, hidden folders and
    files excepted; a file given directly is taken as is), each once, in path order.

    Raises:
        FileNotFoundError: one of ``paths`` does not exist.
    """
    seen: dict[str, Path] = {}
    paths = [Path(p) for p in paths]
    # a file reachable through two of several folders is read once (resolving costs a system call per file)
    ident = os.path.realpath if len(paths) > 1 else str
    for p in paths:
        if p.is_file():
            seen.setdefault(ident(p), p)
            continue
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no such results folder or record file")
        for root, dirs, files in walk(p):  # links to folders followed, as every reader of runs does
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.endswith(".json") and not name.startswith("."):
                    f = Path(root) / name
                    seen.setdefault(ident(f), f)
    return sorted(seen.values())


def scan(
    paths: Sequence[str | Path] | str | Path, kinds: Iterable[str] | None = None, *, dedupe: bool = True
) -> ScanResult:
    """Read every record under ``paths`` (see :func:`record_files`): the one reader of
    hgbench's records.

    A file that cannot be read or that the schema rule or the value rules refuse is in
    ``skipped`` with the reason (the value rules' refusals of the wanted kinds also in
    ``invalid``); records of other ``kinds`` are left out silently; with ``dedupe``, of two records
    with the same :class:`RecordKey` the older (by ``created``) is in ``skipped`` as superseded.

    Raises:
        FileNotFoundError: one of ``paths`` does not exist.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    wanted = set(kinds) if kinds is not None else None
    result = ScanResult()
    files = record_files(paths)
    result.files = len(files)
    newest: dict[RecordKey, Record] = {}
    for f in files:
        try:
            rec = read_record(f)
        except InvalidRecordError as e:
            result.skipped.append((str(f), _reason(str(e), f)))
            if wanted is None or _kind_of(f) in wanted:
                result.invalid.append(result.skipped[-1])
            continue
        except RecordError as e:
            result.skipped.append((str(f), _reason(str(e), f)))
            continue
        if wanted is not None and rec.kind not in wanted:
            continue
        if not dedupe:
            result.records.append(rec)
            continue
        key = rec.key()
        old = newest.get(key)
        if old is None:
            newest[key] = rec
            continue
        newer, older = (rec, old) if (rec.created or "") >= (old.created or "") else (old, rec)
        newest[key] = newer
        result.skipped.append(
            (str(older.path), f"superseded by the newer record {newer.path} of the same {rec.kind} key")
        )
    if dedupe:
        result.records = [newest[k] for k in sorted(newest, key=RecordKey.sort_key)]
    return result


def _kind_of(path: Path) -> str | None:
    """The ``kind`` of the record file ``path`` (read again: only for refused files), or None."""
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def _reason(message: str, path: Path) -> str:
    """The reason of a refusal without the leading file name (the skipped list names it)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def repetition_range_pct(latency_ms: dict[str, Any]) -> float | None:
    """How far a record's repetitions disagreed: ``(max - min) / p50`` of ``repetition_p50_ms``
    over the pooled median, in %; ``None`` with fewer than two repetitions (or a record written
    before repetitions existed)."""
    reps = latency_ms.get("repetition_p50_ms") or []
    p50 = latency_ms.get("p50_ms")
    return 100 * (max(reps) - min(reps)) / p50 if len(reps) > 1 and p50 else None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
