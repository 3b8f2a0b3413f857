"""The run record and the results store.

One JSON file per run, written atomically (temporary file in the same folder, then
``os.replace``), so that an interrupted run never leaves a half-written record and never
clobbers a complete one. Every record carries ``schema`` (the record layout's version),
``kind`` (``"train"``, ``"profile"`` or ``"eval"``), ``created`` (UTC, ISO 8601) and
``provenance`` (see :func:`hgbench.provenance.collect_provenance`).

Layout under a results folder (default ``results/``)::

    runs/<dataset>/<protocol>/<variant>/train.json      training record
    runs/<dataset>/<protocol>/<variant>/checkpoint.pt   weights of the last epoch
    profile/<host>/<variant>__j<J>__<backend>[-<mode>]__<device>__<precision>[__tf32][__cl]__b<B>__s<S>.json   cost record

Schema history: ``hgbench.record/2`` changed the ``"profile"`` record (precisions, layouts,
percentiles, FLOPs, roofline, calibration, numerics: see
:func:`hgbench.profile.run.profile_model`). Training and evaluation records did not change, so records
of schema 1 of those kinds are still read; a schema-1 profile record is refused with the
reason ``schema hgbench.record/1: re-run hgbench profile``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = "hgbench.record/2"
OLD_SCHEMAS_STILL_READ = {"hgbench.record/1": ("train", "eval")}
"""Older schema -> the record kinds whose layout it shares with :data:`SCHEMA`."""
DEFAULT_RESULTS_DIR = Path("results")


class RecordError(ValueError):
    """A record file that cannot be read or does not follow the schema."""


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_record(path: Path, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Write one record (``schema``, ``kind``, ``created`` added) atomically; return it, with
    ``_path`` (where it was written, as :func:`read_record` adds) set."""
    record = {"schema": SCHEMA, "kind": kind, "created": utc_now(), **body}
    atomic_write_bytes(Path(path), (json.dumps(record, indent=1, default=_json_default) + "\n").encode())
    return {**record, "_path": str(path)}


def read_record(path: Path) -> dict[str, Any]:
    """Read one record.

    Records of an older schema are read only for the kinds whose layout did not change
    (:data:`OLD_SCHEMAS_STILL_READ`).

    Raises:
        RecordError: the file is not JSON, or its ``schema`` is neither :data:`SCHEMA` nor an
            older one still read for its kind; the message says what to do (for a schema-1
            profile record: ``schema hgbench.record/1: re-run hgbench profile``).
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise RecordError(f"{path}: not a readable JSON record ({e})") from e
    if not isinstance(record, dict):
        raise RecordError(f"{path}: field 'schema' is {type(record).__name__!r}, expected {SCHEMA!r}")
    schema, kind = record.get("schema"), record.get("kind")
    if schema != SCHEMA and kind not in OLD_SCHEMAS_STILL_READ.get(schema, ()):
        if schema in OLD_SCHEMAS_STILL_READ and kind == "profile":
            raise RecordError(f"{path}: schema {schema}: re-run hgbench profile")
        raise RecordError(f"{path}: field 'schema' is {schema!r}, expected {SCHEMA!r}")
    record["_path"] = str(path)
    return record


def iter_records(results_dir: Path, kind: str | None = None) -> Iterator[tuple[Path, dict | RecordError]]:
    """Yield ``(path, record)`` for every ``*.json`` under ``results_dir``, or
    ``(path, RecordError)`` for a file that is not a valid record (the caller reports it)."""
    for path in sorted(Path(results_dir).rglob("*.json")):
        try:
            rec = read_record(path)
        except RecordError as e:
            yield path, e
            continue
        if kind is None or rec.get("kind") == kind:
            yield path, rec


def repetition_range_pct(latency_ms: dict[str, Any]) -> float | None:
    """How far a record's repetitions disagreed: ``(max - min) / p50`` of ``repetition_p50_ms``
    over the pooled median, in %; ``None`` with fewer than two repetitions (or a record written
    before repetitions existed)."""
    reps = latency_ms.get("repetition_p50_ms") or []
    p50 = latency_ms.get("p50_ms")
    return 100 * (max(reps) - min(reps)) / p50 if len(reps) > 1 and p50 else None


def run_dir(results_dir: Path, dataset: str, protocol: str, variant: str) -> Path:
    """Folder of one training run: ``<results>/runs/<dataset>/<protocol>/<variant>``."""
    return Path(results_dir) / "runs" / dataset / protocol / variant


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
