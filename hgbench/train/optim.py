"""Optimiser and learning-rate schedule of a protocol, as ``torch.optim`` objects."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable

import torch

from hgbench.config import OptimizerConfig, ScheduleConfig

_OPTIMIZERS = {"rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def implementation(name: str, device_type: str) -> dict[str, bool]:
    """The multi-tensor implementation to ask ``torch.optim`` for: ``{"fused": True}`` where
    the optimiser has a fused kernel for ``device_type`` (torch's ``fused`` argument: Adam and
    SGD on CUDA), else ``{"foreach": True}`` (one kernel per operation over all parameters
    instead of a Python loop over them; torch's default on CUDA, asked for on the CPU too)."""
    cls = _OPTIMIZERS[name]
    if device_type == "cuda" and "fused" in inspect.signature(cls).parameters:
        return {"fused": True}
    return {"foreach": True}


def build_optimizer(
    config: OptimizerConfig, params: Iterable[torch.nn.Parameter], device_type: str = "cpu"
) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimiser ``config`` names, over ``params`` (PyTorch's argument
    names; RMSprop's ``alpha`` is Torch7's smoothing constant, as pose-hg-train uses it), in
    the fastest implementation for ``device_type`` (:func:`implementation`)."""
    impl = implementation(config.name, device_type)
    if config.name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=config.lr,
            alpha=config.alpha,
            eps=config.eps,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            **impl,
        )
    if config.name == "adam":
        return torch.optim.Adam(
            params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay, **impl
        )
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, **impl)


def build_scheduler(config: ScheduleConfig, optimizer: torch.optim.Optimizer):
    """The learning-rate schedule ``config`` names (:class:`hgbench.config.ScheduleConfig`),
    stepped once per epoch by the engine: ``MultiStepLR`` (``step``), ``ReduceLROnPlateau`` on
    the validation mean accuracy (``plateau``, ``mode="max"``), or ``None`` (``constant``)."""
    if config.type == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones), config.gamma)
    if config.type == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=config.gamma, patience=config.patience, min_lr=config.min_lr
        )
    return None


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate of ``optimizer``'s first parameter group."""
    return float(optimizer.param_groups[0]["lr"])


def step_schedule(scheduler, val: dict | None) -> None:
    """Step ``scheduler`` (:func:`build_scheduler`'s) at the end of an epoch: ``MultiStepLR``
    every epoch, ``ReduceLROnPlateau`` on the validation's ``mean`` accuracy when the epoch was
    validated (``val``) and its mean is a number, nothing for ``None``."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and val is not None:
        if math.isfinite(val["mean"]):
            scheduler.step(val["mean"])
    if isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR):
        scheduler.step()
