"""Small shared pieces the building blocks are composed from.

Every piece here is a plain ``nn.Module`` with static structure (no Python control flow on
tensor values), so the blocks built from them trace (``torch.jit.trace``) and export
(``torch.export.export``) unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from torch import Tensor, nn

ConvFactory = Callable[[int, int], nn.Module]
"""``(in_channels, out_channels) -> module`` mapping ``(B, in, H, W) -> (B, out, H, W)``."""

UpsampleKind = Literal["nearest", "deconv"]


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 conv with bias: ``in*out + out`` parameters."""
    return nn.Conv2d(in_channels, out_channels, 1)


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 conv, padding 1, with bias: ``9*in*out + out`` parameters."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise ``k x k`` conv (one kernel per channel, ``groups=in``) followed by a pointwise
    1x1 conv ``in -> out`` (seed ``002_bdd2d633fa65b35a.txt`` section 2.1).

    ``dilation`` spaces the depthwise taps (padding ``dilation * (k - 1) / 2`` keeps the size;
    section 2.2 of the same seed). With ``batch_norm=True`` each conv is followed by a
    BatchNorm and carries no bias (GhostNet's shortcut, Han et al. CVPR 2020, the seed's [5]).

    Parameters (closed form)::

        batch_norm=False:  in*k*k + in  +  in*out + out
        batch_norm=True:   in*k*k + 2*in  +  in*out + 2*out

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1, batch_norm: bool = False
    ) -> None:
        if kernel_size % 2 == 0:
            raise ValueError(f"DepthwiseSeparableConv: kernel_size must be odd, got {kernel_size}")
        bias = not batch_norm
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                padding=dilation * (kernel_size - 1) // 2,
                dilation=dilation,
                groups=in_channels,
                bias=bias,
            )
        ]
        if batch_norm:
            layers.append(nn.BatchNorm2d(in_channels))
        layers.append(nn.Conv2d(in_channels, out_channels, 1, bias=bias))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        super().__init__(*layers)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck with exchangeable convs: the skeleton of Newell et al.'s
    residual module (seed ``004_f2275e04f372f4f6.txt`` section 2; pose-hg-train
    ``Residual.lua``) and of the lightweight bottlenecks of seed ``002`` (Figure 3 b, c, e).

    Conv branch, with ``m = out // 2``: BN-ReLU-``conv1(in, m)``, BN-ReLU-``conv2(m, m)``,
    BN-ReLU-``conv3(m, out)``. Skip: identity when ``in == out``, else a 1x1 conv with bias.
    The output is ``skip(x) + conv_branch(x)``.

    Parameters: ``2*in + P(conv1) + 2*m + P(conv2) + 2*m + P(conv3)  [+ in*out + out if in != out]``.

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``.

    Raises:
        ValueError: ``out_channels`` is odd.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        conv1: ConvFactory = conv1x1,
        conv2: ConvFactory = conv3x3,
        conv3: ConvFactory = conv1x1,
    ) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"{type(self).__name__}: out_channels must be even, got {out_channels}")
        mid = out_channels // 2
        self.conv_branch = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            conv1(in_channels, mid),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            conv2(mid, mid),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            conv3(mid, out_channels),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        # The skip is computed first: the conv branch's in-place ReLU must not see x itself
        # (its first op is a BatchNorm, which allocates, so x is never modified).
        return self.skip(x) + self.conv_branch(x)


def make_upsample(kind: UpsampleKind, channels: int) -> nn.Module:
    """x2 upsampling of a ``channels``-wide map: ``(B, C, H, W) -> (B, C, 2H, 2W)``.

    ``nearest``: nearest-neighbour, no parameters (Newell et al., seed ``004`` section 2).
    ``deconv``: 3x3 transposed conv, stride 2, padding 1, output padding 1, with bias:
    ``9*C*C + C`` parameters (Brami and Chen, seed ``001_25df7af4abb369d1.txt`` section
    "Methods": "a translated convolution using 3 by 3 kernel").

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "nearest":
        return nn.Upsample(scale_factor=2, mode="nearest")
    if kind == "deconv":
        return nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1)
    raise ValueError(f"unknown upsample {kind!r}; known: 'nearest', 'deconv'")
