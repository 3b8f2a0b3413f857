"""Accuracy-vs-cost reports from one or several results folders: tables and plots.

Inputs (see :mod:`hgbench.records` and ``notes/PROFILE_RECORD.md``): every ``*.json`` record
under the given folders, of kind

- ``"profile"`` (cost: parameters, MACs, latency per backend x precision x batch size on one
  machine),
- ``"train"`` (a complete training run: its last validation, per epoch validation curve,
  training time), and
- ``"eval"`` (``hgbench evaluate`` of a checkpoint on a split; preferred to the training
  run's last validation for the same variant, dataset and protocol).

What it writes (:func:`write_report`):

- the **accuracy-vs-cost table** (``accuracy_vs_cost.csv``): one row per profiled variant x
  backend x precision x batch size x input size x machine, joined with the accuracy of that
  variant (same number of joints) on each dataset/split/metric it was trained or evaluated on.
  Rows are **Pareto-optimal** (:func:`pareto_optimal`) when no other row of their group is at
  least as accurate and at least as cheap, strictly better in one. A group is one machine
  (host, device, device name), one accuracy (dataset, split, metric, protocol), one batch
  size and one input size; the cost is latency p50 by default (``pareto_on``). A row without
  accuracy or cost is never on the front; a reduced-precision row whose numerics check failed
  (its output moved beyond tolerance from fp32) keeps the fp32 accuracy in its column but is
  not on the front, since that accuracy does not carry over to it;
- the **per-joint table** in the layout of seed ``002_bdd2d633fa65b35a.txt`` Table 1
  (``per_joint.csv``): Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean (percent), then
  parameters, GMACs, training hours and inference time, one section per machine. The paper's
  "Num. of Parameters" column is MiB of float32 weights (its 8-stack "97.7M" = 25.59M
  parameters x 4 B; ``shared/DESIGN.md`` conventions), so both are given: ``parameters (M)``
  (10^6 parameters) and ``weights fp32 (MiB)`` (parameters x 4 B / 2^20). Training time is in
  hours (Markdown: ``h:mm`` as the paper prints it). Inference is one profile record of the
  variant on that machine: the trained input size if profiled, eager before other backends,
  fp32, no TF32 or channels-last, the smallest batch (its conditions head the table), as p50
  ms per batch and as the paper's unit, minutes over the evaluated split
  (``inference val set est. (min)`` = p50 x ceil(persons / batch), forward passes only;
  Markdown ``mm:ss``);
- the validation curves (``val_curves.csv``), failed measurements (``failed.csv``) and every
  record not used, with the reason (``skipped.csv``);
- ``report.md`` / ``report.html``: the same tables with a header of the conditions, one
  section per machine (records of different machines are never mixed in one column), and
- PNG plots (:mod:`hgbench.analysis.plots`).

Accuracy and cost are joined on variant name and number of joints (the heads differ); a
variant trained with other joints than it was profiled with is named in the report's notes.

Numbers carry their unit in the column name. A measurement that is missing stays missing:
empty in the CSV, "—" in Markdown and HTML, never zero.

Reading is one ``json.loads`` per file into plain dicts, and each table is built once as a
DataFrame at the end, so thousands of records take a second or so.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hgbench.records import SCHEMA, atomic_write_bytes, repetition_range_pct, utc_now

PAPER_GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")  # seed 002 Table 1's columns
FORMATS = ("md", "csv", "html", "png")
DEFAULT_FORMATS = ("md", "csv", "png")
MISSING = "—"
_RERUN = {"profile": "hgbench profile", "train": "hgbench train", "eval": "hgbench evaluate"}
MIB = 2**20
FLOAT32_BYTES = 4

# Column names (units in the names). Latency is per batch; MACs are per sample.
ACC = "accuracy (%)"
P50 = "latency p50 (ms/batch)"
P90 = "latency p90 (ms/batch)"
P99 = "latency p99 (ms/batch)"
GMACS = "GMACs fvcore (per sample)"
GMACS_THOP = "GMACs thop (per sample)"
PARAMS = "parameters"
PARAMS_M = "parameters (M)"
WEIGHTS_MIB = "weights fp32 (MiB)"
PARETO = "Pareto-optimal"
PARETO_ON = {"latency": P50, "gmacs": GMACS, "parameters": PARAMS}

MACHINE = ["host", "device", "device name"]
ACCURACY_KEY = ["dataset", "split", "metric", "protocol"]
COST_GROUP = MACHINE + ACCURACY_KEY + ["batch size", "input size (px)"]
COST_COLUMNS = [
    *MACHINE, "threads", *ACCURACY_KEY, "batch size", "input size (px)",
    "variant", "joints", "backend", "precision", "tf32", "channels last", "compile mode",
    ACC, "eval persons", PARAMS, PARAMS_M, WEIGHTS_MIB, "model size fp32 (MiB)", GMACS, GMACS_THOP,
    "GFLOPs flop_counter (per sample)", P50, P90, P99, "latency mean (ms/batch)", "latency std (ms/batch)", "timed runs",
    "timed repetitions", "p50 range over repetitions (%)",
    "throughput (samples/s)", "peak memory (MiB)", "activation memory (MiB/sample)", "build time (s)",
    "numerics ok", "max abs error vs fp32", "argmax moved (%)", "roofline efficiency (%)", "calibration p50 (ms)",
    PARETO, "torch", "cuda", "gpu driver", "hgbench", "git commit", "profiled at", "profile record", "accuracy record",
]  # fmt: skip
PER_JOINT_COLUMNS = [
    *MACHINE, *ACCURACY_KEY, "variant", "joints", *[f"{g} (%)" for g in PAPER_GROUPS], "Mean (%)", "eval persons",
    PARAMS, PARAMS_M, WEIGHTS_MIB, GMACS, "training (h)", "trained on", "inference backend", "inference precision",
    "inference batch size", "inference input size (px)", "inference p50 (ms/batch)", "inference val set est. (min)",
    "accuracy record", "profile record",
]  # fmt: skip
CURVE_COLUMNS = ["variant", "joints", "dataset", "split", "metric", "protocol", "epoch", ACC, "trained on", "train record"]
FAILED_COLUMNS = [*MACHINE, "variant", "joints", "backend", "precision", "batch size", "input size (px)", "error", "profile record"]
SKIPPED_COLUMNS = ["path", "reason"]


class NoUsableRecordsError(ValueError):
    """The results folders hold no record the report can use (all missing, skipped or filtered)."""


# --------------------------------------------------------------------------------------------
# Pareto front


def pareto_optimal(accuracy: Sequence[float], cost: Sequence[float]) -> np.ndarray:
    """Which points are Pareto-optimal for "higher accuracy, lower cost".

    A point is optimal when no other point has accuracy >= its accuracy and cost <= its cost
    with at least one of the two strict (the usual definition of non-domination). Points with
    equal accuracy and equal cost do not dominate each other, so tied points are all optimal
    or all not. A point whose accuracy or cost is missing (NaN/None) is never optimal and
    dominates nothing.

    Args:
        accuracy, cost: ``(N,)`` numbers (any units; accuracy higher-is-better, cost
            lower-is-better).

    Returns:
        ``(N,)`` bool array.

    One sort and one sweep: O(N log N).
    """
    acc = np.asarray(pd.to_numeric(pd.Series(accuracy, dtype=object), errors="coerce"), dtype=float)
    cst = np.asarray(pd.to_numeric(pd.Series(cost, dtype=object), errors="coerce"), dtype=float)
    if acc.shape != cst.shape:
        raise ValueError(f"pareto_optimal: {acc.shape[0]} accuracies but {cst.shape[0]} costs")
    mask = np.zeros(acc.shape[0], dtype=bool)
    idx = np.flatnonzero(np.isfinite(acc) & np.isfinite(cst))
    order = idx[np.lexsort((-acc[idx], cst[idx]))]  # cost ascending, then accuracy descending
    best_cheaper = -math.inf  # best accuracy among points strictly cheaper than the current cost
    i = 0
    while i < order.size:
        j = i
        while j < order.size and cst[order[j]] == cst[order[i]]:
            j += 1
        bucket = order[i:j]
        top = acc[bucket].max()
        if top > best_cheaper:  # not dominated by a cheaper point; the equally cheap ones below `top` are
            mask[bucket[acc[bucket] == top]] = True
        best_cheaper = max(best_cheaper, top)
        i = j
    return mask


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
            ("batch-size", row["batch size"], self.batch_size),
            ("input-size", row["input size (px)"], self.input_size),
        ]
        for option, value, allowed in checks:
            if allowed and value not in allowed:
                return f"filtered out by --{option} {','.join(map(str, allowed))} (record: {value})"
        if self.device and not any(_device_matches(d, row) for d in self.device):
            return f"filtered out by --device {','.join(self.device)} (record: {row['device']} {row['device name']} on {row['host']})"
        return None


def _device_matches(wanted: str, row: dict) -> bool:
    w = wanted.lower()
    return w in (str(row["device"]).lower(), str(row["host"]).lower()) or w in str(row["device name"] or "").lower()


# --------------------------------------------------------------------------------------------
# Reading the store


@dataclass
class Store:
    """What :func:`read_store` found.

    Attributes:
        profiles: one flat dict per usable profile record (status ok, selected), keys as in
            :data:`COST_COLUMNS` (cost part); raw samples are not kept.
        failed: profile records with status "error" (selected by the filters), keys as in
            :data:`FAILED_COLUMNS`.
        accuracy: one dict per accuracy (variant, joints, dataset, split, metric, protocol).
        curves: validation curve points (keys as in :data:`CURVE_COLUMNS`).
        skipped: ``(path, reason)`` for every record file not used.
        files: number of ``*.json`` files read.
    """

    profiles: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    accuracy: list[dict] = field(default_factory=list)
    curves: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0


def _record_files(dirs: Sequence[Path]) -> list[str]:
    """Paths (as given under each folder) of every ``*.json`` below ``dirs``, hidden files and
    folders excepted; a file reachable through two folders (one inside the other) once."""
    seen: dict[str, str] = {}
    for d in dirs:
        if not Path(d).is_dir():
            raise FileNotFoundError(
                f"{d}: no such results folder; run `hgbench train-all` and `hgbench profile` first, or pass --results"
            )
        top = str(d)
        real = os.path.realpath(top)
        for root, subdirs, files in os.walk(top):
            subdirs[:] = [s for s in subdirs if not s.startswith(".")]
            for name in files:
                if name.endswith(".json") and not name.startswith("."):
                    path = os.path.join(root, name)
                    seen.setdefault(real + path[len(top):], path)  # key: the path under the real folder
    return sorted(seen.values())


def _load(path: str) -> tuple[dict | None, str | None]:
    """``(record, None)`` or ``(None, reason)``."""
    try:
        with open(path, "rb") as f:
            rec = json.loads(f.read())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, f"unreadable JSON ({type(e).__name__}: {e})"
    if not isinstance(rec, dict):
        return None, f"not an hgbench record (a JSON {type(rec).__name__}, not an object)"
    schema, kind = rec.get("schema"), rec.get("kind")
    if schema != SCHEMA:
        if schema is None:
            return None, "not an hgbench record (no 'schema' field)"
        return None, f"schema {schema}: re-run {_RERUN.get(kind, 'the command that wrote it')} (this hgbench reads {SCHEMA})"
    if kind not in _RERUN:
        return None, f"unknown record kind {kind!r} (known: {', '.join(_RERUN)})"
    return rec, None


def _opt_float(v) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


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
    calib = rec.get("calibration") or {}
    params = rec["parameters"]
    eff = _opt_float(roof.get("efficiency"))
    moved = _opt_float(numerics.get("argmax_moved_fraction"))
    commit = prov.get("git_commit")
    return {
        "host": prov.get("hostname") or os.path.basename(os.path.dirname(path)),
        "device": rec["device"],
        "device name": _device_name(rec),
        "threads": rec.get("threads"),
        "variant": rec["variant"],
        "joints": int(rec["num_joints"]),
        "backend": rec["backend"],
        "precision": rec["precision"],
        "tf32": bool(rec.get("tf32")),
        "channels last": bool(rec.get("channels_last")),
        "compile mode": rec.get("compile_mode"),
        "batch size": int(rec["batch_size"]),
        "input size (px)": int(rec["input_size"]),
        PARAMS: params,
        PARAMS_M: params / 1e6 if params is not None else None,
        WEIGHTS_MIB: params * FLOAT32_BYTES / MIB if params is not None else None,
        "model size fp32 (MiB)": _opt_float(rec.get("model_size_mib")),
        GMACS: _opt_float(rec.get("gmacs_fvcore")),
        GMACS_THOP: _opt_float(rec.get("gmacs_thop")),
        "GFLOPs flop_counter (per sample)": _opt_float(rec.get("gflops_flop_counter")),
        P50: _opt_float(lat.get("p50_ms")),
        P90: _opt_float(lat.get("p90_ms")),
        P99: _opt_float(lat.get("p99_ms")),
        "latency mean (ms/batch)": _opt_float(lat.get("mean_ms")),
        "latency std (ms/batch)": _opt_float(lat.get("std_ms")),
        "timed runs": lat.get("n"),
        "timed repetitions": lat.get("repetitions", 1 if lat else None),
        "p50 range over repetitions (%)": repetition_range_pct(lat),
        "throughput (samples/s)": _opt_float(rec.get("throughput_samples_per_s")),
        "peak memory (MiB)": _opt_float(rec.get("peak_memory_mib")),
        "activation memory (MiB/sample)": _opt_float(rec.get("activation_memory_mib")),
        "build time (s)": _opt_float(rec.get("build_time_s")),
        "numerics ok": numerics.get("ok") if rec.get("numerics") else None,
        "max abs error vs fp32": _opt_float(numerics.get("max_abs_error")),
        "argmax moved (%)": None if moved is None else 100 * moved,
        "roofline efficiency (%)": None if eff is None else 100 * eff,
        "calibration p50 (ms)": _opt_float(calib.get("p50_ms")),
        "torch": prov.get("torch"),
        "cuda": prov.get("cuda"),
        "gpu driver": prov.get("gpu_driver"),
        "hgbench": prov.get("hgbench_version"),
        "git commit": (commit[:10] + ("+dirty" if prov.get("git_dirty") else "")) if commit else None,
        "profiled at": rec.get("created"),
        "profile record": str(path),
        "_status": rec["status"],
        "_error": rec.get("error"),
        "_created": rec.get("created") or "",
    }


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
        ACC: _opt_float(result["mean"]),
        "groups": {g: _opt_float(v) for g, v in groups.items()},
        "eval persons": result.get("num_persons"),
        "convention": result.get("convention") or _metric_name(result),
    }


def _host_and_device(rec: dict) -> tuple[str | None, str | None]:
    prov = rec.get("provenance") or {}
    return prov.get("hostname"), prov.get("gpu_name") or prov.get("gpu") or prov.get("cpu_model")


def read_store(dirs: Sequence[str | Path], filters: Filters = Filters()) -> Store:
    """Read every ``*.json`` record under ``dirs`` (hidden folders and files excepted).

    Each file is used, or listed in ``skipped`` with the reason: unreadable JSON; no
    ``schema`` or another schema (``"schema hgbench.record/1: re-run hgbench profile"``); an
    unknown kind; a missing field; a training run not complete; a record superseded by a newer
    one of the same run or measurement; a filter. Profile records with status "error" go to
    ``failed`` with their error. A file reachable through two of ``dirs`` is read once.

    Raises:
        FileNotFoundError: one of ``dirs`` is not a folder.
    """
    store = Store()
    paths = _record_files([Path(d) for d in dirs])
    store.files = len(paths)
    profiles: dict[tuple, dict] = {}
    trains: dict[tuple, dict] = {}
    evals: dict[tuple, dict] = {}
    for path in paths:
        rec, reason = _load(path)
        if rec is None:
            store.skipped.append((str(path), reason))
            continue
        kind = rec["kind"]
        try:
            if kind == "profile":
                row = _profile_row(rec, path)
                reason = filters.profile_reason(row)
                if reason:
                    store.skipped.append((str(path), reason))
                elif row["_status"] != "ok":
                    store.failed.append({**{c: row.get(c) for c in FAILED_COLUMNS}, "error": row["_error"] or "status error, no reason given"})
                else:
                    key = tuple(row[c] for c in (*MACHINE, "threads", "variant", "joints", "backend", "precision", "tf32",
                                                 "channels last", "compile mode", "batch size", "input size (px)"))  # fmt: skip
                    _keep_newest(profiles, key, row, row["_created"], "profile record", store.skipped)
            elif kind == "train":
                if not rec.get("complete"):
                    store.skipped.append((str(path), "training run not complete (resume it with `hgbench train`)"))
                elif filters.dataset and rec["dataset"] not in filters.dataset:
                    store.skipped.append((str(path), f"filtered out by --dataset {','.join(filters.dataset)} (record: {rec['dataset']})"))
                else:
                    run = _train_entry(rec, path)
                    _keep_newest(trains, (run["variant"], run["dataset"], run["protocol"]), run, run["_created"], "accuracy record", store.skipped)
            else:  # eval
                entry = _eval_entry(rec, path)
                if filters.dataset and entry["dataset"] not in filters.dataset:
                    store.skipped.append((str(path), f"filtered out by --dataset {','.join(filters.dataset)} (record: {entry['dataset']})"))
                elif entry["split"] == "train":
                    store.skipped.append((str(path), "evaluated on the training split; the report uses held-out splits"))
                else:
                    key = (entry["variant"], entry["joints"], entry["dataset"], entry["split"], entry["metric"], entry["protocol"])
                    _keep_newest(evals, key, entry, entry["_created"], "accuracy record", store.skipped)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            what = f"field {e.args[0]!r} missing" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            store.skipped.append((str(path), f"malformed {kind} record: {what}; re-run {_RERUN[kind]}"))

    store.profiles = list(profiles.values())
    _join_accuracy(store, trains, evals)
    return store


def _keep_newest(table: dict, key: tuple, entry: dict, created: str, path_key: str, skipped: list) -> None:
    old = table.get(key)
    if old is None:
        table[key] = entry
        return
    newer, older = (entry, old) if created >= old["_created"] else (old, entry)
    table[key] = newer
    skipped.append((older[path_key], f"superseded by the newer record {newer[path_key]} of the same measurement"))


def _train_entry(rec: dict, path: str) -> dict:
    host, device = _host_and_device(rec)
    final = rec.get("final")
    settings = rec.get("protocol_settings") or {}
    entry = {
        "variant": rec["variant"],
        "joints": int(rec["num_joints"]),
        "dataset": rec["dataset"],
        "protocol": rec["protocol"],
        "split": "val",  # hgbench.train validates on the dataset's "val" split
        PARAMS: rec.get("parameters"),
        "training (h)": None if _opt_float(rec.get("train_time_s")) is None else rec["train_time_s"] / 3600,
        "trained on": host,
        "trained device": device,
        "trained input size": settings.get("input_size"),
        "accuracy record": str(path),
        "_created": rec.get("created") or "",
        "curve": [],
        "result": _accuracy_fields(final) if final else None,
    }
    for h in rec.get("history") or []:
        if h.get("val"):
            entry["curve"].append((int(h["epoch"]), _metric_name(h["val"]), _opt_float(h["val"].get("mean"))))
    return entry


def _eval_entry(rec: dict, path: str) -> dict:
    result = rec["result"]
    joints = rec.get("num_joints") or len(result.get("per_joint") or {}) or None
    protocol = rec.get("protocol")
    ckpt = Path(rec.get("checkpoint") or "")
    if protocol is None and ckpt.parent.name == rec["variant"] and len(ckpt.parts) >= 4:
        protocol = ckpt.parent.parent.name  # <results>/runs/<dataset>/<protocol>/<variant>/checkpoint.pt
    return {
        "variant": rec["variant"],
        "joints": int(joints) if joints else None,
        "dataset": rec["dataset"],
        "split": rec["split"],
        "protocol": protocol,
        "accuracy record": str(path),
        "_created": rec.get("created") or "",
        **_accuracy_fields(result),
    }


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
            PARAMS: run[PARAMS] if run else None,
            "training (h)": run["training (h)"] if run else None,
            "trained on": run["trained on"] if run else None,
            "trained input size": run["trained input size"] if run else None,
        })  # fmt: skip
    for key, run in runs.items():
        for epoch, metric, mean in run["curve"]:
            store.curves.append({"variant": run["variant"], "joints": run["joints"], "dataset": run["dataset"], "split": "val",
                                 "metric": metric, "protocol": run["protocol"], "epoch": epoch, ACC: mean,
                                 "trained on": run["trained on"], "train record": run["accuracy record"]})  # fmt: skip
        if key in evaluated:
            continue
        if run["result"] is None:  # a run without any validation still carries its size and training time
            res = {"metric": None, ACC: None, "groups": {}, "eval persons": None, "convention": None}
        else:
            res = run["result"]
        store.accuracy.append({k: v for k, v in run.items() if k not in ("result", "curve", "_created")} | res)


# --------------------------------------------------------------------------------------------
# Building the tables


@dataclass
class Report:
    """The report's tables (raw numbers; NaN/None where not measured) and where they came from.

    Attributes:
        cost: the accuracy-vs-cost table, :data:`COST_COLUMNS`.
        per_joint: the seed-002 Table 1 layout, :data:`PER_JOINT_COLUMNS`, one block per machine.
        curves: validation accuracy per epoch, :data:`CURVE_COLUMNS`.
        failed: failed measurements, :data:`FAILED_COLUMNS`.
        skipped: ``(path, reason)`` of every record not used.
        conventions: metric -> its convention (how the accuracy was computed).
        notes: warnings for the reader (e.g. a variant trained with 14 joints but profiled with 16 only).
        sources, filters, pareto_on: how the report was asked for.
        files: record files read.
    """

    cost: pd.DataFrame
    per_joint: pd.DataFrame
    curves: pd.DataFrame
    failed: pd.DataFrame
    skipped: list[tuple[str, str]]
    conventions: dict[str, str]
    notes: list[str]
    sources: list[str]
    filters: Filters
    pareto_on: str
    files: int
    created: str = field(default_factory=utc_now)

    @property
    def pareto_cost(self) -> str:
        """The cost column the Pareto front is computed on."""
        return PARETO_ON[self.pareto_on]


def build_report(results_dirs: str | Path | Sequence[str | Path], filters: Filters = Filters(), pareto_on: str = "latency") -> Report:
    """Read the records under ``results_dirs`` (see :func:`read_store`) and join them into
    the report's tables (see the module docstring).

    Args:
        results_dirs: one folder or several (e.g. one per machine).
        filters: which records to use.
        pareto_on: the cost of the Pareto front: ``"latency"`` (p50 per batch, default),
            ``"gmacs"`` (fvcore, per sample) or ``"parameters"``.

    Raises:
        FileNotFoundError: a folder does not exist.
        NoUsableRecordsError: no profile record and no accuracy record is usable (the message
            lists why the records were skipped).
        ValueError: unknown ``pareto_on``.
    """
    if pareto_on not in PARETO_ON:
        raise ValueError(f"--pareto-on {pareto_on!r}: expected one of {', '.join(PARETO_ON)}")
    dirs = [results_dirs] if isinstance(results_dirs, (str, Path)) else list(results_dirs)
    store = read_store(dirs, filters)
    if not store.profiles and not [a for a in store.accuracy if a[ACC] is not None] and not store.failed:
        raise NoUsableRecordsError(_nothing_usable_message(dirs, store, filters))

    acc_by_model: dict[tuple, list[dict]] = defaultdict(list)
    for a in store.accuracy:
        acc_by_model[(a["variant"], a["joints"])].append(a)

    rows: list[dict] = []
    skipped = list(store.skipped)
    for p in store.profiles:
        matches = acc_by_model.get((p["variant"], p["joints"]), [])
        if not matches:
            if filters.dataset:
                skipped.append((p["profile record"], f"no accuracy of {p['variant']} ({p['joints']} joints) on --dataset {','.join(filters.dataset)}"))
                continue
            rows.append(p)
        for a in matches:
            rows.append({**p, **{k: a.get(k) for k in (*ACCURACY_KEY, ACC, "eval persons", "accuracy record")}})
    cost = _frame(rows, COST_COLUMNS)
    cost = cost.sort_values(COST_GROUP + ["variant", "backend", "precision", "tf32", "channels last"], na_position="last", kind="stable")
    cost = cost.reset_index(drop=True)
    cost[PARETO] = _grouped_pareto(cost, COST_GROUP, PARETO_ON[pareto_on])

    return Report(
        cost=cost,
        per_joint=_per_joint_table(store),
        curves=_frame(store.curves, CURVE_COLUMNS),
        failed=_frame(store.failed, FAILED_COLUMNS),
        skipped=skipped,
        conventions={a["metric"]: a["convention"] for a in store.accuracy if a.get("metric")},
        notes=_join_notes(store, acc_by_model),
        sources=[str(d) for d in dirs],
        filters=filters,
        pareto_on=pareto_on,
        files=store.files,
    )


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """One DataFrame from all rows at once (column lists; keys not in ``columns`` dropped)."""
    return pd.DataFrame({c: [r.get(c) for r in rows] for c in columns}, columns=columns)


def _accuracy_for_pareto(df: pd.DataFrame) -> pd.Series:
    """The accuracy, or NaN where a reduced-precision numerics check failed (see module docs)."""
    acc = pd.to_numeric(df[ACC], errors="coerce")
    failed = df["numerics ok"].map(lambda v: isinstance(v, (bool, np.bool_)) and not v)
    return acc.where(~failed.astype(bool))


def _grouped_pareto(df: pd.DataFrame, group: list[str], cost_col: str) -> pd.Series:
    out = np.zeros(len(df), dtype=bool)
    if df.empty:
        return pd.Series(out, index=df.index)
    acc = _accuracy_for_pareto(df).to_numpy(dtype=float)
    cost = pd.to_numeric(df[cost_col], errors="coerce").to_numpy(dtype=float)
    for idx in df.groupby(group, dropna=False, sort=False).indices.values():
        out[idx] = pareto_optimal(acc[idx], cost[idx])
    return pd.Series(out, index=df.index)


def _inference_choice(profiles: list[dict], trained_size: int | None) -> dict | None:
    """The profile record shown in the per-joint table's inference column: the trained input
    size if profiled, eager before other backends, fp32, no TF32/channels-last, the smallest batch."""
    if not profiles:
        return None
    return min(profiles, key=lambda p: (p["input size (px)"] != (trained_size or 256), p["backend"] != "eager", p["precision"] != "fp32",
                                        p["tf32"], p["channels last"], p["batch size"], p["input size (px)"], p["backend"], p["precision"]))  # fmt: skip


def _per_joint_table(store: Store) -> pd.DataFrame:
    machines = sorted({tuple(p[c] for c in MACHINE) for p in store.profiles}, key=lambda m: tuple(str(x) for x in m)) or [(None,) * 3]
    by_machine_model: dict[tuple, list[dict]] = defaultdict(list)
    for p in store.profiles:
        by_machine_model[(*(p[c] for c in MACHINE), p["variant"], p["joints"])].append(p)
    rows = []
    for machine in machines:
        for a in store.accuracy:
            chosen = _inference_choice(by_machine_model.get((*machine, a["variant"], a["joints"]), []), a.get("trained input size"))
            params = a.get(PARAMS) if a.get(PARAMS) is not None else (chosen or {}).get(PARAMS)
            row = dict(zip(MACHINE, machine))
            row.update({k: a.get(k) for k in (*ACCURACY_KEY, "variant", "joints", "eval persons", "training (h)", "trained on", "accuracy record")})
            row.update({f"{g} (%)": (a.get("groups") or {}).get(g) for g in PAPER_GROUPS})
            row["Mean (%)"] = a.get(ACC)
            row[PARAMS] = params
            row[PARAMS_M] = params / 1e6 if params is not None else None
            row[WEIGHTS_MIB] = params * FLOAT32_BYTES / MIB if params is not None else None
            if chosen is not None:
                p50, batch = chosen[P50], chosen["batch size"]
                n = a.get("eval persons")
                row.update({
                    GMACS: chosen[GMACS], "inference backend": chosen["backend"], "inference precision": chosen["precision"],
                    "inference batch size": batch, "inference input size (px)": chosen["input size (px)"],
                    "inference p50 (ms/batch)": p50, "profile record": chosen["profile record"],
                    # forward passes only: p50 per batch x number of batches of the evaluated split, in minutes
                    "inference val set est. (min)": p50 * math.ceil(n / batch) / 60000 if p50 is not None and n else None,
                })  # fmt: skip
            rows.append(row)
    df = _frame(rows, PER_JOINT_COLUMNS)
    return df.sort_values([*MACHINE, *ACCURACY_KEY, "variant"], na_position="last", kind="stable").reset_index(drop=True)


def _join_notes(store: Store, acc_by_model: dict) -> list[str]:
    notes = []
    profiled = defaultdict(set)
    for p in store.profiles:
        profiled[p["variant"]].add(p["joints"])
    for (variant, joints), entries in sorted(acc_by_model.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        if profiled.get(variant) and joints not in profiled[variant]:
            datasets = ", ".join(sorted({e["dataset"] for e in entries}))
            notes.append(f"{variant} was trained/evaluated with {joints} joints ({datasets}) but profiled with "
                         f"{', '.join(map(str, sorted(profiled[variant])))} only: its cost and accuracy are not joined; "
                         f"re-run `hgbench profile --num-joints {joints}`.")  # fmt: skip
    return notes


def _nothing_usable_message(dirs: Sequence, store: Store, filters: Filters) -> str:
    where = ", ".join(str(d) for d in dirs)
    if store.files == 0:
        return f"{where}: no records (*.json) found; run `hgbench train-all` and `hgbench profile` first, or pass --results"
    reasons = _reason_counts(store.skipped)
    listed = "; ".join(f"{n} x {r}" for r, n in reasons[:5])
    hint = f" (filters: {filters.describe()})" if filters.describe() != "none" else ""
    return f"{where}: none of the {store.files} record files is usable{hint}: {listed}"


def _reason_counts(skipped: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """Reasons with counts, most frequent first; filter and superseded reasons grouped by
    their general form (the text before the parenthesis / "superseded")."""
    counts: dict[str, int] = defaultdict(int)
    for _, reason in skipped:
        counts[_reason_class(reason)] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def skipped_by_reason(skipped: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``(reason, paths)`` for each kind of reason in ``skipped``, most frequent first
    (filter and supersession reasons grouped by their general form)."""
    paths: dict[str, list[str]] = defaultdict(list)
    for path, reason in skipped:
        paths[_reason_class(reason)].append(path)
    return sorted(paths.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def _reason_class(reason: str) -> str:
    if reason.startswith("superseded"):
        return "superseded by a newer record of the same measurement"
    if reason.startswith(("filtered out", "unreadable JSON")):
        return reason.split(" (", 1)[0]
    return reason


# --------------------------------------------------------------------------------------------
# Rendering: a small document model rendered to Markdown and HTML


@dataclass
class _Block:
    kind: str  # "h1".."h4", "p", "ul", "table", "img"
    content: Any


def _fmt_number(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.1f}"
    if a >= 1 or a == 0:
        return f"{v:.2f}"
    return f"{v:.3g}"


def _fmt_hmm(hours: float) -> str:
    """Hours as ``h:mm`` (seed 002 Table 1 writes training hours so: "97:34")."""
    minutes = round(hours * 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def _fmt_mmss(minutes: float) -> str:
    """Minutes as ``mm:ss`` (seed 002 Table 1 writes inference minutes so: "01:51")."""
    seconds = minutes * 60
    if seconds < 59.95:  # under a minute: tenths of a second, so fast networks do not all read 00:00
        return f"00:{seconds:04.1f}"
    seconds = round(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


_DISPLAY = {  # column -> (Markdown/HTML header, formatter)
    "training (h)": ("training (h:mm)", _fmt_hmm),
    "inference val set est. (min)": ("inference, val set est. (mm:ss)", _fmt_mmss),
    PARAMS: (PARAMS, lambda v: f"{int(v):,}"),
    PARETO: ("Pareto", lambda v: "★" if v else ""),
}


_INT_COLUMNS = {"joints", "threads", "batch size", "input size (px)", "eval persons", "timed runs", "inference batch size",
                "inference input size (px)"}  # counts that a missing value in the column turns into floats


def _is_missing(v) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _cell(col: str, v) -> str:
    if _is_missing(v):
        return MISSING
    if col in _DISPLAY:
        return _DISPLAY[col][1](v)
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) or (col in _INT_COLUMNS and float(v).is_integer()):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if col.endswith("(%)"):
            return f"{v:.2f}"
        return _fmt_number(float(v))
    return str(v)


def _display(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df[columns]`` as text (missing -> "—"), headers renamed per :data:`_DISPLAY`."""
    cols = [c for c in columns if c in df.columns]
    data = {_DISPLAY.get(c, (c,))[0]: [_cell(c, v) for v in df[c].tolist()] for c in cols}
    return pd.DataFrame(data, columns=list(data))


def _constant_conditions(df: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """Split condition columns into those constant in ``df`` (returned as "name: value"
    lines for a header) and those that vary (kept as table columns)."""
    constant, varying = [], []
    for c in columns:
        values = df[c].tolist()
        first = values[0] if values else None
        if all((_is_missing(v) and _is_missing(first)) or v == first for v in values):
            if not _is_missing(first):
                constant.append(f"{c}: {_cell(c, first)}")
        else:
            varying.append(c)
    return constant, varying


def _machine_title(machine: tuple, rows: pd.DataFrame) -> str:
    host, device, name = machine
    if host is None or _is_missing(host):
        return "Not profiled"
    extra = []
    for col, label in (("torch", "torch"), ("cuda", "CUDA"), ("gpu driver", "driver"), ("hgbench", "hgbench"), ("git commit", "commit")):
        if col in rows:
            vals = sorted({str(v) for v in rows[col].tolist() if not _is_missing(v)})
            if vals:
                extra.append(f"{label} {' / '.join(vals)}" + (" (mixed)" if len(vals) > 1 else ""))
    return f"Host `{host}`: {device}, {name or 'device name not recorded'}" + (f" ({', '.join(extra)})" if extra else "")


def _accuracy_title(key: tuple, persons=None) -> str:
    dataset, split, metric, protocol = key
    if _is_missing(dataset):
        return "No accuracy record (profiled, not trained or evaluated)"
    n = f", {int(persons)} persons" if persons is not None and not _is_missing(persons) else ""
    if _is_missing(metric):
        return f"No validation recorded: {dataset}, protocol {protocol}"
    return f"{metric} (%) on {dataset}/{split}{n}, protocol {protocol}"


COST_SHOWN = ["variant", "backend", "precision", "tf32", "channels last", "compile mode", ACC, PARAMS_M, GMACS, P50, P90,
              "throughput (samples/s)", "peak memory (MiB)", "numerics ok", PARETO]  # fmt: skip
COST_CONDITIONS = ["joints", "threads", "backend", "precision", "tf32", "channels last", "compile mode"]
PER_JOINT_SHOWN = ["variant", *[f"{g} (%)" for g in PAPER_GROUPS], "Mean (%)", PARAMS_M, WEIGHTS_MIB, GMACS, "training (h)",
                   "inference p50 (ms/batch)", "inference val set est. (min)"]  # fmt: skip
PER_JOINT_CONDITIONS = ["joints", "trained on", "inference backend", "inference precision", "inference batch size", "inference input size (px)"]


def _groups(df: pd.DataFrame, keys: list[str]) -> Iterable[tuple[tuple, pd.DataFrame]]:
    if df.empty:
        return []
    return ((k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(keys, dropna=False, sort=False))


def _document(report: Report, plots: list[tuple[str, Path]]) -> list[_Block]:
    b: list[_Block] = [_Block("h1", "hgbench report")]
    b.append(_Block("ul", [
        (f"Generated {report.created} from {report.files} record files in: {', '.join(f'`{s}`' for s in report.sources)}; "
         f"filters: {report.filters.describe()}."),
        *[f"Accuracy, {m}: {c}." for m, c in sorted(report.conventions.items())],
        ("Accuracy is that of the trained fp32 checkpoint (the eval record of the variant, dataset and protocol if any, else the "
         "training run's last validation); rows at other backends and precisions reuse it. `numerics ok` says whether a "
         "backend/precision reproduces the fp32 eager heatmaps within tolerance (— for eager fp32 itself)."),
        ("Latency: p50 / p90 of the timed runs after warm-up, ms per batch (batch size in each table's title), on the machine of "
         "its section; throughput = batch size / p50, samples/s. GMACs: 10^9 multiply-accumulates per sample (fvcore's count; "
         "FLOPs = 2 x MACs), at the profiled input size."),
        ("Parameters (M) = 10^6 parameters; weights fp32 (MiB) = parameters x 4 bytes / 2^20, the quantity seed 002's Table 1 "
         "prints as 'Num. of Parameters' (its 8-stack '97.7M' = 25.59M parameters x 4 B)."),
        (f"Pareto (★): no other row of the same table (machine, dataset/split/metric/protocol, batch size, input size) is at least "
         f"as accurate and at least as cheap in {report.pareto_cost}, strictly better in one; rows without accuracy, and "
         "reduced-precision rows whose numerics check failed, are never on the front."),
        *report.notes,
    ]))  # fmt: skip

    b.append(_Block("h2", "Accuracy vs cost"))
    if report.cost.empty:
        b.append(_Block("p", "No profile records: run `hgbench profile`."))
    for machine, mrows in _groups(report.cost, MACHINE):
        b.append(_Block("h3", _machine_title(machine, mrows)))
        for key, rows in _groups(mrows, ACCURACY_KEY + ["batch size", "input size (px)"]):
            persons = rows["eval persons"].dropna()
            size = key[5]
            b.append(_Block("h4", f"{_accuracy_title(key[:4], persons.iloc[0] if len(persons) else None)}; batch {key[4]}, input {size}x{size} px"))
            constant, varying = _constant_conditions(rows, COST_CONDITIONS)
            if constant:
                b.append(_Block("p", "Conditions: " + "; ".join(constant) + "."))
            shown = [c for c in COST_SHOWN if c not in COST_CONDITIONS or c in varying]
            b.append(_Block("table", _display(rows, shown)))

    b.append(_Block("h2", "Per-joint accuracy (the layout of seed 002's Table 1)"))
    b.append(_Block("p", "Columns as Elhagry et al.'s Table 1: per-group accuracy and Mean (%), size, GMACs, training time (h:mm, as the paper), "
                         "inference. The inference column is one profile record per variant on this machine (conditions above each table); "
                         "'inference, val set est.' = p50 per batch x batches in the evaluated split, forward passes only (the paper's "
                         "minutes include its whole evaluation loop)."))  # fmt: skip
    if report.per_joint.empty:
        b.append(_Block("p", "No accuracy records: run `hgbench train-all` (or `hgbench evaluate`)."))
    for machine, mrows in _groups(report.per_joint, MACHINE):
        b.append(_Block("h3", _machine_title(machine, report.cost[report.cost["host"] == machine[0]]) if not _is_missing(machine[0]) else "Not profiled on any machine"))
        for key, rows in _groups(mrows, ACCURACY_KEY):
            persons = rows["eval persons"].dropna()
            b.append(_Block("h4", _accuracy_title(key, persons.iloc[0] if len(persons) else None)))
            constant, varying = _constant_conditions(rows, PER_JOINT_CONDITIONS)
            if constant:
                b.append(_Block("p", "Conditions: " + "; ".join(constant) + "."))
            shown = ["variant", *[c for c in PER_JOINT_CONDITIONS if c in varying], *PER_JOINT_SHOWN[1:]]
            b.append(_Block("table", _display(rows, shown)))

    if not report.failed.empty:
        b.append(_Block("h2", f"Failed measurements ({len(report.failed)})"))
        b.append(_Block("table", _display(report.failed, FAILED_COLUMNS)))
    if report.skipped:
        b.append(_Block("h2", f"Records skipped ({len(report.skipped)})"))
        items = []
        for reason, n in _reason_counts(report.skipped):
            hits = [(p, r) for p, r in report.skipped if _reason_class(r) == reason]
            # the full reason of each of the first five (e.g. which newer record superseded it)
            shown = "; ".join(f"`{p}`" + (f" ({r})" if r != reason else "") for p, r in hits[:5])
            items.append(f"{n} x {reason}: {shown}" + (f"; and {n - 5} more (see skipped.csv)" if n > 5 else ""))
        b.append(_Block("ul", items))
    if plots:
        b.append(_Block("h2", "Plots"))
        for title, path in plots:
            b.append(_Block("p", title))
            b.append(_Block("img", (title, path)))
    return b


def _md_table(df: pd.DataFrame) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in df.columns) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False, name=None)]
    return "\n".join(lines)


def render_markdown(report: Report, plots: list[tuple[str, Path]] = (), base: Path | None = None) -> str:
    """The report as Markdown (image links relative to ``base``)."""
    out = []
    for blk in _document(report, list(plots)):
        if blk.kind.startswith("h"):
            out.append("#" * int(blk.kind[1]) + " " + blk.content)
        elif blk.kind == "p":
            out.append(blk.content)
        elif blk.kind == "ul":
            out.append("\n".join(f"- {item}" for item in blk.content))
        elif blk.kind == "table":
            out.append(_md_table(blk.content))
        elif blk.kind == "img":
            title, path = blk.content
            out.append(f"![{title}]({_rel(path, base)})")
    return "\n\n".join(out) + "\n"


def render_html(report: Report, plots: list[tuple[str, Path]] = (), base: Path | None = None) -> str:
    """The report as one HTML page (tables by ``DataFrame.to_html``)."""
    style = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%} "
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} img{max-width:100%}")  # fmt: skip
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>hgbench report</title>", f"<style>{style}</style></head><body>"]

    def inline(text: str) -> str:
        return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))

    for blk in _document(report, list(plots)):
        if blk.kind.startswith("h"):
            out.append(f"<{blk.kind}>{inline(blk.content)}</{blk.kind}>")
        elif blk.kind == "p":
            out.append(f"<p>{inline(blk.content)}</p>")
        elif blk.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in blk.content) + "</ul>")
        elif blk.kind == "table":
            out.append(blk.content.to_html(index=False, border=0, escape=True))
        elif blk.kind == "img":
            title, path = blk.content
            out.append(f"<img src='{html.escape(_rel(path, base))}' alt='{html.escape(title)}'>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _rel(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------
# Writing


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"md,csv"`` -> ``("md", "csv")``.

    Raises:
        ValueError: an unknown format (naming the known ones).
    """
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        raise ValueError(f"--format {','.join(items) or text!r}: expected a comma-separated list of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(items))


def _csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def write_report(report: Report, out_dir: str | Path, formats: Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write the report into ``out_dir`` (created), every file atomically; return the paths.

    ``csv``: ``accuracy_vs_cost.csv``, ``per_joint.csv``, ``val_curves.csv``, ``failed.csv``,
    ``skipped.csv`` (raw numbers; empty cells where not measured); ``png``: ``plots/*.png``
    (:func:`hgbench.analysis.plots.write_plots`); ``md``: ``report.md``; ``html``: ``report.html``.

    Raises:
        ValueError: an unknown format.
    """
    formats = parse_formats(formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if "csv" in formats:
        tables = {
            "accuracy_vs_cost.csv": report.cost,
            "per_joint.csv": report.per_joint,
            "val_curves.csv": report.curves,
            "failed.csv": report.failed,
            "skipped.csv": pd.DataFrame(report.skipped, columns=SKIPPED_COLUMNS),
        }
        for name, df in tables.items():
            atomic_write_bytes(out / name, _csv(df))
            written.append(out / name)
    plots: list[tuple[str, Path]] = []
    if "png" in formats:
        from hgbench.analysis.plots import write_plots

        plots = write_plots(report, out / "plots")
        written += [p for _, p in plots]
    if "md" in formats:
        atomic_write_bytes(out / "report.md", render_markdown(report, plots, out).encode())
        written.append(out / "report.md")
    if "html" in formats:
        atomic_write_bytes(out / "report.html", render_html(report, plots, out).encode())
        written.append(out / "report.html")
    return written


def figure_png(fig) -> bytes:
    """A matplotlib Figure rendered to PNG bytes (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()
