"""Building blocks of hourglass networks, one per idea.

Every block maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)`` and is
created through :data:`BLOCKS` by the name a variant's YAML gives, so the hourglass and the
stacked network never change when a paper swaps the block.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from hgbench.models.hru import HourglassResidualUnit
from hgbench.models.layers import PreActBottleneck
from hgbench.models.lightweight import (
    GhostBottleneck,
    MultiDilatedBottleneck,
    SingleDepthwiseSeparableBottleneck,
    TripleDepthwiseSeparableBottleneck,
)

BlockFactory = Callable[[int, int], nn.Module]


class ResidualModule(PreActBottleneck):
    """Pre-activation bottleneck residual module of Newell et al. (ECCV 2016, seed
    ``004_f2275e04f372f4f6.txt`` section 2; the original Torch code
    princeton-vl/pose-hg-train ``src/models/layers/Residual.lua`` fixes the details).

    Conv branch: BN-ReLU-conv1x1 (out/2), BN-ReLU-conv3x3 (out/2), BN-ReLU-conv1x1 (out).
    Skip branch: identity when ``in_channels == out_channels``, else a 1x1 conv. All convs
    carry a bias, as Torch7's ``SpatialConvolution`` does.

    Parameters (closed form, with ``m = out // 2``)::

        2*in + (in*m + m) + 2*m + (9*m*m + m) + 2*m + (m*out + out)  [+ in*out + out if in != out]

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.

    Raises:
        ValueError: ``out_channels`` is odd.

    (Built by :class:`hgbench.models.layers.PreActBottleneck` with its default convs, 1x1,
    3x3 and 1x1; the module names, ``conv_branch.<i>`` and ``skip``, are unchanged.)
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels)


BLOCKS: dict[str, BlockFactory] = {
    # one entry per name of hgbench.config.axes.BLOCKS, the one list (tests/config/test_registry.py keeps them equal)
    "residual": ResidualModule,
    # Brami and Chen, seed 001 "Methods" (the HRU of Chu et al. 2017)
    "hru": HourglassResidualUnit,
    # Elhagry et al., seed 002 section 3.1, Figure 3 b-e
    "ds1": SingleDepthwiseSeparableBottleneck,
    "ds3": TripleDepthwiseSeparableBottleneck,
    "ghost": GhostBottleneck,
    "multidilated": MultiDilatedBottleneck,
}


def get_block(name: str) -> BlockFactory:
    """Block factory for ``name``.

    Raises:
        KeyError: unknown block, with the list of known ones.
    """
    try:
        return BLOCKS[name]
    except KeyError:
        raise KeyError(f"unknown block {name!r}; known blocks: {', '.join(sorted(BLOCKS))}") from None
