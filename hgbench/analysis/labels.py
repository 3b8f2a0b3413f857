"""The report's columns: one table from the snake_case name a DataFrame uses to the label, unit
and cell formatter that only rendering uses (:mod:`hgbench.analysis.render`, the CSV headers,
the CLI's summary).

Frames keep the names of :data:`COLUMNS` from reading to writing (``latency_p50_ms``,
``accuracy_pct``); a header is ``"<label> (<unit>)"`` (``"latency p50 (ms/batch)"``), the CSV's
header, and Markdown/HTML print ``short`` where a column has one (``"training (h:mm)"`` for hours
printed as ``h:mm``). Latency is per batch; MACs and FLOPs are per sample.

A missing value (None, NaN, pd.NA) is printed as :data:`MISSING` in Markdown and HTML, never 0.

An accuracy column may have a 95 % confidence interval in two more columns (:data:`INTERVALS`:
``accuracy_pct`` -> ``accuracy_ci_low_pct``, ``accuracy_ci_high_pct``); the CSV keeps the three
apart, Markdown and HTML print them in one cell, ``81.2 (79.0–83.1)`` (:func:`fmt_pct_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

MISSING = "—"
PAPER_GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")  # seed 002 Table 1's columns


def is_missing(v) -> bool:
    """True for None, pd.NA, pd.NaT and a float NaN (what a frame holds where nothing was measured)."""
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


# --------------------------------------------------------------------------------------------
# Cell formatters (value -> text; never called with a missing value)


def _number(v: float) -> str:
    a = abs(v)
    if a >= 100:
        return f"{v:,.1f}"
    if a >= 1 or a == 0:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_value(v) -> str:
    """yes/no, an integer as is, a float to 3 significant figures at least (``12.35``, ``1,234.5``)."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return _number(float(v))
    return str(v)


def fmt_count(v) -> str:
    """A count that a missing value in its column turned into a float: ``16.0`` -> ``16``."""
    if not isinstance(v, (bool, np.bool_, str)) and float(v).is_integer():
        return str(int(v))
    return fmt_value(v)


def fmt_pct(v) -> str:
    """A percentage to two decimals, as seed 002's Table 1 prints them (``86.23``)."""
    if isinstance(v, (float, np.floating)):
        return f"{v:.2f}"
    return fmt_value(v)


def fmt_pct_interval(v, low, high) -> str:
    """A percentage with its interval, ``81.2 (79.0–83.1)``: one decimal, since the interval is
    points wide; without an interval (``low`` or ``high`` missing) :func:`fmt_pct`'s two decimals."""
    if is_missing(low) or is_missing(high):
        return fmt_pct(v)
    return f"{float(v):.1f} ({float(low):.1f}–{float(high):.1f})"


def fmt_thousands(v) -> str:
    """An integer count with thousands separators: ``3,970,320``."""
    return f"{int(v):,}"


def fmt_hmm(hours: float) -> str:
    """Hours as ``h:mm`` (seed 002 Table 1 writes training hours so: "97:34")."""
    minutes = round(hours * 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def fmt_mmss(minutes: float) -> str:
    """Minutes as ``mm:ss`` (seed 002 Table 1 writes inference minutes so: "01:51"); under a
    minute with tenths of a second, so fast networks do not all read 00:00."""
    seconds = minutes * 60
    if seconds < 59.95:
        return f"00:{seconds:04.1f}"
    seconds = round(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def fmt_star(v) -> str:
    """★ for a Pareto-optimal row, nothing otherwise."""
    return "★" if v else ""


# --------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Column:
    """One report column.

    Attributes:
        name: the DataFrame column (snake_case, unit suffix: ``_ms``, ``_pct``, ``_px``).
        label: what it is, for readers (``"latency p50"``).
        unit: ``"ms/batch"``, ``"%"``, ... or None for names, flags and plain counts.
        fmt: value -> Markdown/HTML cell text.
        short: the Markdown/HTML header where it differs from :attr:`header` (the unit of
            :attr:`fmt`'s text, e.g. ``"training (h:mm)"``).
    """

    name: str
    label: str
    unit: str | None = None
    fmt: Callable[[object], str] = fmt_value
    short: str | None = None

    @property
    def header(self) -> str:
        """``"<label> (<unit>)"``: the CSV header and the name in "Conditions:" lines."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


_C = Column
COLUMNS: dict[str, Column] = {c.name: c for c in (
    # machine and run settings
    _C("machine", "machine"), _C("host", "host"),
    _C("device", "device"), _C("device_name", "device name"), _C("threads", "threads", fmt=fmt_count),
    _C("variant", "variant"), _C("joints", "joints", fmt=fmt_count), _C("spec_hash", "spec hash"),
    _C("backend", "backend"), _C("precision", "precision"),
    _C("tf32", "tf32"), _C("channels_last", "channels last"), _C("compile_mode", "compile mode"),
    _C("batch_size", "batch size", fmt=fmt_count), _C("input_size_px", "input size", "px", fmt=fmt_count),
    # accuracy
    _C("dataset", "dataset"), _C("split", "split"), _C("metric", "metric"), _C("protocol", "protocol"),
    _C("accuracy_pct", "accuracy", "%", fmt_pct), _C("eval_persons", "eval persons", fmt=fmt_count),
    _C("accuracy_source", "accuracy of"), _C("accuracy_vs_fp32_pct", "vs eager fp32", "points", fmt_pct),
    _C("accuracy_vs_fp32_ci_low_pct", "vs eager fp32 95% CI low", "points", fmt_pct),
    _C("accuracy_vs_fp32_ci_high_pct", "vs eager fp32 95% CI high", "points", fmt_pct),
    _C("padded", "last batch padded"),
    _C("accuracy_ci_low_pct", "accuracy 95% CI low", "%", fmt_pct), _C("accuracy_ci_high_pct", "accuracy 95% CI high", "%", fmt_pct),
    *[_C(f"{g.lower()}_pct", g, "%", fmt_pct) for g in PAPER_GROUPS], _C("mean_pct", "Mean", "%", fmt_pct),
    *[_C(f"{g.lower()}_ci_{end}_pct", f"{g} 95% CI {end}", "%", fmt_pct) for g in (*PAPER_GROUPS, "Mean") for end in ("low", "high")],
    _C("indistinguishable_from", "not distinguishable from (cheaper, on the front)", short="indistinguishable from"),
    _C("epoch", "epoch"), _C("pipeline_check", "pipeline check only"),
    # learning curves (hgbench.train.loop's history: per epoch)
    _C("steps", "optimiser steps", fmt=fmt_count), _C("train_loss", "training loss (epoch mean)"),
    _C("lr", "learning rate"), _C("val_accuracy_pct", "validation mean accuracy", "%", fmt_pct),
    # size and complexity
    _C("params", "parameters", fmt=fmt_thousands), _C("params_m", "parameters", "M"),
    _C("weights_fp32_mib", "weights fp32", "MiB"), _C("model_size_fp32_mib", "model size fp32", "MiB"),
    _C("gmacs_fvcore", "GMACs fvcore", "per sample"), _C("gmacs_thop", "GMACs thop", "per sample"),
    _C("gflops_flop_counter", "GFLOPs flop_counter", "per sample"),
    # latency, memory, numerics
    _C("latency_p50_ms", "latency p50", "ms/batch"), _C("latency_p90_ms", "latency p90", "ms/batch"),
    _C("latency_p99_ms", "latency p99", "ms/batch"), _C("latency_mean_ms", "latency mean", "ms/batch"),
    _C("latency_std_ms", "latency std", "ms/batch"), _C("timed_runs", "timed runs", fmt=fmt_count),
    _C("timed_repetitions", "timed repetitions"), _C("p50_range_pct", "p50 range over repetitions", "%", fmt_pct),
    _C("throughput_samples_per_s", "throughput", "samples/s"), _C("peak_memory_mib", "peak memory", "MiB"),
    _C("activation_memory_mib", "activation memory", "MiB/sample"), _C("build_time_s", "build time", "s"),
    _C("numerics_ok", "numerics ok"), _C("max_abs_error", "max abs error vs fp32"),
    _C("argmax_moved_pct", "argmax moved", "%", fmt_pct), _C("roofline_efficiency_pct", "roofline efficiency", "%", fmt_pct),
    _C("calibration_p50_ms", "calibration p50", "ms"), _C("pareto_optimal", "Pareto-optimal", fmt=fmt_star, short="Pareto"),
    # training and the per-joint table's inference column
    _C("training_h", "training", "h", fmt_hmm, short="training (h:mm)"), _C("trained_on", "trained on"),
    _C("inference_backend", "inference backend"), _C("inference_precision", "inference precision"),
    _C("inference_batch_size", "inference batch size", fmt=fmt_count),
    _C("inference_input_size_px", "inference input size", "px", fmt=fmt_count),
    _C("inference_p50_ms", "inference p50", "ms/batch"),
    _C("inference_val_set_min", "inference val set est.", "min", fmt_mmss, short="inference, val set est. (mm:ss)"),
    # provenance and sources
    _C("torch", "torch"), _C("cuda", "cuda"), _C("gpu_driver", "gpu driver"), _C("hgbench", "hgbench"),
    _C("git_commit", "git commit"), _C("profiled_at", "profiled at"), _C("profile_record", "profile record"),
    _C("accuracy_record", "accuracy record"), _C("train_record", "train record"), _C("num_stacks", "stacks", fmt=fmt_count),
    _C("error", "error"), _C("path", "path"), _C("reason", "reason"),
)}  # fmt: skip


def _interval_columns(name: str) -> tuple[str, str]:
    stem = name.removesuffix("_pct")
    return f"{stem}_ci_low_pct", f"{stem}_ci_high_pct"


# accuracy column -> its interval's (low, high) columns
INTERVALS: dict[str, tuple[str, str]] = {
    c: _interval_columns(c)
    for c in ("accuracy_pct", *[f"{g.lower()}_pct" for g in PAPER_GROUPS], "mean_pct", "accuracy_vs_fp32_pct")
}


def header(name: str) -> str:
    """The CSV header of a column: ``header("latency_p50_ms") == "latency p50 (ms/batch)"``.

    Raises:
        KeyError: a name not in :data:`COLUMNS`.
    """
    return COLUMNS[name].header


def short_header(name: str) -> str:
    """The Markdown/HTML header of a column (``"training (h:mm)"``)."""
    col = COLUMNS[name]
    return col.short or col.header


def cell(name: str, v) -> str:
    """``v`` of column ``name`` as Markdown/HTML text; :data:`MISSING` when not measured."""
    return MISSING if is_missing(v) else COLUMNS[name].fmt(v)
