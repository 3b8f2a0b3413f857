"""What a data folder holds and lacks, per dataset, as its loader sees it.

The knowledge of which files a dataset needs lives in its loader: each loader module has a
``required_files(root, split)`` (:func:`hgbench.data.lsp.required_files`,
:func:`hgbench.data.mpii.required_files`, :func:`hgbench.data.coco.required_files`) that
returns the annotation file it reads and every image that file names. :func:`check` only
asks, looks which of those files exist, and reports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from hgbench.data.base import DatasetError, image_problem
from hgbench.data.download.catalogue import CATALOGUE, dataset_entry

#: The splits :func:`check` asks each loader about, and whether each is required. COCO's
#: train split is optional because its images (train2017.zip, 19 GB) are fetched only with
#: ``--all``; the LSP loaders read one file for every split ("all").
CHECKED_SPLITS: dict[str, tuple[tuple[str, bool], ...]] = {
    "mpii": (("train", True), ("val", True)),
    "lsp": (("all", True),),
    "lspet": (("all", True),),
    "coco": (("val", True), ("train", False)),
}


@dataclass
class CheckRow:
    """One requirement of a loader: ``status`` is ``ok``, ``missing``, ``incomplete`` or
    ``optional`` (absent but not needed)."""

    item: str
    status: str
    detail: str


@dataclass
class DatasetCheck:
    """What :func:`check` found for one dataset under ``root``.

    Attributes:
        present: ``root`` holds anything (hidden files such as extraction markers aside).
    """

    dataset: str
    root: Path
    rows: list[CheckRow]
    present: bool

    @property
    def complete(self) -> bool:
        """Every row is ``ok`` or ``optional``."""
        return all(r.status in ("ok", "optional") for r in self.rows)


def _required_files(dataset: str) -> Callable[[Path, str], list[Path]]:
    """The loader's ``required_files`` for ``dataset`` (imported on use: the loaders pull in
    scipy, h5py and pycocotools)."""
    if dataset in ("lsp", "lspet"):
        from hgbench.data.lsp import required_files
    elif dataset == "mpii":
        from hgbench.data.mpii import required_files
    elif dataset == "coco":
        from hgbench.data.coco import required_files
    else:
        raise ValueError(f"dataset {dataset!r} has no loader that check knows; known: {', '.join(CHECKED_SPLITS)}")
    return required_files


def check(data_dir: str | Path, datasets: Iterable[str] | None = None) -> list[DatasetCheck]:
    """Report which of the files each loader needs are present under ``data_dir``.

    Each dataset is looked for in ``data_dir/<name>`` (the layout of
    :mod:`hgbench.data.download.catalogue`). For every split of :data:`CHECKED_SPLITS` the
    loader's ``required_files`` names the annotation file and the images it lists; the rows
    are one per annotation file (``missing`` when absent, ``incomplete`` when the loader
    cannot read it) and one per image folder (``ok``, ``incomplete`` with a missing example or
    with files that are not images, ``missing``; ``optional`` where only an optional split
    needs it and none is there). Every image present is opened and its first and last bytes
    checked (:func:`hgbench.data.base.image_problem`), not decoded.

    Args:
        datasets: names to check (default: all of :data:`~hgbench.data.download.catalogue.CATALOGUE`).

    Raises:
        FileNotFoundError: ``data_dir`` is not a folder.
        ValueError: unknown dataset name.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: no such folder; pass the folder given to `hgbench data download --to`")
    names = list(datasets) if datasets else list(CATALOGUE)
    for name in names:
        dataset_entry(name)
    return [_check_dataset(name, data_dir / name) for name in names]


def _check_dataset(dataset: str, root: Path) -> DatasetCheck:
    required_files = _required_files(dataset)
    rows: list[CheckRow] = []
    folders: dict[Path, tuple[set[str], bool]] = {}  # image folder -> (names wanted, needed by a required split)
    for split, required in CHECKED_SPLITS[dataset]:
        try:
            files = required_files(root, split)
        except DatasetError as e:
            rows.append(CheckRow(f"annotations ({split})", "incomplete", f"unreadable: {e}"))
            continue
        annotation, images = files[0], files[1:]
        label = _relative(annotation, root)
        if not annotation.is_file():
            if required:
                rows.append(CheckRow(label, "missing", f"{annotation} not found ({split})"))
            else:
                rows.append(CheckRow(label, "optional", f"{annotation} not found ({split}, optional)"))
            continue
        rows.append(CheckRow(label, "ok", f"{len(images):,} images listed ({split})"))
        for image in images:
            wanted, needed = folders.get(image.parent, (set(), False))
            wanted.add(image.name)
            folders[image.parent] = (wanted, needed or required)
    for folder, (wanted, needed) in folders.items():
        rows.append(_images_row(folder, wanted, needed, dataset, root))
    present = any(not entry.startswith(".") for entry in _listing(root))
    return DatasetCheck(dataset, root, rows, present)


def _images_row(folder: Path, wanted: set[str], needed: bool, dataset: str, root: Path) -> CheckRow:
    """How many of the ``wanted`` file names are in ``folder``, and whether each one there is an
    image (:func:`hgbench.data.base.image_problem`: its first and last bytes; a zero-byte file,
    another kind of file or a truncated JPEG makes the row ``incomplete``, naming the first such
    file and their count)."""
    listing = _listing(folder)
    missing = sorted(wanted - listing)
    label = _relative(folder, root) + "/"
    have, total = len(wanted) - len(missing), len(wanted)
    bad = [(name, why) for name in sorted(wanted & listing) if (why := image_problem(folder / name))]
    if bad:
        first, why = bad[0]
        more = f"; {len(missing):,} missing (e.g. {missing[0]})" if missing else ""
        return CheckRow(
            label,
            "incomplete",
            f"{len(bad):,} of {have:,} images are not readable images (first: {folder / first}: {why}){more}; "
            f"restore them (hgbench data download {dataset})",
        )
    if not missing:
        return CheckRow(label, "ok", f"{total:,} images")
    if not have and not needed:
        return CheckRow(
            label, "optional", f"not downloaded (0 of {total:,} images; `hgbench data download {dataset} --all`)"
        )
    if not have:
        return CheckRow(label, "missing", f"{folder}: none of the {total:,} images")
    return CheckRow(label, "incomplete", f"{have:,} of {total:,} images (missing e.g. {missing[0]})")


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:  # a loader may name a file outside root
        return str(path)


def _listing(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except OSError:
        return set()
