"""PNG plots of a :class:`hgbench.analysis.tables.Report` (matplotlib, Agg canvas, no pyplot state).

- accuracy vs latency p50, one plot per table of the accuracy-vs-cost section (one machine,
  one dataset/split/metric/protocol, one batch size, one input size), backends and precisions
  as colours, the Pareto front (:func:`hgbench.analysis.tables.pareto_optimal`) drawn as a staircase;
- where the records span several machines, the same plot with one panel per machine side by
  side, sharing the accuracy axis, one figure per dataset/split/metric/protocol, batch size and
  input size (:func:`machine_panel_figures`, drawn by the same code:
  :func:`accuracy_vs_latency_panels`);
- accuracy vs GMACs (per sample) and vs parameters, one plot per dataset/split/metric/protocol
  (and input size for GMACs): these are counts, the same on every machine;
- the learning curves, ``learning_curves.png``: validation mean accuracy and training loss per
  epoch, one line per training run (as seed ``001_25df7af4abb369d1.txt`` plots its runs'
  validation accuracy by epoch), a row of two panels per dataset/split/protocol, the line style
  the number of stacks (from the train records' ``spec``) where there are several
  (:func:`learning_curves_figure`, from :func:`hgbench.analysis.tables.learning_table`);
- per-joint accuracy as a grouped bar chart (Head ... Ankle, Mean; a bar per variant).

Where the records carry 95 % confidence intervals of the accuracy
(:mod:`hgbench.accuracy.interval`), the accuracy-vs-cost plots and the bars draw them as error
bars; points without one are drawn without.

Every plot's axes carry units and its subtitle the conditions (machine, backend, precision,
batch size, input size, dataset/split, protocol).
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from hgbench.analysis.labels import INTERVALS, PAPER_GROUPS, is_missing
from hgbench.analysis.render import LEARNING_CURVES_PNG, MACHINE_PANELS_PREFIX
from hgbench.analysis.tables import (
    ACCURACY_KEY,
    COST_GROUP,
    GROUP_COLUMNS,
    MACHINE,
    QUANTIZED_PRECISIONS,
    Report,
    accuracy_for_pareto,
    pareto_optimal,
    setting_text,
    threads_text,
)
from hgbench.records import atomic_write_bytes

FIG_SIZE = (9.0, 6.0)  # inches; at 110 dpi about 1000 x 660 px
LEARNING_GROUP = ["dataset", "split", "protocol"]  # one row of the learning curves' panels each
_STYLES = ["-", "--", "-.", ":"]  # line styles of the learning curves, one per number of stacks
_MARKERS = ["o", "s", "^", "D", "v"]  # tell apart variants whose colours repeat
ACC = "accuracy_pct"
ACC_LOW, ACC_HIGH = INTERVALS[ACC]


def _error_bars(rows: pd.DataFrame, value: str, low: str, high: str) -> np.ndarray | None:
    """``(2, N)`` distances from ``rows[value]`` down to ``rows[low]`` and up to ``rows[high]``
    (matplotlib's ``yerr``), 0 where a row has no interval; None when no row has one."""
    if low not in rows or high not in rows:
        return None
    v, lo, hi = (pd.to_numeric(rows[c], errors="coerce").to_numpy(float) for c in (value, low, high))
    has = np.isfinite(lo) & np.isfinite(hi)
    if not has.any():
        return None
    return np.where(has, np.vstack([v - lo, hi - v]), 0.0).clip(min=0.0)


def figure_png(fig: Figure) -> bytes:
    """A matplotlib Figure rendered to PNG bytes (Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _slug(*parts) -> str:
    text = "__".join(str(p) for p in parts if p is not None and not is_missing(p))
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")[:180]


def _setting(row) -> str:
    """Backend, precision and switches of a profile row: ``"compile (max-autotune) fp16 +tf32 +cl"``
    (:func:`hgbench.analysis.tables.setting_text`)."""
    return " ".join(setting_text(row))


def _save(fig: Figure, path: Path) -> Path:
    atomic_write_bytes(path, figure_png(fig))
    return path


def _titles(fig: Figure, ax, title: str, subtitle: str) -> None:
    fig.suptitle(title, fontsize=12, fontweight="bold")
    ax.set_title("\n".join(textwrap.wrap(subtitle, 120)), fontsize=8, loc="left", color="0.3")


def accuracy_vs_cost_figure(
    points: pd.DataFrame, x: str, xlabel: str, ylabel: str, title: str, subtitle: str, series: str | None = None
) -> Figure:
    """A scatter of ``points.accuracy_pct`` against ``points[x]`` with the Pareto front.

    Args:
        points: one row per point with columns ``x``, ``accuracy_pct``, ``label`` (drawn
            beside the point), ``front`` (bool, on the Pareto front), optionally ``series``
            (colour groups), ``excluded`` (bool: drawn as a cross, e.g. numerics failed),
            ``precision`` (int8/fp8 points get a square around them) and
            ``accuracy_ci_low_pct``, ``accuracy_ci_high_pct`` (the 95 % interval, drawn as an
            error bar where present).
        x, xlabel, ylabel: cost column and axis labels (with units).
        title, subtitle: the figure's title and its conditions line.

    The x axis is logarithmic when the costs span more than a factor of 20
    (:func:`_draw_accuracy_vs_cost`, which :func:`accuracy_vs_latency_panels` draws too).
    """
    fig = Figure(figsize=FIG_SIZE)
    ax = fig.add_subplot()
    _draw_accuracy_vs_cost(ax, points, x, xlabel, ylabel, series)
    _titles(fig, ax, title, subtitle)
    return fig


def accuracy_vs_latency_panels(
    panels: list[tuple[str, pd.DataFrame]], xlabel: str, ylabel: str, title: str, subtitle: str
) -> Figure:
    """One figure, one panel per machine, side by side with a shared accuracy axis: each panel
    the scatter of :func:`accuracy_vs_cost_figure` (its Pareto front, intervals, crosses and
    squares) of that machine's points against ``latency_p50_ms``, one colour per backend /
    precision (``series``), the same colour for a setting in every panel.

    Args:
        panels: ``(panel title, points)`` per machine; ``points`` as :func:`accuracy_vs_cost_figure`'s,
            with ``latency_p50_ms`` (ms per batch) and ``series``.
        xlabel, ylabel: axis labels (with units); title, subtitle: the figure's title and its
            conditions line.

    Each panel's latency axis is its own (machines differ by orders of magnitude; logarithmic
    where a panel's latencies span more than a factor of 20).
    """
    n = max(len(panels), 1)
    fig = Figure(figsize=(1.0 + 5.2 * n, FIG_SIZE[1] + 0.6))
    axes = fig.subplots(1, n, sharey=True, squeeze=False)[0]
    names = sorted({str(v) for _, pts in panels for v in pts["series"]})
    colours = dict(zip(names, _colours(len(names)), strict=False))
    for ax, (panel_title, pts) in zip(axes, panels, strict=False):
        _draw_accuracy_vs_cost(ax, pts, "latency_p50_ms", xlabel, ylabel if ax is axes[0] else "", "series", colours)
        ax.set_title("\n".join(textwrap.wrap(panel_title, 50)), fontsize=9)
    fig.suptitle(title + "\n" + "\n".join(textwrap.wrap(subtitle, 40 * n + 40)), fontsize=11)
    return fig


def _draw_accuracy_vs_cost(
    ax, points: pd.DataFrame, x: str, xlabel: str, ylabel: str, series: str | None, colours: dict | None = None
) -> None:
    """Draw :func:`accuracy_vs_cost_figure`'s scatter, error bars, Pareto staircase and labels
    into ``ax``; ``colours`` (series name -> colour) fixes the colours across panels, else
    one per series in sorted order. The legend goes right of a lone plot, inside a panel."""
    pts = points[points[ACC].notna() & points[x].notna()]
    groups = [(None, pts)] if series is None else list(pts.groupby(series, sort=True))
    palette = [colours[str(name)] for name, _ in groups] if colours else _colours(len(groups))
    bar_label = "95% interval (bootstrap over persons)"  # on the first error bar only
    quantized_label = "□ int8/fp8 (post-training quantized)"  # on the first square only
    for (name, g), colour in zip(groups, palette, strict=False):  # _colours gives one colour at least
        excluded = g["excluded"].astype(bool) if "excluded" in g else pd.Series(False, index=g.index)
        yerr = _error_bars(g, ACC, ACC_LOW, ACC_HIGH)
        if yerr is not None:
            ax.errorbar(g[x], g[ACC], yerr=yerr, fmt="none", ecolor=colour, elinewidth=0.9, capsize=2.5, alpha=0.7, zorder=2,
                        label=bar_label)  # fmt: skip
            bar_label = None
        label = None if name is None else str(name)  # on the series' first drawn marker only
        for on_front, marker, size in ((False, "o", 30), (True, "*", 160)):
            sel = g[(g["front"] == on_front) & ~excluded]
            if len(sel):
                ax.scatter(sel[x], sel[ACC], marker=marker, s=size, color=colour, edgecolor="black" if on_front else "none",
                           linewidth=0.6, zorder=3, label=label)  # fmt: skip
                label = None
        quantized = g[g["precision"].isin(QUANTIZED_PRECISIONS)] if "precision" in g else g.iloc[:0]
        if len(quantized):  # a square around every int8/fp8 point (issue 27: seen at a glance)
            ax.scatter(quantized[x], quantized[ACC], marker="s", s=170, facecolors="none", edgecolors=colour, linewidth=1.2,
                       zorder=3, label=quantized_label)  # fmt: skip
            quantized_label = None
        sel = g[excluded]
        if len(sel):
            ax.scatter(sel[x], sel[ACC], marker="x", s=40, color=colour, zorder=3,
                       label=f"{label + ': ' if label else ''}numerics check failed (not on the front)")  # fmt: skip
    _front_and_labels(ax, pts, x, xlabel, ylabel)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        inside = colours is not None
        ax.legend(fontsize=7 if inside else 8, loc="lower right" if inside else "upper left",
                  bbox_to_anchor=None if inside else (1.01, 1.0))  # fmt: skip


def _front_and_labels(ax, pts: pd.DataFrame, x: str, xlabel: str, ylabel: str) -> None:
    """The Pareto staircase, the log scale where the costs span more than a factor of 20, one
    label per variant at its cheapest point and the axes' labels (:func:`_draw_accuracy_vs_cost`)."""
    front = pts[pts["front"]].sort_values([x, ACC])
    if len(front):
        ax.step(front[x], front[ACC], where="post", color="crimson", linewidth=1.2, zorder=2,
                label="Pareto front (★: optimal; higher accuracy, lower cost)")  # fmt: skip
    if len(pts) and pts[x].min() > 0 and pts[x].max() / pts[x].min() > 20:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        xlabel += ", log scale"
    # one label per variant, at its cheapest point; its other settings share its accuracy, so a faint
    # line joins them instead of repeating the name
    first = pts.sort_values(x).drop_duplicates("label")
    for _, g in pts.groupby("label"):
        if len(g) > 1:
            ax.plot([g[x].min(), g[x].max()], [g[ACC].iloc[0]] * 2, color="0.75", linewidth=0.8, zorder=1)
    _place_labels(ax, first[x].to_numpy(float), first[ACC].to_numpy(float), [str(v) for v in first["label"]],
                  obstacles_xy=pts[[x, ACC]].to_numpy(float))  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(pts) == 0:
        ax.text(0.5, 0.5, "no point with both accuracy and cost", ha="center", va="center", transform=ax.transAxes)


# Where a point's label may go, in points from the point: right/left of it, then further up/down.
_LABEL_OFFSETS = [(5, 3), (5, -10), (-5, 3), (-5, -10), (5, 11), (5, -18), (-5, 11), (-5, -18), (5, 19), (-5, 19)]


def _place_labels(ax, xs: np.ndarray, ys: np.ndarray, labels: list[str], fontsize: float = 7,
                  obstacles_xy: np.ndarray | None = None) -> None:  # fmt: skip
    """Label each point, choosing per label the first offset of :data:`_LABEL_OFFSETS` whose
    text box (estimated from the character count) overlaps neither a label placed before nor
    a marker (``obstacles_xy``, ``(N, 2)`` data coordinates; default the labelled points);
    greedy, left to right. Falls back to the first offset."""
    if not len(labels):
        return
    ax.autoscale_view()
    dpi = ax.figure.dpi
    px = ax.transData.transform(np.column_stack([xs, ys]))
    markers = px if obstacles_xy is None else ax.transData.transform(obstacles_xy)
    char_w, height, pt = fontsize * 0.62 * dpi / 72, fontsize * 1.15 * dpi / 72, dpi / 72
    r = 5 * pt  # markers as small squares
    obstacles = [(x - r, y - r, x + r, y + r) for x, y in markers]

    def free(box) -> bool:
        return not any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in obstacles)

    for i in np.argsort(px[:, 0], kind="stable"):
        width = len(labels[i]) * char_w
        choice = None
        for dx, dy in _LABEL_OFFSETS:
            x0 = px[i, 0] + dx * pt - (width if dx < 0 else 0)
            box = (x0, px[i, 1] + dy * pt, x0 + width, px[i, 1] + dy * pt + height)
            if free(box):
                choice = (dx, dy, box)
                break
        if choice is None:
            dx, dy = _LABEL_OFFSETS[0]
            choice = (
                dx,
                dy,
                (px[i, 0] + dx * pt, px[i, 1] + dy * pt, px[i, 0] + dx * pt + width, px[i, 1] + dy * pt + height),
            )
        dx, dy, box = choice
        obstacles.append(box)
        ax.annotate(labels[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, color="0.15",
                    ha="left" if dx > 0 else "right", va="bottom")  # fmt: skip


def _colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(max(n, 1))]


def _latency_points(g: pd.DataFrame) -> pd.DataFrame:
    """The rows of one cost group (one machine, accuracy, batch size and input size) as the
    points of an accuracy-vs-latency plot: ``series`` (:func:`_setting`), ``label`` (the
    variant), ``excluded`` (the fp32 accuracy does not carry over:
    :func:`hgbench.analysis.tables.accuracy_for_pareto`) and ``front`` (Pareto-optimal on p50)."""
    g = g.copy()
    g["series"] = g.apply(_setting, axis=1)
    g["label"] = g["variant"]
    acc = accuracy_for_pareto(g)
    g["excluded"] = acc.isna() & g[ACC].notna()
    g["front"] = pareto_optimal(acc, g["latency_p50_ms"])
    return g


def _cost_plots(report: Report, out: Path) -> list[tuple[str, Path]]:
    written = []
    cost = report.cost[report.cost[ACC].notna()] if not report.cost.empty else report.cost
    if cost.empty:
        return written
    for key, g in cost.groupby(COST_GROUP, dropna=False, sort=False):
        machine, device, name, dataset, split, metric, protocol, batch, size = key
        g = _latency_points(g)
        several = g["series"].nunique() > 1
        settings = ", ".join(sorted(g["series"].unique()))
        title = f"{metric} vs latency: {dataset}/{split}"
        subtitle = (f"{machine}: {device} {name} | {'backends/precisions: ' if several else ''}{settings} | batch {batch} | "
                    f"input {size}x{size} px | protocol {protocol} | {threads_text(g['threads'].iloc[0])}")  # fmt: skip
        fig = accuracy_vs_cost_figure(g, "latency_p50_ms", f"latency p50 (ms per batch of {batch})", f"{metric} (%), {dataset} {split}",
                                      title, subtitle, series="series")  # fmt: skip
        path = (
            out
            / f"accuracy_vs_latency__{_slug(machine, device, dataset, split, metric, protocol, f'b{batch}', f's{size}')}.png"
        )
        written.append(
            (
                f"{metric} vs latency p50 on {machine} ({device}), {dataset}/{split}, batch {batch}, input {size}",
                _save(fig, path),
            )
        )
    return written


def machine_panel_figures(report: Report) -> list[tuple[str, str, Figure]]:
    """Accuracy vs latency with one panel per machine, where the records span several machines
    (:attr:`Report.latency_matrix` not empty; none for one machine): one figure per accuracy
    (dataset, split, metric, protocol), batch size and input size, a panel per machine
    (:data:`hgbench.analysis.rows.MACHINE`, in the order of the cost table) with that machine's
    backends and precisions (:func:`accuracy_vs_latency_panels`; each panel's Pareto front is
    that machine's).

    Returns:
        ``(caption, file name, figure)`` per figure (:func:`write_plots` saves them under
        ``plots/``, named :data:`MACHINE_PANELS_PREFIX` + the accuracy, batch and size).
    """
    cost = report.cost[report.cost[ACC].notna()] if not report.cost.empty else report.cost
    if report.latency_matrix.empty or cost.empty:
        return []
    figures = []
    for key, g in cost.groupby(ACCURACY_KEY + ["batch_size", "input_size_px"], dropna=False, sort=False):
        dataset, split, metric, protocol, batch, size = key
        panels = []
        for (machine, device, name), m in g.groupby(MACHINE, dropna=False, sort=False):
            hosts = report.hosts.get(str(machine), [])
            on = f" on {', '.join(hosts)}" if hosts and hosts != [str(machine)] else ""
            what = f"{device}, {name or 'device name not recorded'} | {threads_text(m['threads'].iloc[0])}"
            panels.append((f"{machine}{on}: {what}", _latency_points(m)))
        title = f"{metric} vs latency per machine: {dataset}/{split}"
        subtitle = f"batch {batch} | input {size}x{size} px | protocol {protocol} | colour: backend and precision"
        fig = accuracy_vs_latency_panels(panels, f"latency p50 (ms per batch of {batch})", f"{metric} (%), {dataset} {split}",
                                         title, subtitle)  # fmt: skip
        caption = f"{metric} vs latency p50 per machine ({len(panels)} panels), {dataset}/{split}, batch {batch}, input {size}"
        figures.append(
            (
                caption,
                f"{MACHINE_PANELS_PREFIX}{_slug(dataset, split, metric, protocol, f'b{batch}', f's{size}')}.png",
                fig,
            )
        )
    return figures


def _complexity_plots(report: Report, out: Path) -> list[tuple[str, Path]]:
    written = []
    cost = (
        report.cost[report.cost[ACC].notna() & report.cost["gmacs_fvcore"].notna()]
        if not report.cost.empty
        else report.cost
    )
    if not cost.empty:
        for key, g in cost.groupby(ACCURACY_KEY + ["input_size_px"], dropna=False, sort=False):
            dataset, split, metric, protocol, size = key
            g = _one_per_network(g)
            g["front"] = pareto_optimal(g[ACC], g["gmacs_fvcore"])
            subtitle = (f"multiply-accumulates counted by fvcore, the same on every machine, backend, precision and batch size | "
                        f"protocol {protocol}")  # fmt: skip
            fig = accuracy_vs_cost_figure(g, "gmacs_fvcore", f"GMACs per sample (fvcore, input {size}x{size} px)",
                                          f"{metric} (%), {dataset} {split}", f"{metric} vs GMACs: {dataset}/{split}",
                                          subtitle)  # fmt: skip
            path = out / f"accuracy_vs_gmacs__{_slug(dataset, split, metric, protocol, f's{size}')}.png"
            written.append((f"{metric} vs GMACs, {dataset}/{split}, input {size}", _save(fig, path)))
    pj = report.per_joint
    pj = pj[pj["mean_pct"].notna() & pj["params_m"].notna()] if not pj.empty else pj
    if not pj.empty:
        for key, g in pj.groupby(ACCURACY_KEY, dropna=False, sort=False):
            dataset, split, metric, protocol = key
            renamed = {"mean_pct": ACC, INTERVALS["mean_pct"][0]: ACC_LOW, INTERVALS["mean_pct"][1]: ACC_HIGH}
            g = _one_per_network(g.rename(columns=renamed))
            g["front"] = pareto_optimal(g[ACC], g["params_m"])
            joints = ", ".join(str(j) for j in sorted(g["joints"].unique()))
            subtitle = f"trained networks ({joints} joints), protocol {protocol}; a count, the same on every machine"
            fig = accuracy_vs_cost_figure(g, "params_m", "parameters (millions)", f"{metric} (%), {dataset} {split}",
                                          f"{metric} vs parameters: {dataset}/{split}", subtitle)  # fmt: skip
            path = out / f"accuracy_vs_parameters__{_slug(dataset, split, metric, protocol)}.png"
            written.append((f"{metric} vs parameters, {dataset}/{split}", _save(fig, path)))
    return written


def _one_per_network(g: pd.DataFrame) -> pd.DataFrame:
    """``g`` with one row per network (variant, joints, spec hash:
    :data:`hgbench.records.identity.NETWORK`) and a ``label``: the variant's name, with the first
    8 hex digits of its spec hash where the variant has rows of several specs (its YAML was
    edited between runs)."""
    g = g.drop_duplicates([c for c in ("variant", "joints", "spec_hash") if c in g.columns]).copy()
    g["label"] = g["variant"]
    if "spec_hash" in g.columns:
        several = g.groupby("variant")["spec_hash"].transform("nunique") > 1
        g.loc[several, "label"] = g["variant"] + " @" + g["spec_hash"].astype(str).str[:8]
    return g


def _stacks_text(n: int) -> str:
    return f"{n} stack{'s' if n != 1 else ''}"


def learning_curves_figure(learning: pd.DataFrame, title: str, subtitle: str) -> Figure:
    """The learning curves, one line per training run: a row of two panels per dataset, split
    and protocol (:data:`LEARNING_GROUP`; accuracies of different datasets or protocols never
    share an axis), the validation mean accuracy (percent; epochs without a validation are
    skipped, so a run validated every few epochs draws a point at each validation) on the left
    and the epoch's mean training loss (the heatmap MSE of
    :func:`hgbench.models.loss.stacked_loss`, summed over supervised stacks; a log scale where it
    spans more than a factor of 10, as between 1- and 8-stack networks) on the right.

    A variant has the same colour in every row (past the palette's 20 colours, a marker shape
    tells apart variants of one colour). Where the runs have networks of several numbers of
    stacks, the line style says which (``-`` for the fewest, then ``--``, ``-.``, ``:``) and so
    does the legend: seed ``001_25df7af4abb369d1.txt`` compares its variants' validation accuracy
    per epoch within each number of stacks (1, 2, 8).

    Args:
        learning: :func:`hgbench.analysis.tables.learning_table`'s rows: ``variant``,
            ``dataset``, ``split``, ``protocol``, ``metric``, ``epoch``, ``train_loss``,
            ``val_accuracy_pct``, ``train_record`` (one run per record) and optionally
            ``num_stacks`` (None/NaN: not recorded).
        title, subtitle: the figure's title and its conditions line.

    A line is labelled with its variant, with its metric where a row holds several, and with
    its number of stacks where the figure holds several.
    """
    groups = list(learning.groupby(LEARNING_GROUP, dropna=False, sort=False))
    fig = Figure(figsize=(FIG_SIZE[0] + 4, max(FIG_SIZE[1], 4.2 * len(groups) + 1.2)))
    axes = fig.subplots(len(groups), 2, squeeze=False)
    variants = sorted({str(v) for v in learning["variant"]})
    colours = _colours(len(variants))
    distinct = len(set(colours))
    look = {
        v: (c, _MARKERS[(k // distinct) % len(_MARKERS)])
        for k, (v, c) in enumerate(zip(variants, colours, strict=False))
    }
    raw = learning["num_stacks"] if "num_stacks" in learning else pd.Series(np.nan, index=learning.index)
    stacks = pd.to_numeric(raw, errors="coerce")
    counts = sorted(int(n) for n in stacks.dropna().unique())
    style = {n: _STYLES[k % len(_STYLES)] for k, n in enumerate(counts)} if len(counts) > 1 else {}
    for ((dataset, split, protocol), rows), (acc_ax, loss_ax) in zip(groups, axes, strict=True):
        metrics = sorted({str(m) for m in rows["metric"] if not is_missing(m)})
        for _, run in rows.groupby("train_record", sort=False):
            first = run.iloc[0]
            colour, marker = look[str(first["variant"])]
            n = None if is_missing(stacks[run.index[0]]) else int(stacks[run.index[0]])
            label = str(first["variant"])
            if len(metrics) > 1 and not is_missing(first["metric"]):
                label += f", {first['metric']}"
            if style and n is not None:
                label += f" ({_stacks_text(n)})"
            for ax, col in ((acc_ax, "val_accuracy_pct"), (loss_ax, "train_loss")):
                pts = run[["epoch", col]].apply(pd.to_numeric, errors="coerce").dropna().sort_values("epoch")
                if len(pts):
                    ax.plot(pts["epoch"], pts[col], marker=marker, markersize=3, linestyle=style.get(n, "-"), color=colour,
                            label=label)  # fmt: skip
        acc_ax.set_title(f"validation: {dataset}/{split}, protocol {protocol}", fontsize=10)
        loss_ax.set_title(f"training: {dataset}, protocol {protocol}", fontsize=10)
        acc_ax.set_ylabel(f"validation {metrics[0] if len(metrics) == 1 else 'mean accuracy'} (%)")
        loss_ax.set_ylabel("training loss (mean over the epoch's steps)")
        losses = pd.to_numeric(rows["train_loss"], errors="coerce").dropna()
        if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 10:
            loss_ax.set_yscale("log")
            loss_ax.set_ylabel(loss_ax.get_ylabel() + ", log scale")
        epochs = pd.to_numeric(rows["epoch"], errors="coerce").dropna()
        for ax in (acc_ax, loss_ax):
            ax.set_xlabel("epoch")
            if 0 < epochs.nunique() <= 20:
                ax.set_xticks(sorted(epochs.unique()))
            ax.grid(True, alpha=0.3)
        if not acc_ax.has_data():
            acc_ax.text(0.5, 0.5, "no validation recorded", ha="center", va="center", transform=acc_ax.transAxes)
        handles, labels = loss_ax.get_legend_handles_labels()
        if not handles:
            handles, labels = acc_ax.get_legend_handles_labels()
        if handles:
            loss_ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title + "\n" + "\n".join(textwrap.wrap(subtitle, 160)), fontsize=11)
    return fig


def _learning_plot(report: Report, out: Path) -> list[tuple[str, Path]]:
    """``learning_curves.png`` where :attr:`Report.learning` holds curves, else nothing."""
    lc = report.learning
    if lc.empty:
        return []
    hosts = ", ".join(sorted({str(h) for h in lc["trained_on"] if not is_missing(h)})) or "?"
    fig = learning_curves_figure(lc, "Learning curves: validation accuracy and training loss per epoch",
                                 f"trained on {hosts} | validation: each run's accuracy after that epoch")  # fmt: skip
    return [
        ("Learning curves: validation mean accuracy and training loss per epoch", _save(fig, out / LEARNING_CURVES_PNG))
    ]


def per_joint_figure(rows: pd.DataFrame, title: str, subtitle: str, ylabel: str) -> Figure:
    """Grouped bars: x = Head ... Ankle, Mean; one bar per row (``label``, else ``variant``), heights in percent
    from the columns ``head_pct`` ... ``ankle_pct`` and ``mean_pct``, with the 95 % intervals
    (``head_ci_low_pct`` ...) as error bars where present."""
    cols = GROUP_COLUMNS + ["mean_pct"]
    names = list(PAPER_GROUPS) + ["Mean"]
    n = len(rows)
    fig = Figure(figsize=(max(FIG_SIZE[0], 1.2 + 0.22 * n * len(names) / 2), FIG_SIZE[1]))
    ax = fig.add_subplot()
    width = 0.8 / max(n, 1)
    x = np.arange(len(names))
    for k, ((_, r), colour) in enumerate(zip(rows.iterrows(), _colours(n), strict=False)):  # one colour at least
        heights = [float(r[c]) if not is_missing(r[c]) else np.nan for c in cols]
        one = pd.DataFrame(
            {"v": heights, "lo": [r.get(INTERVALS[c][0]) for c in cols], "hi": [r.get(INTERVALS[c][1]) for c in cols]}
        )
        yerr = _error_bars(one, "v", "lo", "hi")
        ax.bar(x - 0.4 + width * (k + 0.5), heights, width, color=colour, label=r.get("label", r["variant"]), yerr=yerr,
               error_kw={"elinewidth": 0.8, "capsize": 1.5, "ecolor": "0.25"})  # fmt: skip
    ax.set_xticks(x, names)
    ax.set_xlabel("joint group (left and right pooled)")
    ax.set_ylabel(ylabel)
    finite = pd.to_numeric(rows[cols].stack(), errors="coerce").dropna()
    if len(finite):
        lo = float(finite.min())
        ax.set_ylim(
            max(0.0, math.floor(lo / 10) * 10 - 5), min(100.0, float(finite.max()) + 5) if finite.max() <= 100 else None
        )
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _titles(fig, ax, title, subtitle)
    return fig


def _per_joint_plots(report: Report, out: Path) -> list[tuple[str, Path]]:
    written = []
    pj = report.per_joint
    pj = pj[pj["mean_pct"].notna()] if not pj.empty else pj
    if not pj.empty:
        for key, g in pj.groupby(ACCURACY_KEY, dropna=False, sort=False):
            dataset, split, metric, protocol = key
            g = _one_per_network(g).sort_values("variant")
            g = g[g[GROUP_COLUMNS].notna().any(axis=1)]  # results without per-group accuracy: no bars
            if g.empty:
                continue
            persons = g["eval_persons"].dropna()
            n = f", {int(persons.iloc[0])} persons" if len(persons) else ""
            fig = per_joint_figure(g, f"Per-joint {metric}: {dataset}/{split}", f"protocol {protocol}{n} | groups pool left and right",
                                   f"{metric} (%)")  # fmt: skip
            path = out / f"per_joint__{_slug(dataset, split, metric, protocol)}.png"
            written.append((f"Per-joint {metric}, {dataset}/{split}, protocol {protocol}", _save(fig, path)))
    return written


def write_plots(report: Report, out_dir: str | Path) -> list[tuple[str, Path]]:
    """Write every plot of ``report`` as PNG into ``out_dir``; return ``(caption, path)`` pairs."""
    out = Path(out_dir)
    panels = [(caption, _save(fig, out / name)) for caption, name, fig in machine_panel_figures(report)]
    return [*_cost_plots(report, out), *panels, *_complexity_plots(report, out), *_per_joint_plots(report, out),
            *_learning_plot(report, out)]  # fmt: skip
