"""Strict loading of the registry's YAML files (variants and protocols) into frozen dataclasses
(pydantic on plain dataclasses, :mod:`hgbench.config.loading`)."""

from hgbench.config.loading import ConfigError, from_dict, read_yaml
from hgbench.config.protocol import (
    Augmentation,
    OptimizerConfig,
    Protocol,
    ScheduleConfig,
    available_protocols,
    load_protocol,
)
from hgbench.config.variant import (
    SCHEMA_KINDS,
    Architecture,
    BlockName,
    PretrainConfig,
    Source,
    VariantSpec,
    check_compatible,
    get_variant,
    json_schema,
    list_variants,
    load_variant_file,
    select_variants,
    variant_names,
)

__all__ = [
    "Architecture",
    "Augmentation",
    "BlockName",
    "ConfigError",
    "OptimizerConfig",
    "PretrainConfig",
    "Protocol",
    "SCHEMA_KINDS",
    "ScheduleConfig",
    "Source",
    "VariantSpec",
    "available_protocols",
    "check_compatible",
    "from_dict",
    "get_variant",
    "json_schema",
    "list_variants",
    "load_protocol",
    "load_variant_file",
    "read_yaml",
    "select_variants",
    "variant_names",
]
