"""Hourglass building blocks and networks (see :mod:`hgbench.models.blocks`), and
:func:`create_model`, which builds a registered variant's network from its spec."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import nn

from hgbench.models.blocks import BLOCKS, ResidualModule, get_block
from hgbench.models.hourglass import Hourglass, StackedHourglass

if TYPE_CHECKING:
    from hgbench.config import VariantSpec


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable and frozen); buffers (e.g. batch-norm running
    statistics) are not counted, and a parameter shared by several modules counts once."""
    return sum(p.numel() for p in model.parameters())


def create_model(spec: VariantSpec, num_joints: int, input_size: int | None = None) -> nn.Module:
    """The network of variant ``spec`` with ``num_joints`` heatmaps (taken from the dataset).

    ``input_size`` (the protocol's, pixels) matters only for an autoencoder bottleneck, whose
    linear layers fix the input side: ``architecture.input_size`` if set, else ``input_size``,
    else 256 (the paper's, seed 003_c160231480bcc829.txt).

    Raises:
        ValueError: ``input_size`` differs from a fixed ``architecture.input_size``.
    """
    a = spec.architecture
    size = None
    if a.bottleneck == "autoencoder":
        if a.input_size is not None and input_size is not None and input_size != a.input_size:
            raise ValueError(
                f"variant {spec.name!r} is fixed to {a.input_size}x{a.input_size} inputs (architecture.input_size), "
                f"got {input_size}; its autoencoder's linear layers fix the bottleneck size"
            )
        size = a.input_size or input_size or 256
    return StackedHourglass(
        a.num_stacks, num_joints, a.num_features, a.depth, a.num_modules, get_block(a.block),
        bottom_modules=a.bottom_modules, bottleneck=a.bottleneck, latent_dim=a.latent_dim,
        input_size=size, stem=a.stem, init=a.init, stem_channels=a.stem_channels, upsample=a.upsample,
    )  # fmt: skip


__all__ = ["BLOCKS", "Hourglass", "ResidualModule", "StackedHourglass", "count_parameters", "create_model", "get_block"]
