"""Every on-disk rule of hgbench: where the registry's YAML files are, and where runs,
checkpoints, eval records, profile records, reports, caches and the latency gate's reference
live under a results folder.

Every name that becomes a path component goes through :func:`safe_component`, so nothing is
ever written outside the results folder the user gave.

Layout under a results folder (default ``results/``)::

    runs/<dataset>/<protocol>-<protocol hash>/<variant>-<spec hash>/
        train.json         the run record (written once the run is complete)
        checkpoint.pt      the training state (model, optimiser, RNG, position)
        eval-<dataset>-<split>-<metric>-t<threshold>[-noflip][-<artifact>][-d<data>].json   eval records of its checkpoint
    profile/<machine>/sweeps/<start time>.json      one sweep's record: what it profiled, where its time went
    profile/<machine>/<variant>__j<J>__<backend>[-<mode>]__<device>__<precision>[__tf32][__cl]__b<B>__s<S>.json
    report/                the default output of ``hgbench report``

A latency gate folder (``benchmarks/reference/latency-gate``, each attempt of ``hgbench
latency-check``) holds one machine's profile records by key stem: ``<folder>/<stem>.json``.

The hashes are the first 12 hex digits of :func:`hgbench.records.content_hash` of the
protocol and of the variant's spec, so a protocol or variant file changed under the same name
starts a new run instead of reusing the old one.

In a source checkout (``pip install -e .``) the registry is the repository's ``variants/``
folder; a wheel carries a copy as ``hgbench/_builtin_variants``. ``HGBENCH_VARIANTS_DIR``
overrides both (a user's own registry).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

DEFAULT_RESULTS_DIR = Path("results")
LATENCY_GATE_DIR = Path("benchmarks/reference/latency-gate")
"""The CI latency gate's committed reference records (relative to the repository root, where ``.ci/run`` runs)."""
TRAIN_RECORD = "train.json"
CHECKPOINT = "checkpoint.pt"
REPORT_DIR = "report"
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class UnsafePathError(ValueError):
    """A name that would leave the results folder (or is not a plain file name)."""


MACHINE_FAULT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
"""``OSError.errno`` values that are faults of the machine, not of the input: a full disk or
quota, a read-only or unwritable folder, an I/O error. The command line exits 1 on them
(:func:`hgbench.console.user_errors`), and ``train-all`` ends only the run that met one
(:func:`hgbench.train.launch.train_local`)."""


class MachineFaultError(OSError):
    """A fault of the machine or the network, not of the input (a folder that cannot be
    written, a download that stalled or was refused): the message is one line naming the file
    or URL and the fix, and the command line exits 1. An ``OSError``, so that code catching
    the operating system's own faults catches these too."""


def is_machine_fault(error: BaseException) -> bool:
    """Whether ``error`` is a fault of the machine: a :class:`MachineFaultError`, or an
    ``OSError`` whose ``errno`` is in :data:`MACHINE_FAULT_ERRNOS`."""
    return isinstance(error, MachineFaultError) or (isinstance(error, OSError) and error.errno in MACHINE_FAULT_ERRNOS)


@functools.lru_cache(maxsize=8)
def source_digest(*sources: str) -> str:
    """SHA-256 (hex) of hgbench's own source files ``sources`` (paths relative to the package: a
    folder stands for every ``*.py`` under it), each hashed as its package-relative path, a NUL
    byte and its bytes, in sorted order; read once per process. In the keys of what the code
    computes and a cache keeps (complexity counts, traced and exported artefacts), so that a
    change of that code computes anew instead of reading the old result."""
    digest = hashlib.sha256()
    for rel in sources:
        root = _PACKAGE / rel
        for f in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            digest.update(f.relative_to(_PACKAGE).as_posix().encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def variants_dir() -> Path:
    """Folder holding ``*.yaml`` variants and ``protocols/*.yaml``.

    Raises:
        FileNotFoundError: none of the candidate folders exists.
    """
    env = os.environ.get("HGBENCH_VARIANTS_DIR")
    candidates = [Path(env)] if env else [_PACKAGE.parent / "variants", _PACKAGE / "_builtin_variants"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"no variants folder found (looked in {', '.join(map(str, candidates))}); set HGBENCH_VARIANTS_DIR"
    )


def protocols_dir() -> Path:
    """Folder holding the protocol YAML files (``<variants>/protocols``)."""
    return variants_dir() / "protocols"


def safe_component(name: str, what: str) -> str:
    """``name`` if it is a plain path component: letters, digits, ``. _ + -``, starting with a
    letter or digit, at most 128 characters (so no ``..``, ``/``, ``\\`` or hidden files).

    Raises:
        UnsafePathError: naming ``what`` (e.g. "protocol name") and the value.
    """
    if not isinstance(name, str) or not _SAFE.fullmatch(name):
        shown = repr(name)[:60]
        raise UnsafePathError(
            f"{what} {shown} cannot be a folder or file name under --results; "
            "use letters, digits, '.', '_', '+', '-' (starting with a letter or digit)"
        )
    return name


def run_dir(results_dir: Path, dataset: str, protocol: str, protocol_hash: str, variant: str, spec_hash: str) -> Path:
    """Folder of one training run:
    ``<results>/runs/<dataset>/<protocol>-<protocol_hash>/<variant>-<spec_hash>``.

    Raises:
        UnsafePathError: a name or hash that is not a plain path component.
    """
    parts = [
        safe_component(dataset, "dataset name"),
        safe_component(f"{protocol}-{protocol_hash}", "protocol name"),
        safe_component(f"{variant}-{spec_hash}", "variant name"),
    ]
    return runs_dir(results_dir) / Path(*parts)


def runs_dir(results_dir: Path) -> Path:
    """``<results>/runs``: the training runs of a results folder (:func:`run_dir`)."""
    return Path(results_dir) / "runs"


def run_folders(results_dir: Path) -> list[Path]:
    """Every run folder under ``results_dir`` (at :func:`run_dir`'s depth, hidden names left
    out), sorted; none when ``<results>/runs`` does not exist. Symbolic links to folders are
    followed (``runs/`` itself or a level below it may be a link), as :func:`walk` does for the
    records store."""
    return sorted(p for p in runs_dir(results_dir).glob("*/*/*") if p.is_dir() and not p.name.startswith("."))


def walk(folder: Path) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(folder)`` (top-down: a caller may prune ``dirs`` in place) that follows symbolic
    links to folders, as :func:`run_folders`' glob does, so that every reader of a results folder
    sees the same runs and records whether ``runs/`` (or a folder below it) is a link or not.
    Each real folder is visited once (a link back to a folder above ends there, no loop)."""
    seen: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        yield root, dirs, files


def run_names(folder: Path) -> tuple[str, str, str]:
    """``(dataset, protocol, variant)`` of a :func:`run_dir` folder, from its path (for a folder
    whose files do not say: a reader asks its record or checkpoint first)."""
    folder = Path(folder)
    return folder.parent.parent.name, folder.parent.name.rsplit("-", 1)[0], folder.name.rsplit("-", 1)[0]


def eval_record_path(
    run_folder: Path,
    dataset: str,
    split: str,
    metric: str,
    threshold: float,
    flip_test: bool,
    artifact: str | None = None,
    data: str | None = None,
) -> Path:
    """The eval record of a run's checkpoint:
    ``<run>/eval-<dataset>-<split>-<metric>-t<threshold>[-noflip][-<artifact>][-d<data>].json``,
    where ``artifact`` names a deployed artifact of it (``onnxruntime-int8-b8``,
    :func:`hgbench.accuracy.deployed.artifact_name`); None (the checkpoint itself, also eager
    fp32) keeps the plain name. ``data`` tells apart the evaluations of one setting on other
    data (the first 8 hex digits of a :mod:`hgbench.data.fingerprint` digest; which data keeps
    the name without it: :func:`hgbench.train.evaluation.eval_record_file`).

    Raises:
        UnsafePathError: a dataset, split, metric or artifact name that is not a plain file name.
    """
    stem = f"eval-{dataset}-{split}-{metric}-t{threshold:g}{'' if flip_test else '-noflip'}{'' if artifact is None else '-' + artifact}"
    stem += "" if data is None else f"-d{data[:8]}"
    return Path(run_folder) / f"{safe_component(stem, 'dataset or split name')}.json"


def profile_record_path(results_dir: Path, machine: str, stem: str) -> Path:
    """A profile record in a results folder: ``<results>/profile/<machine>/<stem>.json`` (``machine``
    is the machine label, :func:`hgbench.records.schema.machine_label`; ``stem`` the record key's
    file stem, :meth:`hgbench.records.RecordKey.stem`).

    Raises:
        UnsafePathError: a machine label or stem that is not a plain file name.
    """
    return latency_gate_record_path(Path(results_dir) / "profile" / safe_component(machine, "machine label"), stem)


def sweep_record_path(results_dir: Path, machine: str, started: str) -> Path:
    """A sweep record (:class:`hgbench.records.SweepRecord`): ``<results>/profile/<machine>/sweeps/<started>.json``,
    ``started`` being the sweep's UTC start time in ISO 8601 (``:`` and ``+`` become ``-``).

    Raises:
        UnsafePathError: a machine label that is not a plain file name.
    """
    stem = started.replace(":", "-").replace("+", "-")
    folder = Path(results_dir) / "profile" / safe_component(machine, "machine label") / "sweeps"
    return folder / f"{safe_component(stem, 'start time')}.json"


def latency_gate_record_path(folder: Path, stem: str) -> Path:
    """A latency gate record (:mod:`hgbench.profile.gate`): ``<folder>/<stem>.json``, no host
    level (a gate folder, e.g. :data:`LATENCY_GATE_DIR`, is one machine's set); the file name of
    :func:`profile_record_path` too.

    Raises:
        UnsafePathError: a stem that is not a plain file name.
    """
    return Path(folder) / f"{safe_component(stem, 'record key')}.json"


def report_dir(results_dir: Path) -> Path:
    """Default output folder of ``hgbench report``: ``<results>/report``."""
    return Path(results_dir) / REPORT_DIR


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves to a place inside ``root`` (symbolic links followed)."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return False
    return True


def check_writable_folder(folder: Path, option: str = "--results") -> Path:
    """Check, before any work, that ``folder`` is (or can be made) a writable folder: create it,
    then create and remove a temporary file in it.

    Raises:
        NotADirectoryError: ``folder`` (or a parent) is a file; MachineFaultError: it cannot be
            written (read-only, full, no permission; ``errno`` kept); ValueError: another
            failure (a name too long); each message names ``option``, the folder and the fix.
    """
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            f"{option} {folder}: is a file, not a folder; pass a folder (it is created if missing)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".hgbench-write-check-"):
            pass
    except FileExistsError:
        raise NotADirectoryError(f"{option} {folder}: a parent is a file, not a folder; pass another folder") from None
    except OSError as e:
        if e.errno not in MACHINE_FAULT_ERRNOS:  # e.g. a name too long: the path given is wrong
            raise ValueError(
                f"{option} {folder}: cannot be made a folder ({e.strerror}); pass another folder"
            ) from None
        what = "is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot be written"
        raise MachineFaultError(
            e.errno, f"{option} {folder}: {what} ({e.strerror}); free space or pass a writable folder"
        ) from None
    return folder


def check_writable_file(path: Path, option: str, example: str = "out.json") -> Path:
    """Check, before any work, that a file can be written at ``path``: not a folder, in a folder
    that is (or can be made) writable (:func:`check_writable_folder` of its parent, created if
    missing). An existing file is not touched (it is replaced atomically once the work is done).

    Raises:
        ValueError: ``path`` is a folder (the message suggests ``<path>/<example>``);
            NotADirectoryError, MachineFaultError, ValueError: as :func:`check_writable_folder`
            for the parent; each message names ``option``.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; give a file name, e.g. {option} {path / example}")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"{option} {path}: {parent} is a file, not a folder; give another file name")
    check_writable_folder(parent, option)
    return path
