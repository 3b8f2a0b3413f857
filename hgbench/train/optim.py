"""Optimiser and learning-rate schedule of a protocol, as ``torch.optim`` objects."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from hgbench.config import OptimizerConfig


def build_optimizer(config: OptimizerConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The ``torch.optim`` optimiser ``config`` names, over ``params`` (PyTorch's argument
    names; RMSprop's ``alpha`` is Torch7's smoothing constant, as pose-hg-train uses it)."""
    if config.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.alpha, eps=config.eps, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
