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
    "make_dataset",
]
