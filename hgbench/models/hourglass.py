"""The hourglass module and the stacked-hourglass network.

Newell et al., "Stacked Hourglass Networks for Human Pose Estimation", ECCV 2016 (seed
``004_f2275e04f372f4f6.txt``, section 2 and Figure 1); where the paper is silent the
original Torch code, princeton-vl/pose-hg-train ``src/models/hg.lua``, fixes the details.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from hgbench.models.autoencoder import BottleneckAutoencoder
from hgbench.models.blocks import BlockFactory, ResidualModule
from hgbench.models.layers import UpsampleKind, make_upsample


def glorot_normal_init(module: nn.Module) -> None:
    """Glorot (Xavier) normal initialisation, N(0, 2 / (fan_in + fan_out)), of every weight
    of a convolution, transposed convolution or linear layer under ``module`` (Andersen,
    seed ``003_c160231480bcc829.txt`` section 5.1; as the author's code, every parameter
    with more than one dimension). Biases and batch-norm parameters keep PyTorch's defaults."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight)


def _chain(block: BlockFactory, channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[block(channels, channels) for _ in range(count)])


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels (``hourglass(n, f, inp)`` in hg.lua).

    At each level: an upper branch of ``num_modules`` blocks at the input resolution; a lower
    branch of 2x2 max-pool, ``num_modules`` blocks, then the next level (or ``num_modules``
    blocks at the bottom), ``num_modules`` blocks and nearest-neighbour x2 upsampling; the two
    branches are summed.

    Options (Andersen, seed ``003_c160231480bcc829.txt`` section 5.1): ``bottom_modules``
    set makes the deepest level's lower branch ``low1`` then ``bottom_modules`` blocks (the
    "bottleneck"), with no ``low3`` before the upsampling (None: Newell's ``low2`` and
    ``low3`` of ``num_modules`` blocks each); ``bottleneck`` is a module appended after
    them (the autoencoder of section 7.2). ``skips_enabled`` (see
    :meth:`set_skips_enabled`) switches the upper branches off at forward time.
    ``upsample="deconv"`` replaces every level's nearest-neighbour upsampling by a 3x3
    stride-2 transposed conv (Brami and Chen, seed ``001_25df7af4abb369d1.txt`` "Methods";
    :func:`hgbench.models.layers.make_upsample`).

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``; ``H`` and ``W`` must be divisible by
    ``2**depth``.
    """

    def __init__(
        self,
        depth: int,
        channels: int,
        block: BlockFactory = ResidualModule,
        num_modules: int = 1,
        bottom_modules: int | None = None,
        bottleneck: nn.Module | None = None,
        upsample: UpsampleKind = "nearest",
    ) -> None:
        super().__init__()
        self.skips_enabled = True
        self.up1 = _chain(block, channels, num_modules)
        self.pool = nn.MaxPool2d(2, 2)
        self.low1 = _chain(block, channels, num_modules)
        if depth > 1:
            self.low2 = Hourglass(depth - 1, channels, block, num_modules, bottom_modules, bottleneck, upsample)
            self.low3 = _chain(block, channels, num_modules)
        elif bottom_modules is None:
            self.low2 = _chain(block, channels, num_modules)
            self.low3 = _chain(block, channels, num_modules)
        else:
            # Andersen's bottleneck: ``bottom_modules`` blocks straight to the upsampling.
            self.low2 = _chain(block, channels, bottom_modules)
            self.low3 = nn.Sequential()
        if bottleneck is not None and depth == 1:
            self.low2.append(bottleneck)
        self.upsample = make_upsample(upsample, channels)

    def set_skips_enabled(self, enabled: bool) -> None:
        """Switch the upper branches (the skip connections) of this and every nested level on
        or off. Off, ``forward`` neither computes ``up1`` nor adds it (Andersen section 6.2:
        the trained network evaluated "with the skip-connections disabled"); a graph traced or
        exported while off has no upper branch."""
        self.skips_enabled = bool(enabled)
        if isinstance(self.low2, Hourglass):
            self.low2.set_skips_enabled(enabled)

    def forward(self, x: Tensor) -> Tensor:
        low = self.upsample(self.low3(self.low2(self.low1(self.pool(x)))))
        if not self.skips_enabled:
            return low
        return self.up1(x) + low


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
    25,434,112 parameters (14 joints: 25,426,416), the closed form checked in tests/models/test_models.py.

    Options for Andersen's network (seed ``003_c160231480bcc829.txt``): ``stem="wide"``
    makes every stem layer ``num_features`` wide (conv 3->f, blocks f->f); ``bottom_modules``
    (see :class:`Hourglass`); ``bottleneck="autoencoder"`` puts a
    :class:`~hgbench.models.autoencoder.BottleneckAutoencoder` with a ``latent_dim`` latent at
    each hourglass's bottom, sized for ``input_size`` (required then); ``init="glorot_normal"``
    (see :func:`glorot_normal_init`).

    ``stem_channels`` (``s``, default 64) sets the Newell stem's widths: conv 3->s, block
    s->2s, block 2s->2s, block 2s->f (Elhagry et al., seed ``002_bdd2d633fa65b35a.txt``
    section 3.1.4, reduce it to 32). ``upsample``: see :class:`Hourglass`.
    """

    def __init__(
        self,
        num_stacks: int,
        num_joints: int,
        num_features: int = 256,
        depth: int = 4,
        num_modules: int = 1,
        block: BlockFactory = ResidualModule,
        bottom_modules: int | None = None,
        bottleneck: Literal["residual", "autoencoder"] = "residual",
        latent_dim: int = 50,
        input_size: int | None = None,
        stem: Literal["newell", "wide"] = "newell",
        init: Literal["default", "glorot_normal"] = "default",
        stem_channels: int = 64,
        upsample: UpsampleKind = "nearest",
    ) -> None:
        super().__init__()
        if num_stacks < 1 or depth < 1 or num_modules < 1:
            raise ValueError(
                f"num_stacks, depth and num_modules must be >= 1, got {num_stacks}, {depth}, {num_modules}"
            )
        if bottom_modules is not None and bottom_modules < 1:
            raise ValueError(f"bottom_modules must be >= 1 or None, got {bottom_modules}")
        f = num_features
        self.num_stacks = num_stacks
        self.num_joints = num_joints
        self.depth = depth
        self.input_size = input_size
        c1, c2 = (stem_channels, 2 * stem_channels) if stem == "newell" else (f, f)
        self.stem = nn.Sequential(
            nn.Conv2d(3, c1, 7, stride=2, padding=3),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            block(c1, c2),
            nn.MaxPool2d(2, 2),
            block(c2, c2),
            block(c2, f),
        )
        self.hourglasses = nn.ModuleList(
            Hourglass(
                depth, f, block, num_modules, bottom_modules, self._bottleneck(bottleneck, f, latent_dim), upsample
            )
            for _ in range(num_stacks)
        )
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
        if init == "glorot_normal":
            glorot_normal_init(self)
        elif init != "default":
            raise ValueError(f"unknown init {init!r}; known: default, glorot_normal")

    def _bottleneck(self, kind: str, channels: int, latent_dim: int) -> nn.Module | None:
        """The module appended at each hourglass's bottom: None for ``residual``, else a
        :class:`BottleneckAutoencoder` sized for ``input_size``."""
        if kind == "residual":
            return None
        if kind != "autoencoder":
            raise ValueError(f"unknown bottleneck {kind!r}; known: residual, autoencoder")
        if self.input_size is None or self.input_size < 1 or self.input_size % self.input_divisor:
            raise ValueError(
                f"bottleneck 'autoencoder' needs the input size the network is built for, a multiple of "
                f"{self.input_divisor} (its linear layers fix the bottleneck side); got input_size={self.input_size}"
            )
        return BottleneckAutoencoder(channels, self.input_size // self.input_divisor, latent_dim)

    def set_skips_enabled(self, enabled: bool) -> None:
        """Switch every hourglass's upper branches on or off (see :meth:`Hourglass.set_skips_enabled`)."""
        for hg in self.hourglasses:
            hg.set_skips_enabled(enabled)

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
