"""MPII Human Pose (Andriluka et al., "2D Human Pose Estimation: New Benchmark and State of
the Art Analysis", CVPR 2014), single persons with their annotated centre and scale.

A root folder holds ``images/`` (all images in one folder) and one annotation file per split
in one of three layouts (found as ``ROOT/<name>`` or ``ROOT/annot/<name>``, or passed as
``annotation_file``):

- **pose-hg-train HDF5** (``train.h5`` / ``valid.h5``, princeton-vl/pose-hg-train
  ``data/mpii/annot``, written by ``src/misc/convert_annot.py``): ``imgname`` (N,) bytes,
  ``center`` (N, 2) px, ``scale`` (N,), ``part`` (N, 16, 2) px (the MPII annotation cast to
  ``int`` by ``src/misc/mpii.py`` ``partinfo()``; (0, 0) = not annotated), ``visible``
  (N, 16), ``normalize`` (N,) = 0.6 x head-box diagonal px (``normalization()``).
  ``convert_annot.py`` (l. 21-24) already moved the centre down by ``15 x scale`` px and
  multiplied the scale by 1.25 ("in hindsight this should have been done in the Torch
  code"), so centre and scale are used as stored.
- **PyTorch-port JSON** (microsoft/human-pose-estimation.pytorch and HRNet
  ``data/mpii/annot/{train,valid}.json``, mmpose ``mpii_{train,val}.json``): a list of
  ``{image, center, scale, joints (16x2), joints_vis (16)}``; ``joints_vis`` is the
  annotation flag (microsoft uses it as the target weight). ``center``/``scale`` are MPII's
  raw ``objpos``/``scale``.
- **bearpaw JSON** (bearpaw/pytorch-pose ``data/mpii/mpii_annotations.json``, both splits in
  one file): ``{img_paths, objpos, scale_provided, joint_self (16x3: x, y, visible),
  isValidation}``; a joint at (0, 0) is not annotated.

For the two JSON layouts the crop is adjusted as pose-hg-train ``src/util/dataset/mpii.lua``
``getPartInfo`` (l. 63-71: ``c[2] = c[2] + 15 * s; s = s * 1.25``), microsoft
``lib/dataset/mpii.py`` ``_get_db`` and bearpaw ``pose/datasets/mpii.py`` do. The crop is the
square of side ``200 x scale`` px around the centre (pose-hg-train ``src/util/img.lua``
``getTransform``, l. 5-6: ``h = 200 * scale``). On the five validation persons of
``../shared/data/mpii`` the HDF5 and the mmpose JSON layout give the same crops to 1e-3 px
(``valid.h5`` centre and scale = JSON ``center`` + (0, 15 s) and ``1.25 s``).

Coordinates: MPII annotates in MATLAB's 1-based pixel coordinates; like microsoft
(``c = c - 1``, ``joints - 1``) and bearpaw (``pts[:, 0:2] -= 1``, ``objpos - 1``) this module
subtracts 1 from centres and joints of every layout, so annotations are 0-based (OpenCV,
:mod:`hgbench.data.transforms`). Predictions written for the MPII evaluation files must add 1
back (``hgbench score --zero-based`` does). PCKh is translation invariant, so scoring hgbench
predictions against this dataset's joints needs no offset.

Head size (the PCKh normaliser, :meth:`MPIIDataset.head_size`): ``normalize`` of the HDF5
file, which equals ``0.6 x`` the head-box diagonal of ``gt_valid_detections_our_format.mat``
(``headboxes_src``) to 6e-5 px on all 2958 validation persons. The JSON layouts carry no head
box: it is taken from an MPII ground-truth ``.mat`` (``gt_file``, or one of
:data:`GT_FILE_NAMES` beside the JSON) when its person count matches. The validation split is
the one PCKh scores, so there a file without head sizes (an HDF5 file without ``normalize``, a
JSON file without a matching ground truth) is refused when the dataset is built; on the
training split ``head_size`` raises :class:`DatasetError` at use.

**Ground truth of the MPII evaluation** (:func:`load_ground_truth`): the files the toolkits
score against, ``gt_valid_detections_our_format.mat`` (bearpaw, microsoft, mmpose) or
pose-hg-train's ``valid.h5``, read into joints, annotation flags and head sizes
(:func:`head_size_from_boxes`, ``util_get_head_size.m`` of the MPII toolkit ``evalMPII.zip``).
PCKh itself is the accuracy package's (``accuracy/pckh.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hgbench.data.base import DatasetError, PoseAnnotation, PoseDataset, first_non_finite, read_image
from hgbench.data.keypoints import MPII

SPLITS = ("train", "val")
NUM_JOINTS = 16
REFERENCE_HEIGHT_PX = 200.0  # MPII scale = person height / 200 px (pose-hg-train img.lua getTransform)
CENTER_SHIFT = 15.0  # centre moved down by 15 x scale px (mpii.lua getPartInfo, convert_annot.py)
SCALE_MARGIN = 1.25  # scale x 1.25 (same sources)
ANNOTATION_NAMES = {
    "train": ("train.h5", "train.json", "mpii_train.json", "mpii_annotations.json"),
    "val": ("valid.h5", "valid.json", "mpii_val.json", "mpii_annotations.json"),
}
GT_FILE_NAMES = ("gt_valid.mat", "mpii_gt_val.mat", "gt_valid_detections_our_format.mat")
SC_BIAS = 0.6  # head size = SC_BIAS x head-box diagonal (evalMPII.zip util_get_head_size.m; bearpaw eval_PCKh.py)
# Joint names of the MPII evaluation files (`dataset_joints` of detections_our_format.mat).
MATLAB_JOINT_NAMES = (
    "rank",
    "rkne",
    "rhip",
    "lhip",
    "lkne",
    "lank",
    "pelv",
    "thor",
    "neck",
    "head",
    "rwri",
    "relb",
    "rsho",
    "lsho",
    "lelb",
    "lwri",
)
# The variable that marks each ground-truth layout of load_ground_truth.
GROUND_TRUTH_FIELDS = ("pos_gt_src", "part")


@dataclass(frozen=True)
class MPIIAnnotations:
    """An MPII annotation file, read into arrays (0-based pixel coordinates).

    Attributes:
        path: the file.
        layout: ``hdf5``, ``json`` (microsoft/mmpose) or ``bearpaw``.
        image_names: ``N`` image file names.
        center: ``(N, 2)`` crop centres, adjusted (``+15 x scale`` in y) and 0-based.
        size_px: ``(N,)`` crop sides, ``200 x 1.25 x`` MPII scale.
        joints: ``(N, 16, 2)`` float64 0-based pixels.
        annotated: ``(N, 16)`` bool.
        visible: ``(N, 16)`` bool, the annotation's visibility flag (False for occluded and
            for not annotated joints); None where the layout has none.
        head_size: ``(N,)`` float64 px, ``0.6 x`` head-box diagonal; NaN where unknown.
    """

    path: Path
    layout: str
    image_names: list[str]
    center: np.ndarray
    size_px: np.ndarray
    joints: np.ndarray
    annotated: np.ndarray
    visible: np.ndarray | None
    head_size: np.ndarray

    def __len__(self) -> int:
        return len(self.image_names)


def _field(records: list[dict], key: str, shape: tuple[int, ...], path: Path, fix: str) -> np.ndarray:
    """Field ``key`` of every JSON entry as one float64 array ``(N, *shape)``.

    Raises:
        DatasetError: an entry without the field, or with another shape or non-numbers (names
            the file, the entry, the field and the fix).
    """
    out = np.empty((len(records), *shape), np.float64)
    for i, r in enumerate(records):
        if key not in r:
            raise DatasetError(f"{path}: entry {i} has no field {key!r}; {fix}")
        try:
            value = np.asarray(r[key], np.float64)
        except (TypeError, ValueError) as e:
            raise DatasetError(f"{path}: entry {i}, field {key!r} is not numeric ({e}); {fix}") from e
        if value.shape != shape:
            raise DatasetError(f"{path}: entry {i}, field {key!r} has shape {value.shape}; expected {shape}; {fix}")
        out[i] = value
    return out


def _read_hdf5(path: Path) -> MPIIAnnotations:
    import h5py

    fix = "use pose-hg-train's annot/train.h5 or valid.h5 (imgname, center, scale, part, visible, normalize)"
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e}); {fix}") from e
    with f:
        for k in ("imgname", "center", "scale", "part"):
            if k not in f:
                raise DatasetError(f"{path}: field {k!r} is missing (found: {', '.join(sorted(f))}); {fix}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["imgname"][()]]
        center = np.asarray(f["center"][()], np.float64)
        scale = np.asarray(f["scale"][()], np.float64).reshape(-1)
        part = np.asarray(f["part"][()], np.float64)
        visible = np.asarray(f["visible"][()]) > 0 if "visible" in f else None
        normalize = np.asarray(f["normalize"][()], np.float64).reshape(-1) if "normalize" in f else None
    n = len(names)
    checks = [("center", center.shape, (n, 2)), ("scale", scale.shape, (n,)), ("part", part.shape, (n, NUM_JOINTS, 2))]
    if visible is not None:
        checks.append(("visible", visible.shape, (n, NUM_JOINTS)))
    if normalize is not None:
        checks.append(("normalize", normalize.shape, (n,)))
    for name, got, want in checks:
        if got != want:
            raise DatasetError(
                f"{path}: field {name!r} has shape {got}; expected {want} for {n} entries of 'imgname'; {fix}"
            )
    annotated = ~np.all(part == 0, axis=-1)  # partinfo() writes (0, 0) for a joint not annotated
    head = np.where(normalize > 0, normalize, np.nan) if normalize is not None else np.full(n, np.nan)
    return MPIIAnnotations(
        path=path,
        layout="hdf5",
        image_names=names,
        center=center - 1.0,
        size_px=REFERENCE_HEIGHT_PX * scale,
        joints=np.where(annotated[..., None], part - 1.0, 0.0),
        annotated=annotated,
        visible=None if visible is None else visible & annotated,
        head_size=head,
    )


def _adjusted(center: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw MPII objpos/scale -> 0-based crop centre and side in px (getPartInfo, l. 67-69)."""
    c = np.array(center, np.float64)
    c[:, 1] += CENTER_SHIFT * scale
    return c - 1.0, REFERENCE_HEIGHT_PX * SCALE_MARGIN * scale


def _read_json(path: Path, split: str) -> MPIIAnnotations:
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: not a readable JSON file ({e}); expected a list of person entries") from e
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise DatasetError(
            f"{path}: expected a non-empty JSON list of person entries ({{image, center, scale, joints, joints_vis}} or "
            "bearpaw's {img_paths, objpos, scale_provided, joint_self, isValidation}); use the annotation file of "
            "microsoft/human-pose-estimation.pytorch, mmpose or bearpaw/pytorch-pose"
        )
    if "img_paths" in records[0]:  # bearpaw/pytorch-pose mpii_annotations.json, both splits in one file
        layout = "bearpaw"
        fix = (
            "bearpaw's mpii_annotations.json has img_paths, objpos, scale_provided, joint_self (16 x [x, y, visible]) "
            "and isValidation per entry"
        )
        is_val = _field(records, "isValidation", (), path, fix) > 0
        records = [r for r, v in zip(records, is_val, strict=True) if v == (split == "val")]
        if not records:
            raise DatasetError(f"{path}: no entry with isValidation = {int(split == 'val')} (split {split!r})")
        keys = ("img_paths", "objpos", "scale_provided")
    else:  # microsoft/human-pose-estimation.pytorch, HRNet, mmpose
        layout = "json"
        fix = "each entry needs image, center, scale, joints (16 x [x, y]) and joints_vis (16 flags) as in microsoft's valid.json"
        keys = ("image", "center", "scale")
    for i, r in enumerate(records):
        if keys[0] not in r:
            raise DatasetError(f"{path}: entry {i} has no field {keys[0]!r}; {fix}")
    names = [str(r[keys[0]]) for r in records]
    center = _field(records, keys[1], (2,), path, fix)
    scale = _field(records, keys[2], (), path, fix)
    if layout == "bearpaw":
        raw = _field(records, "joint_self", (NUM_JOINTS, 3), path, fix)
        joints = raw[..., :2]
        annotated = ~np.all(joints == 0, axis=-1)  # (0, 0, 0) marks a joint not annotated
        visible = (raw[..., 2] > 0) & annotated
    else:
        joints = _field(records, "joints", (NUM_JOINTS, 2), path, fix)
        annotated = _field(records, "joints_vis", (NUM_JOINTS,), path, fix) > 0
        visible = None  # joints_vis is the annotation flag (microsoft's target weight), not visibility
    bad = np.flatnonzero(~(scale > 0))
    if bad.size:
        raise DatasetError(
            f"{path}: entry {bad[0]} has {keys[2]} {scale[bad[0]]}; the MPII scale (person height / 200 px) must be positive"
        )
    c, size = _adjusted(center, scale)
    return MPIIAnnotations(
        path=path,
        layout=layout,
        image_names=names,
        center=c,
        size_px=size,
        joints=np.where(annotated[..., None], joints - 1.0, 0.0),
        annotated=annotated,
        visible=visible,
        head_size=np.full(len(names), np.nan),
    )


def read_mpii_annotations(path: str | Path, split: str = "val") -> MPIIAnnotations:
    """Read an MPII annotation file of any of the three layouts (module docstring).

    Args:
        path: ``.h5`` or ``.json``.
        split: ``train`` or ``val``; selects the entries of bearpaw's two-split JSON (the
            other layouts hold one split per file).

    Raises:
        DatasetError: missing file, unknown layout, missing fields or wrong shapes (the
            message names the file, the field and the fix), or an entry whose annotated joints,
            centre or scale are not finite numbers (naming the entry and its image).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        ann = _read_hdf5(path)
    elif suffix == ".json":
        ann = _read_json(path, split)
    else:
        raise DatasetError(
            f"{path}: unknown annotation layout {suffix!r}; expected pose-hg-train's .h5 or a PyTorch port's .json"
        )
    if ann.annotated.any(axis=1).sum() == 0:
        raise DatasetError(
            f"{path}: no entry has an annotated joint (this looks like a test-split file, which has no joints)"
        )
    _check_finite(ann)
    return ann


def _check_finite(ann: MPIIAnnotations) -> None:
    """Refuse an entry with an annotated joint, a centre or a scale that is not a finite number.

    Raises:
        DatasetError: naming the file, the first such entry, its image and the field.
    """
    hit = first_non_finite(ann.joints, ann.annotated)
    used = ann.annotated.any(axis=1)
    bad_crop = np.flatnonzero(used & ~(np.isfinite(ann.center).all(axis=1) & np.isfinite(ann.size_px)))
    if hit is None and not bad_crop.size:
        return
    if hit is not None and (not bad_crop.size or hit[0] <= bad_crop[0]):
        n, j = hit
        what = f"joint {j} ({MPII.names[j]}) is annotated at {tuple(float(v) for v in ann.joints[n, j] + 1.0)}"
    else:
        n = int(bad_crop[0])
        what = f"centre {tuple(float(v) for v in ann.center[n] + 1.0)} / scale {ann.size_px[n] / REFERENCE_HEIGHT_PX}"
    raise DatasetError(
        f"{ann.path}: entry {n} (image {ann.image_names[n]}): {what}, not finite numbers; correct the annotation "
        "file or leave the entry out"
    )


@dataclass(frozen=True)
class MPIIGroundTruth:
    """MPII ground truth for PCKh.

    Attributes:
        joints: ``(N, 16, 2)`` float64 pixels in the file's own convention (the MPII files
            are 1-based MATLAB pixel coordinates).
        annotated: ``(N, 16)`` bool; False joints are left out of every score.
        head_size: ``(N,)`` float64 pixels, ``0.6 x`` head-box diagonal (NaN where unknown:
            that person's joints are left out and counted as unnormalised).
        path: the file it was read from.
    """

    joints: np.ndarray
    annotated: np.ndarray
    head_size: np.ndarray
    path: str = ""

    def __len__(self) -> int:
        return len(self.joints)


def head_size_from_boxes(headboxes: np.ndarray) -> np.ndarray:
    """PCKh normaliser from head boxes.

    Args:
        headboxes: ``(N, 2, 2)`` ``[[x1, y1], [x2, y2]]`` pixels per person (the
            ``headboxes_src`` of the MPII evaluation files, transposed to persons first).

    Returns:
        ``(N,)`` float64 ``0.6 x ||(x2, y2) - (x1, y1)||`` pixels (``util_get_head_size.m``,
        ``SC_BIAS = 0.6``; the same in bearpaw ``eval_PCKh.py``).
    """
    boxes = np.asarray(headboxes, np.float64)
    return SC_BIAS * np.linalg.norm(boxes[:, 1, :] - boxes[:, 0, :], axis=-1)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a ``.mat`` (MATLAB v5 via scipy, v7.3 via h5py) or ``.h5`` file, by
    variable name (HDF5: the dataset's path). MATLAB v7.3 and other HDF5 files written from
    MATLAB hold their arrays with the axes reversed.

    Raises:
        ValueError: another suffix, or a file that cannot be read as its suffix says.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mat", ".h5", ".hdf5"):
        raise ValueError(f"{path}: unknown file type {suffix!r}; expected a .mat (MATLAB) or .h5 (HDF5) file")
    import h5py

    if suffix == ".mat" and not h5py.is_hdf5(path):  # MATLAB v7.3 files are HDF5, read below
        import scipy.io

        try:
            mat = scipy.io.loadmat(path)
        except Exception as e:  # scipy raises several types for a damaged file
            raise ValueError(f"{path}: not a readable MATLAB file ({e}); re-export it with MATLAB/scipy savemat") from e
        return {k: v for k, v in mat.items() if not k.startswith("__") and isinstance(v, np.ndarray)}

    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[name] = obj[()]

            f.visititems(visit)
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e
    return {k: np.asarray(v) for k, v in out.items()}


def load_ground_truth(path: str | Path) -> MPIIGroundTruth:
    """Read the MPII validation ground truth that PCKh is scored against.

    Two files are accepted:

    - ``gt_valid_detections_our_format.mat`` / ``gt_valid.mat`` (bearpaw, microsoft, mmpose):
      ``pos_gt_src`` (16, 2, N) px, ``jnt_missing`` (16, N) (1 = not annotated),
      ``headboxes_src`` (2, 2, N) ``[x1 y1; x2 y2]``; head size from the boxes.
    - pose-hg-train's ``valid.h5``: ``part`` (N, 16, 2), ``normalize`` (N,) = 0.6 x head-box
      diagonal (pose-hg-train ``src/misc/mpii.py`` ``normalization()``); a joint is not
      annotated where ``part`` is (0, 0) (``partinfo()`` writes zeros for missing joints).
      Its coordinates are the same annotation truncated to integers (``partinfo()`` casts to
      ``int``), so scores against it can differ slightly from scores against the ``.mat``.

    Coordinates are kept as in the file (1-based MATLAB pixels), unlike
    :func:`read_mpii_annotations`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable ``.mat``/``.h5`` file.
        DatasetError: a missing field or a wrong shape (names the file, the field, the fix).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: ground truth file not found; pass --gt gt_valid_detections_our_format.mat or valid.h5"
        )
    arrays = read_arrays(path)
    fix = "use gt_valid_detections_our_format.mat (pos_gt_src, jnt_missing, headboxes_src) or pose-hg-train's valid.h5 (part, normalize)"
    if "pos_gt_src" in arrays:
        for k in ("jnt_missing", "headboxes_src"):
            if k not in arrays:
                raise DatasetError(f"{path}: field {k!r} is missing next to 'pos_gt_src'; {fix}")
        pos = np.asarray(arrays["pos_gt_src"], np.float64)
        miss = np.asarray(arrays["jnt_missing"])
        boxes = np.asarray(arrays["headboxes_src"], np.float64)
        if path.suffix.lower() == ".mat" and pos.shape[:2] != (NUM_JOINTS, 2) and pos.shape[-2:] == (2, NUM_JOINTS):
            pos, miss, boxes = pos.T, miss.T, boxes.T  # MATLAB v7.3 via h5py: axes reversed
        if pos.ndim != 3 or pos.shape[:2] != (NUM_JOINTS, 2):
            raise DatasetError(f"{path}: field 'pos_gt_src' has shape {pos.shape}; expected (16, 2, N); {fix}")
        n = pos.shape[2]
        if miss.shape != (NUM_JOINTS, n):
            raise DatasetError(f"{path}: field 'jnt_missing' has shape {miss.shape}; expected (16, {n})")
        if boxes.shape != (2, 2, n):
            raise DatasetError(f"{path}: field 'headboxes_src' has shape {boxes.shape}; expected (2, 2, {n})")
        names = arrays.get("dataset_joints")
        if names is not None and names.dtype == object:
            found = tuple(str(np.asarray(x).ravel()[0]) for x in np.asarray(names).ravel())
            if found != MATLAB_JOINT_NAMES:
                raise DatasetError(
                    f"{path}: field 'dataset_joints' is {found}; expected the MPII order {MATLAB_JOINT_NAMES}"
                )
        return MPIIGroundTruth(
            joints=pos.transpose(2, 0, 1).copy(),
            annotated=miss.T == 0,
            head_size=head_size_from_boxes(boxes.transpose(2, 0, 1)),
            path=str(path),
        )
    if "part" in arrays:
        part = np.asarray(arrays["part"], np.float64)
        if part.ndim != 3 or part.shape[1:] != (NUM_JOINTS, 2):
            raise DatasetError(f"{path}: field 'part' has shape {part.shape}; expected (N, 16, 2); {fix}")
        if "normalize" not in arrays:
            raise DatasetError(
                f"{path}: field 'normalize' (the head size, 0.6 x head-box diagonal) is missing, so PCKh cannot be computed; {fix}"
            )
        norm = np.asarray(arrays["normalize"], np.float64).reshape(-1)
        if norm.shape != (len(part),):
            raise DatasetError(f"{path}: field 'normalize' has {norm.size} values for {len(part)} persons in 'part'")
        norm = np.where(norm > 0, norm, np.nan)  # pose-hg-train writes -1 where no head box exists
        return MPIIGroundTruth(joints=part, annotated=~np.all(part == 0, axis=-1), head_size=norm, path=str(path))
    raise DatasetError(
        f"{path}: neither 'pos_gt_src' nor 'part' found (fields: {', '.join(sorted(arrays)) or 'none'}); {fix}"
    )


def _head_sizes_from_gt(gt_path: Path, ann: MPIIAnnotations) -> np.ndarray:
    """Head sizes from an MPII ground-truth ``.mat`` whose persons are ``ann``'s, in order.

    Raises:
        DatasetError: different person count, or joints that disagree (another split or order).
    """
    gt = load_ground_truth(gt_path)
    if len(gt) != len(ann):
        raise DatasetError(
            f"{gt_path}: {len(gt)} persons but {ann.path} has {len(ann)}; pass the ground truth of the same split"
        )
    both = gt.annotated & ann.annotated
    err = np.abs(gt.joints - 1.0 - ann.joints).max(axis=-1)[both]  # .mat is 1-based, ann 0-based
    if err.size and np.mean(err > 1.0) > 0.01:
        raise DatasetError(
            f"{gt_path}: joints disagree with {ann.path} for {np.mean(err > 1.0):.0%} of joints; "
            "the files are not the same persons in the same order"
        )
    return gt.head_size


def _no_head_sizes(ann: MPIIAnnotations, gt_path: Path | None) -> str:
    """The message for an annotation file whose persons have no head size (PCKh impossible)."""
    if gt_path is not None:
        return (
            f"{gt_path}: no person has a head box, so PCKh cannot score {ann.path}; "
            "pass the MPII ground truth of the same split as gt_file"
        )
    if ann.layout == "hdf5":
        return (
            f"{ann.path}: field 'normalize' (the PCKh head size, 0.6 x head-box diagonal) is missing or never positive, so PCKh "
            "cannot score the val split; use pose-hg-train's annot/valid.h5 (hgbench data download mpii), which has it"
        )
    return (
        f"{ann.path}: the {ann.layout} layout has no head boxes and no MPII ground truth of the same persons is beside it "
        f"({', '.join(GT_FILE_NAMES)}), so PCKh cannot score the val split; put that split's gt_valid.mat beside it "
        "(hgbench data download mpii --all), pass gt_file, or use pose-hg-train's valid.h5"
    )


class MPIIDataset(PoseDataset):
    """MPII Human Pose person crops (module docstring: layouts, crop, coordinates).

    Args:
        root: folder with ``images/`` and the annotation file (``ROOT`` or ``ROOT/annot``).
        split: ``train`` or ``val`` (``valid`` is accepted).
        annotation_file: an explicit annotation file (default: the first of
            :data:`ANNOTATION_NAMES` found).
        gt_file: MPII ground truth ``.mat`` for the head sizes of a JSON layout (default: one
            of :data:`GT_FILE_NAMES` beside the annotation file, if its person count matches).
        **kwargs: :class:`PoseDataset` options (input_size, output_size, sigma, augmentation,
            bad_samples). ``bad_samples="error"`` (default): images missing from ``images/``
            stop construction with a :class:`DatasetError` (a corrupt one raises when loaded);
            ``"skip"``: persons whose image is missing or corrupt are left out, listed in
            :attr:`skipped` and counted in :attr:`num_skipped` (so a subset of the images
            works, as the five of ``../shared/data/mpii``).

    Attributes:
        annotations: the :class:`MPIIAnnotations` of the whole file.
        indices: ``(len(self),)`` row of each item in the annotation file.
        num_skipped: persons left out for a missing or corrupt image.

    Raises:
        DatasetError: missing or malformed files, a val split without head sizes (module
            docstring), missing images (``bad_samples="error"``), or no person left.
    """

    keypoints = MPII
    name = "mpii"
    metric = "pckh"  # the MPII toolkit's PCKh with the head-size normaliser (normalizer below)

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        annotation_file: str | Path | None = None,
        gt_file: str | Path | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        split = "val" if split == "valid" else split
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} for MPII, got {split!r}")
        self.root = Path(root)
        self.split = split
        path = Path(annotation_file) if annotation_file is not None else self._find_annotation(split)
        ann = read_mpii_annotations(path, split)
        self.annotation_file = path
        head = ann.head_size
        gt_path = Path(gt_file) if gt_file is not None else None
        if gt_path is None and np.isnan(head).all():
            for name in GT_FILE_NAMES:
                cand = path.parent / name
                if cand.is_file() and split == "val":
                    try:
                        head = _head_sizes_from_gt(cand, ann)
                        gt_path = cand
                        break
                    except DatasetError:
                        continue  # another subset of the split: no head sizes from it
        elif gt_path is not None:
            head = _head_sizes_from_gt(gt_path, ann)
        self.gt_file = gt_path
        self.annotations = replace(ann, head_size=head)
        if split == "val" and not np.isfinite(head[ann.annotated.any(axis=1)]).any():
            raise DatasetError(_no_head_sizes(ann, gt_path))

        self.image_dir = self.root / "images"
        if not self.image_dir.is_dir():
            raise DatasetError(
                f"{self.image_dir}: not found. The MPII root must hold images/ "
                "(all MPII images in one folder) and the annotation file."
            )
        rows = np.flatnonzero(ann.annotated.any(axis=1))
        if self.bad_samples == "error":
            present = {p.name for p in self.image_dir.iterdir()}
            missing = [ann.image_names[r] for r in rows if ann.image_names[r] not in present]
            if missing:
                raise DatasetError(
                    f"{self.image_dir}: {len(missing)} of {len(rows)} images listed in {path} are missing (first: {missing[0]}). "
                    "Put all MPII images into images/ (hgbench data download mpii), or pass --skip-bad-samples "
                    "(bad_samples='skip') to use only the persons whose image is readable (counted and reported)."
                )
        else:
            rows = self.keep_readable(rows, lambda r: self.image_dir / ann.image_names[r])
        self.indices = np.asarray(rows, dtype=np.int64)
        self.num_skipped = int(ann.annotated.any(axis=1).sum()) - len(self.indices)
        if not len(self.indices):
            raise DatasetError(
                f"{self.image_dir}: none of the {len(ann)} images listed in {path} is present and readable"
            )

    def _find_annotation(self, split: str) -> Path:
        candidates = [self.root / d / n for n in ANNOTATION_NAMES[split] for d in ("", "annot")]
        for c in candidates:
            if c.is_file():
                return c
        raise DatasetError(
            f"{self.root}: no MPII annotation file for split {split!r} (looked for {', '.join(str(c) for c in candidates)}). "
            "Put pose-hg-train's annot/*.h5 or a PyTorch port's annot/*.json there, or pass annotation_file."
        )

    def __len__(self) -> int:
        return len(self.indices)

    def annotation(self, index: int) -> PoseAnnotation:
        """The person's annotation: ``joints`` 0-based pixels (0 where not annotated),
        ``visible`` the annotation's visibility flag (HDF5 ``visible``, bearpaw
        ``joint_self[:, 2]``; None for the microsoft/mmpose JSON, whose ``joints_vis`` is the
        annotation flag)."""
        a, row = self.annotations, int(self.indices[index])
        return PoseAnnotation(
            image_id=a.image_names[row],
            joints=a.joints[row].astype(np.float32),
            annotated=a.annotated[row].copy(),
            center=a.center[row].copy(),
            size_px=float(a.size_px[row]),
            visible=None if a.visible is None else a.visible[row].copy(),
        )

    @property
    def head_sizes(self) -> np.ndarray:
        """``(len(self),)`` float64 PCKh normalisers in px (NaN where unknown)."""
        return self.annotations.head_size[self.indices].copy()

    def head_size(self, index: int) -> float:
        """PCKh normaliser of item ``index`` in px: ``0.6 x`` head-box diagonal (HDF5
        ``normalize``, or ``headboxes_src`` of the ground-truth ``.mat``).

        Raises:
            DatasetError: this annotation file has no head boxes and no matching ``gt_file``.
        """
        value = float(self.annotations.head_size[int(self.indices[index])])
        if not np.isfinite(value):
            raise DatasetError(
                f"{self.annotations.path}: no head size for {self.annotations.image_names[int(self.indices[index])]}; "
                "PCKh needs the head boxes: use pose-hg-train's valid.h5 (normalize) or pass gt_file=gt_valid.mat of the same split"
            )
        return value

    def normalizer(self, index: int, ann: PoseAnnotation, joints: np.ndarray, annotated: np.ndarray) -> float:
        """The PCKh normaliser: the person's head size in px (:meth:`head_size`); NaN where
        the annotation file has no head boxes (the person is then left out of the score and
        counted as unnormalised). A flip does not change it."""
        return float(self.annotations.head_size[int(self.indices[index])])

    def load_image(self, index: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB (:func:`hgbench.data.base.read_image`: a missing, corrupt or
        truncated JPEG raises :class:`DatasetError` naming the file)."""
        return read_image(self.image_dir / self.annotations.image_names[int(self.indices[index])])


def required_files(root: str | Path, split: str = "val") -> list[Path]:
    """The files a complete MPII ``split`` under ``root`` holds for :class:`MPIIDataset` (for
    ``hgbench data check``): the annotation file (the first of :data:`ANNOTATION_NAMES` in
    ``root`` or ``root/annot``, as :class:`MPIIDataset` looks), then ``images/<name>`` of every
    image it names with an annotated person. When no annotation file is found the list holds
    only the one ``hgbench data download mpii`` writes (``annot/train.h5``/``annot/valid.h5``).

    Raises:
        ValueError: unknown split.
        DatasetError: the annotation file is unreadable or malformed.
    """
    root, split = Path(root), "val" if split == "valid" else split
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} for MPII, got {split!r}")
    candidates = [root / d / n for n in ANNOTATION_NAMES[split] for d in ("", "annot")]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return [root / "annot" / ANNOTATION_NAMES[split][0]]
    ann = read_mpii_annotations(path, split)
    names = dict.fromkeys(ann.image_names[r] for r in np.flatnonzero(ann.annotated.any(axis=1)))
    return [path, *(root / "images" / name for name in names)]
