"""The record schema: typed train, eval and profile records, their one key, and the schema rule.

Every record is one JSON object with ``schema`` (the layout's version, :data:`SCHEMA`),
``kind`` (``"train"``, ``"eval"`` or ``"profile"``), ``created`` (UTC, ISO 8601) and
``provenance`` (:func:`hgbench.records.provenance.collect_provenance`), then the fields of its
kind. The models below declare the fields every reader relies on, with their types (a profile
record: every field it has, :class:`ProfileRecord`); the rest (a train record's ``epochs`` or
``wall_time_s``) is kept as written (``extra="allow"``) and reached through
:meth:`RecordBase.get` or attribute access.

**The schema rule** (:func:`check_schema`), the same answer in every reader and writer:

- :data:`SCHEMA` is read as is;
- an older schema listed in :data:`MIGRATIONS` for the record's kind is read through its
  migration (missing fields filled from what the record holds);
- an older schema not listed for that kind is refused with what to re-run;
- a field added to a kind within the current schema (``pipeline_check`` of train and eval
  records) is filled, where a record lacks it, from what the record holds (:data:`FILLS`);
- a newer schema (a higher version number) is refused with "written by a newer hgbench", and
  no writer ever replaces such a file (:func:`hgbench.records.store.write_record`).

**The value rule**: a record that follows the schema is then checked for values that cannot be
true (:mod:`hgbench.records.validation`: accuracies in [0, 100] %, positive counts, finite
positive latencies, a completed profile setting with its latency ...); a record that breaks one
is refused with :class:`InvalidRecordError`, naming the field and the value.

Schema history: ``hgbench.record/1``: the first layout. ``/2`` changed profile records
(precisions, layouts, percentiles, FLOPs, roofline, calibration, numerics); train and eval
records kept their layout. ``/3`` gives every record its identity: ``spec`` and ``spec_hash``
of the variant, ``protocol_hash`` (train, eval), ``num_joints`` and ``protocol`` (eval).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from hgbench.records.key import spec_hash
from hgbench.records.validation import record_problem, timing_problem

SCHEMA_PREFIX = "hgbench.record/"
SCHEMA_VERSION = 3
SCHEMA = f"{SCHEMA_PREFIX}{SCHEMA_VERSION}"
KINDS = ("train", "eval", "profile", "sweep")


class RecordError(ValueError):
    """A record file that cannot be read or does not follow the schema (the message names the
    file, the field and what to do)."""


class NewerSchemaError(RecordError):
    """A record written by a newer hgbench: read by no reader, replaced by no writer."""


class InvalidRecordError(RecordError):
    """A record whose fields have their types but whose values cannot be true (an accuracy of
    250 %, a negative parameter count, a NaN latency, a completed setting without latency: the
    rules of :mod:`hgbench.records.validation`). Readers list it as skipped with the reason;
    ``hgbench compare`` refuses it."""


# --- the one record key -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class RecordKey:
    """What a record describes, not when or with what result: two records with equal keys
    describe the same thing and the newer replaces the older in every reader.

    ``machine`` is ``(machine label (:func:`machine_label`), device kind, device name, threads)`` for profile records and ``()`` for
    train and eval records (accuracy does not depend on the machine). ``setting`` is the rest,
    by kind (the field names are in :data:`KEY_FIELDS`). ``hgbench compare`` and the latency
    gate match two runs' records on ``(kind, setting)``, across machines; the report and
    ``train-all`` on the whole key.
    """

    kind: str
    machine: tuple
    setting: tuple

    def __getattr__(self, name: str) -> Any:
        """Setting field ``name`` (one of ``KEY_FIELDS[kind]``) as an attribute: ``key.variant``."""
        fields = KEY_FIELDS.get(self.__dict__.get("kind", ""), ())
        if name in fields:
            return self.setting[fields.index(name)]
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Any]:
        """The setting fields by name."""
        return dict(zip(KEY_FIELDS[self.kind], self.setting, strict=True))

    def without_machine(self) -> RecordKey:
        """The key with ``machine`` emptied: what two runs on different machines match on."""
        return RecordKey(self.kind, (), self.setting)

    def label(self) -> str:
        """Short text, e.g. ``hg1 j16 eager fp32 b1 s64 cpu`` for a profile record (``tf32``,
        ``cl`` and the compile mode added when set), or the setting's values joined by spaces."""
        if self.kind != "profile":
            return " ".join(str(v) for v in self.setting if v not in (None, ""))
        f = dict(zip(KEY_FIELDS["profile"], self.setting, strict=True))
        parts = [f["variant"], f"j{f['num_joints']}", f["backend"]]
        if f["compile_mode"]:
            parts.append(f["compile_mode"])
        parts.append(f["precision"])
        if f["tf32"]:
            parts.append("tf32")
        if f["channels_last"]:
            parts.append("cl")
        parts += [f"b{f['batch_size']}", f"s{f['input_size']}", f["device"]]
        return " ".join(parts)

    def stem(self) -> str:
        """File stem of a profile record:
        ``<variant>__j<J>__<backend>[-<mode>]__<device>__<precision>[__tf32][__cl]__b<B>__s<S>``
        (``-<mode>`` for a ``compile`` setting in a mode other than ``default``)."""
        f = dict(zip(KEY_FIELDS["profile"], self.setting, strict=True))
        mode = f["compile_mode"]
        backend = f["backend"] + (f"-{mode}" if mode and mode != "default" else "")
        return (
            f"{f['variant']}__j{f['num_joints']}__{backend}__{f['device']}__{f['precision']}"
            f"{'__tf32' if f['tf32'] else ''}{'__cl' if f['channels_last'] else ''}"
            f"__b{f['batch_size']}__s{f['input_size']}"
        )

    def sort_key(self) -> tuple:
        """Order in tables: field by field, ``None`` first."""
        return tuple(("", "") if v is None else (type(v).__name__, v) for v in (*self.machine, *self.setting))


KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "train": ("variant", "spec_hash", "dataset", "protocol", "protocol_hash"),
    "eval": (
        "variant", "spec_hash", "num_joints", "protocol", "protocol_hash", "dataset", "split", "metric", "threshold", "flip_test",
        "artifact", "data_fingerprint",
    ),
    "profile": (
        "variant", "num_joints", "backend", "precision", "tf32", "channels_last", "compile_mode",
        "batch_size", "input_size", "device",
    ),
    "sweep": ("started",),
}  # fmt: skip
"""The setting fields of each kind's key. Profile: issue 6's comparison key (``device`` is the
kind, cpu or cuda; ``threads`` is deliberately not part of it: the calibration is timed with the
run's threads, and a difference is printed as a warning). Eval: ``artifact`` names a deployed
artifact of the checkpoint (:func:`hgbench.accuracy.deployed.artifact_name`; absent, None, for the
checkpoint itself), so that one artifact's accuracy never replaces another's; ``data_fingerprint``
the data scored (:data:`hgbench.records.identity.DATA`; None in a record written before it), so
that an evaluation on other data never replaces one on the first."""


def machine_label(provenance: dict[str, Any] | None) -> str | None:
    """The label of the machine a record was made on: its provenance's ``machine``
    (``hgbench profile --machine-label``; one per Slurm partition), else its ``hostname``
    (records made before labels existed); ``None`` when neither is there."""
    provenance = provenance or {}
    return provenance.get("machine") or provenance.get("hostname")


def key_of(kind: str, body: Any, provenance: dict | None = None) -> RecordKey:
    """The :class:`RecordKey` of a record of ``kind`` whose fields are in ``body`` (a record or
    a writer's mapping; ``provenance`` gives the host of a profile record)."""
    machine: tuple = ()
    if kind == "profile":
        machine = (machine_label(provenance), body.get("device"), body.get("device_name"), body.get("threads"))
    elif kind == "sweep":
        machine = (machine_label(provenance),)
    return RecordKey(kind, machine, tuple(body.get(f) for f in KEY_FIELDS[kind]))


# --- typed records ----------------------------------------------------------------------------


class RecordBase(BaseModel):
    """Fields every record has. Unknown fields are kept (``extra="allow"``); ``path`` is where
    the record was read from (not stored in the file)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    schema_: str = Field("", alias="schema")
    kind: str
    created: str = ""
    provenance: dict[str, Any] | None = None

    _path: str | None = PrivateAttr(None)

    @property
    def path(self) -> str | None:
        """The file the record was read from or written to (None for a record in memory)."""
        return self._path

    def get(self, name: str, default: Any = None) -> Any:
        """Field ``name`` (declared or extra), or ``default`` when absent or None."""
        value = self.__dict__.get(name)  # declared fields
        if value is None and self.__pydantic_extra__:
            value = self.__pydantic_extra__.get(name)
        return default if value is None else value

    def __getitem__(self, name: str) -> Any:
        """Field ``name`` as in the JSON file (``rec["latency_ms"]``), for readers of nested
        measurement fields. Raises ``KeyError`` when the record has no such field."""
        if name == "schema":
            return self.schema_
        if name in type(self).model_fields:
            return getattr(self, name)
        extra = self.model_extra or {}
        if name not in extra:
            raise KeyError(name)
        return extra[name]

    def __contains__(self, name: str) -> bool:
        return name == "schema" or name in type(self).model_fields or name in (self.model_extra or {})

    def key(self) -> RecordKey:
        """The record's :class:`RecordKey`."""
        return key_of(self.kind, self, self.provenance)

    def to_dict(self) -> dict[str, Any]:
        """The record as written to disk (``schema`` first)."""
        return self.model_dump(by_alias=True)


class TrainRecord(RecordBase):
    """A training run (:mod:`hgbench.train`): what was trained under what, and the result.

    ``protocol_settings`` is the protocol as run (the variant's overrides applied);
    ``train_time_s`` is wall-clock seconds of the optimisation steps (data loading included,
    validation excluded), ``wall_time_s`` includes validation, both summed over resumes.
    """

    variant: str
    spec: dict[str, Any]
    spec_hash: str
    dataset: str
    protocol: str
    protocol_hash: str
    protocol_settings: dict[str, Any]
    num_joints: int
    complete: bool = False
    train_time_s: float | None = None
    history: list[dict[str, Any]] = []
    final: dict[str, Any] | None = None


class EvalRecord(RecordBase):
    """Accuracy of a checkpoint on one split (``hgbench evaluate``): ``result`` is the metric's
    summary (:class:`hgbench.accuracy.pck.PCKResult` as a dict). A deployed artifact's
    (``--backend``/``--precision``) also has ``artifact`` (part of its key), ``backend``,
    ``precision``, ``batch_size``, ``padded`` and ``deployed``
    (:meth:`hgbench.accuracy.deployed.DeployedEvaluation.record_fields`)."""

    variant: str
    spec: dict[str, Any]
    spec_hash: str
    num_joints: int
    protocol: str
    protocol_hash: str
    dataset: str
    split: str
    metric: str
    threshold: float
    flip_test: bool
    result: dict[str, Any]
    checkpoint: str | None = None
    artifact: str | None = None


class ProfileRecord(RecordBase):
    """Cost of one setting on one machine: the one type of a profile record, what
    :func:`hgbench.profile.run.profile_model` returns, what the sweep and the latency gate write
    (:func:`hgbench.profile.run.save_profile_record`, :func:`hgbench.profile.gate.measure_variants`)
    and what every reader reads.

    Every field is declared here, in the order it is written (the layout of ``hgbench.record/3``;
    a field not measured is ``None``). Records of schema 2 lack ``memory``, ``spec`` and
    ``spec_hash`` (read as ``None``, the hash filled from the spec where there is one).

    Identity (:mod:`hgbench.records.identity`): ``variant``, ``num_joints``, ``spec`` (the
    variant's spec as a dict) and ``spec_hash``; ``backend``, ``precision`` (``fp32``, ``fp16``,
    ``bf16``, ``int8``), ``tf32``, ``channels_last``, ``compile_mode`` (``None`` unless the
    backend is ``compile``), ``batch_size``, ``input_size`` (px), ``device`` (``cpu``/``cuda``);
    the machine: ``device_name`` (GPU name or CPU model), ``threads`` (CPU intra-op threads).
    ``measured_as``: ``None`` for a setting measured as this variant; else the variant whose
    measurement this is, because both build the same network (:func:`hgbench.records.architecture_hash`
    and ``num_joints``; they differ only in training, and a profile sweep times one network
    once: :mod:`hgbench.profile.sweep`). The one field written only when set, so that every
    record measured as itself keeps the layout of ``hgbench.record/3``.

    Complexity, per sample (:func:`hgbench.profile.complexity.complexity_record`):
    ``parameters``, ``model_size_mib`` (float32 weights and buffers), ``macs``
    (``{"fvcore", "thop", "unit", "input_shape"}``), ``gmacs_fvcore``, ``gmacs_thop``,
    ``gflops_flop_counter``, ``skipped_ops`` (ops each counter skipped) and
    ``activation_memory_mib``.

    Timing: ``latency_ms`` (ms per batch: ``n``, ``mean_ms``, ``std_ms``, ``p50_ms``,
    ``p90_ms``, ``p99_ms``, ``min_ms``, ``max_ms``, the raw ``samples_ms``; from the profiler
    also ``repetitions``, ``repetition_p50_ms`` and ``windows``:
    :func:`hgbench.profile.run.latency_entry`), ``throughput_samples_per_s`` (batch / median),
    ``calibration`` (the calibration workload of the same run: ``workload``, ``p50_ms``, ...;
    :mod:`hgbench.profile.calibration`, or the latency gate's frozen network).

    Memory and the rest: ``peak_memory_mib`` (on CUDA the allocator peak or the device-wide
    figure, whichever the backend names; on the CPU the peak RSS increase), ``memory`` (which
    figure that is, and on CUDA every figure: :meth:`hgbench.profile.memory.PeakMemory.to_record`),
    ``build_time_s`` (the backend's conversion, compile or engine build), ``numerics``
    (:func:`hgbench.profile.numerics.compare_outputs` against eager fp32; ``None`` for the
    reference setting itself), ``roofline`` (:func:`hgbench.profile.roofline.roofline`),
    ``notes`` (the backend's remarks), ``status`` (``"ok"`` or ``"error"``) and ``error``
    (``None``, or one line starting with the stage that failed; what was measured before the
    failure is kept).

    ``not_written`` is never written: set by :func:`hgbench.profile.run.save_profile_record`
    when a failed measurement was not saved over a good record of the same setting (why).

    Its timing statistics (:data:`hgbench.records.validation.TIMING_FIELDS`, ``throughput_samples_per_s``) are finite
    numbers >= 0: a hand-edited NaN or infinity is refused (every reader then lists the file
    as skipped, naming the field), instead of sorting and comparing as a number. Assignments are
    validated (``validate_assignment``), so a record being measured is always a valid record.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=(), validate_assignment=True)

    kind: str = "profile"
    variant: str
    num_joints: int
    backend: str
    precision: str
    tf32: bool
    channels_last: bool
    compile_mode: str | None = None
    batch_size: int
    input_size: int
    device: str
    device_name: str | None = None
    status: str = "ok"
    spec: dict[str, Any] | None = None
    spec_hash: str | None = None
    measured_as: str | None = Field(None, exclude_if=lambda value: value is None)
    threads: int | None = None
    parameters: int | None = None
    model_size_mib: float | None = None
    macs: dict[str, Any] | None = None
    gmacs_fvcore: float | None = None
    gmacs_thop: float | None = None
    gflops_flop_counter: float | None = None
    skipped_ops: dict[str, Any] | None = None
    activation_memory_mib: float | None = None
    latency_ms: dict[str, Any] | None = None
    throughput_samples_per_s: float | None = None
    peak_memory_mib: float | None = None
    memory: dict[str, Any] | None = None
    build_time_s: float | None = None
    numerics: dict[str, Any] | None = None
    roofline: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    notes: list[str] | None = None
    error: str | None = None
    not_written: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _finite_timings(self) -> ProfileRecord:
        problem = timing_problem(self)  # the rule's home: hgbench.records.validation
        if problem:
            raise ValueError(problem)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign a field, validated (``validate_assignment``). When a record-wide rule refuses
        the value (:meth:`_finite_timings`), the field keeps its earlier value (pydantic alone
        would keep the refused one, and every later assignment would fail on it).

        Raises:
            pydantic.ValidationError: the value is refused.
        """
        declared = name in type(self).model_fields
        extra = self.__pydantic_extra__
        missing = object()
        before = self.__dict__.get(name, missing) if declared else (extra or {}).get(name, missing)
        try:
            super().__setattr__(name, value)
        except ValidationError:
            if declared and before is not missing:
                self.__dict__[name] = before
            elif not declared and extra is not None and before is missing:
                extra.pop(name, None)
            elif not declared and extra is not None:
                extra[name] = before
            raise

    def update(self, fields: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Set the fields of ``fields`` and ``more`` (each assignment validated), as ``dict.update``.

        Raises:
            pydantic.ValidationError: a value of the wrong type, or a timing statistic that is
                not a finite number >= 0.
        """
        for name, value in {**(fields or {}), **more}.items():
            setattr(self, name, value)

    def to_body(self) -> dict[str, Any]:
        """The record's fields without ``schema``, ``kind``, ``created`` and ``provenance``: the
        body a writer gives :func:`hgbench.records.write_record` (plain JSON values)."""
        return self.model_dump(exclude={"schema_", "kind", "created", "provenance"})


class SweepRecord(RecordBase):
    """One ``hgbench profile`` sweep on one machine (:func:`hgbench.profile.plan.run_profile`):
    what it profiled and where its wall time went. Written under
    ``<results>/profile/<machine>/sweeps/`` (:func:`hgbench.paths.sweep_record_path`) when the
    sweep ends, and again after ``--evaluate``.

    ``started`` (UTC, ISO 8601; with the machine label, the key), ``status`` (``"complete"``:
    every setting measured; ``"failed"``: some setting failed, see its profile record),
    ``settings`` and ``failed`` (counts), the axes (``variants``, ``backends``, ``precisions``,
    ``batch_sizes``, ``input_size`` px, ``device``, ``threads``, ``repetitions``), ``wall_s``
    (seconds covered by the sweep's :class:`~hgbench.profile.timeline.Timeline`: from the
    process's start for ``hgbench profile`` and a Slurm job, from :func:`run_profile` for a
    library caller; to the end of the sweep, or of ``--evaluate``), ``time_s`` (seconds per phase of
    :data:`hgbench.profile.timeline.PHASES` plus ``other``; they add up to ``wall_s``),
    ``samples_s`` (the kept timed samples of every record, summed: what the latencies are
    computed from), ``windows`` (:func:`hgbench.profile.quiet.window_summary`) and
    ``kept_settings`` (settings timed in every repetition without being prepared again),
    ``shared_settings`` (settings whose record is another variant's measurement of the same
    network: ``ProfileRecord.measured_as``; they are not counted in ``samples_s``, ``windows``
    or ``kept_settings``).
    """

    kind: str = "sweep"
    started: str
    status: str
    settings: int
    failed: int
    variants: list[str]
    backends: list[str]
    precisions: list[str]
    batch_sizes: list[int]
    input_size: int
    device: str
    threads: int
    repetitions: int
    wall_s: float
    time_s: dict[str, float]
    samples_s: float
    windows: dict[str, int] | None = None
    kept_settings: int | None = None
    shared_settings: int | None = None


PROFILE_FIELDS = tuple(
    f
    for f in ProfileRecord.model_fields
    if f not in RecordBase.model_fields and f not in ("not_written", "measured_as")
)
"""The fields of a profile record's body, in the order they are written (every one always
present, ``None`` when not measured; ``measured_as``, written only when set, is not among them)."""


RECORD_TYPES: dict[str, type[RecordBase]] = {
    "train": TrainRecord, "eval": EvalRecord, "profile": ProfileRecord, "sweep": SweepRecord,
}  # fmt: skip
Record = TrainRecord | EvalRecord | ProfileRecord | SweepRecord


# --- the schema rule --------------------------------------------------------------------------


def _version(schema: Any) -> int | None:
    m = re.fullmatch(re.escape(SCHEMA_PREFIX) + r"(\d+)", schema) if isinstance(schema, str) else None
    return int(m.group(1)) if m else None


def _fill_identity(d: dict) -> dict:
    if isinstance(d.get("spec"), dict) and not d.get("spec_hash"):
        d["spec_hash"] = spec_hash(d["spec"])
    if d.get("kind") == "train" and not d.get("protocol_hash"):
        d["protocol_hash"] = "unhashed"  # written before runs were keyed by content
    return d


PIPELINE_CHECK_PROTOCOLS: dict[str, tuple[str, ...]] = {
    "smoke": ("652f95194a9c", "aee18b12ef20", "99ee8c9f1e18", "e0d2dca3b329"),
}
"""Protocol name -> the content hashes (:func:`hgbench.records.protocol_hash`) it had as a
pipeline check (``pipeline_check: true``, :class:`hgbench.config.Protocol`) while records did
not say so themselves. Source: ``load_protocol("smoke")`` of the shipped
``variants/protocols/smoke.yaml``, hashed by the hgbench of each commit that changed the
protocol, its loader or its hash since records carry ``protocol_hash`` (schema 3): 32d9db3
(``652f95194a9c``), 8e08f5c and a7710fe (``aee18b12ef20``), edf9329 (``99ee8c9f1e18``),
6b56071 to this day (``e0d2dca3b329``; the ``pipeline_check`` field, added in 955201b, is not
part of the hash). Frozen: train records keep the flag in ``protocol_settings`` since 955201b
and eval records carry ``pipeline_check`` themselves, so a protocol edited later needs no entry."""


def _fill_pipeline_check(d: dict) -> dict:
    """``pipeline_check`` of a train or eval record that lacks it (written before the field):
    a train record's ``protocol_settings`` say so where they hold the flag; else the record's
    ``(protocol, protocol_hash)`` is one of :data:`PIPELINE_CHECK_PROTOCOLS`. Returns a new dict."""
    if d.get("pipeline_check") is not None:
        return d
    settings = d.get("protocol_settings")
    if isinstance(settings, dict) and "pipeline_check" in settings:
        flag = settings["pipeline_check"] is True
    else:
        flag = d.get("protocol_hash") in PIPELINE_CHECK_PROTOCOLS.get(str(d.get("protocol")), ())
    return {**d, "pipeline_check": flag}


MIGRATIONS: dict[str, dict[str, Any]] = {
    "hgbench.record/1": {"train": _fill_identity},
    "hgbench.record/2": {"train": _fill_identity, "profile": _fill_identity},
}
"""Older schema -> {kind: function that upgrades a record of that kind in place}. A kind not
listed for a schema is refused: schema 1's profile records lack the calibration and raw samples
that comparisons need; eval records before schema 3 lack the variant's spec and the protocol
(readers had to guess them from the checkpoint's path)."""

FILLS: dict[str, Any] = {"train": _fill_pipeline_check, "eval": _fill_pipeline_check}
"""Kind -> function that fills, on read, a field added to records of that kind after records of
the current schema were already written (any schema, after :data:`MIGRATIONS`): readers then
find the field in every record, old or new, without asking the live registry."""

_RERUN = {
    "profile": "hgbench profile",
    "train": "hgbench train",
    "eval": "hgbench evaluate",
    "sweep": "hgbench profile",
}


def check_schema(data: Any, where: str) -> dict:
    """Apply the schema rule to a parsed record; return it upgraded to :data:`SCHEMA`
    (:data:`MIGRATIONS`) with the fields added since filled (:data:`FILLS`).

    Raises:
        NewerSchemaError: written by a newer hgbench.
        RecordError: not an object, no or unknown ``kind``, an older schema not read for its
            kind (the message says what to re-run), or not a schema hgbench knows.
    """
    if not isinstance(data, dict):
        raise RecordError(
            f"{where}: not a record (a JSON {type(data).__name__}, expected an object with 'schema' and 'kind')"
        )
    schema, kind = data.get("schema"), data.get("kind")
    version = _version(schema)
    if version is None:
        raise RecordError(f"{where}: field 'schema' is {str(schema)[:40]!r}, not an hgbench record schema ({SCHEMA})")
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"{where}: written by a newer hgbench (schema {schema}; this hgbench reads up to {SCHEMA}): upgrade hgbench to read it"
        )
    if kind not in KINDS:
        raise RecordError(f"{where}: field 'kind' is {str(kind)[:40]!r}; expected one of {', '.join(KINDS)}")
    if version < SCHEMA_VERSION:
        upgrade = MIGRATIONS.get(schema, {}).get(kind)
        if upgrade is None:
            raise RecordError(f"{where}: schema {schema} {kind} records are no longer read: re-run {_RERUN[kind]}")
        data = upgrade(dict(data))
    fill = FILLS.get(kind)
    return fill(data) if fill else data


def parse_record(data: Any, where: str) -> Record:
    """A typed record from a parsed JSON object, through :func:`check_schema`, its values checked
    (:func:`hgbench.records.validation.record_problem`).

    Raises:
        InvalidRecordError: a value that cannot be true (an accuracy outside [0, 100] %, a
            parameter count < 1, a latency that is not finite, a completed profile setting
            without latency ...), naming the field and the value, with what to re-run.
        RecordError: see :func:`check_schema`, or a field of the kind is missing or mistyped
            (named, with what to re-run).
    """
    data = check_schema(data, where)
    kind = data["kind"]
    try:
        record = RECORD_TYPES[kind].model_validate({**data, "schema": SCHEMA})
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        what = f"field {field!r}: {err['msg']}" if field else err["msg"].removeprefix("Value error, ")  # a model rule
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        error = RecordError if field else InvalidRecordError  # a model rule is a value rule
        raise error(f"{where}: malformed {kind} record: {what}{more}; re-run {_RERUN[kind]}") from None
    problem = record_problem(record)
    if problem:
        raise InvalidRecordError(f"{where}: malformed {kind} record: {problem}; re-run {_RERUN[kind]}")
    return record


def new_record(
    kind: Literal["train", "eval", "profile"],
    body: dict[str, Any],
    created: str,
    provenance: dict | None = None,
    where: str | None = None,
) -> Record:
    """A record of the current schema from a writer's ``body`` (validated, its values too: a
    writer cannot write a record its readers would refuse). ``where`` names it in messages (the
    file it is for; default ``"new <kind> record"``).

    Raises:
        RecordError: a field of the kind is missing or mistyped (a bug in the writer);
            :class:`InvalidRecordError`: a value its readers would refuse.
    """
    data = {"schema": SCHEMA, "kind": kind, "created": created, **body}
    if provenance is not None:
        data["provenance"] = provenance
    return parse_record(data, where or f"new {kind} record")
