"""Heatmaps to joint positions: decoding, the map back to image pixels, and the flip test.

**Decoding** follows pose-hg-train (``src/util/pose.lua`` ``postprocess``): the argmax of each
heatmap, moved a quarter pixel toward the higher of its two neighbours in x and in y, then
mapped back to original-image pixels through the inverse of the crop transform.

**Flip test** (pose-hg-train ``src/train.lua`` ``step``, validation branch): the network
also sees the horizontal mirror of each crop; its heatmaps are mirrored back, the left and
right channels swapped (``src/util/img.lua`` ``flip`` and ``shuffleLR``), and the two
predictions averaged before decoding (:func:`flip_back`). The common PyTorch ports differ in
the "one-pixel shift": bearpaw/pytorch-pose (``example/main.py`` ``validate``,
``pose/utils/transforms.py`` ``flip_back``) does as pose-hg-train, no shift;
microsoft/human-pose-estimation.pytorch (``lib/core/function.py`` ``validate``,
``TEST.SHIFT_HEATMAP``) moves the mirrored-back heatmaps one pixel to the right, because its
targets put input pixel ``x`` at heatmap pixel ``x / 4`` (``JointsDataset.generate_target``:
``int(x / feat_stride + 0.5)``), so mirroring the 256 px input (``x -> 255 - x``) lands at
``63.75 - u`` and mirroring the 64 px heatmap back at ``u - 0.75``, which the shift rounds to
``u + 0.25``. hgbench's crops (:func:`hgbench.data.transforms.crop_matrix`) put the square's
edges on the outer pixel edges of both the input and the heatmap, so input pixel ``x`` is at
heatmap ``(x - 1.5) / 4``; the input mirror ``x -> 255 - x`` is heatmap ``u -> 63 - u``,
exactly the heatmap array's mirror, and a crop with ``flip=True`` is exactly the array mirror
of the plain crop. So no shift is applied (``tests/accuracy/test_flip.py`` proves both in continuous
coordinates and with an oracle model).
"""

from __future__ import annotations

import torch
from torch import Tensor


def decode_heatmaps(heatmaps: Tensor) -> tuple[Tensor, Tensor]:
    """Joint positions from heatmaps (pose-hg-train ``postprocess``).

    Args:
        heatmaps: ``(B, J, H, W)`` on any device.

    Returns:
        ``coords (B, J, 2)`` float32 (x, y) in heatmap pixels, with the quarter-pixel step
        toward the higher neighbour where the argmax is not on the border, and
        ``maxvals (B, J)``, the heatmaps' maxima; both on ``heatmaps``' device.
    """
    b, j, h, w = heatmaps.shape
    hm = heatmaps.detach().float()
    maxvals, idx = hm.reshape(b, j, -1).max(dim=-1)
    x = (idx % w).long()
    y = torch.div(idx, w, rounding_mode="floor").long()
    coords = torch.stack([x, y], dim=-1).float()

    inner = (x > 0) & (x < w - 1) & (y > 0) & (y < h - 1)
    flat = hm.reshape(b, j, -1)

    def at(dx: int, dy: int) -> Tensor:
        xi = (x + dx).clamp(0, w - 1)
        yi = (y + dy).clamp(0, h - 1)
        return flat.gather(-1, (yi * w + xi).unsqueeze(-1)).squeeze(-1)

    step = torch.stack([torch.sign(at(1, 0) - at(-1, 0)), torch.sign(at(0, 1) - at(0, -1))], dim=-1) * 0.25
    coords = coords + step * inner.unsqueeze(-1)
    return coords, maxvals


def heatmap_to_image(coords: Tensor, matrices: Tensor) -> Tensor:
    """Heatmap-pixel coordinates to original-image pixels.

    Args:
        coords: ``(B, J, 2)`` (x, y) heatmap pixels (:func:`decode_heatmaps`).
        matrices: ``(B, 2, 3)`` affines heatmap -> image (the items' ``heatmap_to_image``,
            the inverse of :func:`hgbench.data.transforms.crop_matrix`), on ``coords``' device.

    Returns:
        ``(B, J, 2)`` float64 image pixels.
    """
    m = matrices.to(torch.float64)
    c = coords.to(torch.float64)
    return torch.einsum("bij,bkj->bki", m[:, :, :2], c) + m[:, None, :, 2]


def flip_back(heatmaps: Tensor, flip_permutation: list[int] | Tensor) -> Tensor:
    """Heatmaps predicted for the mirrored crop, mapped back onto the plain crop.

    Each map is mirrored horizontally (``u -> W - 1 - u``, pose-hg-train ``flip``) and the
    left and right channels swapped (``shuffleLR``): channel ``j`` of the mirrored person is
    joint ``flip_permutation[j]`` of the plain one. No shift: mirroring is exact in hgbench's
    crop convention (module docstring).

    Args:
        heatmaps: ``(B, J, H, W)``, the network's output for the mirrored input.
        flip_permutation: ``(J,)``, :attr:`hgbench.data.keypoints.KeypointSet.flip_permutation`.

    Returns:
        ``(B, J, H, W)`` on ``heatmaps``' device.
    """
    perm = torch.as_tensor(flip_permutation, dtype=torch.long, device=heatmaps.device)
    inverse = torch.argsort(perm)  # out[:, perm[j]] = mirrored[:, j]
    return heatmaps[:, inverse].flip(-1)
