"""Reading the records of a report into flat rows (step 1 of :mod:`hgbench.analysis.report`).

Every ``*.json`` under the results folders goes through :func:`_read` (the only place the report
touches files: :func:`hgbench.records.scan`, with its schema rule and typed records). Each
record is then used or listed in ``skipped`` with its reason (:func:`read_store`):

- ``"profile"``: one row per measurement, keys the snake_case columns of
  :mod:`hgbench.analysis.labels` (``latency_p50_ms``, ``gmacs_fvcore`` ...); status "error"
  records go to ``failed``;
- ``"train"`` (complete runs only): the last validation, the learning curve (training loss,
  learning rate and validation accuracy per epoch), the number of stacks, training time;
- ``"eval"`` (held-out splits only): preferred to the training run's last validation of the
  same network and training (:func:`_join_accuracy`). The accuracy of a deployed artifact (a
  record with ``artifact``: ``hgbench evaluate --backend/--precision``, ``hgbench profile
  --evaluate``) goes to :attr:`Store.deployed` (:func:`_deployed_entry`), which the cost table
  joins to the profile rows of the same setting.

Rows join only records of one identity (:mod:`hgbench.records.identity`): every row carries
``network``, the :data:`hgbench.records.identity.NETWORK` key of its record (variant, spec
hash, joints), on which the tables join accuracy to cost; an eval record joins its training run
on :data:`~hgbench.records.identity.NETWORK` and :data:`~hgbench.records.identity.TRAINING`.
After a variant's YAML is edited, its old runs and its new profile records are two networks.

Accuracies carry their 95 % confidence intervals where the record has them (``mean_ci``,
``groups_ci`` of :class:`hgbench.accuracy.pck.PCKResult`); older records have none and their
rows show none.

Accuracies of a **pipeline check** (a run under a protocol with ``pipeline_check: true``,
:class:`hgbench.config.Protocol`: a few steps that only check that training and evaluation
work) are marked ``pipeline_check``, so that the report can say that they rank nothing: the
records say so themselves (``pipeline_check``, filled on read for records written before the
field, :data:`hgbench.records.schema.FILLS`); the report reads records only, never the registry.

Of two records of the same measurement (one :class:`hgbench.records.RecordKey`) the newer is used. Rows are plain
dicts; frames are built from them later, once (:mod:`hgbench.analysis.tables`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hgbench.records import repetition_range_pct, scan
from hgbench.records.identity import NETWORK, TRAINING, join_key
from hgbench.records.schema import machine_label

MIB = 2**20
FLOAT32_BYTES = 4
MACHINE = ["machine", "device", "device_name"]
"""The columns that name the machine of a profile row: its machine label
(:func:`hgbench.records.schema.machine_label`: ``hgbench profile --machine-label``, default the
host name; the host name for records made before labels existed), device kind and device name."""
_RERUN = {"profile": "hgbench profile", "train": "hgbench train", "eval": "hgbench evaluate"}


# --------------------------------------------------------------------------------------------
# Filters


@dataclass(frozen=True)
class Filters:
    """Which records the report uses; an empty tuple selects everything.

    Attributes:
        backend, precision: profile records with one of these backends / precisions.
        device: profile records whose ``device`` ("cpu", "cuda"), machine label or host name
            equals one of these, or whose device name contains one (case-insensitive: "H100").
        dataset: accuracy (train and eval records) on one of these datasets; a profiled
            variant without accuracy on them is then left out too.
        batch_size, input_size: profile records at one of these batch sizes / input sides (px).
    """

    backend: tuple[str, ...] = ()
    device: tuple[str, ...] = ()
    dataset: tuple[str, ...] = ()
    precision: tuple[str, ...] = ()
    batch_size: tuple[int, ...] = ()
    input_size: tuple[int, ...] = ()

    @classmethod
    def from_options(cls, **options: Sequence[str] | None) -> Filters:
        """Filters from command-line values: each a list of strings, each string possibly
        comma-separated (``--batch-size 1,8 --batch-size 32``), checked before any record is
        read: a value that no record can hold is refused rather than filtering everything out.

        Known values: backends, precisions and datasets are the lists of :mod:`hgbench.config.axes`
        (which ``hgbench profile`` and ``hgbench train`` check their options against too); batch and
        input sizes are integers >= 1. A device is
        checked against the records (:func:`check_devices`).

        Raises:
            ValueError: an unknown backend, precision or dataset, or a batch or input size that
                is not a positive integer (naming the option, the value and the values allowed).
        """
        values: dict[str, tuple] = {}
        for name, given in options.items():
            option = f"--{name.replace('_', '-')}"
            items = [x.strip() for v in given or [] for x in v.split(",") if x.strip()]
            if name in ("batch_size", "input_size"):
                try:
                    values[name] = tuple(int(x) for x in items)
                except ValueError:
                    raise ValueError(f"{option}: expected integers, got {', '.join(items)}") from None
                if any(v < 1 for v in values[name]):
                    bad = min(values[name])
                    raise ValueError(f"{option} {bad}: expected positive integers ({_SIZE_HINT[name]})")
            else:
                allowed = _known_values(name)
                for x in items:
                    if allowed is not None and x not in allowed:
                        raise ValueError(f"{option} {x!r}: not one of {', '.join(allowed)}; pass one of these")
                values[name] = tuple(items)
        return cls(**values)

    def describe(self) -> str:
        """``"--backend eager --batch-size 1"``, or ``"none"``."""
        parts = [f"--{k.replace('_', '-')} {','.join(map(str, v))}" for k, v in self.__dict__.items() if v]
        return " ".join(parts) or "none"

    def profile_reason(self, row: dict) -> str | None:
        """Why the profile row (see :func:`read_store`) is filtered out, or None."""
        checks = [
            ("backend", row["backend"], self.backend),
            ("precision", row["precision"], self.precision),
            ("batch-size", row["batch_size"], self.batch_size),
            ("input-size", row["input_size_px"], self.input_size),
        ]
        for option, value, allowed in checks:
            if allowed and value not in allowed:
                return f"filtered out by --{option} {','.join(map(str, allowed))} (record: {value})"
        if self.device and not any(_device_matches(d, row) for d in self.device):
            return f"filtered out by --device {','.join(self.device)} (record: {row['device']} {row['device_name']} on {row['machine']})"
        return None

    def dataset_reason(self, dataset: str) -> str | None:
        """Why an accuracy record on ``dataset`` is filtered out, or None."""
        if self.dataset and dataset not in self.dataset:
            return f"filtered out by --dataset {','.join(self.dataset)} (record: {dataset})"
        return None


_SIZE_HINT = {"batch_size": "samples per call, e.g. 1,8,32", "input_size": "input side in px, e.g. 64,256"}


def _known_values(name: str) -> tuple[str, ...] | None:
    """The values filter ``name`` may take, from their one list (:mod:`hgbench.config.axes`, names
    only: no torch, no registry); None for a filter checked elsewhere (device: :func:`check_devices`)."""
    from hgbench.config import axes

    return {"backend": axes.BACKENDS, "precision": axes.INFERENCE_PRECISIONS, "dataset": axes.DATASETS}.get(name)


KNOWN_DEVICES = ("cpu", "cuda")
"""Device kinds of profile records (``hgbench profile --device``); a ``--device`` filter may
also name a machine label, a host or part of a device name found in the records (:func:`check_devices`)."""


def check_devices(filters: Filters, records: Sequence[tuple[str, dict]]) -> None:
    """Refuse a ``--device`` filter value that can match no profile record: neither a device
    kind (:data:`KNOWN_DEVICES`) nor a machine label, a host or part of a device name of one of
    ``records`` (``(path, record)`` pairs of :func:`_read`, before any filter).

    Raises:
        ValueError: naming ``--device``, the value and the machine labels, hosts and device
            names found.
    """
    machines = [
        {"device": rec.get("device"), "machine": _machine(rec), "host": _host(rec), "device_name": _device_name(rec)}
        for _, rec in records
        if rec.get("kind") == "profile"
    ]
    for wanted in filters.device:
        if wanted.lower() in KNOWN_DEVICES or any(_device_matches(wanted, m) for m in machines):
            continue
        labels = sorted({str(m["machine"]) for m in machines})
        hosts = sorted({str(m["host"]) for m in machines})
        names = sorted({str(m["device_name"]) for m in machines if m["device_name"]})
        found = (f"machines {', '.join(labels[:8]) or 'none'}; hosts {', '.join(hosts[:8]) or 'none'}; "
                 f"device names {', '.join(names[:8]) or 'none'}")  # fmt: skip
        raise ValueError(
            f"--device {wanted!r}: neither {' nor '.join(KNOWN_DEVICES)} nor a machine, a host or part of a device name "
            f"of the profile records read ({found}); pass one of these"
        )


def _device_matches(wanted: str, row: dict) -> bool:
    w = wanted.lower()
    named = (str(row["device"]).lower(), str(row["machine"]).lower(), str(row["host"]).lower())
    return w in named or w in str(row["device_name"] or "").lower()


# --------------------------------------------------------------------------------------------
# Reading files


def check_results_dirs(dirs: Sequence[str | Path]) -> None:
    """Raises: FileNotFoundError: one of ``dirs`` is not a folder (naming it and the fix)."""
    for d in dirs:
        if not Path(d).is_dir():
            hint = "run `hgbench train-all` and `hgbench profile` first, or pass --results"
            raise FileNotFoundError(f"{d}: no such results folder; {hint}")


def _read(dirs: Sequence[str | Path]) -> tuple[list[tuple[str, dict]], list[tuple[str, str]], int]:
    """Every record file under ``dirs``: ``(records, skipped, files)``, the report's only reader.

    ``records`` are ``(path, record)`` of the files :func:`hgbench.records.scan` reads (its
    schema rule; hidden files and folders left out, a file reachable through two folders read
    once), each as a shallow dict of its fields (``dict(record)`` and ``_path``: field access on
    a dict is what thousands of records need); ``skipped`` is ``(path, reason)`` for the files
    it refuses, ``files`` the number of ``*.json`` files found. Records of the same measurement
    are not: of two records with the same :class:`hgbench.records.RecordKey` the older is in
    ``skipped`` as superseded.

    Raises:
        FileNotFoundError: one of ``dirs`` is not a folder (:func:`check_results_dirs`).
    """
    check_results_dirs(dirs)
    # sweep records (where a sweep's time went) are not results
    found = scan(list(dirs), kinds=("train", "eval", "profile"))
    records = [(str(r.path), {**dict(r), "_path": str(r.path)}) for r in found.records]
    return records, list(found.skipped), found.files


# --------------------------------------------------------------------------------------------
# Records -> rows


def _opt_float(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _host(rec: dict) -> str:
    """The record's host name, else its folder's name (``profile/<host>/...``)."""
    return (rec.get("provenance") or {}).get("hostname") or os.path.basename(os.path.dirname(rec.get("_path") or ""))


def _machine(rec: dict) -> str:
    """The record's machine label (:func:`hgbench.records.schema.machine_label`: provenance
    ``machine``, else ``hostname``), else its folder's name (``profile/<label>/...``)."""
    return machine_label(rec.get("provenance")) or os.path.basename(os.path.dirname(rec.get("_path") or ""))


def _device_name(rec: dict) -> str | None:
    prov = rec.get("provenance") or {}
    if rec.get("device_name"):
        return rec["device_name"]
    if rec.get("device") == "cuda":
        return prov.get("gpu_name") or prov.get("gpu")
    return prov.get("cpu_model")


def _profile_row(rec: dict, path: str) -> dict:
    """Flatten a profile record (contract ``hgbench.record/2``); KeyError on a missing field."""
    prov = rec.get("provenance") or {}
    lat = rec.get("latency_ms") or {}
    numerics = rec.get("numerics") or {}
    roof = rec.get("roofline") or {}
    params = rec["parameters"]
    eff = _opt_float(roof.get("efficiency"))
    moved = _opt_float(numerics.get("argmax_moved_fraction"))
    commit = prov.get("git_commit")
    return {
        "machine": _machine(rec), "host": _host(rec), "device": rec["device"], "device_name": _device_name(rec),
        "threads": rec.get("threads"),
        "variant": rec["variant"], "joints": int(rec["num_joints"]), "spec_hash": rec.get("spec_hash"),
        "network": join_key(rec, NETWORK), "backend": rec["backend"], "precision": rec["precision"],
        "tf32": bool(rec.get("tf32")), "channels_last": bool(rec.get("channels_last")), "compile_mode": rec.get("compile_mode"),
        "batch_size": int(rec["batch_size"]), "input_size_px": int(rec["input_size"]),
        "params": params,
        "params_m": params / 1e6 if params is not None else None,
        "weights_fp32_mib": params * FLOAT32_BYTES / MIB if params is not None else None,
        "model_size_fp32_mib": _opt_float(rec.get("model_size_mib")),
        "gmacs_fvcore": _opt_float(rec.get("gmacs_fvcore")),
        "gmacs_thop": _opt_float(rec.get("gmacs_thop")),
        "gflops_flop_counter": _opt_float(rec.get("gflops_flop_counter")),
        "latency_p50_ms": _opt_float(lat.get("p50_ms")),
        "latency_p90_ms": _opt_float(lat.get("p90_ms")),
        "latency_p99_ms": _opt_float(lat.get("p99_ms")),
        "latency_mean_ms": _opt_float(lat.get("mean_ms")),
        "latency_std_ms": _opt_float(lat.get("std_ms")),
        "timed_runs": lat.get("n"),
        "timed_repetitions": lat.get("repetitions", 1 if lat else None),
        "p50_range_pct": repetition_range_pct(lat),
        "throughput_samples_per_s": _opt_float(rec.get("throughput_samples_per_s")),
        "peak_memory_mib": _opt_float(rec.get("peak_memory_mib")),
        "activation_memory_mib": _opt_float(rec.get("activation_memory_mib")),
        "build_time_s": _opt_float(rec.get("build_time_s")),
        "numerics_ok": numerics.get("ok") if rec.get("numerics") else None,
        "max_abs_error": _opt_float(numerics.get("max_abs_error")),
        "argmax_moved_pct": None if moved is None else 100 * moved,
        "roofline_efficiency_pct": None if eff is None else 100 * eff,
        "calibration_p50_ms": _opt_float((rec.get("calibration") or {}).get("p50_ms")),
        "torch": prov.get("torch"), "cuda": prov.get("cuda"), "gpu_driver": prov.get("gpu_driver"), "hgbench": prov.get("hgbench_version"),
        "git_commit": (commit[:10] + ("+dirty" if prov.get("git_dirty") else "")) if commit else None,
        "profiled_at": rec.get("created"),
        "profile_record": str(path),
        "_status": rec["status"], "_error": rec.get("error"), "_created": rec.get("created") or "",
    }  # fmt: skip


_METRIC_LABELS = {
    "pck": ("PCK", ""),
    "pckh": ("PCKh", ""),
    "pck_heatmap": ("PCK", " (heatmap-normalised)"),
}  # hgbench.accuracy.evaluate.METRICS


def _metric_name(result: dict) -> str:
    """Display name of a result's metric with its threshold: "PCK@0.2", "PCKh@0.5",
    "PCK@0.5 (heatmap-normalised)" for :data:`hgbench.accuracy.evaluate.METRICS` keys; another
    ``metric`` string as it is ("OKS AP"); without ``metric``, the convention's first clause
    when it names the threshold ("PCK@0.2, torso-normalised ..."), else ``PCK@<threshold>``."""
    metric, thr = result.get("metric"), result.get("threshold")
    at = f"@{thr:g}" if isinstance(thr, (int, float)) and not isinstance(thr, bool) else ""
    if metric in _METRIC_LABELS:
        name, suffix = _METRIC_LABELS[metric]
        return f"{name}{at}{suffix}"
    if metric:
        return str(metric)
    head = str(result.get("convention") or "").split(",")[0].strip()
    if "@" in head and len(head) <= 24:
        return head
    return f"PCK{at}" if at else "accuracy"


def _interval(v) -> tuple[float, float] | None:
    """A recorded 95 % interval (``[low, high]`` percent) as a tuple; None for a record
    without one, or with one that is not two finite numbers in order (never a made-up one)."""
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return None
    low, high = _opt_float(v[0]), _opt_float(v[1])
    return (low, high) if low is not None and high is not None and low <= high else None


def _accuracy_fields(result: dict) -> dict:
    """The accuracy part of a PCKResult-like dict (``hgbench.accuracy.pck.PCKResult.to_dict``):
    ``mean`` (percent, required), ``groups`` (percent), ``num_persons``, ``convention``, and the
    95 % intervals ``mean_ci`` and ``groups_ci`` where the record has them
    (``accuracy_ci_low_pct``/``accuracy_ci_high_pct``, ``groups_ci``; None/absent otherwise)."""
    groups = result.get("groups") or {}
    mean_ci = _interval(result.get("mean_ci"))
    groups_ci = {g: ci for g, v in (result.get("groups_ci") or {}).items() if (ci := _interval(v)) is not None}
    return {
        "metric": _metric_name(result),
        "accuracy_pct": _opt_float(result["mean"]),
        "accuracy_ci_low_pct": mean_ci[0] if mean_ci else None,
        "accuracy_ci_high_pct": mean_ci[1] if mean_ci else None,
        "groups": {g: _opt_float(v) for g, v in groups.items()},
        "groups_ci": groups_ci,
        "eval_persons": result.get("num_persons"),
        "convention": result.get("convention") or _metric_name(result),
    }


def _learning_points(rec: dict) -> list[dict]:
    """The learning curve of a train record: one point per ``history`` entry
    (:func:`hgbench.train.record.train_record_body`'s layout), ``epoch``, ``steps`` (optimiser steps
    since the start), ``train_loss`` (the epoch's mean step loss), ``lr`` and ``val_accuracy_pct``
    (the validation's mean accuracy, percent; None for an epoch without validation) with
    ``metric`` (its display name, :func:`_metric_name`; None without validation). An entry
    without an epoch number is left out."""
    points = []
    for h in rec.get("history") or []:
        if not isinstance(h, dict) or _opt_float(h.get("epoch")) is None:
            continue
        val = h.get("val") if isinstance(h.get("val"), dict) else None
        points.append({
            "epoch": int(h["epoch"]), "steps": _count(h.get("steps")), "train_loss": _opt_float(h.get("train_loss")),
            "lr": _opt_float(h.get("lr")), "metric": _metric_name(val) if val else None,
            "val_accuracy_pct": _opt_float(val.get("mean")) if val else None,
        })  # fmt: skip
    return points


def _count(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _train_steps(rec: dict) -> int | None:
    """Optimiser steps of a complete run: the record's ``steps``, else its last epoch's."""
    history = rec.get("history") or [{}]
    return _count(rec.get("steps")) or _count(history[-1].get("steps") if isinstance(history[-1], dict) else None)


def _num_stacks(rec: dict) -> int | None:
    """Stacks of the trained network, from the train record's ``spec`` (hgbench.train.loop
    writes ``dataclasses.asdict(VariantSpec)``); None for a record without it."""
    stacks = ((rec.get("spec") or {}).get("architecture") or {}).get("num_stacks")
    return int(stacks) if isinstance(stacks, int) and not isinstance(stacks, bool) else None


def _identity_fields(rec: dict) -> dict:
    """The identity columns of an accuracy entry: ``variant``, ``joints``, ``spec_hash``,
    ``network`` (its :data:`~hgbench.records.identity.NETWORK` key, what it joins cost on) and
    ``_run`` (:data:`~hgbench.records.identity.NETWORK` + :data:`~hgbench.records.identity.TRAINING`,
    what an evaluation joins its training run on)."""
    return {
        "variant": rec["variant"], "joints": int(rec["num_joints"]), "spec_hash": rec["spec_hash"],
        "network": join_key(rec, NETWORK), "_run": join_key(rec, NETWORK + TRAINING),
    }  # fmt: skip


def _train_entry(rec: dict, path: str) -> dict:
    prov = rec.get("provenance") or {}
    final = rec.get("final")
    return {
        **_identity_fields(rec),
        "dataset": rec["dataset"],
        "protocol": rec["protocol"],
        "_protocol_hash": rec["protocol_hash"],
        "split": "val",  # hgbench.train validates on the dataset's "val" split
        "params": rec.get("parameters"),
        "training_h": None if _opt_float(rec.get("train_time_s")) is None else rec["train_time_s"] / 3600,
        "trained_on": prov.get("hostname"),
        "trained_input_size": (rec.get("protocol_settings") or {}).get("input_size"),
        "num_stacks": _num_stacks(rec),
        "pipeline_check": rec.get("pipeline_check") is True,
        "train_steps": _train_steps(rec),
        "accuracy_record": str(path),
        "_created": rec.get("created") or "",
        "_checkpoint_sha256": rec.get("checkpoint_sha256"),
        "learning": _learning_points(rec),
        "result": _accuracy_fields(final) if final else None,
    }


def _deployed_entry(rec: dict, path: str) -> dict:
    """An eval record of a deployed artifact: :func:`_eval_entry` with the setting (``backend``,
    ``precision``, ``batch_size``, ``device`` kind), ``padded`` and the paired difference to
    eager fp32 on the same persons (``accuracy_vs_fp32_pct``, percentage points, with its 95 %
    interval ``accuracy_vs_fp32_ci_low_pct``/``_high_pct``)."""
    deployed = rec.get("deployed") or {}
    diff = deployed.get("difference") or {}
    ci = _interval(diff.get("mean_ci"))
    return {
        **_eval_entry(rec, path), "backend": rec["backend"], "precision": rec["precision"], "batch_size": int(rec["batch_size"]),
        "device": str(deployed.get("device") or "cpu").split(":")[0], "padded": bool(rec.get("padded")),
        "accuracy_vs_fp32_pct": _opt_float(diff.get("mean")),
        "accuracy_vs_fp32_ci_low_pct": ci[0] if ci else None, "accuracy_vs_fp32_ci_high_pct": ci[1] if ci else None,
    }  # fmt: skip


def _eval_entry(rec: dict, path: str) -> dict:
    return {
        **_identity_fields(rec), "dataset": rec["dataset"], "split": rec["split"],
        "protocol": rec["protocol"], "_protocol_hash": rec["protocol_hash"], "accuracy_record": str(path),
        "_created": rec.get("created") or "", "pipeline_check": rec.get("pipeline_check") is True,
        "_checkpoint_sha256": rec.get("checkpoint_sha256"), **_accuracy_fields(rec["result"]),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# The store: every usable row


@dataclass
class Store:
    """What :func:`read_store` found.

    Attributes:
        profiles: one flat dict per usable profile record (status ok, selected, newest of its
            :class:`hgbench.records.RecordKey`), snake_case keys, ``network`` (its
            :data:`~hgbench.records.identity.NETWORK` key), ``machine`` (its machine label,
            :func:`_machine`) and ``host`` (its host name); raw samples are not kept.
        failed: profile rows with status "error" (selected by the filters), with ``error``.
        accuracy: one dict per accuracy (variant, joints, spec_hash, dataset, split, metric,
            protocol), with ``network`` (its NETWORK key, :func:`_identity_fields`),
            ``pipeline_check`` (bool) and, from a training run, ``train_steps``.
        learning: learning-curve points, one per epoch of each training run (variant, joints,
            dataset, split, metric, protocol, epoch, steps, train_loss, lr,
            val_accuracy_pct, trained_on, train_record; :func:`_learning_points`) and the
            run's ``num_stacks`` (:func:`_num_stacks`).
        deployed: one dict per deployed artifact's accuracy (:func:`_deployed_entry`), not stale.
        skipped: ``(path, reason)`` for every record file not used.
        files: number of ``*.json`` files read.
    """

    profiles: list[dict] = field(default_factory=list)
    deployed: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    accuracy: list[dict] = field(default_factory=list)
    learning: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0


def read_store(dirs: Sequence[str | Path], filters: Filters = Filters()) -> Store:
    """Read every record under ``dirs`` (:func:`_read`) into rows.

    Each file is used, or listed in ``skipped`` with the reason: refused by the schema rule
    (:func:`hgbench.records.scan`'s reason: not JSON, an old schema with what to re-run, a
    missing field); a training run not complete; an evaluation on the training split; a
    record superseded by a newer one of the same :class:`hgbench.records.RecordKey`; a filter. Profile records
    with status "error" go to ``failed``.

    Raises:
        FileNotFoundError: one of ``dirs`` is not a folder.
        ValueError: a ``--device`` filter that can match no record (:func:`check_devices`).
    """
    records, skipped, files = _read(dirs)
    check_devices(filters, records)
    store = Store(skipped=skipped, files=files)
    trains: list[dict] = []
    evals: list[dict] = []
    deployed: list[dict] = []
    for path, rec in records:
        kind = rec["kind"]
        try:
            if kind == "profile":
                row = _profile_row(rec, path)
                reason = filters.profile_reason(row)
                if reason:
                    store.skipped.append((path, reason))
                elif row["_status"] != "ok":
                    store.failed.append({**row, "error": row["_error"] or "status error, no reason given"})
                else:
                    store.profiles.append(row)
            elif kind == "train":
                if (diverged := rec.get("diverged")) and isinstance(diverged, dict):
                    store.skipped.append((path, f"training diverged (loss {diverged.get('loss')} at step {diverged.get('step')}): "
                                                "no accuracy to report; retrain with a lower learning rate or another seed"))  # fmt: skip
                elif not rec.get("complete"):
                    store.skipped.append((path, "training run not complete (resume it with `hgbench train`)"))
                elif reason := filters.dataset_reason(rec["dataset"]):
                    store.skipped.append((path, reason))
                else:
                    trains.append(_train_entry(rec, path))
            else:  # eval
                entry = _eval_entry(rec, path)
                if reason := filters.dataset_reason(entry["dataset"]):
                    store.skipped.append((path, reason))
                elif entry["split"] == "train":
                    store.skipped.append((path, "evaluated on the training split; the report uses held-out splits"))
                elif rec.get("artifact"):
                    deployed.append(_deployed_entry(rec, path))
                else:
                    evals.append(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            what = f"field {e.args[0]!r} missing" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            store.skipped.append((path, f"malformed {kind} record: {what}; re-run {_RERUN[kind]}"))
    _name_protocols(trains + evals + deployed)
    _join_accuracy(store, trains, evals)
    runs = {r["_run"]: r for r in trains}
    for d in deployed:
        run = runs.get(d["_run"])
        if run and (why := stale_evaluation(d, run)):
            store.skipped.append((d["accuracy_record"], why))
        else:
            store.deployed.append({k: v for k, v in d.items() if not k.startswith("_")})
    return store


def _name_protocols(entries: list[dict]) -> None:
    """A protocol's name in tables: its name, with ``@<hash>`` (first 8 hex digits of its
    content hash) where records of two protocols of that name with different content are read,
    so that two such runs are never joined or shown as one."""
    hashes: dict[str, set[str]] = {}
    for e in entries:
        hashes.setdefault(e["protocol"], set()).add(e["_protocol_hash"])
    for e in entries:
        if len(hashes[e["protocol"]]) > 1:
            e["protocol"] = f"{e['protocol']}@{e['_protocol_hash'][:8]}"


def _join_accuracy(store: Store, trains: list[dict], evals: list[dict]) -> None:
    """Fill ``store.accuracy`` and ``store.learning`` from the training runs and evaluations.

    Every eval record is an accuracy entry, with the size, training time and machine of its
    training run: the run of the same network and training (``_run``, :func:`_identity_fields`;
    none when its spec or protocol content differs). A training run without an evaluation gives
    its last validation. An evaluation of a pipeline-check run is one too.
    """
    runs = {r["_run"]: r for r in trains}
    for e in list(evals):
        run = runs.get(e["_run"])
        if run and (why := stale_evaluation(e, run)):
            store.skipped.append((e["accuracy_record"], why))
            evals.remove(e)
            continue
        store.accuracy.append({
            **{k: v for k, v in e.items() if not k.startswith("_")},
            **{k: run[k] if run else None for k in ("params", "training_h", "trained_on", "trained_input_size", "train_steps")},
            "pipeline_check": e["pipeline_check"] or bool(run and run["pipeline_check"]),
        })  # fmt: skip
    evaluated = {e["_run"] for e in evals}
    for key, run in runs.items():
        store.learning += _learning_rows(run)
        if key in evaluated:
            continue
        if run["result"] is None:  # a run without any validation still carries its size and training time
            res = {"metric": None, "accuracy_pct": None, "accuracy_ci_low_pct": None, "accuracy_ci_high_pct": None, "groups": {},
                   "groups_ci": {}, "eval_persons": None, "convention": None}  # fmt: skip
        else:
            res = run["result"]
        store.accuracy.append(
            {k: v for k, v in run.items() if k not in ("result", "learning") and not k.startswith("_")} | res
        )


def stale_evaluation(evaluation: dict, run: dict) -> str | None:
    """Why an evaluation (:func:`_eval_entry`) scored another checkpoint than its training run's
    last (:func:`_train_entry`), e.g. one from before a ``train --force``; None when it scored
    that one. Both records carry ``checkpoint_sha256``: they must agree; else (a record written
    before the field) the evaluation must not be older than the run's record (written when the
    run completed)."""
    fix = "re-run `hgbench evaluate` on the run's checkpoint"
    ours, theirs = evaluation["_checkpoint_sha256"], run["_checkpoint_sha256"]
    if ours and theirs and ours != theirs:
        return f"stale: it scored another checkpoint than the run's last (retrained since); {fix}"
    if ours and theirs:
        return None
    if evaluation["_created"] and run["_created"] and evaluation["_created"] < run["_created"]:
        return f"stale: written {evaluation['_created']}, before the run completed ({run['_created']}); {fix}"
    return None


def _learning_rows(run: dict) -> list[dict]:
    """The rows of :attr:`Store.learning` of one training run (its :func:`_train_entry`)."""
    run_metric = next((p["metric"] for p in run["learning"] if p["metric"]), None)
    return [{"variant": run["variant"], "joints": run["joints"], "spec_hash": run["spec_hash"], "dataset": run["dataset"],
             "split": "val", "protocol": run["protocol"], **point, "metric": point["metric"] or run_metric,
             "trained_on": run["trained_on"], "train_record": run["accuracy_record"], "num_stacks": run["num_stacks"]}
            for point in run["learning"]]  # fmt: skip
