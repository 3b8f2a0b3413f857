"""Training protocols: one YAML file in ``variants/protocols/`` fixes everything about how
a variant is trained, so that all variants are compared under the same conditions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, Strict, ValidationInfo, field_validator

from hgbench.config import axes
from hgbench.config.loading import (
    CONFIG,
    NAME_RE,
    Bool,
    ConfigError,
    Milestones,
    Name,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Probability,
    ScaleRange,
    Str,
    UnitInterval,
    from_dict,
    read_yaml,
    short_repr,
)
from hgbench.paths import protocols_dir

Precision = Literal[axes.PRECISIONS]
"""A protocol's training precision: one of :data:`hgbench.config.axes.PRECISIONS`."""

STEM_STRIDE = 4
"""Input side / heatmap side: the stem's stride-2 7x7 conv and 2x2 max-pool (Newell et al.,
seed 004_f2275e04f372f4f6.txt section 3: 256 -> 64)."""


MAX_BATCH_INPUT_BYTES = 64 * 2**30
"""Largest float32 input batch a protocol may ask for, ``batch_size x 3 x input_size**2 x 4``
bytes (64 GiB; Newell et al.'s 6 x 256 px batch is 4.5 MiB): the network's activations are
many times its input (the stem's first convolution alone writes 5.3 times it), so a larger batch
fits on no machine. Refused when the protocol is read, before anything is allocated
(:func:`check_input_batch`)."""

MAX_ROTATION_DEG = 180.0
"""Largest ``augmentation.rotation_deg``: ``[-180, 180]`` degrees already holds every rotation
(NumPy's uniform draw fails on a range past about 1e308)."""

MAX_SCALE_FACTOR = 16.0
"""Largest zoom of ``augmentation.scale`` either way (factors in ``[1/16, 16]``): 16x in shows
1/256 of the person box, 16x out makes the person 1/16 of the crop (16 px of a 256 px input);
the papers use 0.75-1.25 (Newell et al.), and a factor of 1e300 overflows the crop's matrix."""


def check_input_batch(batch_size: int, input_size: int, what: str = "batch_size") -> None:
    """Refuse a batch whose float32 input alone exceeds :data:`MAX_BATCH_INPUT_BYTES`.

    Raises:
        ValueError: ``"with batch_size N does not fit in memory ..."`` (``what`` names the
            batch-size field), with the estimated size, the limit and the fix.
    """
    size = batch_size * 3 * input_size * input_size * 4
    if size > MAX_BATCH_INPUT_BYTES:
        raise ValueError(
            f"with {what} {batch_size:,} does not fit in memory: one batch of {batch_size:,} float32 inputs of "
            f"3 x {input_size:,} x {input_size:,} is {size / 2**30:,.3g} GiB before any activation, over the "
            f"{MAX_BATCH_INPUT_BYTES / 2**30:g} GiB limit; use a smaller {what} or input_size (the papers: 6-32 at 256 px)"
        )


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimiser and its hyper-parameters (PyTorch names; RMSprop's ``alpha`` is Torch7's
    ``alpha``, its smoothing constant). Ranges are PyTorch's own (``torch.optim``): ``lr``,
    ``eps`` > 0, ``momentum`` and ``betas`` in [0, 1), ``alpha`` in (0, 1), ``weight_decay`` >= 0."""

    __pydantic_config__ = CONFIG

    name: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    lr: PositiveFloat = 2.5e-4
    momentum: UnitInterval = 0.0
    alpha: Annotated[float, Strict(), Field(gt=0, lt=1)] = 0.99
    eps: PositiveFloat = 1e-8
    betas: tuple[UnitInterval, UnitInterval] = (0.9, 0.999)
    weight_decay: NonNegativeFloat = 0.0


@dataclass(frozen=True)
class Augmentation:
    """Random training-time augmentation of a person crop.

    Attributes:
        rotation_deg: rotations are drawn uniformly from ``[-rotation_deg, rotation_deg]``.
        rotation_prob: probability that a sample is rotated at all.
        scale: ``(low, high)``: the crop's side is divided by a factor drawn uniformly from it
            (> 1 zooms in).
        flip: mirror half of the samples horizontally (left/right joints swapped).
        color_jitter: each RGB channel is multiplied by a factor from
            ``[1 - color_jitter, 1 + color_jitter]`` and clipped to [0, 1].

    Ranges: ``rotation_deg`` in [0, :data:`MAX_ROTATION_DEG`], ``rotation_prob`` in [0, 1],
    ``1/16 <= low <= high <= 16`` (:data:`MAX_SCALE_FACTOR`), ``color_jitter`` in [0, 1)
    (a gain stays positive).
    """

    __pydantic_config__ = CONFIG

    rotation_deg: NonNegativeFloat = 0.0
    rotation_prob: Probability = 1.0
    scale: ScaleRange = (1.0, 1.0)
    flip: Bool = False
    color_jitter: UnitInterval = 0.0

    @field_validator("rotation_deg")
    @classmethod
    def _one_turn(cls, value: float) -> float:
        if value > MAX_ROTATION_DEG:
            raise ValueError(
                f"is over {MAX_ROTATION_DEG:g} degrees: [-180, 180] already holds every rotation; use at most 180"
            )
        return value

    @field_validator("scale")
    @classmethod
    def _sane_zoom(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if low < 1 / MAX_SCALE_FACTOR or high > MAX_SCALE_FACTOR:
            raise ValueError(
                f"zooms past {MAX_SCALE_FACTOR:g}x (factors in [{1 / MAX_SCALE_FACTOR:g}, {MAX_SCALE_FACTOR:g}]): "
                "the crop would show a speck of the person, or the person as a speck; the papers use [0.75, 1.25]"
            )
        return value

    def sample(self, rng: np.random.Generator) -> tuple[float, float, bool, np.ndarray]:
        """Draw ``(rotation_deg, scale_factor, flip, channel_gains (3,))``."""
        rotation = 0.0
        if self.rotation_deg and rng.random() < self.rotation_prob:
            rotation = float(rng.uniform(-self.rotation_deg, self.rotation_deg))
        scale = float(rng.uniform(*self.scale))
        flip = bool(self.flip and rng.random() < 0.5)
        gains = rng.uniform(1 - self.color_jitter, 1 + self.color_jitter, size=3) if self.color_jitter else np.ones(3)
        return rotation, scale, flip, gains


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per epoch.

    ``constant``; ``step``: multiply by ``gamma`` at each epoch in ``milestones``;
    ``plateau``: multiply by ``gamma`` when validation mean accuracy has not improved for
    ``patience`` validations, never below ``min_lr``. Ranges: ``milestones`` positive and
    increasing, ``gamma`` > 0, ``patience`` >= 0, ``min_lr`` >= 0.
    """

    __pydantic_config__ = CONFIG

    type: Literal["constant", "step", "plateau"] = "constant"
    milestones: Milestones = ()
    gamma: PositiveFloat = 0.1
    patience: NonNegativeInt = 5
    min_lr: NonNegativeFloat = 0.0


@dataclass(frozen=True)
class Protocol:
    """How a variant is trained and validated.

    Attributes:
        name: protocol name (file stem).
        description: one line of prose.
        pipeline_check: the run only checks that the pipeline works; its accuracies say nothing
            about the variant (a protocol of a few steps, e.g. ``smoke``). The report says so
            in its first lines (:mod:`hgbench.analysis.render`). Not part of
            the protocol's identity (:data:`hgbench.records.key.PROTOCOL_IDENTITY_EXCLUDED`):
            it changes nothing a run computes.
        epochs: number of epochs.
        steps_per_epoch: optimiser steps per epoch; ``None`` = one pass over the training split.
        batch_size: samples per step.
        input_size, output_size: network input and heatmap sides, pixels.
        heatmap_sigma: target Gaussian's standard deviation, heatmap pixels.
        heatmap_sigma_occluded: the standard deviation for joints that are annotated but not
            visible, heatmap pixels, where the dataset has a visibility flag (COCO ``v = 1``,
            LSP's occlusion row); None: ``heatmap_sigma`` for every joint (Newell et al.).
            Seed 003 (Sec. 4.2.3 "Handling the Keypoints") gives visible and not-visible
            joints different sigmas (visible 0.5, not visible 1 there; its Sec. 8.2 states the reverse).
        flip_test: validate and evaluate with the flip test (average with the mirrored
            crop's heatmaps, :mod:`hgbench.accuracy.evaluate`), as pose-hg-train's validation does.
        augmentation: training augmentation (validation uses the plain centre crop).
        seed: seeds torch (weights, sampling, augmentation).
        val_every: validate every this many epochs (and after the last).
        val_max_samples: validate on at most this many samples (``None``: the whole split).
        num_workers: data-loading worker processes (results do not depend on it: each
            sample's augmentation is seeded by (seed, pass over the data, sample index),
            :mod:`hgbench.train.sampler`).
        precision: ``fp32``, or mixed precision with ``torch.autocast`` in ``bf16`` or
            ``fp16`` (fp16 with a gradient scaler); weights and optimiser state stay fp32.
        channels_last: model and input batches in the channels_last (NHWC) memory format.
        compile: ``torch.compile`` the training step's forward pass and loss.
        sync_batchnorm: in a data-parallel run (``torchrun``, ``srun``), batch normalisation over
            the global batch (``SyncBatchNorm``) instead of each process's share; no effect
            on one process (:mod:`hgbench.train.distributed`).
        checkpoint_every_steps: write a checkpoint every this many optimiser steps (and at
            the end of every epoch).
        checkpoint_every_min: ...and at least every this many minutes of training.

    ``name`` is a plain name (a folder under ``--results``); counts and sizes are >= 1
    (``seed``, ``num_workers`` >= 0), sigmas > 0, ``output_size`` is
    ``input_size / STEM_STRIDE``, and one input batch fits in memory
    (:data:`MAX_BATCH_INPUT_BYTES`, :func:`check_input_batch`). Loaded through :func:`load_protocol`, which checks all
    of it; a ``Protocol(...)`` built in code is checked by
    :func:`hgbench.config.check_compatible`.
    """

    __pydantic_config__ = CONFIG

    name: Name
    description: Str = ""
    pipeline_check: Bool = False
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: PositiveInt = 1
    steps_per_epoch: PositiveInt | None = None
    batch_size: PositiveInt = 6
    input_size: Annotated[PositiveInt, Field(validate_default=True)] = 256  # checked with the batch size
    output_size: PositiveInt = 64
    heatmap_sigma: PositiveFloat = 1.0
    heatmap_sigma_occluded: PositiveFloat | None = None
    flip_test: Bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    seed: NonNegativeInt = 0
    val_every: PositiveInt = 1
    val_max_samples: PositiveInt | None = None
    num_workers: NonNegativeInt = 0
    precision: Precision = "fp32"
    channels_last: Bool = False
    compile: Bool = False
    sync_batchnorm: Bool = False
    checkpoint_every_steps: PositiveInt = 500
    checkpoint_every_min: PositiveFloat = 10.0

    @field_validator("input_size")
    @classmethod
    def _batch_fits_in_memory(cls, value: int, info: ValidationInfo) -> int:
        batch = info.data.get("batch_size")
        if batch is not None:
            check_input_batch(batch, value)
        return value

    @field_validator("output_size")
    @classmethod
    def _output_is_input_over_stride(cls, value: int, info: ValidationInfo) -> int:
        size = info.data.get("input_size")
        if size is not None and size != STEM_STRIDE * value:
            fix = f"set output_size: {size // STEM_STRIDE}"
            if size % STEM_STRIDE:
                fix = f"use an input_size that is a multiple of {STEM_STRIDE}"
            raise ValueError(
                f"is not input_size / {STEM_STRIDE} (input_size {size}, the stem's stride {STEM_STRIDE}); {fix}"
            )
        return value

    def with_overrides(self, optimizer: OptimizerConfig | None = None, batch_size: int | None = None) -> Protocol:
        """This protocol with a variant's optimiser and batch-size overrides applied."""
        changes = {}
        if optimizer is not None:
            changes["optimizer"] = optimizer
        if batch_size is not None:
            changes["batch_size"] = batch_size
        return replace(self, **changes) if changes else self


def available_protocols() -> list[str]:
    """Names of the shipped protocols."""
    return sorted(p.stem for p in protocols_dir().glob("*.yaml"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a protocol by name (``variants/protocols/<name>.yaml``) or from a YAML path.

    Raises:
        ConfigError: unknown name (listing the known ones) or a malformed file.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = protocols_dir() / f"{name_or_path}.yaml"
        if not NAME_RE.fullmatch(str(name_or_path)) or not path.is_file():
            known = ", ".join(available_protocols())
            there = f"available: {known}" if known else f"no protocol *.yaml in {protocols_dir()}"
            raise ConfigError(f"unknown protocol {short_repr(str(name_or_path))}; {there} (or pass a YAML path)")
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    return from_dict(Protocol, data, path)
