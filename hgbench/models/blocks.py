"""Building blocks of hourglass networks, one per idea.

Every block maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)`` and is
created through :data:`BLOCKS` by the name a variant's YAML gives, so the hourglass and the
stacked network never change when a paper swaps the block.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

BlockFactory = Callable[[int, int], nn.Module]


class ResidualModule(nn.Module):
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
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"ResidualModule: out_channels must be even, got {out_channels}")
        mid = out_channels // 2
        self.conv_branch = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        # The skip is computed first: the conv branch's in-place ReLU must not see x itself
        # (its first op is a BatchNorm, which allocates, so x is never modified).
        return self.skip(x) + self.conv_branch(x)


BLOCKS: dict[str, BlockFactory] = {
    "residual": ResidualModule,
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
