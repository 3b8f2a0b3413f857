"""Calibration sets for post-training static quantization (``int8``): what they are, how they are drawn.

A static-quantization calibration set is a few hundred network inputs whose activation ranges
fix the quantization scales of every activation. :class:`CalibrationSpec` says which (count,
split, seed, method: the four things a record stores); :func:`draw_calibration_set` draws them
from a :class:`~hgbench.data.base.PoseDataset` with the deterministic centre crop that
evaluation uses (no augmentation), and :class:`CalibrationSet` holds the stacked inputs with a
content digest that names the set in cache keys (the same spec on other data is another set).

Not to be confused with :mod:`hgbench.profile.calibration`, which calibrates the *timer*.

The method names are ONNX Runtime's ``CalibrationMethod`` members (``MinMax``, ``Entropy``,
``Percentile``; ``onnxruntime/quantization/calibrate.py``), lower-cased; the default, MinMax,
is ONNX Runtime's default too. The default count, 256, is "a few hundred" (issue 27) and the
number of calibration batches of 1 that ONNX Runtime's ResNet-50 example
(onnxruntime-inference-examples, ``quantization/image_classification/cpu``) has its reader
draw is of the same order.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from hgbench.data.base import PoseDataset
from hgbench.records import content_hash

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
"""ONNX Runtime's static calibration methods (``onnxruntime.quantization.CalibrationMethod``), lower-cased."""

DEFAULT_CALIBRATION_COUNT = 256


@dataclass(frozen=True)
class CalibrationSpec:
    """Which calibration inputs to draw, and how ranges are computed from them.

    Attributes:
        count: number of person crops (>= 1, and at most the split's size, checked when drawn).
        split: dataset split they come from (``"train"``: never the split accuracy is measured on).
        seed: seed of the draw (``np.random.default_rng(seed)`` chooses the crops).
        method: one of :data:`CALIBRATION_METHODS` (ONNX Runtime's names; the torchao x86
            quantizer has its own observers and uses the inputs only).

    Raises:
        ValueError: count below 1 or a method not in :data:`CALIBRATION_METHODS`; the message
            names the command-line option and the fix.
    """

    count: int = DEFAULT_CALIBRATION_COUNT
    split: str = "train"
    seed: int = 0
    method: str = "minmax"

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(
                f"--calibration-count {self.count!r}: int8 calibration needs at least one crop; "
                f"pass --calibration-count N with N >= 1 (default {DEFAULT_CALIBRATION_COUNT})"
            )
        if self.method not in CALIBRATION_METHODS:
            raise ValueError(
                f"--calibration-method {self.method!r} is unknown; pass one of {', '.join(CALIBRATION_METHODS)}"
            )

    def digest(self) -> str:
        """Content hash of the spec (12 hex digits, :func:`hgbench.records.content_hash`)."""
        return content_hash(self)


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration inputs drawn under a :class:`CalibrationSpec`.

    Attributes:
        spec: the spec they were drawn under.
        dataset: the dataset's name (``PoseDataset.name``).
        indices: the crops' indices in the split, ascending.
        inputs: ``(count, 3, H, W)`` float32 network inputs (RGB in [0, 1], as the dataset gives them).
        digest: 16 hex digits of the SHA-256 of the spec, the dataset name, the indices and the
            inputs' bytes: the set's identity in cache keys.
    """

    spec: CalibrationSpec
    dataset: str
    indices: tuple[int, ...]
    inputs: Tensor = dataclasses.field(repr=False)
    digest: str

    @property
    def input_size(self) -> int:
        """Side of the inputs in pixels."""
        return int(self.inputs.shape[-1])

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """The inputs in batches of exactly ``batch_size`` (``(batch_size, 3, H, W)``), for
        static-shape artifacts: the last batch is filled up cyclically from the first inputs, so
        ``ceil(count / batch_size)`` batches come out and at most ``batch_size - 1`` inputs are seen
        twice (no effect on MinMax ranges; a weight of two in a histogram method).

        Raises:
            ValueError: batch_size below 1.
        """
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        count = self.inputs.shape[0]
        for start in range(0, count, batch_size):
            index = torch.arange(start, start + batch_size) % count
            yield self.inputs[index]

    def record(self) -> dict:
        """What a record stores about the set: the spec's fields, the dataset, the input size and the digest."""
        return {
            **dataclasses.asdict(self.spec),
            "dataset": self.dataset,
            "input_size": self.input_size,
            "digest": self.digest,
        }


def draw_calibration_set(dataset: PoseDataset, spec: CalibrationSpec) -> CalibrationSet:
    """Draw ``spec.count`` crops of ``dataset`` (which must be the split ``spec.split``) without
    replacement, chosen by ``np.random.default_rng(spec.seed)``: the same spec and data give the
    same set, in any process. Each crop is ``dataset.item(index, seed=(spec.seed, index))``, so a
    dataset built with augmentation is still deterministic (build it without, as
    :func:`calibration_set` does, to calibrate on what evaluation feeds the network).

    Raises:
        ValueError: the split is empty, or holds fewer crops than ``spec.count``; the message
            names ``--calibration-count`` or the split and the fix.
    """
    size = len(dataset)
    name = getattr(dataset, "name", type(dataset).__name__)
    if size == 0:
        raise ValueError(
            f"the {spec.split!r} split of dataset {name!r} holds no crops: int8 needs calibration data; "
            f"pass --dataset/--data-root of a dataset whose {spec.split!r} split is not empty"
        )
    if spec.count > size:
        raise ValueError(
            f"--calibration-count {spec.count} exceeds the {size} crops of the {spec.split!r} split of "
            f"dataset {name!r}; pass --calibration-count {size} or less"
        )
    rng = np.random.default_rng(spec.seed)
    indices = tuple(sorted(int(i) for i in rng.choice(size, size=spec.count, replace=False)))
    inputs = torch.stack([dataset.item(i, seed=(spec.seed, i))["image"] for i in indices]).float().contiguous()
    digest = hashlib.sha256()
    digest.update(f"{spec.digest()}\0{name}\0{','.join(map(str, indices))}\0{tuple(inputs.shape)}\0".encode())
    digest.update(inputs.numpy().tobytes())
    return CalibrationSet(spec=spec, dataset=name, indices=indices, inputs=inputs, digest=digest.hexdigest()[:16])


def calibration_set(
    dataset: str,
    data_root: str | Path | None,
    spec: CalibrationSpec,
    *,
    input_size: int,
    output_size: int | None = None,
    sigma: float = 1.0,
) -> CalibrationSet:
    """Build dataset ``dataset`` (``hgbench.data.make_dataset``) for ``spec.split`` without
    augmentation, at ``input_size`` pixels (heatmaps of ``output_size``, default a quarter of it;
    they are not used), and draw the calibration set from it (:func:`draw_calibration_set`).

    Raises:
        ValueError: an unknown dataset, one that needs ``data_root`` without one, an empty split
            or a count larger than it.
        DatasetError: the files under ``data_root`` cannot be read.
    """
    from hgbench.data import make_dataset

    data = make_dataset(
        dataset,
        data_root,
        spec.split,
        input_size=input_size,
        output_size=output_size or max(1, input_size // 4),
        sigma=sigma,
    )
    return draw_calibration_set(data, spec)


__all__ = [
    "CALIBRATION_METHODS",
    "DEFAULT_CALIBRATION_COUNT",
    "CalibrationSet",
    "CalibrationSpec",
    "calibration_set",
    "draw_calibration_set",
]
