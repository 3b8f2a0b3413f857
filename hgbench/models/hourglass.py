"""The hourglass module and the stacked-hourglass network.

Newell et al., "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016 (seed
``004_f2275e04f372f4f6.txt``, section 2 and Figure 1); where the paper is silent the
original Torch code, princeton-vl/pose-hg-train ``src/models/hg.lua``, fixes the details.
"""

from __future__ import annotations

from torch import Tensor, nn

from hgbench.models.blocks import BlockFactory, ResidualModule


def _chain(block: BlockFactory, channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[block(channels, channels) for _ in range(count)])


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels (``hourglass(n, f, inp)`` in hg.lua).

    At each level: an upper branch of ``num_modules`` blocks at the input resolution; a lower
    branch of 2x2 max-pool, ``num_modules`` blocks, then the next level (or ``num_modules``
    blocks at the bottom), ``num_modules`` blocks and nearest-neighbour x2 upsampling; the two
    branches are summed.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``; ``H`` and ``W`` must be divisible by
    ``2**depth``.
    """

    def __init__(self, depth: int, channels: int, block: BlockFactory = ResidualModule, num_modules: int = 1) -> None:
        super().__init__()
        self.up1 = _chain(block, channels, num_modules)
        self.pool = nn.MaxPool2d(2, 2)
        self.low1 = _chain(block, channels, num_modules)
        self.low2 = (
            Hourglass(depth - 1, channels, block, num_modules) if depth > 1 else _chain(block, channels, num_modules)
        )
        self.low3 = _chain(block, channels, num_modules)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return up1 + self.upsample(low)


class StackedHourglass(nn.Module):
    """Stacked hourglass network with intermediate heatmaps (hg.lua ``createModel``).

    Stem: 7x7 stride-2 conv 3->64 + BN + ReLU, block 64->128, 2x2 max-pool, block 128->128,
    block 128->``num_features``. Per stack: an hourglass, ``num_modules`` blocks, a 1x1 conv +
    BN + ReLU, and a 1x1 conv to ``num_joints`` heatmaps. Between stacks the features and the
    heatmaps are remapped by 1x1 convs and added to the stack's input.

    Shapes: input ``(B, 3, S, S)`` with ``S`` divisible by ``4 * 2**depth``; output a list of
    ``num_stacks`` heatmap tensors ``(B, num_joints, S/4, S/4)``, the last one the final
    prediction.

    With ``num_stacks=8, num_features=256, depth=4, num_modules=1`` and 16 joints it has
    25,434,752 parameters... see tests/test_models.py for the closed form this is checked against.
    """

    def __init__(
        self,
        num_stacks: int,
        num_joints: int,
        num_features: int = 256,
        depth: int = 4,
        num_modules: int = 1,
        block: BlockFactory = ResidualModule,
    ) -> None:
        super().__init__()
        if num_stacks < 1 or depth < 1 or num_modules < 1:
            raise ValueError(f"num_stacks, depth and num_modules must be >= 1, got {num_stacks}, {depth}, {num_modules}")
        f = num_features
        self.num_stacks = num_stacks
        self.num_joints = num_joints
        self.depth = depth
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            block(64, 128),
            nn.MaxPool2d(2, 2),
            block(128, 128),
            block(128, f),
        )
        self.hourglasses = nn.ModuleList(Hourglass(depth, f, block, num_modules) for _ in range(num_stacks))
        self.features = nn.ModuleList(
            nn.Sequential(
                _chain(block, f, num_modules),
                nn.Conv2d(f, f, 1),
                nn.BatchNorm2d(f),
                nn.ReLU(inplace=True),
            )
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(f, num_joints, 1) for _ in range(num_stacks))
        self.remap_features = nn.ModuleList(nn.Conv2d(f, f, 1) for _ in range(num_stacks - 1))
        self.remap_heatmaps = nn.ModuleList(nn.Conv2d(num_joints, f, 1) for _ in range(num_stacks - 1))

    @property
    def input_divisor(self) -> int:
        """Input side lengths must be multiples of this (stride 4 of the stem, 2**depth pools)."""
        return 4 * 2**self.depth

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outputs = []
        for i in range(self.num_stacks):
            features = self.features[i](self.hourglasses[i](x))
            heatmaps = self.heads[i](features)
            outputs.append(heatmaps)
            if i < self.num_stacks - 1:
                x = x + self.remap_features[i](features) + self.remap_heatmaps[i](heatmaps)
        return outputs
