"""The hourglass residual unit (HRU) of Chu et al., "Multi-Context Attention for Human Pose
Estimation" (CVPR 2017), as used by Brami and Chen (seed ``001_25df7af4abb369d1.txt``,
sections "Introduction" and "Methods", the figure "Visualization of the new residual unit").
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from hgbench.models.layers import PreActBottleneck, conv3x3


class HourglassResidualUnit(nn.Module):
    """Residual module plus a pooled branch (seed ``001`` "Methods": "The new branch ...
    consists of max pooling, two convolution layers and upsampling"; branches A, B and C of
    the figure are summed).

    A + B: Newell et al.'s pre-activation residual module (skip: identity or 1x1 conv;
    bottleneck conv branch). C: 2x2 max-pool, BN-ReLU-conv3x3 ``in -> m``, BN-ReLU-conv3x3
    ``m -> out``, nearest-neighbour x2 upsampling, with ``m = out // 2`` (widths: see
    ``variants/hru1.yaml`` notes).

    Parameters, with ``R(in, out)`` the residual module's count (``tests/models/test_models.py``)::

        R(in, out) + 2*in + (9*in*m + m) + 2*m + (9*m*out + out)

    Shapes: ``(B, in, H, W) -> (B, out, H, W)``; ``H`` and ``W`` must be even.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.residual = PreActBottleneck(in_channels, out_channels)
        self.pool_branch = nn.Sequential(
            # ceil_mode: a 1x1 map (the bottom of a depth-4 hourglass at a 64 px input) pools
            # to 1x1 instead of 0x0; on even sizes it is plain 2x2 pooling.
            nn.MaxPool2d(2, 2, ceil_mode=True),
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            conv3x3(in_channels, mid),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            conv3x3(mid, out_channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        # Nearest upsampling back to the input's size: x2 on even sizes, as in the paper; the
        # size comes from the (static) input shape, so tracing and torch.export keep it.
        pooled = F.interpolate(self.pool_branch(x), size=x.shape[-2:], mode="nearest")
        return self.residual(x) + pooled
