"""Lightweight bottlenecks of Elhagry, Saeed and Araia, "Lighter Stacked Hourglass Human Pose
Estimation" (seed ``002_bdd2d633fa65b35a.txt``, section 3.1, Figure 3 and Table 1), which
follow Kim and Lee (Applied Sciences 2020, the seed's [4]) and GhostNet (Han et al., CVPR
2020, the seed's [5]).

Each block maps ``(B, in, H, W) -> (B, out, H, W)`` and is registered in
:data:`hgbench.models.blocks.BLOCKS`. Notation in the parameter counts: ``m = out // 2``,
``DS(a, b, k) = a*k*k + a + a*b + b`` (a :class:`DepthwiseSeparableConv` with biases).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn

from hgbench.models.layers import DepthwiseSeparableConv, PreActBottleneck


class SingleDepthwiseSeparableBottleneck(PreActBottleneck):
    """Residual module whose second (3x3) conv is depthwise separable (seed ``002`` section
    3.1.1, Figure 3b).

    Parameters: ``2*in + (in*m + m) + 2*m + DS(m, m, 3) + 2*m + (m*out + out)  [+ in*out + out if in != out]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, conv2=DepthwiseSeparableConv)


class TripleDepthwiseSeparableBottleneck(PreActBottleneck):
    """Residual module whose three convs are all 3x3 depthwise separable (seed ``002``
    section 3.1.2: "the three convolutional layers in the bottleneck being replaced by 3x3
    depthwise separable convolutions", Figure 3c): the two 1x1 convs become a 3x3 depthwise
    conv followed by the same 1x1 (pointwise) conv.

    Parameters: ``2*in + DS(in, m, 3) + 2*m + DS(m, m, 3) + 2*m + DS(m, out, 3)  [+ in*out + out if in != out]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        ds = DepthwiseSeparableConv
        super().__init__(in_channels, out_channels, conv1=ds, conv2=ds, conv3=ds)


class MultiDilatedConv(nn.Module):
    """Parallel 3x3 depthwise separable convs with dilations ``(1, 2, 3)``, summed (seed
    ``002`` section 3.1.5: "3 parallel depthwise separable convolutions with different
    dilation scales (1, 2 and 3)", Figure 3e).

    Parameters: ``len(dilations) * DS(in, out, 3)``.

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, dilations: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        self.branches = nn.ModuleList(DepthwiseSeparableConv(in_channels, out_channels, 3, d) for d in dilations)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


class MultiDilatedBottleneck(PreActBottleneck):
    """Residual module whose second conv is a :class:`MultiDilatedConv` (seed ``002``
    section 3.1.5, Figure 3e).

    Parameters: ``2*in + (in*m + m) + 2*m + 3*DS(m, m, 3) + 2*m + (m*out + out)  [+ in*out + out if in != out]``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, conv2=partial(MultiDilatedConv, dilations=(1, 2, 3)))


class GhostModule(nn.Module):
    """GhostNet's Ghost module (Han et al., CVPR 2020, section 3.1; seed ``002`` section 2.3
    and Figure 2) with ratio 2 and a 3x3 cheap operation.

    A primary 1x1 conv (no bias) + BN [+ ReLU] gives ``p = ceil(out / 2)`` intrinsic maps; a
    cheap 3x3 depthwise conv (no bias) + BN [+ ReLU] gives ``p`` ghost maps from them; the two
    are concatenated and truncated to ``out`` channels.

    Parameters: ``in*p + 2*p + 9*p + 2*p``.

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True) -> None:
        super().__init__()
        self.out_channels = out_channels
        primary = math.ceil(out_channels / 2)

        def act() -> nn.Module:
            return nn.ReLU(inplace=True) if relu else nn.Identity()

        self.primary = nn.Sequential(nn.Conv2d(in_channels, primary, 1, bias=False), nn.BatchNorm2d(primary), act())
        self.cheap = nn.Sequential(
            nn.Conv2d(primary, primary, 3, padding=1, groups=primary, bias=False), nn.BatchNorm2d(primary), act()
        )

    def forward(self, x: Tensor) -> Tensor:
        intrinsic = self.primary(x)
        ghost = self.cheap(intrinsic)
        return torch.cat([intrinsic, ghost], dim=1)[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """GhostNet's stride-1 Ghost bottleneck (Han et al., section 3.2 and Figure 3) in place of
    the residual module (seed ``002`` sections 2.3, 3.1.3, Figure 3d).

    Ghost module ``in -> m`` with ReLU, Ghost module ``m -> out`` without; shortcut identity
    when ``in == out``, else GhostNet's: 3x3 depthwise conv + BN, 1x1 conv + BN (no biases).
    With ``p1 = ceil(m / 2)``, ``p2 = ceil(out / 2)``, parameters::

        (in*p1 + 13*p1) + (m*p2 + 13*p2)  [+ 9*in + 2*in + in*out + 2*out if in != out]

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``.

    Raises:
        ValueError: ``out_channels`` is odd.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"GhostBottleneck: out_channels must be even, got {out_channels}")
        mid = out_channels // 2
        self.ghost1 = GhostModule(in_channels, mid, relu=True)
        self.ghost2 = GhostModule(mid, out_channels, relu=False)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else DepthwiseSeparableConv(in_channels, out_channels, 3, batch_norm=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.ghost2(self.ghost1(x))
