"""Hourglass building blocks and networks (see :mod:`hgbench.models.blocks`)."""

from hgbench.models.blocks import BLOCKS, ResidualModule, get_block
from hgbench.models.hourglass import Hourglass, StackedHourglass

__all__ = ["BLOCKS", "Hourglass", "ResidualModule", "StackedHourglass", "get_block"]
