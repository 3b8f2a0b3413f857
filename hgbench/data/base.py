"""The dataset interface shared by every pose dataset.

A dataset yields person crops with their heatmap targets; subclasses only say where the
annotations and images are (:meth:`PoseDataset.annotation`, :meth:`PoseDataset.load_image`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from hgbench.data.keypoints import KeypointSet
from hgbench.data.transforms import (
    Augmentation,
    apply_affine,
    crop_matrix,
    invert_affine,
    render_heatmaps,
    warp_image,
)


def endless_batches(loader) -> "Iterator[dict]":
    """Batches of ``loader`` forever, starting a new pass (a new shuffle) when one ends, so
    that an epoch of ``steps_per_epoch`` steps need not align with the dataset's length."""
    while True:
        yield from loader


class DatasetError(RuntimeError):
    """A dataset that cannot be read: names the file or folder, the field, and the fix."""


@dataclass(frozen=True)
class PoseAnnotation:
    """One person.

    Attributes:
        image_id: the image's file name (or a synthetic sample's id).
        joints: ``(J, 2)`` float32 pixel coordinates in the original image.
        annotated: ``(J,)`` bool; False joints get no loss and no score.
        center: ``(2,)`` crop centre in image pixels.
        size_px: side of the square crop in image pixels.
    """

    image_id: str
    joints: np.ndarray
    annotated: np.ndarray
    center: np.ndarray
    size_px: float


def torso_size(joints: np.ndarray, annotated: np.ndarray, keypoints: KeypointSet) -> float:
    """PCK normaliser in pixels: the distance of the first of ``keypoints.torso_pairs``
    whose two joints are annotated (LSP: right shoulder to left hip, else left shoulder to
    right hip); NaN when none is."""
    for a, b in keypoints.torso_pairs:
        if annotated[a] and annotated[b]:
            return float(np.linalg.norm(np.asarray(joints[a], np.float64) - joints[b]))
    return float("nan")


class PoseDataset(Dataset):
    """Person crops with Gaussian heatmap targets.

    Each item is a dict:
        ``image``: ``(3, input_size, input_size)`` float32 RGB in [0, 1] (no mean
        subtraction, as pose-hg-train);
        ``heatmaps``: ``(J, output_size, output_size)`` float32 targets;
        ``target_weight``: ``(J,)`` float32, 1 for annotated joints, 0 otherwise;
        ``joints``: ``(J, 2)`` float32 ground truth in original-image pixels (after the
        left/right swap when flipped, so it always matches the heatmap channels);
        ``annotated``: ``(J,)`` bool;
        ``heatmap_to_image``: ``(2, 3)`` float64 affine from heatmap to image pixels;
        ``normalizer``: float, the PCK normaliser in image pixels (NaN if undefined);
        ``index``: int.

    Args:
        input_size: network input side in pixels (256 in Newell et al.).
        output_size: heatmap side in pixels (64 in Newell et al.).
        sigma: heatmap Gaussian standard deviation in heatmap pixels.
        augmentation: random augmentation, or None for the deterministic centre crop.
    """

    keypoints: KeypointSet
    name: str = "pose"

    def __init__(self, input_size: int = 256, output_size: int = 64, sigma: float = 1.0, augmentation: Augmentation | None = None):
        self.input_size = input_size
        self.output_size = output_size
        self.sigma = sigma
        self.augmentation = augmentation

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def annotation(self, index: int) -> PoseAnnotation:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_image(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        """``(H, W, 3)`` uint8 RGB."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        ann = self.annotation(index)
        image = self.load_image(index)
        rotation, scale, flip, gains = 0.0, 1.0, False, None
        if self.augmentation is not None:
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ()).item()))
            rotation, scale, flip, gains = self.augmentation.sample(rng)
        size = ann.size_px / scale
        to_input = crop_matrix(ann.center, size, rotation, self.input_size, flip)
        to_heatmap = crop_matrix(ann.center, size, rotation, self.output_size, flip)

        crop = warp_image(image, to_input, self.input_size).astype(np.float32) / 255.0
        if gains is not None:
            crop = np.clip(crop * gains[None, None, :].astype(np.float32), 0.0, 1.0)

        joints, annotated = ann.joints, ann.annotated
        if flip:
            perm = self.keypoints.flip_permutation
            joints, annotated = joints[perm], annotated[perm]
        points = apply_affine(joints, to_heatmap)
        points[~annotated] = np.nan
        heatmaps = render_heatmaps(points, self.output_size, self.sigma)

        return {
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "heatmaps": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(annotated.astype(np.float32)),
            "joints": torch.from_numpy(joints.astype(np.float32)),
            "annotated": torch.from_numpy(annotated.copy()),
            "heatmap_to_image": torch.from_numpy(invert_affine(to_heatmap)),
            "normalizer": torch.tensor(torso_size(joints, annotated, self.keypoints), dtype=torch.float64),
            "index": index,
        }
