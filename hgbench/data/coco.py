"""COCO person keypoints (Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014).

One item per person annotation of the standard COCO keypoints JSON (read with
``pycocotools.coco.COCO``): category ``person`` (id 1), ``iscrowd`` 0, ``num_keypoints`` > 0
and a box of positive area. Each annotation's ``keypoints`` holds 17 ``[x, y, v]`` triplets
(51 numbers) in :data:`hgbench.data.keypoints.COCO` order, with the visibility flag ``v``:
0 not labelled (coordinates meaningless: no loss, no score), 1 labelled but not visible
(occluded: annotated, not visible), 2 labelled and visible.

Crop (the common top-down code, microsoft/human-pose-estimation.pytorch
``lib/dataset/coco.py``, commit 15bbef2, ``_load_coco_keypoint_annotation_kernal`` and
``_box2cs``/``_xywh2cs``): the box ``[x, y, w, h]`` is first clipped to the image
(``x1 = max(0, x)``, ``x2 = min(W - 1, x1 + max(0, w - 1))``, likewise in y, giving the
"clean" box ``[x1, y1, x2 - x1, y2 - y1]``); the crop centre is the clean box's centre
``(x1 + w / 2, y1 + h / 2)``; its shorter side is lengthened to the network input's aspect
ratio (1 for hgbench's square input, so both sides become ``max(w, h)``) and the result is
enlarged by 1.25. The square crop's side is therefore ``1.25 * max(w, h)`` image pixels.
(Seed 003, Sec. 4.2.2, crops its own way, a square around the outermost keypoints enlarged
by 10 %; hgbench follows the common code, as issue 4 asks.)

Accuracy: ``metric = "pck_heatmap"``, seed 003's PCK (Sec. 5.1 and Algorithm 1): the
normaliser is one tenth of the heatmap side, ``output_size / 10`` heatmap pixels, which is
``size_px / 10`` image pixels for this crop (one heatmap pixel is ``size_px / output_size``
image pixels) (:func:`heatmap_normalizer_px`). The metric itself, and OKS AP through
pycocotools, are in the accuracy package (``accuracy/coco.py``).

Folder layouts accepted (``root``):

- the sample layout of ``shared/data/coco``: ``root/person_keypoints_*.json`` (exactly one)
  and ``root/images/``. That one file serves every split (the file is the split);
- the official archives unpacked in place: ``root/annotations/person_keypoints_{split}2017.json``
  and ``root/{split}2017/`` (``split`` ``train`` or ``val``);
- the layout of the common top-down code: the same annotations and
  ``root/images/{split}2017/``.

``ann_file`` and ``image_dir`` override the search. Images are named by each image
record's ``file_name``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hgbench.data.base import DatasetError, PoseAnnotation, PoseDataset, read_image
from hgbench.data.keypoints import COCO as COCO_KEYPOINTS

PERSON_CATEGORY_ID = 1
NUM_KEYPOINTS = 17
BOX_MARGIN = 1.25  # human-pose-estimation.pytorch lib/dataset/coco.py _xywh2cs: scale * 1.25
SPLITS = ("train", "val")
_FIX = "a COCO person keypoints file (person_keypoints_val2017.json layout) is expected"
PCK_HEATMAP_FRACTION = 0.1  # seed 003 Sec. 5.1: c = one tenth of the heatmap side


@dataclass(frozen=True)
class COCOPerson:
    """One person annotation of the keypoints JSON.

    Attributes:
        ann_id: the annotation's ``id``.
        image_id: the image's ``id`` (the ``image_id`` of the results pycocotools scores).
        file_name: the image's ``file_name``.
        keypoints: ``(17, 3)`` float64 ``x, y, v`` as in the file.
        bbox: ``(4,)`` ``[x, y, w, h]`` as in the file, pixels.
        clean_bbox: ``(4,)`` the box clipped to the image as the common code does.
        area: the annotation's ``area`` (segment area, px^2; OKS's scale ``s^2``).
    """

    ann_id: int
    image_id: int
    file_name: str
    keypoints: np.ndarray
    bbox: np.ndarray
    clean_bbox: np.ndarray
    area: float


def box_to_center_size(box, aspect_ratio: float = 1.0, margin: float = BOX_MARGIN) -> tuple[np.ndarray, float]:
    """Crop centre and square side from a person box, as ``_xywh2cs`` of
    microsoft/human-pose-estimation.pytorch ``lib/dataset/coco.py`` (commit 15bbef2).

    Args:
        box: ``[x, y, w, h]`` pixels (the clean box, see :func:`clean_box`).
        aspect_ratio: network input width / height (1 for hgbench's square inputs).
        margin: enlargement factor (1.25 in the common code).

    Returns:
        ``center (2,)`` float64 ``(x + w / 2, y + h / 2)`` and the crop's height in image
        pixels, ``margin * max(h, w / aspect_ratio)`` (its width is that times
        ``aspect_ratio``); for hgbench's square input, ``margin * max(w, h)``.
    """
    x, y, w, h = (float(v) for v in box[:4])
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float64)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, margin * h


def clean_box(bbox, width: int, height: int) -> np.ndarray | None:
    """The box clipped to the image as the common code does (``_load_coco_keypoint_annotation_kernal``
    of microsoft/human-pose-estimation.pytorch ``lib/dataset/coco.py``): ``[x1, y1, x2 - x1, y2 - y1]``
    with ``x1 = max(0, x)``, ``x2 = min(width - 1, x1 + max(0, w - 1))`` and likewise in y;
    None where ``x2 < x1`` or ``y2 < y1`` (the common code drops the person)."""
    x, y, w, h = (float(v) for v in bbox[:4])
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    if x2 < x1 or y2 < y1:
        return None
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_coco_keypoints(path: str | Path):
    """Read and check a COCO person keypoints JSON; return it as a ``pycocotools.coco.COCO``.

    The JSON is parsed once, checked field by field, then indexed by pycocotools (``COCO()``
    with ``dataset`` set and ``createIndex()``, as pycocotools' own ``loadRes`` builds one);
    pycocotools' progress prints are kept off stdout.

    Raises:
        DatasetError: missing file, invalid JSON, or a field of the wrong layout: no
        ``images``/``annotations`` list, an image without ``id``/``file_name``/``width``/
        ``height``, a person annotation without ``image_id``/``bbox``/``keypoints``/``area``,
        ``keypoints`` not 51 numbers, a ``v`` not in {0, 1, 2}, an ``image_id`` with no image.
        The message names the file, the field and the fix.
    """
    from pycocotools.coco import COCO

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: not found. Pass --data-root pointing at a COCO folder ({_layouts_hint()}).")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e}); re-extract the annotation archive.") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: top level is a {type(data).__name__}, not an object; {_FIX}.")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            what = "missing" if key not in data else f"a {type(data[key]).__name__}, not a list"
            raise DatasetError(
                f"{path}: field {key!r} is {what}; {_FIX} (fields 'images', 'annotations', 'categories'). "
                "An image_info_*.json (test split) has no annotations and cannot be scored."
            )
    image_ids = set()
    for i, img in enumerate(data["images"]):
        for key in ("id", "file_name", "width", "height"):
            if not isinstance(img, dict) or key not in img:
                raise DatasetError(f"{path}: images[{i}] has no field {key!r}; {_FIX}.")
        image_ids.add(img["id"])
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path}: annotations[{i}] is not an object; {_FIX}.")
        if ann.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID:
            continue
        where = f"{path}: annotations[{i}] (id {ann.get('id')})"
        for key in ("id", "image_id", "bbox", "keypoints", "num_keypoints", "area"):
            if key not in ann:
                raise DatasetError(f"{where} has no field {key!r}; {_FIX}.")
        kp = ann["keypoints"]
        if not isinstance(kp, list) or len(kp) != 3 * NUM_KEYPOINTS or not all(_is_number(v) for v in kp):
            n = len(kp) if isinstance(kp, list) else type(kp).__name__
            raise DatasetError(
                f"{where}: field 'keypoints' has {n} values; expected {3 * NUM_KEYPOINTS} numbers "
                f"(17 COCO keypoints as x, y, v). Use the person_keypoints_*.json files, not another layout."
            )
        if any(v not in (0, 1, 2) for v in kp[2::3]):
            raise DatasetError(
                f"{where}: field 'keypoints' has visibility flags {sorted(set(kp[2::3]))}; "
                "expected 0 (not labelled), 1 (labelled, not visible) or 2 (visible)."
            )
        box = ann["bbox"]
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise DatasetError(f"{where}: field 'bbox' is {box!r}; expected [x, y, width, height] in pixels.")
        if ann["image_id"] not in image_ids:
            raise DatasetError(
                f"{where}: image_id {ann['image_id']} has no entry in 'images'; the file is "
                "incomplete, re-extract the annotation archive."
            )
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _layouts_hint() -> str:
    return (
        "person_keypoints_*.json with images/, or annotations/person_keypoints_{train,val}2017.json "
        "with train2017/, val2017/ or images/{train,val}2017/"
    )


def find_annotation_file(root: Path, split: str) -> Path:
    """The keypoints JSON for ``split`` under ``root`` (see the module docstring).

    Raises:
        DatasetError: none found, or several candidates and none named for ``split``.
    """
    for candidate in (
        root / "annotations" / f"person_keypoints_{split}2017.json",
        root / f"person_keypoints_{split}2017.json",
    ):
        if candidate.is_file():
            return candidate
    found = sorted(root.glob("person_keypoints_*.json"))
    if len(found) == 1:
        return found[0]
    if found:
        raise DatasetError(
            f"{root}: several keypoints files ({', '.join(p.name for p in found)}) and none named "
            f"person_keypoints_{split}2017.json; pass the file to use (ann_file)."
        )
    raise DatasetError(
        f"{root}: no COCO keypoints file found. Expected {_layouts_hint()}; "
        "`hgbench data download coco --to DIR` fetches them."
    )


def heatmap_normalizer_px(size_px: float, output_size: int, fraction: float = PCK_HEATMAP_FRACTION) -> float:
    """Seed 003's PCK normaliser mapped into image pixels for a crop of side ``size_px``.

    ``fraction * output_size`` heatmap pixels (Sec. 5.1: ``c = 64 / 10 = 6.4``) times
    ``size_px / output_size`` image pixels per heatmap pixel, i.e. ``fraction * size_px``
    image pixels. The crop is a similarity transform, so a distance compared with a multiple
    of it gives the same answer in image and in heatmap pixels.
    """
    return fraction * output_size * (float(size_px) / output_size)


class COCODataset(PoseDataset):
    """COCO person crops from the person boxes (see the module docstring for layouts, crop
    and the accuracy normaliser).

    Items are in the file's image order, then annotation order within an image (as the
    common code's ``getImgIds``/``getAnnIds``). Annotations carry ``visible`` (``v == 2``),
    so the occlusion split and a visibility-dependent sigma (``sigma_occluded``) apply.

    Args:
        root: the COCO folder.
        split: ``"train"`` or ``"val"`` (chooses ``*_{split}2017`` files and folders).
        ann_file: the keypoints JSON to read instead of searching ``root``.
        image_dir: the image folder instead of searching ``root``.
        **kwargs: :class:`PoseDataset` arguments.

    Attributes:
        coco: the ``pycocotools.coco.COCO`` ground truth (for OKS AP, ``accuracy/coco.py``).
        persons: :class:`COCOPerson` of each item.
        ann_file, image_dir: the files used.

    Raises:
        ValueError: unknown ``split``.
        DatasetError: missing or malformed files (naming the file, field and fix), or no
        person with keypoints.
    """

    keypoints = COCO_KEYPOINTS
    name = "coco"
    metric = "pck_heatmap"

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        ann_file: str | Path | None = None,
        image_dir: str | Path | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.ann_file = Path(ann_file) if ann_file is not None else find_annotation_file(self.root, split)
        self.annotation_file = self.ann_file
        self.coco = read_coco_keypoints(self.ann_file)
        persons = []
        for image_id in self.coco.getImgIds():
            img = self.coco.imgs[image_id]
            for ann_id in self.coco.getAnnIds(imgIds=image_id):
                ann = self.coco.anns[ann_id]
                if ann.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID or ann.get("iscrowd", 0):
                    continue
                kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)
                if ann.get("num_keypoints", int((kp[:, 2] > 0).sum())) <= 0 or not (kp[:, 2] > 0).any():
                    continue
                box = clean_box(ann["bbox"], img["width"], img["height"])
                if box is None or ann["area"] <= 0 or max(box[2], box[3]) <= 0:
                    continue  # the common code drops these boxes (a zero-size box has no crop)
                persons.append(
                    COCOPerson(
                        int(ann["id"]),
                        int(image_id),
                        str(img["file_name"]),
                        kp,
                        np.asarray(ann["bbox"], np.float64),
                        box,
                        float(ann["area"]),
                    )
                )
        if not persons:
            raise DatasetError(
                f"{self.ann_file}: no person annotation with keypoints (category_id 1, iscrowd 0, "
                "num_keypoints > 0); use a person_keypoints_*.json file."
            )
        self.image_dir = Path(image_dir) if image_dir is not None else self._find_image_dir(persons[0].file_name)
        self.persons: list[COCOPerson] = self.keep_readable(persons, lambda p: self.image_dir / p.file_name)

    def _find_image_dir(self, file_name: str) -> Path:
        candidates = [self.root / "images", self.root / f"{self.split}2017", self.root / "images" / f"{self.split}2017"]
        for d in candidates:
            if (d / file_name).is_file():
                return d
        tried = ", ".join(str(d) for d in candidates)
        raise DatasetError(
            f"{self.ann_file}: image {file_name!r} (first in the file) is in none of {tried}; "
            "put the images there or pass image_dir."
        )

    def __len__(self) -> int:
        return len(self.persons)

    def annotation(self, index: int) -> PoseAnnotation:
        p = self.persons[index]
        center, side = box_to_center_size(p.clean_bbox, aspect_ratio=1.0)
        v = p.keypoints[:, 2]
        return PoseAnnotation(p.file_name, p.keypoints[:, :2].astype(np.float32), v > 0, center, side, visible=v == 2)

    def load_image(self, index: int) -> np.ndarray:
        return read_image(self.image_dir / self.persons[index].file_name)

    def normalizer(self, index: int, ann: PoseAnnotation, joints: np.ndarray, annotated: np.ndarray) -> float:
        """Seed 003's PCK normaliser in image pixels: one tenth of the heatmap side
        (``output_size / 10`` heatmap pixels, Sec. 5.1) times ``size_px / output_size``
        image pixels per heatmap pixel, i.e. ``ann.size_px / 10``
        (:func:`heatmap_normalizer_px`). Exact for the evaluation crop; under training-time
        scale augmentation the crop is ``size_px / scale`` wide, which this hook does not see."""
        return heatmap_normalizer_px(ann.size_px, self.output_size)


def required_files(root: str | Path, split: str = "val") -> list[Path]:
    """The files a complete COCO ``split`` under ``root`` holds for :class:`COCODataset` (for
    ``hgbench data check``): the keypoints file (:func:`find_annotation_file`), then every
    image it lists, in the first of ``images/``, ``{split}2017/``, ``images/{split}2017/``
    that holds its first image (else ``{split}2017/``, where the official archive unpacks).
    When no keypoints file is found the list holds only the official
    ``annotations/person_keypoints_{split}2017.json``.

    Raises:
        ValueError: unknown split.
        DatasetError: the keypoints file is malformed (:func:`read_coco_keypoints`), or
        several candidates and none named for ``split``.
    """
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        ann_file = find_annotation_file(root, split)
    except DatasetError:
        if any(root.glob("person_keypoints_*.json")):
            raise  # several files, none named for the split
        return [root / "annotations" / f"person_keypoints_{split}2017.json"]
    names = [str(img["file_name"]) for img in read_coco_keypoints(ann_file).dataset["images"]]
    candidates = [root / "images", root / f"{split}2017", root / "images" / f"{split}2017"]
    image_dir = next((d for d in candidates if names and (d / names[0]).is_file()), root / f"{split}2017")
    return [ann_file, *(image_dir / name for name in names)]
