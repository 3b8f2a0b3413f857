"""The report's tables (step 2 of :mod:`hgbench.analysis.report`): rows joined into DataFrames
with the snake_case columns of :mod:`hgbench.analysis.labels`, raw numbers, NaN/None where not
measured.

- ``cost``, the **accuracy-vs-cost table**: one row per profiled variant x backend x precision
  x batch size x input size x machine, joined with the accuracy of that variant (same number of
  joints) on each dataset/split/metric it was trained or evaluated on. Rows are
  **Pareto-optimal** (:func:`pareto_optimal`) when no other row of their group is at least as
  accurate and at least as cheap, strictly better in one. A group is one machine (machine
  label, device, device name), one accuracy (dataset, split, metric, protocol), one batch size and one
  input size; the cost is latency p50 by default (``pareto_on``). A row without accuracy or
  cost is never on the front; a reduced-precision row whose numerics check failed (its output
  moved beyond tolerance from fp32) keeps the fp32 accuracy in its column but is not on the
  front, since that accuracy does not carry over to it.
- **Deployed accuracy.** Where the records hold the accuracy measured through a row's own
  artifact (:attr:`hgbench.analysis.rows.Store.deployed`: same network, accuracy key, backend,
  precision, batch size and device kind; NCHW, TF32 off), that row shows it, with its interval,
  ``accuracy_source`` "deployed", and ``accuracy_vs_fp32_pct``, the paired difference to eager
  fp32 on the same persons (percentage points, negative: a drop) with its interval; eager fp32
  *is* the checkpoint and is "deployed" too. The other rows show the fp32 checkpoint's accuracy
  (``accuracy_source`` "fp32 checkpoint"); a quantized row (int8, fp8) among them is never on
  the front, since nothing says what its accuracy is. The Pareto front and
  ``indistinguishable_from`` use the accuracy shown. Without any deployed record the three
  columns are absent (the table of earlier versions).
- ``per_joint``, the layout of seed ``002_bdd2d633fa65b35a.txt`` Table 1: Head ... Ankle, Mean
  (percent), parameters, GMACs, training hours and inference time, one block per machine. The
  paper's "Num. of Parameters" column is MiB of float32 weights (its 8-stack "97.7M" = 25.59M
  parameters x 4 B; ``shared/DESIGN.md`` conventions), so both are given: ``params_m``
  (10^6 parameters) and ``weights_fp32_mib`` (parameters x 4 B / 2^20). Inference is one
  profile record of the variant on that machine (:func:`_inference_choice`), as p50 ms per
  batch and as the paper's unit, minutes over the evaluated split (``inference_val_set_min`` =
  p50 x ceil(persons / batch), forward passes only).
- ``learning``, the **learning curves**: training loss, learning rate and validation accuracy
  per epoch of each training run (:data:`LEARNING_COLUMNS`, from the train records' ``history``),
  with the run's number of stacks (``num_stacks``, for the plot's line styles);
- ``failed``: profile records with status error.
- ``latency_matrix``, the **latency matrix** of records that span more than one machine
  (:func:`latency_matrix`): one row per batch size and network at one input size, one column
  per machine / backend / precision, each cell the p50 latency in ms per batch; empty for one
  machine.

**Machines.** A profile row's machine is its machine label (``machine``:
:func:`hgbench.records.schema.machine_label`, ``hgbench profile --machine-label``, default the
host name; records made before labels existed read as their host name), with its device kind
and device name (:data:`hgbench.analysis.rows.MACHINE`): one Slurm partition profiled under its
own label is one machine, even where two partitions share a node.

**Pipeline checks.** An accuracy from a run under a protocol marked ``pipeline_check``
(:class:`hgbench.config.Protocol`; :mod:`hgbench.analysis.rows`) says only that training and
evaluation work: the cost and per-joint tables then have a ``pipeline_check`` column (True on
those rows; absent, as the tables of earlier versions, when no accuracy shown is one), and
:attr:`Report.pipeline_checks` names their protocols and step counts for the report's header.

**Intervals.** Where the records carry them (:mod:`hgbench.accuracy.interval`: 95 %, a
bootstrap over the evaluated persons), each accuracy has its interval in ``*_ci_low_pct`` and
``*_ci_high_pct`` columns, and each Pareto-optimal row of the cost table that is not
distinguishable from a cheaper row of the front names it in ``indistinguishable_from``
(:func:`indistinguishable_from`). The front itself is computed on the point accuracies as
before. A report whose records have no interval at all (written before intervals existed) has
none of these columns, so its tables are those of earlier versions; a row without an interval
is never given one.

**Joins.** Accuracy and cost are joined on the network's identity
(:data:`hgbench.records.identity.NETWORK`: variant name, spec hash and number of joints; the
``network`` of :mod:`hgbench.analysis.rows`), never on the name alone: after a variant's YAML
is edited, the old runs' accuracy is not shown beside the new network's cost, and the notes say
which profiled spec has no accuracy for that reason (:func:`_spec_notes`). Every row carries its
``spec_hash``. A variant trained with other joints than it was profiled with is named in the
notes too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hgbench.accuracy.interval import intervals_overlap
from hgbench.analysis.labels import INTERVALS, PAPER_GROUPS
from hgbench.analysis.rows import FLOAT32_BYTES, MACHINE, MIB, Filters, Store
from hgbench.records import utc_now

ACCURACY_KEY = ["dataset", "split", "metric", "protocol"]
COST_GROUP = MACHINE + ACCURACY_KEY + ["batch_size", "input_size_px"]
MATRIX_INDEX = ["batch_size", "variant", "joints", "spec_hash", "input_size_px"]
"""The row identity of the latency matrix (:func:`latency_matrix`): a batch size and a network
(:data:`hgbench.records.identity.NETWORK`: variant, joints, spec hash) at one input size (px)."""
PARETO_ON = {"latency": "latency_p50_ms", "gmacs": "gmacs_fvcore", "parameters": "params"}
GROUP_COLUMNS = [f"{g.lower()}_pct" for g in PAPER_GROUPS]
ACCURACY_CI = list(INTERVALS["accuracy_pct"])
COST_COLUMNS = [
    *MACHINE, "threads", *ACCURACY_KEY, "batch_size", "input_size_px", "variant", "joints", "spec_hash", "backend", "precision", "tf32",
    "channels_last", "compile_mode", "accuracy_pct", *ACCURACY_CI, "accuracy_source", "accuracy_vs_fp32_pct",
    *INTERVALS["accuracy_vs_fp32_pct"], "padded", "eval_persons", "pipeline_check", "params", "params_m",
    "weights_fp32_mib", "model_size_fp32_mib", "gmacs_fvcore", "gmacs_thop", "gflops_flop_counter", "latency_p50_ms",
    "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "latency_std_ms", "timed_runs", "timed_repetitions",
    "p50_range_pct", "throughput_samples_per_s", "peak_memory_mib", "activation_memory_mib", "build_time_s", "numerics_ok", "max_abs_error",
    "argmax_moved_pct", "roofline_efficiency_pct", "calibration_p50_ms", "pareto_optimal", "indistinguishable_from", "torch",
    "cuda", "gpu_driver", "hgbench", "git_commit", "profiled_at", "profile_record", "accuracy_record",
]  # fmt: skip
PER_JOINT_COLUMNS = [
    *MACHINE, *ACCURACY_KEY, "variant", "joints", "spec_hash", *[c for g in [*GROUP_COLUMNS, "mean_pct"] for c in (g, *INTERVALS[g])],
    "eval_persons", "pipeline_check", "params", "params_m",
    "weights_fp32_mib", "gmacs_fvcore", "training_h", "trained_on", "inference_backend", "inference_precision",
    "inference_batch_size", "inference_input_size_px", "inference_p50_ms", "inference_val_set_min", "accuracy_record",
    "profile_record",
]  # fmt: skip
LEARNING_COLUMNS = ["variant", "joints", *ACCURACY_KEY, "epoch", "steps", "train_loss", "lr", "val_accuracy_pct",
                    "trained_on", "train_record"]  # fmt: skip
FAILED_COLUMNS = [
    *MACHINE,
    "variant",
    "joints",
    "backend",
    "precision",
    "batch_size",
    "input_size_px",
    "error",
    "profile_record",
]
SKIPPED_COLUMNS = ["path", "reason"]
# present only where some record has an interval (module docstring)
INTERVAL_ONLY = {c for pair in INTERVALS.values() for c in pair} | {"indistinguishable_from"}
DEPLOYED_ONLY = ["accuracy_source", "accuracy_vs_fp32_pct", *INTERVALS["accuracy_vs_fp32_pct"], "padded"]
"""Cost columns present only where some deployed accuracy was read (module docstring)."""
QUANTIZED_PRECISIONS = ("int8", "fp8")  # hgbench.config.axes.QUANTIZED_PRECISIONS


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

    Raises:
        ValueError: the two have different lengths.

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


def accuracy_for_pareto(df: pd.DataFrame) -> pd.Series:
    """``df.accuracy_pct``, NaN where it is the fp32 checkpoint's and does not carry over: a
    reduced-precision numerics check failed, or a quantized precision (see module docs)."""
    acc = pd.to_numeric(df["accuracy_pct"], errors="coerce")
    failed = df["numerics_ok"].map(lambda v: isinstance(v, (bool, np.bool_)) and not v).astype(bool)
    failed |= df["precision"].isin(QUANTIZED_PRECISIONS)
    if "accuracy_source" in df.columns:
        failed &= df["accuracy_source"] != "deployed"
    return acc.where(~failed)


def indistinguishable_from(
    cost: Sequence[float], low: Sequence[float], high: Sequence[float], front: Sequence[bool], names: Sequence[str]
) -> list[str | None]:
    """For each row on the front, the cheapest row of the front that costs strictly less and
    whose accuracy interval overlaps its own (:func:`hgbench.accuracy.interval.intervals_overlap`);
    None for the others, and for rows without an interval.

    A row so marked buys its extra cost with an accuracy gain that this evaluation cannot tell
    from noise: the cheaper row may be as accurate. Overlap of 95 % intervals is a conservative
    criterion (see ``intervals_overlap``). Only rows of the front are compared: a cheaper row
    off the front is dominated by one on it.

    Args:
        cost: ``(N,)`` lower-is-better; low, high: ``(N,)`` the accuracy interval (NaN/None:
            none); front: ``(N,)`` bool, :func:`pareto_optimal`; names: ``(N,)`` what the
            result calls each row.

    Returns:
        ``(N,)`` a name from ``names`` or None.
    """
    num = lambda v: np.asarray(pd.to_numeric(pd.Series(v, dtype=object), errors="coerce"), dtype=float)  # noqa: E731
    cst, lo, hi = num(cost), num(low), num(high)
    on = np.flatnonzero(np.asarray(front, bool))
    order = on[np.argsort(cst[on], kind="stable")]
    out: list[str | None] = [None] * len(cst)
    for i in order:
        mine = (lo[i], hi[i])
        for j in order:
            if cst[j] >= cst[i]:
                break
            if intervals_overlap(mine, (lo[j], hi[j])):
                out[i] = names[j]
                break
    return out


def _row_names(df: pd.DataFrame) -> list[str]:
    """How :func:`indistinguishable_from` names the rows of one cost group: the variant, with
    its backend and precision where the variant has several rows on the front."""
    front = df[df["pareto_optimal"].astype(bool)]
    repeated = set(front["variant"][front["variant"].duplicated()])
    return [f"{r.variant} ({r.backend} {r.precision})" if r.variant in repeated else str(r.variant)
            for r in df[["variant", "backend", "precision"]].itertuples()]  # fmt: skip


def _grouped_indistinguishable(df: pd.DataFrame, cost_col: str) -> pd.Series:
    out = pd.Series([None] * len(df), index=df.index, dtype=object)
    for idx in df.groupby(COST_GROUP, dropna=False, sort=False).indices.values():
        g = df.iloc[idx]
        out.iloc[idx] = indistinguishable_from(
            g[cost_col], g[ACCURACY_CI[0]], g[ACCURACY_CI[1]], g["pareto_optimal"], _row_names(g)
        )
    return out


def _drop_absent_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the interval columns when no row has an interval (module docstring)."""
    lows = [c for c in df.columns if c.endswith("_ci_low_pct")]
    if lows and df[lows].notna().any().any():
        return df
    return df.drop(columns=[c for c in df.columns if c in INTERVAL_ONLY])


def _drop_absent_pipeline_check(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the ``pipeline_check`` column when no row with an accuracy is a pipeline
    check (module docstring); else with it, False where a row is not one."""
    acc = "accuracy_pct" if "accuracy_pct" in df.columns else "mean_pct"
    flagged = df["pipeline_check"].map(lambda v: v is True or v is np.True_) & df[acc].notna()
    if not flagged.any():
        return df.drop(columns=["pipeline_check"])
    return df.assign(pipeline_check=flagged)


def learning_table(points: list[dict]) -> pd.DataFrame:
    """The learning curves (:data:`LEARNING_COLUMNS` and ``num_stacks``, the stacks of the run's
    network, None where its record has no ``spec``; one row per epoch of each training run,
    ordered by dataset, protocol, variant, epoch), or an empty frame when no run has two or more
    validation points (a single point is no curve). The CSV holds :data:`LEARNING_COLUMNS` only.

    Args:
        points: :attr:`hgbench.analysis.rows.Store.learning`.
    """
    df = _frame(points, [*LEARNING_COLUMNS, "num_stacks"])
    if df.empty:
        return df
    df["val_accuracy_pct"] = pd.to_numeric(df["val_accuracy_pct"], errors="coerce")
    if df.groupby("train_record")["val_accuracy_pct"].count().max() < 2:
        return df.iloc[0:0]
    order = ["dataset", "split", "metric", "protocol", "variant", "joints", "train_record", "epoch"]
    return df.sort_values(order, na_position="last", kind="stable").reset_index(drop=True)


def pipeline_checks(accuracy: list[dict]) -> dict[str, list[int]]:
    """Protocol -> the distinct step counts (ascending; empty where no training run is read)
    of the accuracies (:attr:`hgbench.analysis.rows.Store.accuracy`) that come from
    pipeline-check runs; only entries with an accuracy count."""
    steps: dict[str, set[int]] = defaultdict(set)
    for a in accuracy:
        if a.get("pipeline_check") and a.get("accuracy_pct") is not None:
            found = steps[a["protocol"]]
            if a.get("train_steps") is not None:
                found.add(int(a["train_steps"]))
    return {p: sorted(s) for p, s in sorted(steps.items())}


def _grouped_pareto(df: pd.DataFrame, group: list[str], cost_col: str) -> pd.Series:
    out = np.zeros(len(df), dtype=bool)
    if df.empty:
        return pd.Series(out, index=df.index)
    acc = accuracy_for_pareto(df).to_numpy(dtype=float)
    cost = pd.to_numeric(df[cost_col], errors="coerce").to_numpy(dtype=float)
    for idx in df.groupby(group, dropna=False, sort=False).indices.values():
        out[idx] = pareto_optimal(acc[idx], cost[idx])
    return pd.Series(out, index=df.index)


# --------------------------------------------------------------------------------------------
# The report


@dataclass
class Report:
    """The report's tables (snake_case columns, raw numbers; NaN/None where not measured) and
    where they came from.

    Attributes:
        cost: the accuracy-vs-cost table, :data:`COST_COLUMNS`.
        per_joint: the seed-002 Table 1 layout, :data:`PER_JOINT_COLUMNS`, one block per machine.
        learning: the learning curves, :func:`learning_table` (empty: none to draw).
        failed: failed measurements, :data:`FAILED_COLUMNS`.
        skipped: ``(path, reason)`` of every record not used.
        conventions: metric -> its convention (how the accuracy was computed).
        notes: warnings for the reader (e.g. a variant trained with 14 joints but profiled with 16 only).
        sources, filters, pareto_on: how the report was asked for.
        files: record files read.
        pipeline_checks: protocol -> step counts of the pipeline-check runs whose accuracies
            the report shows (:func:`pipeline_checks`; empty: none).
        latency_matrix: p50 latency (ms per batch) per network and machine/backend/precision,
            :func:`latency_matrix` (empty: the records are of one machine).
        hosts: machine label -> the host names of its profile records (sorted), for the
            sections' titles where a label is not its host's name.
    """

    cost: pd.DataFrame
    per_joint: pd.DataFrame
    failed: pd.DataFrame
    skipped: list[tuple[str, str]]
    conventions: dict[str, str]
    notes: list[str]
    sources: list[str]
    filters: Filters
    pareto_on: str
    files: int
    learning: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[*LEARNING_COLUMNS, "num_stacks"]))
    pipeline_checks: dict[str, list[int]] = field(default_factory=dict)
    created: str = field(default_factory=utc_now)
    latency_matrix: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=MATRIX_INDEX))
    hosts: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pareto_cost(self) -> str:
        """The column the Pareto front is computed on (``latency_p50_ms``, ...)."""
        return PARETO_ON[self.pareto_on]


def build_tables(
    store: Store, sources: Sequence[str | Path], filters: Filters = Filters(), pareto_on: str = "latency"
) -> Report:
    """Join the rows of :func:`hgbench.analysis.rows.read_store` into the report's tables.

    Args:
        store: the rows.
        sources: the folders read (for the report's header and messages).
        filters: the filters the store was read with (a profiled variant without accuracy on
            ``filters.dataset`` is left out).
        pareto_on: the cost of the Pareto front: ``"latency"`` (p50 per batch, default),
            ``"gmacs"`` (fvcore, per sample) or ``"parameters"``.

    Raises:
        NoUsableRecordsError: no profile record and no accuracy record is usable (the message
            lists why the records were skipped).
        ValueError: unknown ``pareto_on``.
    """
    if pareto_on not in PARETO_ON:
        raise ValueError(f"--pareto-on {pareto_on!r}: expected one of {', '.join(PARETO_ON)}")
    if not store.profiles and not [a for a in store.accuracy if a["accuracy_pct"] is not None] and not store.failed:
        raise NoUsableRecordsError(_nothing_usable_message(sources, store, filters))

    deployed = {_deployed_key(d): d for d in store.deployed}
    acc_by_network: dict[tuple, list[dict]] = defaultdict(list)
    for a in store.accuracy:
        acc_by_network[a["network"]].append(a)
    rows: list[dict] = []
    skipped = list(store.skipped)
    for p in store.profiles:
        matches = acc_by_network.get(p["network"], [])
        if not matches:
            if filters.dataset:
                reason = (
                    f"no accuracy of {p['variant']} ({p['joints']} joints, spec {p['spec_hash']}) on --dataset "
                    f"{','.join(filters.dataset)}"
                )
                skipped.append((p["profile_record"], reason))
                continue
            rows.append(p)
        for a in matches:
            rows.append(_with_deployed({**p, **{k: a.get(k) for k in _JOINED_ACCURACY}}, deployed))
    order = COST_GROUP + ["variant", "backend", "precision", "tf32", "channels_last"]
    cost = _frame(rows, COST_COLUMNS).sort_values(order, na_position="last", kind="stable").reset_index(drop=True)
    cost["pareto_optimal"] = _grouped_pareto(cost, COST_GROUP, PARETO_ON[pareto_on])
    if not cost.empty:
        cost["indistinguishable_from"] = _grouped_indistinguishable(cost, PARETO_ON[pareto_on])
    cost = _drop_absent_pipeline_check(_drop_absent_intervals(cost))
    if not store.deployed:
        cost = cost.drop(columns=[c for c in DEPLOYED_ONLY if c in cost.columns])

    return Report(
        cost=cost,
        per_joint=_drop_absent_pipeline_check(_drop_absent_intervals(_per_joint_table(store))),
        learning=learning_table(store.learning),
        failed=_frame(store.failed, FAILED_COLUMNS),
        skipped=skipped,
        conventions={a["metric"]: a["convention"] for a in store.accuracy if a.get("metric")},
        notes=_join_notes(store),
        sources=[str(d) for d in sources],
        filters=filters,
        pareto_on=pareto_on,
        files=store.files,
        pipeline_checks=pipeline_checks(store.accuracy),
        latency_matrix=latency_matrix(cost),
        hosts=_hosts(store.profiles),
    )


def _hosts(profiles: list[dict]) -> dict[str, list[str]]:
    """Machine label -> the host names of its profile rows (:attr:`Report.hosts`)."""
    found: dict[str, set[str]] = defaultdict(set)
    for p in profiles:
        found[str(p["machine"])].add(str(p["host"]))
    return {m: sorted(h) for m, h in sorted(found.items())}


# --------------------------------------------------------------------------------------------
# The latency matrix across machines


def setting_text(row) -> tuple[str, str]:
    """A profile row's setting as ``(backend, precision)`` text: the backend with its
    ``torch.compile`` mode (``"compile (max-autotune)"``), the precision with its switches
    (``"fp16 +tf32 +cl"``: TF32 allowed, channels-last layout). The plots' series names and the
    latency matrix's columns."""
    backend = str(row["backend"])
    mode = row.get("compile_mode")
    if row["backend"] == "compile" and mode is not None and not (isinstance(mode, float) and math.isnan(mode)):
        backend += f" ({mode})"
    precision = str(row["precision"])
    if row.get("tf32") is True:
        precision += " +tf32"
    if row.get("channels_last") is True:
        precision += " +cl"
    return backend, precision


def machine_names(rows: pd.DataFrame) -> list[str]:
    """What the latency matrix calls the machine of each profile row of ``rows``: its machine
    label, followed in parentheses by what tells apart rows of one label on several machines:
    the device kind where the label has rows on several, then the device name, then the
    thread count (CPU intra-op threads)."""
    parts = ["machine", "device", "device_name", "threads"]
    keys = [tuple(None if pd.isna(v) else v for v in t) for t in rows[parts].itertuples(index=False, name=None)]
    below: dict[tuple, set] = defaultdict(set)  # a key's prefix -> the values that follow it
    for key in set(keys):
        for depth in range(1, len(parts)):
            below[key[:depth]].add(key[depth])
    names = []
    for key in keys:
        extra = [
            threads_text(key[depth]) if parts[depth] == "threads" else str(key[depth])
            for depth in range(1, len(parts))
            if len(below[key[:depth]]) > 1
        ]
        names.append(f"{key[0]} ({', '.join(extra)})" if extra else str(key[0]))
    return names


def threads_text(n) -> str:
    """``"4 threads"``, ``"1 thread"`` (CPU intra-op threads of a profile record);
    ``"threads not recorded"`` for None or NaN."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "threads not recorded"
    return f"{int(n)} thread{'s' if int(n) != 1 else ''}"


def latency_matrix(cost: pd.DataFrame) -> pd.DataFrame:
    """The p50 latency of every network on every machine, where the records span several.

    Args:
        cost: the accuracy-vs-cost table (:attr:`Report.cost`); each profile record is read
            once (a record joined to several accuracies is one measurement).

    Returns:
        One row per batch size and network at one input size (:data:`MATRIX_INDEX`, sorted), one
        column per machine / backend / precision named ``"<machine>/<backend>/<precision>"``
        (:func:`machine_names`, :func:`setting_text`; a machine label is a file name, so
        ``str.split("/")`` gives the three parts back), sorted by name; each cell the p50 latency
        in ms per batch (``latency_p50_ms``), NaN where not measured. An empty frame with the
        index columns when the rows are of one machine (one :data:`hgbench.analysis.rows.MACHINE`)
        or there are none.
    """
    rows = cost.drop_duplicates("profile_record") if not cost.empty else cost
    if rows.empty or len(rows[MACHINE].drop_duplicates()) < 2:
        return pd.DataFrame(columns=MATRIX_INDEX)
    settings = [setting_text(r) for r in rows.to_dict("records")]
    columns = [f"{m}/{b}/{p}" for m, (b, p) in zip(machine_names(rows), settings, strict=True)]
    rows = rows.assign(_column=columns, latency_p50_ms=pd.to_numeric(rows["latency_p50_ms"], errors="coerce"))
    cells = rows.groupby([*MATRIX_INDEX, "_column"], dropna=False)["latency_p50_ms"].first()
    wide = cells.unstack("_column").reset_index()
    wide.columns.name = None
    return wide


# the accuracy columns of a cost row, and those a deployed accuracy replaces
_JOINED_ACCURACY = (*ACCURACY_KEY, "accuracy_pct", *ACCURACY_CI, "eval_persons", "pipeline_check", "accuracy_record")
_FROM_DEPLOYED = ("accuracy_pct", *ACCURACY_CI, "eval_persons", "accuracy_record", "accuracy_vs_fp32_pct",
                  *INTERVALS["accuracy_vs_fp32_pct"], "padded")  # fmt: skip
_PER_JOINT_FROM_ACCURACY = (*ACCURACY_KEY, "variant", "joints", "spec_hash", "eval_persons", "pipeline_check", "training_h", "trained_on",
                            "accuracy_record")  # fmt: skip


def _deployed_key(row: dict) -> tuple:
    """What a deployed accuracy and a cost row must share (module docstring)."""
    return tuple(row.get(k) for k in ("network", *ACCURACY_KEY, "backend", "precision", "batch_size", "device"))


def _with_deployed(row: dict, deployed: dict[tuple, dict]) -> dict:
    """A cost row with the accuracy of its own artifact where one was measured (module docstring)."""
    plain = not row.get("tf32") and not row.get("channels_last")
    if plain and (row["backend"], row["precision"]) == ("eager", "fp32") and row.get("accuracy_pct") is not None:
        return {**row, "accuracy_source": "deployed", "accuracy_vs_fp32_pct": 0.0, "padded": False}
    d = deployed.get(_deployed_key(row)) if plain and row.get("compile_mode") in (None, "default") else None
    if d is None:
        return {**row, "accuracy_source": None if row.get("accuracy_pct") is None else "fp32 checkpoint"}
    return {**row, **{k: d.get(k) for k in _FROM_DEPLOYED}, "accuracy_source": "deployed"}


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """One DataFrame from all rows at once (column lists; keys not in ``columns`` dropped)."""
    return pd.DataFrame({c: [r.get(c) for r in rows] for c in columns}, columns=columns)


def _inference_choice(profiles: list[dict], trained_size: int | None) -> dict | None:
    """The profile record shown in the per-joint table's inference column: the trained input
    size if profiled, eager before other backends, fp32, no TF32/channels-last, the smallest batch."""
    if not profiles:
        return None
    return min(profiles, key=lambda p: (p["input_size_px"] != (trained_size or 256), p["backend"] != "eager",
                                        p["precision"] != "fp32", p["tf32"], p["channels_last"], p["batch_size"],
                                        p["input_size_px"], p["backend"], p["precision"]))  # fmt: skip


def _per_joint_table(store: Store) -> pd.DataFrame:
    """One row per machine x accuracy entry (see the module docstring); one machine ``(None,) * 3``
    when nothing was profiled."""
    machines = {tuple(p[c] for c in MACHINE) for p in store.profiles}
    machines = sorted(machines, key=lambda m: tuple(str(x) for x in m)) or [(None,) * 3]
    by_machine_model: dict[tuple, list[dict]] = defaultdict(list)
    for p in store.profiles:
        by_machine_model[(*(p[c] for c in MACHINE), *p["network"])].append(p)
    rows = []
    for machine in machines:
        for a in store.accuracy:
            profiles = by_machine_model.get((*machine, *a["network"]), [])
            chosen = _inference_choice(profiles, a.get("trained_input_size"))
            params = a.get("params") if a.get("params") is not None else (chosen or {}).get("params")
            groups = a.get("groups") or {}
            row = dict(zip(MACHINE, machine, strict=True))
            row.update({k: a.get(k) for k in _PER_JOINT_FROM_ACCURACY})
            row.update({col: groups.get(g) for g, col in zip(PAPER_GROUPS, GROUP_COLUMNS, strict=True)})
            row["mean_pct"] = a.get("accuracy_pct")
            intervals = {**(a.get("groups_ci") or {}), "Mean": (a.get(ACCURACY_CI[0]), a.get(ACCURACY_CI[1]))}
            for g, col in zip([*PAPER_GROUPS, "Mean"], [*GROUP_COLUMNS, "mean_pct"], strict=True):
                row.update(dict(zip(INTERVALS[col], intervals.get(g) or (None, None), strict=True)))
            row["params"] = params
            row["params_m"] = params / 1e6 if params is not None else None
            row["weights_fp32_mib"] = params * FLOAT32_BYTES / MIB if params is not None else None
            if chosen is not None:
                p50, batch = chosen["latency_p50_ms"], chosen["batch_size"]
                n = a.get("eval_persons")
                row.update({
                    "gmacs_fvcore": chosen["gmacs_fvcore"], "inference_backend": chosen["backend"],
                    "inference_precision": chosen["precision"], "inference_batch_size": batch,
                    "inference_input_size_px": chosen["input_size_px"], "inference_p50_ms": p50, "profile_record": chosen["profile_record"],
                    # forward passes only: p50 per batch x number of batches of the evaluated split, in minutes
                    "inference_val_set_min": p50 * math.ceil(n / batch) / 60000 if p50 is not None and n else None,
                })  # fmt: skip
            rows.append(row)
    df = _frame(rows, PER_JOINT_COLUMNS).sort_values(
        [*MACHINE, *ACCURACY_KEY, "variant"], na_position="last", kind="stable"
    )
    return df.reset_index(drop=True)


def _join_notes(store: Store) -> list[str]:
    """The notes on what was not joined: :func:`_joints_notes`, :func:`_spec_notes`,
    :func:`_input_size_notes`."""
    return [*_joints_notes(store), *_spec_notes(store), *_input_size_notes(store)]


def _by_model(entries: list[dict]) -> list[tuple[tuple, list[dict]]]:
    """``entries`` grouped by (variant, joints), sorted."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for e in entries:
        groups[(e["variant"], e["joints"])].append(e)
    return sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))


def _joints_notes(store: Store) -> list[str]:
    """A variant trained or evaluated with a number of joints it was not profiled with."""
    notes = []
    profiled = defaultdict(set)
    for p in store.profiles:
        profiled[p["variant"]].add(p["joints"])
    for (variant, joints), entries in _by_model(store.accuracy):
        if profiled.get(variant) and joints not in profiled[variant]:
            datasets = ", ".join(sorted({e["dataset"] for e in entries}))
            notes.append(f"{variant} was trained/evaluated with {joints} joints ({datasets}) but profiled with "
                         f"{', '.join(map(str, sorted(profiled[variant])))} only: its cost and accuracy are not joined; "
                         f"re-run `hgbench profile --num-joints {joints}`.")  # fmt: skip
    return notes


def _spec_notes(store: Store) -> list[str]:
    """A variant profiled as a spec (its spec hash) of which no accuracy is read while accuracy
    of another spec of it is: its definition changed between training and profiling, and its
    cost rows show no accuracy (a profile record without a spec hash, written before records
    carried one, joins no accuracy either)."""
    notes = []
    accuracy = {model: entries for model, entries in _by_model(store.accuracy)}
    for model, profiles in _by_model(store.profiles):
        trained = {e["spec_hash"] for e in accuracy.get(model, [])}
        unmatched = sorted({p["spec_hash"] or "unrecorded" for p in profiles if p["spec_hash"] not in trained})
        if not trained or not unmatched:
            continue
        datasets = ", ".join(sorted({f"{e['dataset']}, protocol {e['protocol']}" for e in accuracy[model]}))
        notes.append(f"{model[0]} ({model[1]} joints) was profiled as spec {', '.join(unmatched)} but its accuracy ({datasets}) "
                     f"is of spec {', '.join(sorted(trained))}: its definition changed between training and profiling, so "
                     "that accuracy is left out of those cost rows (a row joins records of one spec hash only); train the "
                     "profiled spec, or profile the trained one.")  # fmt: skip
    return notes


def _input_size_notes(store: Store) -> list[str]:
    """A network profiled at input sizes other than the one it was trained at."""
    notes = []
    for (variant, _), entries in _by_model(store.accuracy):
        for network in sorted({e["network"] for e in entries}, key=str):
            trained = {
                e["trained_input_size"]: e["protocol"]
                for e in entries
                if e.get("trained_input_size") and e["network"] == network
            }
            timed = {p["input_size_px"] for p in store.profiles if p["network"] == network}
            for size, protocol in sorted(trained.items()):
                other = sorted(s for s in timed if s is not None and s != size)
                if other:
                    notes.append(f"{variant} was trained at {size} px ({protocol}) but its rows at "
                                 f"{', '.join(map(str, other))} px time another input size than its accuracy's; "
                                 f"`hgbench profile --input-size {size}` times the trained size.")  # fmt: skip
    return notes


# --------------------------------------------------------------------------------------------
# Why records were skipped


def _nothing_usable_message(dirs: Sequence, store: Store, filters: Filters) -> str:
    where = ", ".join(str(d) for d in dirs)
    if store.files == 0:
        return f"{where}: no records (*.json) found; run `hgbench train-all` and `hgbench profile` first, or pass --results"
    listed = "; ".join(f"{n} x {r}" for r, n in reason_counts(store.skipped)[:5])
    hint = f" (filters: {filters.describe()})" if filters.describe() != "none" else ""
    return f"{where}: none of the {store.files} record files is usable{hint}: {listed}"


def reason_class(reason: str) -> str:
    """The general form of a skip reason: filter and supersession reasons without their
    particulars (the text before the parenthesis / "superseded")."""
    if reason.startswith("superseded"):
        return "superseded by a newer record of the same measurement"
    if reason.startswith(("filtered out", "not a readable JSON record")):
        return reason.split(" (", 1)[0]
    return reason


def reason_counts(skipped: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """``(reason class, count)``, most frequent first (:func:`reason_class`)."""
    counts: dict[str, int] = defaultdict(int)
    for _, reason in skipped:
        counts[reason_class(reason)] += 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def skipped_by_reason(skipped: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """``(reason, paths)`` for each kind of reason in ``skipped``, most frequent first
    (filter and supersession reasons grouped by their general form)."""
    paths: dict[str, list[str]] = defaultdict(list)
    for path, reason in skipped:
        paths[reason_class(reason)].append(path)
    return sorted(paths.items(), key=lambda kv: (-len(kv[1]), kv[0]))
