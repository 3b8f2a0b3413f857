"""Crop transforms, augmentation and Gaussian heatmap targets.

Coordinates are pixels with OpenCV's convention: pixel ``i`` covers ``[i - 0.5, i + 0.5)``,
x to the right, y down. A crop is a 2x3 affine matrix from original-image pixels to crop
pixels; the same function gives the matrix to heatmap pixels (pass the heatmap size), so
targets and decoding use one mapping and round-trip exactly.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def crop_matrix(
    center: np.ndarray, size_px: float, rotation_deg: float, out_size: int, flip: bool = False
) -> np.ndarray:
    """Affine map from image pixels to the pixels of an ``out_size`` square crop.

    The square of side ``size_px`` image pixels centred on ``center`` (x, y), rotated
    counter-clockwise by ``rotation_deg`` about its centre, fills the output exactly; with
    ``flip`` the output is mirrored horizontally.

    Returns:
        ``(2, 3)`` float64 matrix ``M``; a point maps as ``M[:, :2] @ p + M[:, 2]``.
    """
    s = out_size / float(size_px)
    a = math.radians(rotation_deg)
    cos, sin = math.cos(a) * s, math.sin(a) * s
    # y points down, so a counter-clockwise turn of the content is [[cos, sin], [-sin, cos]].
    linear = np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear[0] *= -1
    half = (out_size - 1) / 2.0
    offset = np.array([half, half]) - linear @ np.asarray(center, dtype=np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points through a ``(2, 3)`` affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def warp_image(image: np.ndarray, matrix: np.ndarray, out_size: int) -> np.ndarray:
    """Crop ``image`` (H, W, 3) uint8 to ``(out_size, out_size, 3)``; outside the image is black."""
    return cv2.warpAffine(
        image, matrix, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def render_heatmaps(points: np.ndarray, size: int, sigma: float | np.ndarray) -> np.ndarray:
    """Gaussian heatmap targets.

    Args:
        points: ``(J, 2)`` joint positions in heatmap pixels (sub-pixel), NaN for none.
        size: heatmap side in pixels (64 for a 256 input in Newell et al.).
        sigma: standard deviation in heatmap pixels (1 px at 64x64 in Newell et al. and
            pose-hg-train ``drawGaussian``), one for all joints or ``(J,)`` one per joint
            (a visibility-dependent sigma, seed 003 Sec. 4.2.3).

    Returns:
        ``(J, size, size)`` float32, peak 1 at the joint; an all-zero map where the joint is
        NaN or more than ``3 * sigma`` outside the map (as ``drawGaussian`` does).

    Raises:
        ValueError: a per-joint ``sigma`` whose length is not ``J``, or a sigma <= 0.
    """
    points = np.asarray(points, dtype=np.float32)
    sigmas = (
        np.broadcast_to(np.asarray(sigma, dtype=np.float32), (len(points),))
        if np.ndim(sigma) == 0
        else np.asarray(sigma, np.float32)
    )
    if sigmas.shape != (len(points),):
        raise ValueError(f"sigma: expected a number or {len(points)} values, got shape {sigmas.shape}")
    if (sigmas <= 0).any():
        raise ValueError(f"sigma must be > 0, got {sigmas.min()}")
    grid = np.arange(size, dtype=np.float32)
    out = np.zeros((len(points), size, size), dtype=np.float32)
    for j, ((x, y), s) in enumerate(zip(points, sigmas, strict=True)):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        if x < -3 * s or y < -3 * s or x > size - 1 + 3 * s or y > size - 1 + 3 * s:
            continue
        gx = np.exp(-((grid - x) ** 2) / (2 * s**2))
        gy = np.exp(-((grid - y) ** 2) / (2 * s**2))
        out[j] = gy[:, None] * gx[None, :]
    return out


def box_from_joints(joints: np.ndarray, annotated: np.ndarray, margin: float = 1.25) -> tuple[np.ndarray, float]:
    """Centre (x, y) and square side (px) of a person crop from its annotated joints.

    The side is the longer side of the joints' bounding box times ``margin`` (1.25, the
    margin pose-hg-train adds to MPII's person scale), so limbs and the head fit.

    Raises:
        ValueError: fewer than two joints are annotated.
    """
    pts = np.asarray(joints, dtype=np.float64)[np.asarray(annotated, dtype=bool)]
    if len(pts) < 2:
        raise ValueError("a crop needs at least two annotated joints")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = max(float((hi - lo).max()) * margin, 16.0)
    return (lo + hi) / 2.0, side
