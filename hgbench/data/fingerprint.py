"""The fingerprint of the data a run read: which files of a data folder one split uses, hashed
cheaply, so that a run or an evaluation on other data is told apart from one on the same data.

What a split's fingerprint covers (:func:`split_fingerprint`), for a dataset read from a folder:

- the **content** (SHA-256) of its annotation file, as the loader finds it (the first file of
  the loader's ``required_files(root, split)``: ``joints.mat``, MPII's ``valid.h5``/JSON,
  COCO's keypoints JSON), and of the ground-truth files the MPII loader takes head sizes from
  when they lie beside it (:data:`hgbench.data.mpii.GT_FILE_NAMES`);
- the **names and sizes** of the images that annotation file lists for the split and that are
  present, relative to the data folder.

It does not cover the images' content (hashing every image would cost a full read of the
dataset at every start): an image replaced by another of exactly the same size and name is not
seen. The folder's own path is not covered either, so the same data copied elsewhere (a node's
local disk) has the same fingerprint. For the embedded synthetic dataset the fingerprint is that
of its generator's parameters (image side, samples and seed of each split,
:class:`hgbench.data.synthetic.SyntheticDataset`).

A training's fingerprint (:func:`training_data`) combines its ``train`` and ``val`` splits; an
evaluation's (:func:`evaluation_data`) is the split it scored.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FINGERPRINT_VERSION = "hgbench.data-fingerprint/1"
DIGITS = 16  # hex digits kept of a SHA-256 (64 bits: collisions are not a concern for a few runs)


@dataclass(frozen=True)
class DataFingerprint:
    """The fingerprint of the data one run or evaluation read.

    Attributes:
        dataset: the dataset's name.
        folder: the data folder, absolute (None for the embedded synthetic dataset).
        digest: :data:`DIGITS` hex digits over every split's files (module docstring).
        images: images (samples for synthetic) per split, e.g. ``{"train": 40, "val": 4}``.
    """

    dataset: str
    folder: str | None
    digest: str
    images: dict[str, int]

    def fields(self) -> dict[str, Any]:
        """The record fields of this fingerprint: ``data_folder``, ``data_fingerprint`` and
        ``data_images`` (:func:`hgbench.records.identity.data_identity` takes them)."""
        return {"data_folder": self.folder, "data_fingerprint": self.digest, "data_images": dict(self.images)}

    def describe(self) -> str:
        """``"<folder> (fingerprint <digest>, 40 train + 4 val images)"`` for messages."""
        counts = " + ".join(f"{n:,} {split}" for split, n in self.images.items())
        where = self.folder or f"the embedded {self.dataset} data"
        return f"{where} (fingerprint {self.digest}, {counts} images)"


@functools.lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """SHA-256 of a file's content; cached on its path, size and modification time (a training
    fingerprints its data once per start, ``train-all`` once per variant)."""
    from hgbench.data.download.fetch import file_digest

    return file_digest(Path(path), "sha256")


def _content(path: Path) -> str:
    """SHA-256 of ``path``'s content, or ``"missing"``."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return _file_sha256(str(path), st.st_size, st.st_mtime_ns)


def _synthetic_parameters(split: str) -> dict[str, Any]:
    """The synthetic generator's parameters of ``split`` (what its samples are a function of)."""
    from hgbench.data.synthetic import SyntheticDataset

    if split not in SyntheticDataset.SIZES:
        raise ValueError(f"synthetic dataset: split must be one of {sorted(SyntheticDataset.SIZES)}, got {split!r}")
    return {
        "generator": "hgbench.data.synthetic.render_figure",
        "image_size": SyntheticDataset.IMAGE_SIZE,
        "samples": SyntheticDataset.SIZES[split],
        "seed": SyntheticDataset.SPLIT_SEEDS[split],
    }


def split_fingerprint(dataset: str, root: str | Path | None, split: str) -> tuple[str, int]:
    """``(digest, images)`` of ``split`` of ``dataset`` under ``root`` (module docstring): the
    full SHA-256 hex digest and the number of images present (samples for synthetic).

    Raises:
        ValueError: an unknown dataset or split, or a dataset read from a folder without
            ``root`` (:func:`hgbench.data.loader_of`).
        hgbench.data.DatasetError: the annotation file exists but cannot be read (the loader's
            ``required_files`` message, the same the dataset gives when built).
    """
    from hgbench.data import loader_of

    h = hashlib.sha256(f"{FINGERPRINT_VERSION}\0{dataset}\0{split}\0".encode())
    loader = loader_of(dataset, root)
    if loader.root_hint is None:
        params = _synthetic_parameters(split)
        h.update(json.dumps(params, sort_keys=True).encode())
        return h.hexdigest(), params["samples"]
    root = Path(root)
    module = loader.load()
    annotation, *images = _split_files(module, dataset, root, split)
    extra = [annotation.parent / n for n in getattr(module, "GT_FILE_NAMES", ()) if (annotation.parent / n).is_file()]
    for path in (annotation, *extra):
        h.update(f"a\0{_relative(path, root)}\0{_content(path)}\n".encode())
    present = 0
    for path in sorted(images, key=lambda p: _relative(p, root)):
        try:
            size = os.stat(path).st_size
        except OSError:
            continue  # absent: not read by the run (and its absence changes the fingerprint)
        present += 1
        h.update(f"i\0{_relative(path, root)}\0{size}\n".encode())
    return h.hexdigest(), present


_FILES: dict[tuple[str, str, str], tuple[tuple[int, int] | None, list[Path]]] = {}
"""``(dataset, root, split)`` -> (its annotation file's size and modification time, the loader's
``required_files``): a process that fingerprints the same data for several runs
(``train-all``) parses a large annotation file (COCO's train JSON: about 20 s) once."""


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _split_files(module: Any, dataset: str, root: Path, split: str) -> list[Path]:
    """The loader's ``required_files(root, split)`` (annotation file first), from
    :data:`_FILES` while that annotation file is unchanged."""
    key = (dataset, str(root.resolve()), split)
    hit = _FILES.get(key)
    if hit is not None and hit[0] == _stat(hit[1][0]):
        return hit[1]
    files = list(module.required_files(root, split))
    _FILES[key] = (_stat(files[0]), files)
    return files


def _relative(path: Path, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def data_fingerprint(dataset: str, root: str | Path | None, splits: tuple[str, ...]) -> DataFingerprint:
    """The :class:`DataFingerprint` of ``splits`` of ``dataset`` under ``root``.

    Raises:
        ValueError, hgbench.data.DatasetError: as :func:`split_fingerprint`.
    """
    h = hashlib.sha256(FINGERPRINT_VERSION.encode())
    images = {}
    for split in splits:
        digest, n = split_fingerprint(dataset, root, split)
        h.update(f"{split}\0{digest}\n".encode())
        images[split] = n
    folder = None if root is None else str(Path(root).resolve())
    return DataFingerprint(dataset, folder, h.hexdigest()[:DIGITS], images)


def training_data(dataset: str, root: str | Path | None) -> DataFingerprint:
    """The data a training reads: its ``train`` and ``val`` splits."""
    return data_fingerprint(dataset, root, ("train", "val"))


def evaluation_data(dataset: str, root: str | Path | None, split: str) -> DataFingerprint:
    """The data an evaluation reads: the split it scores."""
    return data_fingerprint(dataset, root, (split,))
