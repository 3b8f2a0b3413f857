"""The variant registry: one YAML file per variant in ``variants/``, loaded into a typed
:class:`VariantSpec` and built by name.

A variant file names the paper it comes from (seed file and section or table), the
architecture (stacks, features, depth, modules per level, block), the supervision and,
optionally, the optimiser and batch size it overrides in the protocol.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, ValidationInfo, field_validator, model_validator

from hgbench.config import axes
from hgbench.config.loading import (
    CONFIG,
    Bool,
    ConfigError,
    Name,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Str,
    adapter,
    from_dict,
    read_yaml,
)
from hgbench.config.protocol import STEM_STRIDE, OptimizerConfig, Protocol, check_input_batch
from hgbench.paths import variants_dir

BlockName = Literal[axes.BLOCKS]
"""The residual-module kinds (:data:`hgbench.config.axes.BLOCKS`, which :data:`hgbench.models.blocks.BLOCKS`
builds; a test keeps the two equal)."""


MAX_DEPTH = 6
"""Deepest hourglass accepted: Newell et al.'s 256 px input gives 64 px heatmaps, which
``depth`` 6 halves down to 1 px (seed 004_f2275e04f372f4f6.txt uses depth 4)."""


MAX_WEIGHT_BYTES = 64 * 2**30
"""Largest float32 weights a variant may have (64 GiB, 16 G parameters): training holds about
four times its weights (weights, gradients, Adam's two moments: 256 GiB) before any activation,
more than the largest single accelerator has (141 GiB, an H200), and it is 600 times the largest
network of the registry (``hru-deconv8``, 111 M parameters). A variant over it is refused when
its file is read, before anything is allocated (:func:`parameter_lower_bound`)."""

FLOAT32_BYTES = 4

BLOCK_PARAMETERS_PER_WIDTH_SQUARED = 0.5
"""A lower bound on the parameters of one residual module of width ``F``, in units of ``F**2``:
the cheapest block of :data:`hgbench.config.axes.BLOCKS`, the Ghost bottleneck, has 0.72 F^2
(``hg1-ghost``: 661,456 parameters for 17 blocks of 256 channels, measured with
``hgbench.models.create_model``); Newell's residual module has 3.25 F^2 (1x1 F->F/2, 3x3, 1x1 F/2->F)."""


def parameter_lower_bound(a: Architecture) -> int:
    """A lower bound on the parameters of the network ``a`` describes, from its fields alone
    (nothing is built): its residual modules (per stack ``(3 depth + 1) num_modules``, or
    ``(3 depth - 1) num_modules + bottom_modules`` with ``bottom_modules``, each at least
    :data:`BLOCK_PARAMETERS_PER_WIDTH_SQUARED` x ``num_features**2``), the autoencoder's two
    linear layers (at least ``num_features x latent_dim`` each, per stack) and Newell's stem's
    ``stem_channels**2`` (its first residual module, ``s -> 2 s``). Never above the true count (a test checks every registered variant)."""
    f = a.num_features
    per_stack = (3 * a.depth - 1) * a.num_modules + (a.bottom_modules or 2 * a.num_modules)
    blocks = a.num_stacks * per_stack * BLOCK_PARAMETERS_PER_WIDTH_SQUARED * f * f
    autoencoder = 2 * a.num_stacks * f * a.latent_dim if a.bottleneck == "autoencoder" else 0
    stem = a.stem_channels**2 if a.stem == "newell" else 0
    return int(blocks + autoencoder + stem)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:,.3g} GiB"


def _even_width(value: int) -> int:
    if value % 2:
        raise ValueError(f"is odd; every block halves the width in its bottleneck: use an even width, e.g. {value + 1}")
    return value


@dataclass(frozen=True)
class Source:
    """Where a variant comes from: the paper (``cite`` is its short form for tables), its
    seed file in ``../shared/seeds`` and the section, table or figure that defines it."""

    __pydantic_config__ = CONFIG

    paper: Str
    cite: Str = ""
    seed: Str = ""
    where: Str = ""


@dataclass(frozen=True)
class Architecture:
    """Hourglass hyper-parameters (pose-hg-train names in brackets): ``num_stacks``
    (nStack), ``num_features`` (nFeats), ``depth`` (levels of each hourglass, 4),
    ``num_modules`` (nModules, blocks per level), ``block`` (a key of
    :data:`hgbench.models.blocks.BLOCKS`).

    Ranges: counts >= 1; ``num_features`` even (every block halves it in its bottleneck:
    :class:`hgbench.models.layers.PreActBottleneck`, ``GhostBottleneck``, the HRU's branch C
    raise on an odd width); ``depth`` 1..:data:`MAX_DEPTH`; ``input_size`` a multiple of
    ``4 * 2**depth`` (the stem's stride, then one 2x2 pool per level).
    """

    __pydantic_config__ = CONFIG

    num_stacks: PositiveInt
    num_features: Annotated[int, Strict(), Field(ge=2), AfterValidator(_even_width)] = 256
    depth: Annotated[int, Strict(), Field(ge=1, le=MAX_DEPTH)] = 4
    num_modules: PositiveInt = 1
    block: BlockName = "residual"
    # Options for Andersen (seed 003_c160231480bcc829.txt); the defaults are Newell's network.
    bottom_modules: PositiveInt | None = (
        None  # blocks at the deepest level after low1, no low3 (None: Newell's low2 + low3)
    )
    bottleneck: Literal["residual", "autoencoder"] = "residual"  # autoencoder: hgbench.models.autoencoder
    latent_dim: PositiveInt = 50  # the autoencoder's latent
    input_size: PositiveInt | None = (
        None  # autoencoder only: the input side it is fixed to (None: the protocol's, at build time)
    )
    stem: Literal["newell", "wide"] = "newell"  # wide: every stem layer num_features wide
    init: Literal["default", "glorot_normal"] = "default"
    # Elhagry et al. (seed 002_bdd2d633fa65b35a.txt section 3.1.4): Newell stem widths s, 2s (64: Newell's)
    stem_channels: PositiveInt = 64
    # Brami and Chen (seed 001_25df7af4abb369d1.txt "Methods"): the hourglass's x2 upsampling
    upsample: Literal["nearest", "deconv"] = "nearest"

    @model_validator(mode="after")
    def _fits_in_memory(self) -> Architecture:
        """Refuse, before anything is allocated, a network whose float32 weights alone would
        exceed :data:`MAX_WEIGHT_BYTES` (:func:`parameter_lower_bound`)."""
        params = parameter_lower_bound(self)
        if params * FLOAT32_BYTES > MAX_WEIGHT_BYTES:
            raise ValueError(
                f"is too large to fit in memory: num_stacks {self.num_stacks:,} x num_features {self.num_features:,} "
                f"(depth {self.depth}, num_modules {self.num_modules:,}) gives at least {params:.3g} parameters, "
                f"{_gib(params * FLOAT32_BYTES)} of float32 weights, over the {_gib(MAX_WEIGHT_BYTES)} limit "
                "(training needs about 4x that); use fewer stacks, modules or features (the papers: 1-8 stacks of 256)"
            )
        return self

    @field_validator("input_size")
    @classmethod
    def _input_fits_depth(cls, value: int | None, info: ValidationInfo) -> int | None:
        depth = info.data.get("depth")
        if value is not None and depth is not None and value % (STEM_STRIDE * 2**depth):
            step = STEM_STRIDE * 2**depth
            raise ValueError(
                f"is not a multiple of 4 * 2**depth = {step} (the stem's stride 4, then {depth} halvings); "
                f"use e.g. {max(step, round(value / step) * step)}"
            )
        return value


@dataclass(frozen=True)
class PretrainConfig:
    """Phase 1 of a two-phase training (:func:`hgbench.train.pretrain.pretrain_autoencoder`): the
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
            ``x + N(0, 1) * noise_std * x``, i.e. noise drawn from ``N(0, (noise_std x)^2)``
            (0: no noise).
    """

    __pydantic_config__ = CONFIG

    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig(name="sgd", lr=5e-4, momentum=0.9))
    epochs: PositiveInt | None = None
    steps_per_epoch: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    lr_step_epochs: NonNegativeInt = 25
    lr_gamma: PositiveFloat = 0.5
    noise_std: NonNegativeFloat = 0.1


_NO_PRETRAIN = PretrainConfig()


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

    ``name`` is a plain name (a folder under ``--results``) and equals the file stem.
    """

    __pydantic_config__ = CONFIG

    name: Name
    description: Str
    source: Source
    architecture: Architecture
    supervision: Literal["intermediate", "final", "sum"] = "intermediate"
    optimizer: OptimizerConfig | None = None
    batch_size: PositiveInt | None = None
    pretrain: PretrainConfig | None = None
    eval_skips: Bool = True
    notes: Str = ""

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
        raise ConfigError(
            f"{path}: field 'name': {spec.name!r} differs from the file name {path.name}; make them equal"
        )
    return spec


@cache
def _load_all(folder: Path) -> dict[str, VariantSpec]:
    """Every ``*.yaml`` of ``folder``; cached per folder (``_load_all.cache_clear()`` after
    editing the files)."""
    return {p.stem: load_variant_file(p) for p in sorted(folder.glob("*.yaml"), key=lambda p: p.stem)}


def _registry() -> dict[str, VariantSpec]:
    """``{name: spec}`` of the registry (:func:`hgbench.paths.variants_dir`).

    Raises:
        ConfigError: a malformed file, named in the message, or a registry without any.
    """
    folder = variants_dir()
    variants = _load_all(folder)
    if not variants:
        raise ConfigError(
            f"{folder}: no variant files (*.yaml) in the registry; point HGBENCH_VARIANTS_DIR at a folder holding them"
        )
    return variants


def list_variants() -> list[VariantSpec]:
    """Every registered variant, in file-name order.

    Raises:
        ConfigError: a malformed file, named in the message, or a registry without any.
    """
    return list(_registry().values())


def get_variant(name: str) -> VariantSpec:
    """The variant called ``name``.

    Raises:
        KeyError: unknown name, listing the registered ones.
        ConfigError: as :func:`list_variants`.
    """
    variants = _registry()
    if name not in variants:
        raise KeyError(f"unknown variant {name!r}; registered: {', '.join(variants)}")
    return variants[name]


def variant_names(names: str | None) -> list[str] | None:
    """The names of a comma-separated list (``--variants``, or ``train``'s VARIANT), each once,
    in order; None (every variant) for None.

    Raises:
        ValueError: a list that names no variant (``""``, ``","``), which would otherwise select
            every variant (an empty shell variable, say).
    """
    if names is None:
        return None
    listed = list(dict.fromkeys(n.strip() for n in names.split(",") if n.strip()))
    if not listed:
        raise ValueError(
            f"variants {names!r}: no variant named; give registered names, e.g. hg1,hg2 (`hgbench variants` "
            "lists them), or leave --variants out for all"
        )
    return listed


def select_variants(names: str | None) -> list[VariantSpec]:
    """Variants named in a comma-separated list (each once), or all of them for ``None``.

    Raises:
        ValueError: a list that names no variant (:func:`variant_names`).
        KeyError: an unknown name, listing the registered ones.
    """
    listed = variant_names(names)
    return list_variants() if listed is None else [get_variant(n) for n in listed]


def check_compatible(spec: VariantSpec, protocol: Protocol, source: str | None = None) -> None:
    """Check that ``spec`` can be trained under ``protocol`` before any work starts.

    Both are first re-validated (a ``VariantSpec(...)`` or ``Protocol(...)`` built in code
    skips the loaders' checks), then: the protocol's heatmap side ``output_size`` must be
    divisible by ``2**depth`` (each hourglass level halves it and the upper branch adds the
    halves back, hg.lua of princeton-vl/pose-hg-train), the variant's batch-size overrides
    (``batch_size``, ``pretrain.batch_size``) must fit in memory at the protocol's input size
    (:func:`hgbench.config.protocol.check_input_batch`), and a variant fixed to an input
    side (``architecture.input_size``) must match the protocol's ``input_size``.

    Raises:
        ConfigError: one line naming ``source`` (default: the variant and protocol), the
            field, the value and the fix.
    """
    where = source or f"variant {spec.name!r} under protocol {protocol.name!r}"
    from_dict(VariantSpec, dataclasses.asdict(spec), where)
    from_dict(Protocol, dataclasses.asdict(protocol), where)
    a = spec.architecture
    levels = 2**a.depth
    if protocol.output_size % levels:
        step = STEM_STRIDE * levels
        good = -(-protocol.input_size // step) * step
        raise ConfigError(
            f"{where}: field 'architecture.depth': {a.depth} needs heatmaps divisible by 2**{a.depth} = {levels} "
            f"(each hourglass level halves them), but the protocol's output_size is {protocol.output_size} "
            f"(input_size {protocol.input_size}); use an input_size that is a multiple of 4*2**depth = {step}, e.g. {good}"
        )
    for field_name, batch in (
        ("batch_size", spec.batch_size),
        ("pretrain.batch_size", (spec.pretrain or _NO_PRETRAIN).batch_size),
    ):
        try:
            check_input_batch(batch or protocol.batch_size, protocol.input_size, field_name)
        except ValueError as e:  # the variant's override at the protocol's input size
            raise ConfigError(f"{where}: field '{field_name}': input_size {protocol.input_size} {e}") from None
    if a.input_size is not None and a.input_size != protocol.input_size:
        raise ConfigError(
            f"{where}: field 'architecture.input_size': {a.input_size} differs from the protocol's input_size "
            f"{protocol.input_size} (the autoencoder's linear layers fix it); use a protocol with input_size "
            f"{a.input_size} or set architecture.input_size: null"
        )


SCHEMA_KINDS = {"variant": VariantSpec, "protocol": Protocol}


def json_schema(kind: str) -> dict:
    """JSON Schema (draft 2020-12, from pydantic) of a ``variant`` or ``protocol`` YAML file.

    ``name`` is optional in the file (the loaders default it to the file stem), so it is
    dropped from the top level's ``required``.

    Raises:
        ValueError: ``kind`` is neither ``variant`` nor ``protocol``.
    """
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"unknown schema kind {kind!r}; use one of: {', '.join(SCHEMA_KINDS)}")
    schema = adapter(SCHEMA_KINDS[kind]).json_schema()
    schema["required"] = [r for r in schema.get("required", []) if r != "name"]
    return schema
