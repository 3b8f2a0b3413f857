"""Training protocols: one YAML file in ``variants/protocols/`` fixes everything about how
a variant is trained, so that all variants are compared under the same conditions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from hgbench.config import ConfigError, from_dict, read_yaml
from hgbench.data.transforms import Augmentation
from hgbench.paths import protocols_dir


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimiser and its hyper-parameters (PyTorch names; RMSprop's ``alpha`` is Torch7's
    ``alpha``, its smoothing constant)."""

    name: Literal["rmsprop", "adam", "sgd"] = "rmsprop"
    lr: float = 2.5e-4
    momentum: float = 0.0
    alpha: float = 0.99
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0

    def build(self, params) -> torch.optim.Optimizer:
        """The ``torch.optim`` optimiser over ``params``."""
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr, alpha=self.alpha, eps=self.eps, momentum=self.momentum, weight_decay=self.weight_decay)
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class ScheduleConfig:
    """Learning-rate schedule, stepped once per epoch.

    ``constant``; ``step``: multiply by ``gamma`` at each epoch in ``milestones``;
    ``plateau``: multiply by ``gamma`` when validation mean accuracy has not improved for
    ``patience`` validations, never below ``min_lr``.
    """

    type: Literal["constant", "step", "plateau"] = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    patience: int = 5
    min_lr: float = 0.0


@dataclass(frozen=True)
class Protocol:
    """How a variant is trained and validated.

    Attributes:
        name: protocol name (file stem).
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
            crop's heatmaps, :mod:`hgbench.evaluate`), as pose-hg-train's validation does.
        augmentation: training augmentation (validation uses the plain centre crop).
        seed: seeds torch (weights, sampling, augmentation).
        val_every: validate every this many epochs (and after the last).
        val_max_samples: validate on at most this many samples (``None``: the whole split).
        num_workers: data-loading worker processes.
    """

    name: str
    description: str = ""
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    epochs: int = 1
    steps_per_epoch: int | None = None
    batch_size: int = 6
    input_size: int = 256
    output_size: int = 64
    heatmap_sigma: float = 1.0
    heatmap_sigma_occluded: float | None = None
    flip_test: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    seed: int = 0
    val_every: int = 1
    val_max_samples: int | None = None
    num_workers: int = 0

    def with_overrides(self, optimizer: OptimizerConfig | None = None, batch_size: int | None = None) -> "Protocol":
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
        if not path.is_file():
            raise ConfigError(f"unknown protocol {str(name_or_path)!r}; available: {', '.join(available_protocols())} (or pass a YAML path)")
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    protocol = from_dict(Protocol, data, path)
    for name in ("heatmap_sigma", "heatmap_sigma_occluded"):
        value = getattr(protocol, name)
        if value is not None and not value > 0:
            raise ConfigError(f"{path}: field {name!r} must be > 0 (heatmap pixels), got {value}")
    if protocol.input_size != 4 * protocol.output_size:
        raise ConfigError(f"{path}: field 'output_size' must be input_size / 4 (the stem's stride), got {protocol.output_size} for input {protocol.input_size}")
    return protocol
