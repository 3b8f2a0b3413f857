"""Leeds Sports Pose (LSP) and LSP Extended (LSPET).

Johnson & Everingham, "Clustered Pose and Nonlinear Appearance Models for Human Pose
Estimation", BMVC 2010 (LSP) and "Learning Effective Human Pose Estimation from Inaccurate
Annotation", CVPR 2011 (LSPET). A root folder holds ``joints.mat`` and ``images/``:

- LSPET: ``joints`` of shape (14, 3, 10000): x, y in pixels and a flag that the dataset's
  README calls visibility, 1 = visible. Every one of the 16,787 joints with flag 0 sits at a
  placeholder (x = 0 or y = 0, the other coordinate negative or off the person, e.g. image 1's right ankle at
  (0, -26.1)), so flag 0 means "not annotated" (no loss, no score) and LSPET has no
  annotated-but-occluded joints: no occlusion split (``visible`` is None). Images
  ``imNNNNN.jpg``, column ``n - 1`` for ``im{n:05d}.jpg``.
- LSP: ``joints`` of shape (3, 14, 2000), every joint annotated (occluded ones too). Its third
  row is the inverse: 1 = occluded, 0 = visible (bearpaw/pytorch-pose ``miscs/gen_lsp.m``
  turns it into visibility with ``joints(3,:,:) = 1 - joints(3,:,:)``), so LSP gets the
  occlusion split (``visible = row 3 == 0``). Images ``imNNNN.jpg``.

Only images present in ``images/`` are used, so a subset of the dataset works as it is (a
file that is listed but cannot be read, e.g. a dangling link or a corrupt JPEG, is an error,
or with ``bad_samples="skip"`` is left out and listed in ``dataset.skipped``).
Split (deterministic, independent of which subset is present): an image is in the
validation split when its number is divisible by 10, in the training split otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

from hgbench.data.base import DatasetError, PoseAnnotation, PoseDataset, first_non_finite, read_image
from hgbench.data.keypoints import LSP
from hgbench.data.transforms import box_from_joints

SPLITS = ("train", "val", "all")
VAL_EVERY = 10  # image numbers divisible by this form the validation split
_IMAGE_RE = re.compile(r"^im(\d{4,5})\.jpg$")


def read_lsp_joints(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read ``joints.mat``.

    Returns:
        ``joints (N, 14, 2)`` float32 pixels, ``annotated (N, 14)`` bool and ``visible
        (N, 14)`` bool (LSP: third row 0) or None (LSPET: no occlusion flag, see the module
        docstring).

    Raises:
        DatasetError: missing file, no variable ``joints``, a shape that is neither
        LSPET's (14, 3, N) nor LSP's (3, 14, N), or an annotated joint whose coordinates are
        not finite (naming the column, its image and the joint).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{path}: not found. Pass --data-root pointing at the LSP/LSPET folder that holds joints.mat and images/."
        )
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for a damaged file
        raise DatasetError(f"{path}: not a readable MATLAB file ({e}).") from e
    if "joints" not in mat:
        raise DatasetError(f"{path}: no variable 'joints' (found {sorted(k for k in mat if not k.startswith('__'))}).")
    raw = np.asarray(mat["joints"], dtype=np.float64)
    if raw.ndim == 3 and raw.shape[:2] == (14, 3):  # LSPET
        joints = raw[:, :2, :].transpose(2, 0, 1)
        annotated = raw[:, 2, :].T > 0.5
        visible = None
    elif raw.ndim == 3 and raw.shape[:2] == (3, 14):  # LSP: all joints annotated, row 3: 1 = occluded
        joints = raw[:2].transpose(2, 1, 0)
        annotated = np.ones(joints.shape[:2], dtype=bool)
        visible = raw[2].T < 0.5
    else:
        raise DatasetError(
            f"{path}: variable 'joints' has shape {raw.shape}; expected (14, 3, N) (LSPET) or (3, 14, N) (LSP)."
        )
    hit = first_non_finite(joints, annotated)
    if hit is not None:
        n, j = hit
        digits = 5 if visible is None else 4  # LSPET's imNNNNN.jpg, LSP's imNNNN.jpg
        raise DatasetError(
            f"{path}: column {n + 1} (image im{n + 1:0{digits}d}.jpg), joint {j} ({LSP.names[j]}) is annotated at "
            f"{tuple(float(v) for v in joints[n, j])}, not finite numbers; correct joints.mat (or mark the joint "
            "not annotated)"
        )
    return joints.astype(np.float32), annotated, visible


class LSPDataset(PoseDataset):
    """LSP / LSPET person crops (see the module docstring for layout and split).

    The crop is centred on the annotated joints' bounding box with side 1.25 x its longer
    side (:func:`hgbench.data.transforms.box_from_joints`). ``kwargs`` go to
    :class:`~hgbench.data.base.PoseDataset` (with ``bad_samples="skip"`` every image is
    decoded once here and unreadable ones are left out and listed in ``skipped``).

    Raises:
        DatasetError: missing or malformed files, no usable image for ``split``, or (with
        ``bad_samples="error"``, when an item is loaded) a missing or corrupt image.
    """

    keypoints = LSP
    name = "lspet"

    def __init__(self, root: str | Path, split: str = "train", **kwargs) -> None:
        super().__init__(**kwargs)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.annotation_file = self.root / "joints.mat"
        joints, annotated, visible = read_lsp_joints(self.annotation_file)
        image_dir = self.root / "images"
        if not image_dir.is_dir():
            raise DatasetError(
                f"{image_dir}: not found. The LSP/LSPET root must hold joints.mat and an images/ folder."
            )
        self._items: list[tuple[Path, int]] = []
        for path in sorted(image_dir.iterdir()):
            m = _IMAGE_RE.match(path.name)
            if not m:
                continue
            number = int(m.group(1))
            if number < 1 or number > len(joints):
                raise DatasetError(
                    f"{path}: image number {number} has no column in joints.mat ({len(joints)} columns)."
                )
            is_val = number % VAL_EVERY == 0
            if split == "all" or (split == "val") == is_val:
                if annotated[number - 1].sum() >= 2:  # a crop needs two annotated joints
                    self._items.append((path, number - 1))
        self._items = self.keep_readable(self._items, lambda item: item[0])
        if not self._items:
            skipped = f" ({len(self.skipped)} unreadable images skipped)" if self.skipped else ""
            raise DatasetError(f"{image_dir}: no imNNNNN.jpg image with annotated joints in split {split!r}{skipped}.")
        self._joints, self._annotated, self._visible = joints, annotated, visible
        self.split = split

    def __len__(self) -> int:
        return len(self._items)

    def annotation(self, index: int) -> PoseAnnotation:
        path, col = self._items[index]
        joints, annotated = self._joints[col], self._annotated[col]
        visible = None if self._visible is None else self._visible[col]
        center, side = box_from_joints(joints, annotated)
        return PoseAnnotation(path.name, joints, annotated, center, side, visible)

    def load_image(self, index: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB (:func:`hgbench.data.base.read_image`; raises
        :class:`DatasetError` naming a missing or corrupt file)."""
        return read_image(self._items[index][0])


def required_files(root: str | Path, split: str = "all") -> list[Path]:
    """The files a complete LSP/LSPET copy under ``root`` holds for ``split`` (for ``hgbench
    data check``): ``joints.mat`` first, then ``images/imNNNNN.jpg`` for each of its N columns
    in ``split`` (five digits for LSPET's (14, 3, N) layout, four for LSP's (3, 14, N)). When
    ``joints.mat`` is absent the list holds only it. :class:`LSPDataset` itself reads the
    images present.

    Raises:
        ValueError: unknown split.
        DatasetError: ``joints.mat`` unreadable (:func:`read_lsp_joints`).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    mat = Path(root) / "joints.mat"
    if not mat.is_file():
        return [mat]
    joints, _, visible = read_lsp_joints(mat)
    digits = 5 if visible is None else 4  # LSPET has no occlusion flag (module docstring)
    numbers = [n for n in range(1, len(joints) + 1) if split == "all" or (split == "val") == (n % VAL_EVERY == 0)]
    return [mat, *(mat.parent / "images" / f"im{n:0{digits}d}.jpg" for n in numbers)]
