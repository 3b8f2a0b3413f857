"""Pose datasets, keypoint layouts, transforms and heatmap targets.

:func:`make_dataset` builds a dataset by name; ``synthetic`` (rendered figures, no download)
is the default, ``lspet`` reads an LSP/LSPET folder.
"""

from __future__ import annotations

from pathlib import Path

from hgbench.config import Augmentation
from hgbench.data.base import DatasetError, PoseAnnotation, PoseDataset
from hgbench.data.keypoints import KEYPOINT_SETS, LSP, MPII, KeypointSet

DEFAULT_DATASET = "synthetic"
DATASETS = ("synthetic", "lspet", "lsp", "coco", "mpii")


def dataset_splits(name: str) -> tuple[str, ...]:
    """The splits dataset ``name`` (one of :data:`DATASETS`) can be built for: each loader's own
    list (``SyntheticDataset.SIZES``, ``lsp.SPLITS``, ``coco.SPLITS``, ``mpii.SPLITS``).

    Raises:
        ValueError: an unknown name.
    """
    if name == "synthetic":
        from hgbench.data.synthetic import SyntheticDataset

        return tuple(SyntheticDataset.SIZES)
    if name in ("lspet", "lsp"):
        from hgbench.data.lsp import SPLITS
    elif name == "coco":
        from hgbench.data.coco import SPLITS
    elif name == "mpii":
        from hgbench.data.mpii import SPLITS
    else:
        raise ValueError(f"--dataset {name!r}: not one of {', '.join(DATASETS)}; pass one of these")
    return tuple(SPLITS)


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
        if dataset == "synthetic" and data_root is not None:
            raise ValueError(
                "--data-root is not used by the embedded synthetic dataset; drop it or pass "
                f"--dataset {'|'.join(d for d in DATASETS if d != 'synthetic')}"
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
    if name == "synthetic":
        from hgbench.data.synthetic import SyntheticDataset

        return SyntheticDataset(split=split, **kwargs)
    if name in ("lspet", "lsp"):
        if root is None:
            raise ValueError(f"dataset {name!r} needs --data-root: a folder holding joints.mat and images/")
        from hgbench.data.lsp import LSPDataset

        return LSPDataset(root, split=split, **kwargs)
    if name == "coco":
        if root is None:
            raise ValueError(
                "dataset 'coco' needs --data-root: a folder holding person_keypoints_*.json and images/ "
                "(or annotations/ with train2017/, val2017/)"
            )
        from hgbench.data.coco import COCODataset

        return COCODataset(root, split=split, **kwargs)
    if name == "mpii":
        if root is None:
            raise ValueError(
                "dataset 'mpii' needs --data-root: a folder holding images/ and valid.h5/train.h5 "
                "(pose-hg-train) or annot/valid.json/train.json (PyTorch ports)"
            )
        from hgbench.data.mpii import MPIIDataset

        return MPIIDataset(root, split=split, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


__all__ = [
    "DATASETS",
    "DEFAULT_DATASET",
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
    "make_dataset",
]
