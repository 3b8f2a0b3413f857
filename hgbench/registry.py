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
        notes: reading choices where the paper is vague.
    """

    name: str
    description: str
    source: Source
    architecture: Architecture
    supervision: Literal["intermediate", "final", "sum"] = "intermediate"
    optimizer: OptimizerConfig | None = None
    batch_size: int | None = None
    notes: str = ""

    def build(self, num_joints: int) -> nn.Module:
        """The network with ``num_joints`` heatmaps (taken from the dataset)."""
        a = self.architecture
        return StackedHourglass(a.num_stacks, num_joints, a.num_features, a.depth, a.num_modules, get_block(a.block))

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
