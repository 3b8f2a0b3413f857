"""Reading the records of a report into flat rows (step 1 of :mod:`hgbench.analysis.report`).

Every ``*.json`` under the results folders goes through :func:`_read` (the only place the report
touches files; the schema rule is :func:`hgbench.records.read_record`'s). Each record is then
used or listed in ``skipped`` with its reason (:func:`read_store`):

- ``"profile"``: one row per measurement, keys the snake_case columns of
  :mod:`hgbench.analysis.labels` (``latency_p50_ms``, ``gmacs_fvcore`` ...); status "error"
  records go to ``failed``;
- ``"train"`` (complete runs only): the last validation, the validation curve, training time;
- ``"eval"`` (held-out splits only): preferred to the training run's last validation for the
  same variant, dataset and protocol (:func:`_join_accuracy`).

Of two records of the same measurement (:func:`record_key`) the newer is used. Reading is one
``json.loads`` per file into plain dicts; frames are built later, once
(:mod:`hgbench.analysis.tables`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hgbench.records import RecordError, read_record, repetition_range_pct

MIB = 2**20
FLOAT32_BYTES = 4
MACHINE = ["host", "device", "device_name"]
_RERUN = {"profile": "hgbench profile", "train": "hgbench train", "eval": "hgbench evaluate"}


# --------------------------------------------------------------------------------------------
# Filters


@dataclass(frozen=True)
class Filters:
    """Which records the report uses; an empty tuple selects everything.

    Attributes:
        backend, precision: profile records with one of these backends / precisions.
        device: profile records whose ``device`` ("cpu", "cuda") or host name equals one of
            these, or whose device name contains one (case-insensitive: "H100").
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
            return f"filtered out by --device {','.join(self.device)} (record: {row['device']} {row['device_name']} on {row['host']})"
        return None

    def dataset_reason(self, dataset: str) -> str | None:
        """Why an accuracy record on ``dataset`` is filtered out, or None."""
        if self.dataset and dataset not in self.dataset:
            return f"filtered out by --dataset {','.join(self.dataset)} (record: {dataset})"
        return None


def _device_matches(wanted: str, row: dict) -> bool:
    w = wanted.lower()
    return w in (str(row["device"]).lower(), str(row["host"]).lower()) or w in str(row["device_name"] or "").lower()


# --------------------------------------------------------------------------------------------
# Reading files


def _read(dirs: Sequence[str | Path]) -> tuple[list[tuple[str, dict]], list[tuple[str, str]], int]:
    """Every record file under ``dirs``: ``(records, skipped, files)``.

    ``records`` are ``(path, record)`` of the files :func:`hgbench.records.read_record` accepts
    whose kind the report uses, ``skipped`` ``(path, reason)`` for the others, ``files`` the
    number of ``*.json`` files found. Hidden files and folders are left out; a file reachable
    through two folders (one inside the other) is read once; paths are as given under each folder.

    Raises:
        FileNotFoundError: one of ``dirs`` is not a folder.
    """
    seen: dict[str, str] = {}  # the path under the real folder -> the path as given
    for d in dirs:
        top = str(d)
        if not Path(top).is_dir():
            raise FileNotFoundError(f"{d}: no such results folder; run `hgbench train-all` and `hgbench profile` first, or pass --results")
        real = os.path.realpath(top)
        for root, subdirs, files in os.walk(top):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            for name in files:
                if name.endswith(".json") and not name.startswith("."):
                    path = os.path.join(root, name)
                    seen.setdefault(real + path[len(top):], path)
    paths = sorted(seen.values())
    records, skipped = [], []
    for path in paths:
        try:
            rec = read_record(Path(path))
        except (RecordError, UnicodeDecodeError) as e:  # read_record lets a non-UTF-8 file's error through
            reason = str(e).removeprefix(f"{Path(path)}: ")
            skipped.append((path, reason if isinstance(e, RecordError) else f"not a readable JSON record ({e})"))
            continue
        if rec.get("kind") not in _RERUN:
            skipped.append((path, f"unknown record kind {rec.get('kind')!r} (known: {', '.join(_RERUN)})"))
            continue
        records.append((path, rec))
    return records, skipped, len(paths)


def record_key(rec: dict) -> tuple:
    """What makes two records of one kind the same measurement (the newer is used).

    profile: host, device, device name, threads, variant, joints, backend, precision, TF32,
    channels-last, compile mode, batch size, input size (13 fields); train: variant, dataset,
    protocol; eval: variant, joints, dataset, split, metric, protocol.

    Raises:
        KeyError: a field of the key is missing.
    """
    kind = rec["kind"]
    if kind == "profile":
        return (_host(rec), rec["device"], _device_name(rec), rec.get("threads"), rec["variant"], int(rec["num_joints"]), rec["backend"],
                rec["precision"], bool(rec.get("tf32")), bool(rec.get("channels_last")), rec.get("compile_mode"), int(rec["batch_size"]),
                int(rec["input_size"]))  # fmt: skip
    if kind == "train":
        return rec["variant"], rec["dataset"], rec["protocol"]
    return rec["variant"], _eval_joints(rec), rec["dataset"], rec["split"], _metric_name(rec["result"]), _eval_protocol(rec)


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
    return (rec.get("provenance") or {}).get("hostname") or os.path.basename(os.path.dirname(rec.get("_path", "")))


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
        "host": _host(rec), "device": rec["device"], "device_name": _device_name(rec), "threads": rec.get("threads"),
        "variant": rec["variant"], "joints": int(rec["num_joints"]), "backend": rec["backend"], "precision": rec["precision"],
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


_METRIC_LABELS = {"pck": ("PCK", ""), "pckh": ("PCKh", ""), "pck_heatmap": ("PCK", " (heatmap-normalised)")}  # hgbench.accuracy.evaluate.METRICS


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


def _accuracy_fields(result: dict) -> dict:
    """The accuracy part of a PCKResult-like dict (``hgbench.accuracy.evaluate.PCKResult.to_dict``):
    ``mean`` (percent, required), ``groups`` (percent), ``num_persons``, ``convention``."""
    groups = result.get("groups") or {}
    return {
        "metric": _metric_name(result),
        "accuracy_pct": _opt_float(result["mean"]),
        "groups": {g: _opt_float(v) for g, v in groups.items()},
        "eval_persons": result.get("num_persons"),
        "convention": result.get("convention") or _metric_name(result),
    }


def _num_stacks(rec: dict) -> int | None:
    """Stacks of the trained network, from the train record's ``spec`` (hgbench.train.loop
    writes ``dataclasses.asdict(VariantSpec)``); None for a record without it."""
    stacks = ((rec.get("spec") or {}).get("architecture") or {}).get("num_stacks")
    return int(stacks) if isinstance(stacks, int) and not isinstance(stacks, bool) else None


def _train_entry(rec: dict, path: str) -> dict:
    prov = rec.get("provenance") or {}
    final = rec.get("final")
    entry = {
        "variant": rec["variant"],
        "joints": int(rec["num_joints"]),
        "dataset": rec["dataset"],
        "protocol": rec["protocol"],
        "split": "val",  # hgbench.train validates on the dataset's "val" split
        "params": rec.get("parameters"),
        "training_h": None if _opt_float(rec.get("train_time_s")) is None else rec["train_time_s"] / 3600,
        "trained_on": prov.get("hostname"),
        "trained_input_size": (rec.get("protocol_settings") or {}).get("input_size"),
        "num_stacks": _num_stacks(rec),
        "accuracy_record": str(path),
        "_created": rec.get("created") or "",
        "curve": [],
        "result": _accuracy_fields(final) if final else None,
    }
    for h in rec.get("history") or []:
        if h.get("val"):
            entry["curve"].append((int(h["epoch"]), _metric_name(h["val"]), _opt_float(h["val"].get("mean"))))
    return entry


def _eval_joints(rec: dict) -> int | None:
    joints = rec.get("num_joints") or len(rec["result"].get("per_joint") or {}) or None
    return int(joints) if joints else None


def _eval_protocol(rec: dict) -> str | None:
    protocol = rec.get("protocol")
    ckpt = Path(rec.get("checkpoint") or "")
    if protocol is None and ckpt.parent.name == rec["variant"] and len(ckpt.parts) >= 4:
        protocol = ckpt.parent.parent.name  # <results>/runs/<dataset>/<protocol>/<variant>/checkpoint.pt
    return protocol


def _eval_entry(rec: dict, path: str) -> dict:
    return {
        "variant": rec["variant"], "joints": _eval_joints(rec), "dataset": rec["dataset"], "split": rec["split"],
        "protocol": _eval_protocol(rec), "accuracy_record": str(path), "_created": rec.get("created") or "",
        **_accuracy_fields(rec["result"]),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# The store: every usable row


@dataclass
class Store:
    """What :func:`read_store` found.

    Attributes:
        profiles: one flat dict per usable profile record (status ok, selected, newest of its
            :func:`record_key`), snake_case keys; raw samples are not kept.
        failed: profile rows with status "error" (selected by the filters), with ``error``.
        accuracy: one dict per accuracy (variant, joints, dataset, split, metric, protocol).
        curves: validation curve points (variant, epoch, accuracy_pct, num_stacks, ...).
        skipped: ``(path, reason)`` for every record file not used.
        files: number of ``*.json`` files read.
    """

    profiles: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    accuracy: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0


def read_store(dirs: Sequence[str | Path], filters: Filters = Filters()) -> Store:
    """Read every record under ``dirs`` (:func:`_read`) into rows.

    Each file is used, or listed in ``skipped`` with the reason: not a record
    (:func:`hgbench.records.read_record`'s reason, e.g. ``"schema hgbench.record/1: re-run
    hgbench profile"``); an unknown kind; a missing field; a training run not complete; an
    evaluation on the training split; a record superseded by a newer one of the same
    :func:`record_key`; a filter. Profile records with status "error" go to ``failed``.

    Raises:
        FileNotFoundError: one of ``dirs`` is not a folder.
    """
    records, skipped, files = _read(dirs)
    store = Store(skipped=skipped, files=files)
    profiles: dict[tuple, dict] = {}
    trains: dict[tuple, dict] = {}
    evals: dict[tuple, dict] = {}
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
                    _keep_newest(profiles, record_key(rec), row, "profile_record", store.skipped)
            elif kind == "train":
                if not rec.get("complete"):
                    store.skipped.append((path, "training run not complete (resume it with `hgbench train`)"))
                elif reason := filters.dataset_reason(rec["dataset"]):
                    store.skipped.append((path, reason))
                else:
                    _keep_newest(trains, record_key(rec), _train_entry(rec, path), "accuracy_record", store.skipped)
            else:  # eval
                entry = _eval_entry(rec, path)
                if reason := filters.dataset_reason(entry["dataset"]):
                    store.skipped.append((path, reason))
                elif entry["split"] == "train":
                    store.skipped.append((path, "evaluated on the training split; the report uses held-out splits"))
                else:
                    _keep_newest(evals, record_key(rec), entry, "accuracy_record", store.skipped)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            what = f"field {e.args[0]!r} missing" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            store.skipped.append((path, f"malformed {kind} record: {what}; re-run {_RERUN[kind]}"))
    store.profiles = list(profiles.values())
    _join_accuracy(store, trains, evals)
    return store


def _keep_newest(table: dict, key: tuple, entry: dict, path_key: str, skipped: list) -> None:
    old = table.get(key)
    if old is None:
        table[key] = entry
        return
    newer, older = (entry, old) if entry["_created"] >= old["_created"] else (old, entry)
    table[key] = newer
    skipped.append((older[path_key], f"superseded by the newer record {newer[path_key]} of the same measurement"))


def _join_accuracy(store: Store, trains: dict, evals: dict) -> None:
    """One accuracy entry per (variant, joints, dataset, split, metric, protocol): eval records
    first, else the training run's last validation; training time from the training run."""
    runs = {(r["variant"], r["dataset"], r["protocol"]): r for r in trains.values()}
    evaluated = set()
    for e in evals.values():
        run = runs.get((e["variant"], e["dataset"], e["protocol"]))
        evaluated.add((e["variant"], e["dataset"], e["protocol"]))
        store.accuracy.append({
            **{k: v for k, v in e.items() if not k.startswith("_")},
            **{k: run[k] if run else None for k in ("params", "training_h", "trained_on", "trained_input_size")},
        })  # fmt: skip
    for key, run in runs.items():
        for epoch, metric, mean in run["curve"]:
            store.curves.append({"variant": run["variant"], "joints": run["joints"], "dataset": run["dataset"], "split": "val",
                                 "metric": metric, "protocol": run["protocol"], "epoch": epoch, "accuracy_pct": mean,
                                 "trained_on": run["trained_on"], "train_record": run["accuracy_record"],
                                 "num_stacks": run["num_stacks"]})  # fmt: skip
        if key in evaluated:
            continue
        if run["result"] is None:  # a run without any validation still carries its size and training time
            res = {"metric": None, "accuracy_pct": None, "groups": {}, "eval_persons": None, "convention": None}
        else:
            res = run["result"]
        store.accuracy.append({k: v for k, v in run.items() if k not in ("result", "curve", "_created")} | res)
