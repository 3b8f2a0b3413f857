"""The variant registry: one YAML file per variant in ``variants/``, loaded into a typed
:class:`VariantSpec` and built by name.

A variant file names the paper it comes from (seed file and section or table), the
architecture (stacks, features, depth, modules per level, block), the supervision and,
optionally, the optimiser and batch size it overrides in the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

from torch import nn

from hgbench.config import ConfigError, from_dict, read_yaml
from hgbench.models import StackedHourglass, get_block
from hgbench.models.blocks import BLOCKS
from hgbench.paths import variants_dir
from hgbench.protocol import OptimizerConfig


@dataclass(frozen=True)
class Source:
    """Where a variant comes from: the paper (``cite`` is its short form for tables), its
    seed file in ``../shared/seeds`` and the section, table or figure that defines it."""

    paper: str
    cite: str = ""
    seed: str = ""
    where: str = ""


@dataclass(frozen=True)
class Architecture:
    """Hourglass hyper-parameters (pose-hg-train names in brackets): ``num_stacks``
    (nStack), ``num_features`` (nFeats), ``depth`` (levels of each hourglass, 4),
    ``num_modules`` (nModules, blocks per level), ``block`` (a key of
    :data:`hgbench.models.blocks.BLOCKS`)."""

    num_stacks: int
    num_features: int = 256
    depth: int = 4
    num_modules: int = 1
    block: str = "residual"
    # Options for Andersen (seed 003_c160231480bcc829.txt); the defaults are Newell's network.
    bottom_modules: int | None = None  # blocks at the deepest level after low1, no low3 (None: Newell's low2 + low3)
    bottleneck: Literal["residual", "autoencoder"] = "residual"  # autoencoder: hgbench.models.autoencoder
    latent_dim: int = 50  # the autoencoder's latent
    input_size: int | None = None  # autoencoder only: the input side it is fixed to (None: the protocol's, at build time)
    stem: Literal["newell", "wide"] = "newell"  # wide: every stem layer num_features wide
    init: Literal["default", "glorot_normal"] = "default"
    # Elhagry et al. (seed 002_bdd2d633fa65b35a.txt section 3.1.4): Newell stem widths s, 2s (64: Newell's)
    stem_channels: int = 64
    # Brami and Chen (seed 001_25df7af4abb369d1.txt "Methods"): the hourglass's x2 upsampling
    upsample: Literal["nearest", "deconv"] = "nearest"


@dataclass(frozen=True)
class PretrainConfig:
    """Phase 1 of a two-phase training (:func:`hgbench.pretrain.pretrain_autoencoder`): the
    bottleneck autoencoder trained alone, as a denoising autoencoder, on the bottleneck
    features, before the whole network is trained under the protocol.

    Attributes:
        optimizer: phase 1's optimiser.
        epochs: phase-1 epochs; ``None`` = the protocol's ``epochs``.
        steps_per_epoch: steps per phase-1 epoch; ``None`` = the protocol's
            ``steps_per_epoch`` (or one pass over the training split), so that phase 1 scales
            with the protocol.
        batch_size: ``None`` = the protocol's.
        lr_step_epochs, lr_gamma: the learning rate is multiplied by ``lr_gamma`` every
            ``lr_step_epochs`` phase-1 epochs (0: never).
        noise_std: relative std of the multiplicative Gaussian input noise:
            ``x + N(0, 1) * noise_std * x``, i.e. noise drawn from ``N(0, (noise_std x)^2)``.
    """

    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="sgd", lr=5e-4, momentum=0.9))
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr_step_epochs: int = 25
    lr_gamma: float = 0.5
    noise_std: float = 0.1


@dataclass(frozen=True)
class VariantSpec:
    """A registered variant.

    Attributes:
        name: registry name (file stem).
        description: one line for tables.
        source: the paper and place it comes from.
        architecture: the network.
        supervision: ``intermediate`` (a loss on every stack's heatmaps, Newell et al.),
            ``final`` (the last stack only) or ``sum`` (one loss on the sum of all stacks'
            heatmaps); see :func:`hgbench.models.loss.stacked_loss`.
        optimizer, batch_size: protocol overrides (``None``: the protocol's).
        pretrain: phase 1 of a two-phase training (the bottleneck autoencoder alone), run
            before the protocol's training; ``None``: none.
        eval_skips: ``False`` evaluates the trained network with the hourglasses' upper
            branches switched off (the skip ablation of Andersen, section 6.2); training
            always uses them.
        notes: reading choices where the paper is vague.
    """

    name: str
    description: str
    source: Source
    architecture: Architecture
    supervision: Literal["intermediate", "final", "sum"] = "intermediate"
    optimizer: OptimizerConfig | None = None
    batch_size: int | None = None
    pretrain: PretrainConfig | None = None
    eval_skips: bool = True
    notes: str = ""

    def build(self, num_joints: int, input_size: int | None = None) -> nn.Module:
        """The network with ``num_joints`` heatmaps (taken from the dataset).

        ``input_size`` (the protocol's) matters only for an autoencoder bottleneck, whose
        linear layers fix the input side: ``architecture.input_size`` if set (a different
        ``input_size`` raises ``ValueError``), else ``input_size``, else 256 (the paper's).
        """
        a = self.architecture
        size = None
        if a.bottleneck == "autoencoder":
            if a.input_size is not None and input_size is not None and input_size != a.input_size:
                raise ValueError(
                    f"variant {self.name!r} is fixed to {a.input_size}x{a.input_size} inputs (architecture.input_size), "
                    f"got {input_size}; its autoencoder's linear layers fix the bottleneck size"
                )
            size = a.input_size or input_size or 256
        return StackedHourglass(
            a.num_stacks, num_joints, a.num_features, a.depth, a.num_modules, get_block(a.block),
            bottom_modules=a.bottom_modules, bottleneck=a.bottleneck, latent_dim=a.latent_dim,
            input_size=size, stem=a.stem, init=a.init, stem_channels=a.stem_channels, upsample=a.upsample,
        )  # fmt: skip

    @property
    def overrides(self) -> str:
        """Human-readable protocol overrides, empty when none."""
        parts = []
        if self.optimizer is not None:
            parts.append(f"optimizer={self.optimizer.name} lr={self.optimizer.lr:g}")
        if self.batch_size is not None:
            parts.append(f"batch_size={self.batch_size}")
        return ", ".join(parts)


def load_variant_file(path: Path) -> VariantSpec:
    """Load and validate one variant YAML.

    Raises:
        ConfigError: malformed file, unknown block, or a ``name`` that differs from the file stem.
    """
    path = Path(path)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    spec = from_dict(VariantSpec, data, path)
    if spec.name != path.stem:
        raise ConfigError(f"{path}: field 'name' is {spec.name!r} but the file is {path.name}; make them equal")
    if spec.architecture.block not in BLOCKS:
        raise ConfigError(f"{path}: field 'architecture.block' is {spec.architecture.block!r}; known blocks: {', '.join(sorted(BLOCKS))}")
    return spec


@lru_cache(maxsize=None)
def _load_all(folder: Path) -> dict[str, VariantSpec]:
    return {p.stem: load_variant_file(p) for p in sorted(folder.glob("*.yaml"), key=lambda p: p.stem)}


def list_variants() -> list[VariantSpec]:
    """Every registered variant, in file-name order."""
    return list(_load_all(variants_dir()).values())


def get_variant(name: str) -> VariantSpec:
    """The variant called ``name``.

    Raises:
        KeyError: unknown name, listing the registered ones.
    """
    variants = _load_all(variants_dir())
    if name not in variants:
        raise KeyError(f"unknown variant {name!r}; registered: {', '.join(variants)}")
    return variants[name]


def select_variants(names: str | None) -> list[VariantSpec]:
    """Variants named in a comma-separated list, or all of them for ``None``/empty."""
    if not names:
        return list_variants()
    return [get_variant(n.strip()) for n in names.split(",") if n.strip()]


def build_model(name: str, num_joints: int) -> nn.Module:
    """Build the registered variant ``name`` with ``num_joints`` heatmaps."""
    return get_variant(name).build(num_joints)
