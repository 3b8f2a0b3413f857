"""Rendering a :class:`hgbench.analysis.tables.Report` as text (step 3 of
:mod:`hgbench.analysis.report`): CSV, Markdown and HTML.

Here, and only here, the snake_case columns become labels with units
(:mod:`hgbench.analysis.labels`):

- CSV (:func:`csv_bytes`): raw numbers under the columns' headers (``"latency p50 (ms/batch)"``),
  empty cells where not measured;
- Markdown / HTML (:func:`render_markdown`, :func:`render_html`): one small document model
  (:func:`_document`) with a header of the conditions, where the records span several machines
  the latency matrix (one table per batch size, a column per machine / backend / precision, p50
  ms per batch: :func:`_matrix_blocks`) and the accuracy-vs-latency figures with a panel per
  machine, then one section per machine (its machine label: records of different machines are
  never mixed in one column), cells formatted per column ("—" where
  not measured, training ``h:mm`` and inference ``mm:ss`` as seed 002 prints them), and each
  accuracy with its 95 % interval in one cell where the records have one
  (:func:`hgbench.analysis.labels.fmt_pct_interval`), with a line under each table saying how
  wide the intervals are, i.e. which differences are noise.

Where an accuracy shown comes from a pipeline-check run (:attr:`Report.pipeline_checks`), the
document says so right under its title (:func:`pipeline_check_note`) and marks those tables'
titles; where training runs have learning curves (:attr:`Report.learning`), a section links
``learning_curves.csv`` and shows ``plots/learning_curves.png``.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hgbench.accuracy.interval import CONFIDENCE_LEVEL, METHOD, N_RESAMPLES
from hgbench.analysis.labels import INTERVALS, MISSING, cell, fmt_pct_interval, header, is_missing, short_header
from hgbench.analysis.tables import (
    ACCURACY_KEY,
    FAILED_COLUMNS,
    GROUP_COLUMNS,
    MACHINE,
    MATRIX_INDEX,
    Report,
    reason_class,
    reason_counts,
)

FORMATS = ("md", "csv", "html", "png")
DEFAULT_FORMATS = ("md", "csv", "png")
LEARNING_CURVES_CSV = "learning_curves.csv"
LEARNING_CURVES_PNG = "learning_curves.png"  # under plots/, hgbench.analysis.plots
LATENCY_MATRIX_CSV = "latency_matrix.csv"
"""The latency matrix (:func:`hgbench.analysis.tables.latency_matrix`) as one CSV, written where
the records span several machines: one row per batch size and network (columns ``batch size``,
``variant``, ``joints``, ``spec hash``, ``input size (px)``), then one column per machine /
backend / precision (``"<machine>/<backend>/<precision>"``), each cell the p50 latency in ms per
batch, empty where not measured. One long file with a batch-size column rather than one per
batch: ``pd.read_csv(path, index_col=[0, 1, 2, 3, 4])`` gives the matrix, ``.loc[1]`` one batch
size's, ``.stack()`` the tidy form."""
MACHINE_PANELS_PREFIX = "accuracy_vs_latency__machines__"
"""File name start of the accuracy-vs-latency figures with one panel per machine
(:func:`hgbench.analysis.plots.machine_panel_figures`), shown in the latency-matrix section."""
REFERENCE_README = "benchmarks/reference/lspet-cpu/README.md"
"""Where the report of pipeline-check runs sends its reader for real accuracy: the reference
training on LSPET photos under a CPU protocol that learns (issue 20)."""

COST_SHOWN = ["variant", "backend", "precision", "tf32", "channels_last", "compile_mode", "accuracy_pct", "accuracy_source",
              "accuracy_vs_fp32_pct", "params_m",
              "gmacs_fvcore", "latency_p50_ms", "latency_p90_ms", "throughput_samples_per_s", "peak_memory_mib", "numerics_ok",
              "pareto_optimal", "indistinguishable_from"]  # fmt: skip
COST_CONDITIONS = ["joints", "threads", "backend", "precision", "tf32", "channels_last", "compile_mode"]
PER_JOINT_SHOWN = ["variant", *GROUP_COLUMNS, "mean_pct", "params_m", "weights_fp32_mib", "gmacs_fvcore", "training_h",
                   "inference_p50_ms", "inference_val_set_min"]  # fmt: skip
PER_JOINT_CONDITIONS = [
    "joints",
    "trained_on",
    "inference_backend",
    "inference_precision",
    "inference_batch_size",
    "inference_input_size_px",
]


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    """``"md,csv"`` -> ``("md", "csv")``.

    Raises:
        ValueError: an unknown format (naming the known ones).
    """
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        raise ValueError(
            f"--format {','.join(items) or text!r}: expected a comma-separated list of {', '.join(FORMATS)}"
        )
    return tuple(dict.fromkeys(items))


def csv_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as CSV: raw values under each column's header (:func:`hgbench.analysis.labels.header`);
    the latency matrix's machine/backend/precision columns (:data:`LATENCY_MATRIX_CSV`) keep their names."""
    if list(df.columns[: len(MATRIX_INDEX)]) == MATRIX_INDEX:
        return df.rename(columns={c: header(c) for c in MATRIX_INDEX}).to_csv(index=False).encode()
    return df.rename(columns=header).to_csv(index=False).encode()


# --------------------------------------------------------------------------------------------
# A small document model, rendered to Markdown and HTML


@dataclass
class _Block:
    kind: str  # "h1".."h4", "p", "ul", "table", "img"
    content: Any


def _display(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df[columns]`` as text (missing -> "—") under the Markdown/HTML headers."""
    cols = [c for c in columns if c in df.columns]
    data = {}
    for c in cols:
        low, high = INTERVALS.get(c, (None, None))
        if low in df.columns and high in df.columns:  # the accuracy and its interval in one cell
            data[short_header(c)] = [MISSING if is_missing(v) else fmt_pct_interval(v, lo, hi)
                                     for v, lo, hi in zip(df[c].tolist(), df[low].tolist(), df[high].tolist(), strict=True)]  # fmt: skip
        else:
            data[short_header(c)] = [cell(c, v) for v in df[c].tolist()]
    return pd.DataFrame(data, columns=list(data))


def _interval_note(rows: pd.DataFrame, low: str, high: str, persons) -> str | None:
    """One sentence on how wide the table's 95 % intervals are (median half-width over its rows
    with one) and so which differences between two rows are noise; None without intervals."""
    if low not in rows.columns or high not in rows.columns:
        return None
    half = ((pd.to_numeric(rows[high], errors="coerce") - pd.to_numeric(rows[low], errors="coerce")) / 2).dropna()
    if half.empty:
        return None
    h = float(half.median())
    n = f"With {int(persons)} evaluated persons" if persons is not None and not is_missing(persons) else "Here"
    return (f"{n}, the {CONFIDENCE_LEVEL:.0%} intervals (in parentheses) reach about ±{h:.1f} points (median): a difference "
            f"of up to about {2 * h:.1f} points between two rows can be noise, and rows whose intervals overlap are not told "
            "apart.")  # fmt: skip


def _constant_conditions(df: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """Split condition columns into those constant in ``df`` (returned as "header: value"
    lines for a table's header) and those that vary (kept as table columns)."""
    constant, varying = [], []
    for c in columns:
        values = df[c].tolist()
        first = values[0] if values else None
        if all((is_missing(v) and is_missing(first)) or v == first for v in values):
            if not is_missing(first):
                constant.append(f"{header(c)}: {cell(c, first)}")
        else:
            varying.append(c)
    return constant, varying


def _machine_title(machine: tuple, rows: pd.DataFrame, hosts: Sequence[str] = ()) -> str:
    """A machine section's title: its machine label, device kind and name, the host names where
    the label is not its host's (``hosts``: :attr:`Report.hosts` of the label), and the
    versions of ``rows`` (its cost rows)."""
    label, device, name = machine
    if label is None or is_missing(label):
        return "Not profiled"
    extra = []
    for col, text in (
        ("torch", "torch"),
        ("cuda", "CUDA"),
        ("gpu_driver", "driver"),
        ("hgbench", "hgbench"),
        ("git_commit", "commit"),
    ):
        if col in rows:
            vals = sorted({str(v) for v in rows[col].tolist() if not is_missing(v)})
            if vals:
                extra.append(f"{text} {' / '.join(vals)}" + (" (mixed)" if len(vals) > 1 else ""))
    on = f" on host {', '.join(f'`{h}`' for h in hosts)}" if hosts and list(hosts) != [str(label)] else ""
    return f"Machine `{label}`{on}: {device}, {name or 'device name not recorded'}" + (
        f" ({', '.join(extra)})" if extra else ""
    )


def _accuracy_title(key: tuple, persons=None, pipeline_check: bool = False) -> str:
    dataset, split, metric, protocol = key
    if is_missing(dataset):
        return "No accuracy record (profiled, not trained or evaluated)"
    n = f", {int(persons)} persons" if persons is not None and not is_missing(persons) else ""
    if is_missing(metric):
        return f"No validation recorded: {dataset}, protocol {protocol}"
    check = " (pipeline check, not a ranking)" if pipeline_check else ""
    return f"{metric} (%) on {dataset}/{split}{n}, protocol {protocol}{check}"


def _steps_text(steps: list[int]) -> str:
    if not steps:
        return "a few steps"
    if len(steps) == 1:
        return f"{steps[0]} steps"
    return f"{steps[0]} to {steps[-1]} steps"


def pipeline_check_note(report: Report) -> str | None:
    """The sentence under the report's title when accuracies shown come from pipeline-check runs
    (:attr:`Report.pipeline_checks`): which protocols, how many optimiser steps, that they only
    check that training and evaluation work, and where real accuracy is
    (:data:`REFERENCE_README`); None when there is none."""
    checks = report.pipeline_checks
    if not checks:
        return None
    if len(checks) == 1 and len(steps := next(iter(checks.values()))) == 1:
        what = f"The accuracies of protocol `{next(iter(checks))}` in this report come from {steps[0]}-step runs"
    else:
        listed = ", ".join(f"`{p}` ({_steps_text(s)} per run)" for p, s in checks.items())
        what = (
            f"The accuracies of protocol{'s' if len(checks) > 1 else ''} {listed} in this report come from short runs"
        )
    return (f"**Pipeline check, not a ranking.** {what} (`pipeline_check: true`): they check only that training and "
            f"evaluation work, and do not rank the variants. Real accuracy: `{REFERENCE_README}`.")  # fmt: skip


def _groups(df: pd.DataFrame, keys: list[str]) -> Iterable[tuple[tuple, pd.DataFrame]]:
    if df.empty:
        return []
    return ((k if isinstance(k, tuple) else (k,), g) for k, g in df.groupby(keys, dropna=False, sort=False))


def _first_persons(rows: pd.DataFrame):
    persons = rows["eval_persons"].dropna()
    return persons.iloc[0] if len(persons) else None


def _document(report: Report, plots: list[tuple[str, Path]], tables: Sequence[Path] = ()) -> list[_Block]:
    """The report as blocks, in order: the header (:func:`_header_blocks`), the latency matrix
    across machines with its per-machine panels where there are several machines
    (:func:`_matrix_blocks`), the accuracy-vs-cost tables (:func:`_cost_blocks`), the per-joint
    tables (:func:`_per_joint_blocks`), the learning curves (:func:`_learning_blocks`), failed measurements and skipped records
    (:func:`_failed_blocks`, :func:`_skipped_blocks`) and the other plots (:func:`_plot_blocks`)."""
    checked = set(report.pipeline_checks)
    return [
        *_header_blocks(report),
        *_matrix_blocks(report, plots, tables),
        *_cost_blocks(report, checked),
        *_per_joint_blocks(report, checked),
        *_learning_blocks(report, plots, tables),
        *_failed_blocks(report),
        *_skipped_blocks(report),
        *_plot_blocks(plots),
    ]


def _header_blocks(report: Report) -> list[_Block]:
    """The title, the pipeline-check note where there is one, and the conditions: where the
    records came from, each metric's convention, how accuracy, latency, size and the Pareto
    front are defined, the intervals and the report's notes."""
    b: list[_Block] = [_Block("h1", "hgbench report")]
    if note := pipeline_check_note(report):
        b.append(_Block("p", note))
    b.append(_Block("ul", [
        (f"Generated {report.created} from {report.files} record files in: {', '.join(f'`{s}`' for s in report.sources)}; "
         f"filters: {report.filters.describe()}."),
        *[f"Accuracy, {m}: {c}." for m, c in sorted(report.conventions.items())],
        ("Accuracy is that of the trained fp32 checkpoint (the eval record of the network, dataset and protocol if any, else the "
         "training run's last validation); rows at other backends and precisions reuse it. A row joins records of one network "
         "only (variant, spec hash and joints: a variant whose YAML was edited is another network). `numerics ok` says "
         "whether a backend/precision reproduces the fp32 eager heatmaps within tolerance (— for eager fp32 itself)."),
        ("Latency: p50 / p90 of the timed runs after warm-up, ms per batch (batch size in each table's title), on the machine of "
         "its section; throughput = batch size / p50, samples/s. GMACs: 10^9 multiply-accumulates per sample (fvcore's count; "
         "FLOPs = 2 x MACs), at the profiled input size."),
        ("Parameters (M) = 10^6 parameters; weights fp32 (MiB) = parameters x 4 bytes / 2^20, the quantity seed 002's Table 1 "
         "prints as 'Num. of Parameters' (its 8-stack '97.7M' = 25.59M parameters x 4 B)."),
        (f"Pareto (★): no other row of the same table (machine, dataset/split/metric/protocol, batch size, input size) is at least "
         f"as accurate and at least as cheap in {header(report.pareto_cost)}, strictly better in one; rows without accuracy, and "
         "reduced-precision rows whose numerics check failed, are never on the front."),
        *_interval_items(report),
        *report.notes,
    ]))  # fmt: skip
    return b


def _table_blocks(
    rows: pd.DataFrame, conditions: list[str], shown: list[str], interval: tuple[str, str], per_network: bool = False
) -> list[_Block]:
    """One table: its constant ``conditions`` as a line, the ``shown`` columns (a condition
    among them only where it varies) and the line on its intervals (``interval``: the low and
    high columns; :func:`_interval_note` over its rows, over one row per network where
    ``per_network``: the cost table repeats a network's accuracy on each of its settings)."""
    b: list[_Block] = []
    constant, varying = _constant_conditions(rows, conditions)
    if constant:
        b.append(_Block("p", "Conditions: " + "; ".join(constant) + "."))
    b.append(_Block("table", _display(rows, [c for c in shown if c not in conditions or c in varying])))
    note_rows = (
        rows.drop_duplicates([c for c in ("variant", "joints", "spec_hash") if c in rows]) if per_network else rows
    )
    if note := _interval_note(note_rows, *interval, _first_persons(rows)):
        b.append(_Block("p", note))
    return b


def _matrix_blocks(report: Report, plots: list[tuple[str, Path]], tables: Sequence[Path]) -> list[_Block]:
    """The latency matrix across machines (:attr:`Report.latency_matrix`), one table per batch
    size, and the accuracy-vs-latency figures with a panel per machine; nothing for one machine."""
    matrix = report.latency_matrix
    if matrix.empty:
        return []
    settings = [c for c in matrix.columns if c not in MATRIX_INDEX]
    data = (
        f" (`{LATENCY_MATRIX_CSV}`: all batch sizes in one file)"
        if any(p.name == LATENCY_MATRIX_CSV for p in tables)
        else ""
    )
    b = [_Block("h2", "Latency across machines (p50, ms per batch)")]
    b.append(_Block("p", "One row per network (variant, its spec hash where a variant has several, joints) at one input size, "
                         "one column per machine / backend / precision; each cell the p50 latency in ms per batch of the batch "
                         f"size in the table's title, — where not measured{data}. The machine is the machine label of the profile "
                         "records (`hgbench profile --machine-label`, default the host name). Latencies of two machines compare "
                         "like for like only at the same batch size, input size and threads; the accuracy-vs-cost sections "
                         "below give each machine's conditions."))  # fmt: skip
    for (batch,), rows in _groups(matrix, ["batch_size"]):
        b.append(_Block("h3", f"Batch {cell('batch_size', batch)}: latency p50 (ms per batch)"))
        constant, varying = _constant_conditions(rows, ["joints", "input_size_px"])
        if constant:
            b.append(_Block("p", "Conditions: " + "; ".join(constant) + "."))
        network = _with_spec_hash(rows, ["variant", "joints", "input_size_px"])
        index = [c for c in network if c not in ("joints", "input_size_px") or c in varying]
        shown = _display(rows, index)
        for c in settings:
            shown[c] = [cell("latency_p50_ms", v) for v in rows[c].tolist()]
        b.append(_Block("table", shown))
    return b + [
        blk
        for t, p in plots
        if p.name.startswith(MACHINE_PANELS_PREFIX)
        for blk in (_Block("p", t), _Block("img", (t, p)))
    ]


def _cost_blocks(report: Report, checked: set[str]) -> list[_Block]:
    """The accuracy-vs-cost section: one part per machine, one table per accuracy, batch size
    and input size; ``checked``: the pipeline-check protocols (marked in the titles)."""
    b: list[_Block] = [_Block("h2", "Accuracy vs cost")]
    if report.cost.empty:
        b.append(_Block("p", "No profile records: run `hgbench profile`."))
    for machine, mrows in _groups(report.cost, MACHINE):
        b.append(_Block("h3", _machine_title(machine, mrows, report.hosts.get(str(machine[0]), ()))))
        for key, rows in _groups(mrows, ACCURACY_KEY + ["batch_size", "input_size_px"]):
            size = key[5]
            title = _accuracy_title(key[:4], _first_persons(rows), key[3] in checked)
            b.append(_Block("h4", f"{title}; batch {key[4]}, input {size}x{size} px"))
            shown = _with_spec_hash(rows, COST_SHOWN)
            interval = ("accuracy_ci_low_pct", "accuracy_ci_high_pct")
            b += _table_blocks(rows, COST_CONDITIONS, shown, interval, per_network=True)
    return b


def _per_joint_blocks(report: Report, checked: set[str]) -> list[_Block]:
    """The per-joint section (seed 002's Table 1): one part per machine, one table per accuracy."""
    b: list[_Block] = [_Block("h2", "Per-joint accuracy (the layout of seed 002's Table 1)")]
    b.append(_Block("p", "Columns as Elhagry et al.'s Table 1: per-group accuracy and Mean (%), size, GMACs, training time "
                         "(h:mm, as the paper), inference. The inference column is one profile record per variant on this machine "
                         "(conditions above each table); 'inference, val set est.' = p50 per batch x batches in the evaluated split, "
                         "forward passes only (the paper's minutes include its whole evaluation loop)."))  # fmt: skip
    if report.per_joint.empty:
        b.append(_Block("p", "No accuracy records: run `hgbench train-all` (or `hgbench evaluate`)."))
    for machine, mrows in _groups(report.per_joint, MACHINE):
        if is_missing(machine[0]):
            b.append(_Block("h3", "Not profiled on any machine"))
        else:
            rows = report.cost[report.cost["machine"] == machine[0]]
            b.append(_Block("h3", _machine_title(machine, rows, report.hosts.get(str(machine[0]), ()))))
        for key, rows in _groups(mrows, ACCURACY_KEY):
            b.append(_Block("h4", _accuracy_title(key, _first_persons(rows), key[3] in checked)))
            shown = _with_spec_hash(rows, ["variant", *PER_JOINT_CONDITIONS, *PER_JOINT_SHOWN[1:]])
            b += _table_blocks(rows, PER_JOINT_CONDITIONS, shown, ("mean_ci_low_pct", "mean_ci_high_pct"))
    return b


def _with_spec_hash(rows: pd.DataFrame, shown: list[str]) -> list[str]:
    """``shown`` with ``spec_hash`` after ``variant`` where a variant of ``rows`` has rows of
    several spec hashes (two networks of one name: its YAML was edited between runs)."""
    if "spec_hash" not in rows or rows.empty or rows.groupby("variant")["spec_hash"].nunique(dropna=False).max() < 2:
        return shown
    return [c for col in shown for c in ((col, "spec_hash") if col == "variant" else (col,))]


def _learning_blocks(report: Report, plots: list[tuple[str, Path]], tables: Sequence[Path]) -> list[_Block]:
    """The learning-curves section (its CSV named where written, its plot shown), if any run has a curve."""
    if report.learning.empty:
        return []
    data = (
        f" (`{LEARNING_CURVES_CSV}`: one row per epoch)" if any(p.name == LEARNING_CURVES_CSV for p in tables) else ""
    )
    b = [_Block("h2", "Learning curves")]
    b.append(_Block("p", f"Validation mean accuracy and training loss per epoch of each training run{data}; an epoch "
                         "without validation has no accuracy point. A curve that still rises at its last epoch has "
                         "not converged: longer training may reach more."))  # fmt: skip
    return b + [_Block("img", (title, path)) for title, path in plots if path.name == LEARNING_CURVES_PNG]


def _failed_blocks(report: Report) -> list[_Block]:
    """The failed measurements, as a table, if any."""
    if report.failed.empty:
        return []
    return [
        _Block("h2", f"Failed measurements ({len(report.failed)})"),
        _Block("table", _display(report.failed, FAILED_COLUMNS)),
    ]


def _skipped_blocks(report: Report) -> list[_Block]:
    """The records skipped, by reason: each reason with its count and its first five files."""
    if not report.skipped:
        return []
    items = []
    for reason, n in reason_counts(report.skipped):
        hits = [(p, r) for p, r in report.skipped if reason_class(r) == reason]
        # the full reason of each of the first five (e.g. which newer record superseded it)
        shown = "; ".join(f"`{p}`" + (f" ({r})" if r != reason else "") for p, r in hits[:5])
        items.append(f"{n} x {reason}: {shown}" + (f"; and {n - 5} more (see skipped.csv)" if n > 5 else ""))
    return [_Block("h2", f"Records skipped ({len(report.skipped)})"), _Block("ul", items)]


def _plot_blocks(plots: list[tuple[str, Path]]) -> list[_Block]:
    """The plots other than the learning curves and the per-machine panels, each with its caption."""
    others = [
        (t, p) for t, p in plots if p.name != LEARNING_CURVES_PNG and not p.name.startswith(MACHINE_PANELS_PREFIX)
    ]
    if not others:
        return []
    return [_Block("h2", "Plots")] + [blk for t, p in others for blk in (_Block("p", t), _Block("img", (t, p)))]


def _interval_items(report: Report) -> list[str]:
    """The report header's lines on accuracy intervals, where any row has one."""
    if "accuracy_ci_low_pct" not in report.cost.columns and "mean_ci_low_pct" not in report.per_joint.columns:
        return []
    return [
        (f"Accuracy intervals: each accuracy is followed by its {CONFIDENCE_LEVEL:.0%} confidence interval, a bootstrap over the "
         f"evaluated persons ({N_RESAMPLES} resamples, {METHOD} method; a person's joints are resampled together, and each group "
         "and the Mean are recomputed as pooled ratios of correct to scored joints). Accuracies from records without an interval "
         "are shown without one."),
        ("The intervals measure the evaluation's sampling noise (a line under each table says how wide they are there): with a "
         "few hundred persons they are several points wide, and differences of a point or two are noise. Where two rows' "
         "intervals overlap, this report does not tell them apart (a conservative test). `indistinguishable from` names, "
         "for a Pareto-optimal row, the cheapest row of the front whose interval overlaps its own: its extra cost buys no "
         "accuracy this evaluation can show."),
    ]  # fmt: skip


def _md_table(df: pd.DataFrame) -> str:
    def esc(s: str) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(c) for c in df.columns) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in df.itertuples(index=False, name=None)]
    return "\n".join(lines)


def render_markdown(
    report: Report, plots: Sequence[tuple[str, Path]] = (), base: Path | None = None, tables: Sequence[Path] = ()
) -> str:
    """The report as Markdown; ``plots`` are ``(caption, path)`` images linked relative to ``base``,
    ``tables`` the CSV files written beside it (those the text names, e.g. ``learning_curves.csv``)."""
    out = []
    for blk in _document(report, list(plots), tables):
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


def render_html(
    report: Report, plots: Sequence[tuple[str, Path]] = (), base: Path | None = None, tables: Sequence[Path] = ()
) -> str:
    """The report as one HTML page (tables by ``DataFrame.to_html``); arguments as :func:`render_markdown`."""
    style = ("body{font-family:sans-serif;margin:2em} table{border-collapse:collapse;font-size:90%} "
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right} img{max-width:100%}")  # fmt: skip
    out = [
        "<!DOCTYPE html>",
        "<html><head><meta charset='utf-8'><title>hgbench report</title>",
        f"<style>{style}</style></head><body>",
    ]

    def inline(text: str) -> str:
        text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html.escape(text))
        return re.sub(r"`([^`]*)`", r"<code>\1</code>", text)

    for blk in _document(report, list(plots), tables):
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
