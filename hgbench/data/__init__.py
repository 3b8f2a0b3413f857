"""Pose datasets, keypoint layouts, transforms and heatmap targets.

:func:`make_dataset` builds a dataset by name; ``synthetic`` (rendered figures, no download)
is the default, ``lspet`` reads an LSP/LSPET folder.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hgbench.config import Augmentation
from hgbench.config.axes import DATASETS, DEFAULT_DATASET
from hgbench.data.base import DatasetError, PoseAnnotation, PoseDataset
from hgbench.data.keypoints import KEYPOINT_SETS, LSP, MPII, KeypointSet


@dataclass(frozen=True)
class Loader:
    """Where the loader of one dataset lives (imported on use: the loaders pull in scipy, h5py
    and pycocotools).

    Attributes:
        module: the loader's module; it defines ``SPLITS`` and, for a dataset read from a
            folder, ``required_files(root, split)`` (:mod:`hgbench.data.download.inventory`).
        cls: the :class:`PoseDataset` subclass in ``module``.
        root_hint: what ``--data-root`` must hold, for the message when it is missing; None: the
            dataset reads no folder (embedded).
    """

    module: str
    cls: str
    root_hint: str | None = None

    def load(self) -> ModuleType:
        """The loader's module, imported."""
        return importlib.import_module(self.module)


_ROOT_HINT_LSP = "a folder holding joints.mat and images/"
LOADERS: dict[str, Loader] = {
    "synthetic": Loader("hgbench.data.synthetic", "SyntheticDataset"),
    "lspet": Loader("hgbench.data.lsp", "LSPDataset", _ROOT_HINT_LSP),
    "lsp": Loader("hgbench.data.lsp", "LSPDataset", _ROOT_HINT_LSP),
    "mpii": Loader(
        "hgbench.data.mpii",
        "MPIIDataset",
        "a folder holding images/ and valid.h5/train.h5 (pose-hg-train) or annot/valid.json/train.json (PyTorch ports)",
    ),
    "coco": Loader(
        "hgbench.data.coco",
        "COCODataset",
        "a folder holding person_keypoints_*.json and images/ (or annotations/ with train2017/, val2017/)",
    ),
}
"""Dataset name (:data:`hgbench.config.axes.DATASETS`, the one list of names; a test keeps the two
equal) -> its loader."""


def dataset_splits(name: str) -> tuple[str, ...]:
    """The splits dataset ``name`` (one of :data:`DATASETS`) can be built for: each loader's own
    list (``SPLITS`` of :mod:`hgbench.data.synthetic`, :mod:`~hgbench.data.lsp`, :mod:`~hgbench.data.coco`, :mod:`~hgbench.data.mpii`).

    Raises:
        ValueError: an unknown name.
    """
    if name not in LOADERS:
        raise ValueError(f"--dataset {name!r}: not one of {', '.join(DATASETS)}; pass one of these")
    return tuple(LOADERS[name].load().SPLITS)


def check_dataset_options(dataset: str | None, data_root: str | Path | None, split: str | None = None) -> None:
    """Check ``--dataset``, ``--data-root`` and ``--split`` before any work. ``dataset`` None:
    not known yet (``evaluate`` without ``--dataset`` takes the checkpoint's): ``split`` is then
    checked against every dataset's splits.

    Raises:
        ValueError: an unknown dataset; ``--data-root`` with the embedded synthetic dataset (it
            reads no folder, so the folder given would be silently ignored); a split the
            dataset does not have (naming the option, the value and the splits there are).
    """
    if dataset is not None:
        splits = dataset_splits(dataset)
        if LOADERS[dataset].root_hint is None and data_root is not None:
            raise ValueError(
                f"--data-root is not used by the embedded {dataset} dataset; drop it or pass "
                f"--dataset {'|'.join(d for d in DATASETS if LOADERS[d].root_hint is not None)}"
            )
        if split is not None and split not in splits:
            raise ValueError(f"--split {split!r}: dataset {dataset} has splits {', '.join(splits)}; pass one of them")
    elif split is not None and all(split not in dataset_splits(d) for d in DATASETS):
        by_splits: dict[tuple[str, ...], list[str]] = {}
        for d in DATASETS:
            by_splits.setdefault(dataset_splits(d), []).append(d)
        listed = "; ".join(f"{', '.join(names)}: {', '.join(s)}" for s, names in by_splits.items())
        raise ValueError(f"--split {split!r}: no dataset has it (splits of {listed}); pass one of them")


def make_dataset(name: str, root: str | Path | None, split: str, **kwargs) -> PoseDataset:
    """Build dataset ``name`` for ``split`` (``train``/``val``); ``kwargs`` go to
    :class:`PoseDataset` (input_size, output_size, sigma, augmentation, sigma_occluded,
    bad_samples).

    Raises:
        ValueError: unknown name, or a dataset that needs ``root`` without one.
        DatasetError: the files under ``root`` cannot be read.
    """
    loader = loader_of(name, root)
    if loader.root_hint is None:
        return getattr(loader.load(), loader.cls)(split=split, **kwargs)
    return getattr(loader.load(), loader.cls)(root, split=split, **kwargs)


def loader_of(name: str, root: str | Path | None) -> Loader:
    """The :class:`Loader` of dataset ``name``, checked against ``root``.

    Raises:
        ValueError: unknown name, or a dataset that needs ``root`` without one.
    """
    loader = LOADERS.get(name)
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    if loader.root_hint is not None and root is None:
        raise ValueError(f"dataset {name!r} needs --data-root: {loader.root_hint}")
    return loader


__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
    "LOADERS",
    "Loader",
    "Augmentation",
    "DatasetError",
    "KEYPOINT_SETS",
    "KeypointSet",
    "LSP",
    "MPII",
    "PoseAnnotation",
    "PoseDataset",
    "check_dataset_options",
    "dataset_splits",
    "loader_of",
    "make_dataset",
]
