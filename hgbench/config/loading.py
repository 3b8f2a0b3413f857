"""Strict loading of the registry's YAML files into frozen dataclasses, through pydantic.

The dataclasses (:mod:`hgbench.config.protocol`, :mod:`hgbench.config.variant`) stay plain
frozen ``dataclasses.dataclass`` classes; their field annotations carry the constraints
(``Annotated`` with :class:`pydantic.Field` bounds and validators) and each class sets
``__pydantic_config__ = CONFIG`` (unknown fields forbidden, no inf/NaN). A
:class:`pydantic.TypeAdapter` validates a mapping into them (:func:`from_dict`), and every
failure becomes one :class:`ConfigError` line::

    <file>: field 'optimizer.lr': -1 is not > 0; use a value > 0

Scalars are strict (no ``"3"`` -> 3, no ``true`` -> 1); an integer is accepted for a float.

:func:`read_yaml` reads a file defensively: at most :data:`MAX_FILE_BYTES`, UTF-8 only, no
duplicate keys, and YAML aliases may expand the document to at most :data:`MAX_YAML_NODES`
values (a "billion laughs" file is refused before anything is expanded).
"""

from __future__ import annotations

import dataclasses
import re
import reprlib
import typing
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError

T = TypeVar("T")

MAX_FILE_BYTES = 1 << 20
"""Largest config file read (1 MiB; the shipped ones are a few KiB)."""

MAX_YAML_NODES = 10_000
"""Most values (scalars, lists, mappings) a YAML document may hold once its aliases are
expanded (the shipped files hold under 200)."""

CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
"""The pydantic config every config dataclass sets as ``__pydantic_config__``."""

NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


class ConfigError(ValueError):
    """A config file (or a dict rebuilt from a record) that does not match its schema; the
    message is one line naming the file, the field, the value and the fix."""


def _plain_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "is not a plain name (letters, digits, '.', '_', '-'; not starting with '.'; at most 100 characters: "
            "it becomes a folder under --results); rename it, e.g. 'my-variant'"
        )
    return value


def _increasing(values: tuple[int, ...]) -> tuple[int, ...]:
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError("is not strictly increasing; list the epochs in increasing order without repeats")
    return values


def _low_high(values: tuple[float, float]) -> tuple[float, float]:
    if values[0] > values[1]:
        raise ValueError("has low > high; write it as [low, high]")
    return values


# Field types shared by the config dataclasses (pydantic's strict scalars: no str -> int coercion).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # strict float still takes an int
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Name = Annotated[
    str,
    Strict(),
    AfterValidator(_plain_name),
    Field(json_schema_extra={"pattern": f"^{NAME_RE.pattern}$", "maxLength": 100}),
]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
PositiveFloat = Annotated[float, Strict(), Field(gt=0)]
NonNegativeFloat = Annotated[float, Strict(), Field(ge=0)]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]
UnitInterval = Annotated[float, Strict(), Field(ge=0, lt=1)]  # [0, 1)
Milestones = Annotated[tuple[PositiveInt, ...], AfterValidator(_increasing)]
ScaleRange = Annotated[tuple[PositiveFloat, PositiveFloat], AfterValidator(_low_high)]


# --------------------------------------------------------------------------- YAML


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, mark: yaml.Mark) -> None:
        super().__init__(key)
        self.key, self.mark = key, mark


class _Loader(yaml.SafeLoader):
    """PyYAML's SafeLoader that refuses duplicate keys (the later one would silently win)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise _DuplicateKey(key_node.value, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _alias_bomb(root: yaml.Node) -> str | None:
    """Where the document ``root`` (a composed node graph) grows past :data:`MAX_YAML_NODES`
    nodes once its aliases are expanded ("field 'x' (line n)" or "line n"), or None.

    Counted without expanding: each node's expanded size is computed once and shared by
    every alias to it, so a "billion laughs" file costs as many steps as it has nodes. An
    alias cycle counts as infinite.
    """
    sizes: dict[int, float] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> float:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            return float("inf")
        active.add(key)
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(c) for c in children)
        active.discard(key)
        sizes[key] = total
        return total

    if size(root) <= MAX_YAML_NODES:
        return None
    if isinstance(root, yaml.MappingNode):
        key, value = max(root.value, key=lambda pair: size(pair[1]))
        return f"field {short_repr(key.value)} (line {value.start_mark.line + 1})"
    return f"line {root.start_mark.line + 1}"


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping defensively.

    Raises:
        ConfigError (one line naming the file): missing or unreadable, over
            :data:`MAX_FILE_BYTES`, not UTF-8 (with the byte offset), a control character that
            YAML forbids (a binary file, with its position), a YAML syntax error or a
            duplicate key (with the line), aliases expanding past :data:`MAX_YAML_NODES`
            values, or not a mapping at the top level.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(f"{path}: no such file")
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from e
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: over {MAX_FILE_BYTES // (1 << 20)} MiB, too large for a config file; is it the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text at byte {e.start}; save the file as UTF-8") from None
    try:
        loader = _Loader(text)  # the reader refuses control characters (a binary file) here
    except yaml.reader.ReaderError as e:
        char = f"U+{e.character:04X}" if isinstance(e.character, int) else repr(e.character)
        raise ConfigError(
            f"{path}: the control character {char} at character {e.position} cannot appear in a YAML file "
            "(a binary file?); give the YAML config file"
        ) from None
    try:
        node = loader.get_single_node()
        where = _alias_bomb(node) if node is not None else None
        if where is not None:
            raise ConfigError(
                f"{path}: {where}: YAML aliases (*name) expand it past {MAX_YAML_NODES} values; "
                "write the values out instead of repeating anchors"
            )
        data = loader.construct_document(node) if node is not None else None
    except _DuplicateKey as e:
        raise ConfigError(
            f"{path}: field {short_repr(e.key)}: given twice (line {e.mark.line + 1}); keep one"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(_one_line(f"{path}: not valid YAML: {where}{problem}; fix the syntax there")) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise ConfigError(f"{path}: expected a mapping of fields ('key: value' lines) at the top level, got {got}")
    return data


# --------------------------------------------------------------------------- validation


@cache
def adapter(cls: type) -> TypeAdapter:
    """The (cached) :class:`pydantic.TypeAdapter` of a config dataclass."""
    return TypeAdapter(cls)


def from_dict(cls: type[T], data: Any, source: str | Path, prefix: str = "") -> T:
    """Validate ``data`` (a mapping, e.g. from YAML or ``dataclasses.asdict``) into the
    config dataclass ``cls``, nested dataclasses included.

    ``source`` names where ``data`` comes from (a file, a checkpoint) and ``prefix`` is
    prepended to field paths (``"architecture."``) in messages.

    Raises:
        ConfigError: one line, ``"<source>: field 'architecture.depth': 9 is not <= 6; use
            a value <= 6"``, for the first error, with ``(and N more)`` when there are several.
    """
    try:
        return adapter(cls).validate_python(data)
    except ValidationError as e:
        raise ConfigError(describe_errors(e, cls, source, prefix)) from None


def describe_errors(error: ValidationError, cls: type, source: str | Path, prefix: str = "") -> str:
    """One line for a pydantic :class:`~pydantic.ValidationError` of ``cls``: its first
    error as ``"<source>: field '<path>': <value> <problem>; <fix>"``, plus ``(and N more)``."""
    errors = error.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    text = (
        f"{source}: field '{path}': {_problem(first, cls, loc)}" if path else f"{source}: {_problem(first, cls, loc)}"
    )
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more)"
    return _one_line(text)


_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 50, 50
_REPR.maxlist = _REPR.maxtuple = 4
_REPR.maxdict = _REPR.maxset = 3


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters; never builds the full repr of a large value."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _problem(err: dict, cls: type, loc: tuple) -> str:
    """``"<value> <what is wrong>; <fix>"`` for one pydantic error dict."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    v = short_repr(value)
    if kind in ("missing", "missing_argument"):
        return "is required but missing; add it"
    if kind in ("extra_forbidden", "unexpected_keyword_argument", "unexpected_positional_argument"):
        owner = _dataclass_at(cls, loc[:-1])
        allowed = f" (the fields here: {', '.join(f.name for f in dataclasses.fields(owner))})" if owner else ""
        return f"unknown field (value {v}); remove it or correct its spelling{allowed}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"{v} is not {bounds[kind]} {bound}; use a value {bounds[kind]} {bound}"
    if kind == "value_error":  # our validators phrase "<what is wrong>; <fix>"
        return f"{v} {ctx.get('error', err['msg'])}"
    if kind == "literal_error":
        return f"{v} is not one of {ctx.get('expected')}; use one of them"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        fix = "write it without quotes" if isinstance(value, str) else "write a whole number"
        return f"{v} is not an integer; {fix}"
    if kind in ("float_type", "float_parsing"):
        fix = (
            "write it without quotes (YAML reads 1e-4 as text: write 1.0e-4)"
            if isinstance(value, str)
            else "write a number"
        )
        return f"{v} is not a number; {fix}"
    if kind == "finite_number":
        return f"{v} is not a finite number; use a finite value"
    if kind in ("bool_type", "bool_parsing"):
        return f"{v} is not true or false; write true or false"
    if kind == "string_type":
        return f"{v} is not text; put it in quotes"
    if kind in ("dataclass_type", "dataclass_args_type", "dict_type", "model_type"):
        return f"{v} is not a mapping; write its fields as 'key: value' lines indented under it"
    if kind in ("tuple_type", "list_type"):
        return f"{v} is not a list; write it as [a, b, ...]"
    if kind in ("too_short", "too_long"):
        return f"{v} has the wrong number of items ({err['msg'].lower()}); fix the list"
    msg = err["msg"][:1].lower() + err["msg"][1:]
    return f"{v}: {msg}; see `hgbench schema` for the allowed values"


def _dataclass_at(cls: type, loc: tuple) -> type | None:
    """The dataclass that holds the field at ``loc`` (a pydantic error location) in ``cls``."""
    tp: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        tp = _unwrap(typing.get_type_hints(tp).get(part)) if dataclasses.is_dataclass(tp) else None
    return tp if dataclasses.is_dataclass(tp) else None


def _unwrap(tp: Any) -> Any:
    """``X`` from ``X | None`` (or the annotation itself)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else tp


def _one_line(text: str) -> str:
    return " ".join(text.split())
