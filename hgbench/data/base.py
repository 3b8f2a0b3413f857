"""The dataset interface shared by every pose dataset.

A dataset yields person crops with their heatmap targets; subclasses only say where the
annotations and images are (:meth:`PoseDataset.annotation`, :meth:`PoseDataset.load_image`),
and, where the benchmark normalises distances differently from PCK's torso size, override
:meth:`PoseDataset.normalizer` and set :attr:`PoseDataset.metric`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hgbench.config import Augmentation
from hgbench.data.keypoints import KeypointSet
from hgbench.data.transforms import (
    apply_affine,
    crop_matrix,
    invert_affine,
    render_heatmaps,
    warp_image,
)


def endless_batches(loader) -> Iterator[dict]:
    """Batches of ``loader`` forever, starting a new pass (a new shuffle) when one ends, so
    that an epoch of ``steps_per_epoch`` steps need not align with the dataset's length."""
    while True:
        yield from loader


class DatasetError(RuntimeError):
    """A dataset that cannot be read: names the file or folder, the field, and the fix."""


BAD_SAMPLES = ("error", "skip")
_T = TypeVar("_T")


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to ``(H, W, 3)`` uint8 RGB.

    The format is told by the file's content, not its name (a PNG named ``.jpg`` is read as the
    PNG it is). A JPEG whose data end early (a truncated download) is an error too: libjpeg only warns
    and OpenCV then returns the image with its missing part filled in, which would be scored
    silently; so a JPEG must end with its End-Of-Image marker (``FF D9``, ITU-T T.81 B.2.1),
    allowing trailing padding bytes after it.

    Raises:
        DatasetError: the path is missing or a folder, the file cannot be decoded, or it is a
        truncated JPEG; the message names the file, what is wrong and the fix.
    """
    path = Path(path)
    fix = "restore it from the dataset archive, or pass --skip-bad-samples to leave it out (counted and reported)."
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not an image file; {fix}")
    if not path.is_file():
        raise DatasetError(f"{path}: image missing (not found); {fix}")
    with open(path, "rb") as f:
        head = f.read(8)
    is_jpeg = head.startswith(
        b"\xff\xd8"
    )  # JPEG Start-Of-Image marker (ITU-T T.81 B.2.1); decode by content, not by name
    if is_jpeg and not _jpeg_has_end_marker(path):
        raise DatasetError(f"{path}: truncated JPEG (no End-Of-Image marker); {fix}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        kind = "JPEG" if is_jpeg else f"image (first bytes {head[:4].hex()})"
        raise DatasetError(f"{path}: cannot be decoded as an image: corrupt {kind}; {fix}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"  # the 8 bytes every PNG file starts with (PNG specification, 5.2)


def image_problem(path: str | Path) -> str | None:
    """What is wrong with an image file, told from its first and last bytes only (no decoding:
    ``hgbench data check`` looks at every image of a dataset this way): ``"zero bytes"``, ``"not
    a JPEG or PNG file (first bytes ...)"``, ``"truncated JPEG (no End-Of-Image marker)"``,
    ``"truncated PNG (no IEND chunk)"``, ``"unreadable (...)"``; None for a file that starts and
    ends as a JPEG (``FF D8 FF`` ... ``FF D9``, ITU-T T.81 B.2.1) or a PNG (its signature ...
    ``IEND``, PNG specification 5.2, 11.2.5) should. The datasets' images are JPEGs; PNG is
    accepted because :func:`read_image` reads it too."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16))
            end = f.read()
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if size == 0:
        return "zero bytes"
    if head.startswith(b"\xff\xd8\xff"):
        return None if _jpeg_has_end_marker(path) else "truncated JPEG (no End-Of-Image marker)"
    if head == PNG_SIGNATURE:
        return None if b"IEND" in end else "truncated PNG (no IEND chunk)"
    return f"not a JPEG or PNG file (first bytes {head[:4].hex(' ')})"


def _jpeg_has_end_marker(path: Path, tail: int = 4096) -> bool:
    """True when the file's last ``tail`` bytes hold a JPEG End-Of-Image marker ``FF D9``."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - tail))
        return b"\xff\xd9" in f.read()


@dataclass(frozen=True)
class PoseAnnotation:
    """One person.

    Attributes:
        image_id: the image's file name (or a synthetic sample's id).
        joints: ``(J, 2)`` float32 pixel coordinates in the original image.
        annotated: ``(J,)`` bool; False joints get no loss and no score.
        center: ``(2,)`` crop centre in image pixels.
        size_px: side of the square crop in image pixels.
        visible: ``(J,)`` bool, annotated and visible (not occluded), or None where the
            dataset has no visibility flag (LSPET, synthetic). Joints that are annotated but
            not visible are the "occluded" ones of the occlusion split
            (``accuracy/pck.py``) and may get their own heatmap sigma (seed 003,
            Sec. 4.2.3).
    """

    image_id: str
    joints: np.ndarray
    annotated: np.ndarray
    center: np.ndarray
    size_px: float
    visible: np.ndarray | None = None


FAR_OUTSIDE_SIDES = 1.0
"""How far outside its image an annotated joint may lie, in image sides: a person cut by the
frame has joints annotated a little outside it (MPII annotates truncated limbs where they would
be), but a joint more than a whole image width (or height) beyond an edge is no truncated limb:
it is an error of the annotation (another image's or resolution's coordinates, a unit or index
mistake), and would be trained and scored as if it were a pose."""


def first_non_finite(joints: np.ndarray, annotated: np.ndarray) -> tuple[int, int] | None:
    """``(person, joint)`` of the first annotated joint whose coordinates are not finite (NaN or
    infinite), or None.

    Args:
        joints: ``(N, J, 2)`` pixels. annotated: ``(N, J)`` bool.
    """
    bad = ~np.isfinite(np.asarray(joints, np.float64)).all(axis=-1) & np.asarray(annotated, bool)
    hits = np.argwhere(bad)
    return (int(hits[0][0]), int(hits[0][1])) if len(hits) else None


def annotation_problem(ann: PoseAnnotation, width: int, height: int, names: Sequence[str]) -> str | None:
    """What is wrong with person ``ann``'s annotation in its ``width`` x ``height`` image, or None:
    an annotated joint, the crop centre or the crop side that is not a finite number (a side <= 0
    too), or an annotated joint or the centre more than :data:`FAR_OUTSIDE_SIDES` image sides
    outside the image. ``names`` are the joint names (:attr:`KeypointSet.names`)."""
    joints = np.asarray(ann.joints, np.float64)
    hit = first_non_finite(joints[None], ann.annotated[None])
    if hit is not None:
        j = hit[1]
        return f"joint {j} ({names[j]}) has coordinates {tuple(float(v) for v in joints[j])}, not finite numbers"
    if not np.isfinite(ann.center).all() or not (math.isfinite(ann.size_px) and ann.size_px > 0):
        return f"crop centre {tuple(float(v) for v in ann.center)} and side {ann.size_px} px are not finite positive numbers"
    size = np.array([width, height], np.float64)
    low, high = -FAR_OUTSIDE_SIDES * size, (1 + FAR_OUTSIDE_SIDES) * size
    far = ((joints < low) | (joints > high)).any(axis=-1) & np.asarray(ann.annotated, bool)
    if far.any():
        j = int(np.flatnonzero(far)[0])
        x, y = joints[j]
        return (
            f"joint {j} ({names[j]}) at ({x:.1f}, {y:.1f}) px lies more than {FAR_OUTSIDE_SIDES:g} image side outside "
            f"the {width} x {height} image"
        )
    if ((ann.center < low) | (ann.center > high)).any():
        return f"crop centre {tuple(round(float(v), 1) for v in ann.center)} px lies far outside the {width} x {height} image"
    return None


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
        ``visible``: ``(J,)`` bool, annotated and not occluded (equal to ``annotated``
        where the dataset has no visibility flag);
        ``has_visibility``: bool, whether ``visible`` comes from a visibility flag (only
        then is the occlusion split reported);
        ``heatmap_to_image``: ``(2, 3)`` float64 affine from heatmap to image pixels;
        ``normalizer``: float, the accuracy normaliser in image pixels from
        :meth:`normalizer` (NaN if undefined);
        ``index``: int.

    Class attributes a subclass sets:
        keypoints: the joint layout.
        name: dataset name.
        metric: how the accuracy layer (``accuracy/evaluate.py``) scores it: ``"pck"`` (PCK@0.2 with the torso
            normaliser, LSP), ``"pckh"`` (PCKh@0.5 with the head normaliser, MPII, through
            ``accuracy/pckh.py``), ``"pck_heatmap"`` (seed 003's PCK: normaliser one tenth of
            the heatmap side mapped to image pixels, threshold 0.5, COCO).

    Args:
        input_size: network input side in pixels (256 in Newell et al.).
        output_size: heatmap side in pixels (64 in Newell et al.).
        sigma: heatmap Gaussian standard deviation in heatmap pixels.
        augmentation: random augmentation, or None for the deterministic centre crop.
        sigma_occluded: Gaussian standard deviation for joints that are annotated but not
            visible (seed 003, Sec. 4.2.3, uses a different sigma for them); None: ``sigma``
            for every joint. Has no effect where the dataset has no visibility flag.
        bad_samples: ``"error"`` (a missing or corrupt image raises :class:`DatasetError`
            when it is loaded) or ``"skip"`` (a subclass checks every image at construction
            with :meth:`keep_readable`, leaves the bad ones out and lists each skipped
            sample in :attr:`skipped` as ``(file, reason)``).

    Raises:
        ValueError: ``bad_samples`` not one of ``"error"``, ``"skip"``.
    """

    keypoints: KeypointSet
    name: str = "pose"
    metric: Literal["pck", "pckh", "pck_heatmap"] = "pck"

    def __init__(
        self,
        input_size: int = 256,
        output_size: int = 64,
        sigma: float = 1.0,
        augmentation: Augmentation | None = None,
        sigma_occluded: float | None = None,
        bad_samples: str = "error",
    ):
        if bad_samples not in BAD_SAMPLES:
            raise ValueError(f"bad_samples must be one of {BAD_SAMPLES}, got {bad_samples!r}")
        self.input_size = input_size
        self.output_size = output_size
        self.sigma = sigma
        self.augmentation = augmentation
        self.sigma_occluded = sigma_occluded
        self.bad_samples = bad_samples
        self.skipped: list[tuple[str, str]] = []

    def normalizer(self, index: int, ann: PoseAnnotation, joints: np.ndarray, annotated: np.ndarray) -> float:
        """The accuracy normaliser of sample ``index`` in image pixels (NaN: the person is
        left out of the score).

        Default: the torso size (:func:`torso_size`, PCK on LSP). MPII overrides it with
        the head size (0.6 x head-box diagonal), COCO with one tenth of the heatmap side in
        image pixels (seed 003).

        Args:
            index: sample index.
            ann: its annotation as :meth:`annotation` returns it (not flipped).
            joints: ``(J, 2)`` joints in image pixels, left/right swapped when the sample is
                flipped (so they match the heatmap channels).
            annotated: ``(J,)`` bool, in the same order as ``joints``.
        """
        return torso_size(joints, annotated, self.keypoints)

    def keep_readable(self, items: Sequence[_T], path_of: Callable[[_T], Path]) -> list[_T]:
        """``items`` whose image file decodes (:func:`read_image`), for a subclass's
        constructor. With ``bad_samples="skip"`` each image file is decoded once; the items
        of a bad one are left out and each is appended to :attr:`skipped` as ``(file,
        "missing" | "corrupt")`` (one entry per sample, so several persons of one image
        count several times). With ``"error"`` nothing is checked here (a bad image raises
        when it is loaded) and ``items`` come back unchanged."""
        if self.bad_samples != "skip":
            return list(items)
        kept, reasons = [], {}
        for item in items:
            path = Path(path_of(item))
            if path not in reasons:
                try:
                    read_image(path)
                    reasons[path] = None
                except DatasetError:
                    reasons[path] = "missing" if not path.is_file() else "corrupt"
            if reasons[path] is None:
                kept.append(item)
            else:
                self.skipped.append((str(path), reasons[path]))
        return kept

    @property
    def annotation_source(self) -> str:
        """The annotation file items come from (for messages; a subclass that reads one sets
        ``annotation_file``), else the dataset's name."""
        return str(getattr(self, "annotation_file", None) or self.name)

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def annotation(self, index: int) -> PoseAnnotation:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_image(self, index: int) -> np.ndarray:  # pragma: no cover - abstract
        """``(H, W, 3)`` uint8 RGB."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        return self.item(index)

    def item(self, index: int, seed: int | Sequence[int] | None = None) -> dict:
        """Sample ``index`` (the dict of the class docstring), its augmentation drawn from
        ``np.random.default_rng(seed)``: e.g. ``(seed, stream, pass, index)`` from
        :mod:`hgbench.train.sampler`, so that it does not depend on which loader process
        builds it; ``None``: a seed drawn from torch's global generator."""
        ann = self.annotation(index)
        image = self.load_image(index)
        problem = annotation_problem(ann, image.shape[1], image.shape[0], self.keypoints.names)
        if problem:
            raise DatasetError(
                f"{self.annotation_source}: person {index} (image {ann.image_id}): {problem}; correct the "
                "annotation or leave this person out"
            )
        rotation, scale, flip, gains = 0.0, 1.0, False, None
        if self.augmentation is not None:
            rng = np.random.default_rng(int(torch.randint(2**31 - 1, ()).item()) if seed is None else seed)
            rotation, scale, flip, gains = self.augmentation.sample(rng)
        size = ann.size_px / scale
        to_input = crop_matrix(ann.center, size, rotation, self.input_size, flip)
        to_heatmap = crop_matrix(ann.center, size, rotation, self.output_size, flip)

        crop = warp_image(image, to_input, self.input_size).astype(np.float32) / 255.0
        if gains is not None:
            crop = np.clip(crop * gains[None, None, :].astype(np.float32), 0.0, 1.0)

        joints, annotated = ann.joints, ann.annotated
        has_visibility = ann.visible is not None
        visible = (ann.visible & annotated) if has_visibility else annotated.copy()
        if flip:
            perm = self.keypoints.flip_permutation
            joints, annotated, visible = joints[perm], annotated[perm], visible[perm]
        points = apply_affine(joints, to_heatmap)
        points[~annotated] = np.nan
        sigma = self.sigma
        if self.sigma_occluded is not None and has_visibility:
            sigma = np.where(visible, self.sigma, self.sigma_occluded)
        heatmaps = render_heatmaps(points, self.output_size, sigma)

        return {
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "heatmaps": torch.from_numpy(heatmaps),
            "target_weight": torch.from_numpy(annotated.astype(np.float32)),
            "joints": torch.from_numpy(joints.astype(np.float32)),
            "annotated": torch.from_numpy(annotated.copy()),
            "visible": torch.from_numpy(np.asarray(visible, dtype=bool).copy()),
            "has_visibility": torch.tensor(has_visibility),
            "heatmap_to_image": torch.from_numpy(invert_affine(to_heatmap)),
            "normalizer": torch.tensor(float(self.normalizer(index, ann, joints, annotated)), dtype=torch.float64),
            "index": index,
        }
