"""``hgbench report``: accuracy-vs-cost reports from one or several results folders.

Inputs (see :mod:`hgbench.records` and ``notes/PROFILE_RECORD.md``): every ``*.json`` record
under the given folders, of kind ``"profile"`` (cost: parameters, MACs, latency per backend x
precision x batch size on one machine), ``"train"`` (a complete training run: its last
validation, its learning curve from ``history``, training time) and ``"eval"`` (``hgbench
evaluate`` of a checkpoint on a split; preferred to the training run's last validation).

The data flow, one module per step:

1. :mod:`hgbench.analysis.rows`: records -> flat rows (filters, newest of each measurement,
   every record not used listed with its reason);
2. :mod:`hgbench.analysis.tables`: rows -> the :class:`Report`'s DataFrames (snake_case
   columns: accuracy-vs-cost with its Pareto front, the per-joint table of seed 002's Table 1,
   learning curves, failed measurements, and where the records span several machines (machine
   labels, ``hgbench profile --machine-label``) the latency matrix across them);
3. :mod:`hgbench.analysis.render` (CSV, Markdown, HTML, with labels and units from
   :mod:`hgbench.analysis.labels`) and :mod:`hgbench.analysis.plots` (PNG).

:func:`build_report` does 1 and 2, :func:`write_report` 3. A measurement that is missing stays
missing: empty in the CSV, "—" in Markdown and HTML, never zero. Accuracies of pipeline-check
runs (a protocol with ``pipeline_check: true``, e.g. ``smoke``) are said to be such in the
report's first lines and in a ``pipeline_check`` column of the CSV files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hgbench.analysis.render import (
    DEFAULT_FORMATS,
    LATENCY_MATRIX_CSV,
    LEARNING_CURVES_CSV,
    csv_bytes,
    parse_formats,
    render_html,
    render_markdown,
)
from hgbench.analysis.rows import Filters, check_results_dirs, read_store
from hgbench.analysis.tables import (
    LEARNING_COLUMNS,
    SKIPPED_COLUMNS,
    NoUsableRecordsError,
    Report,
    build_tables,
)
from hgbench.records import atomic_write_bytes

__all__ = ["Filters", "NoUsableRecordsError", "Report", "build_report", "write_report"]


def build_report(
    results_dirs: str | Path | Sequence[str | Path], filters: Filters = Filters(), pareto_on: str = "latency"
) -> Report:
    """Read the records under ``results_dirs`` and join them into the report's tables.

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
    dirs = [results_dirs] if isinstance(results_dirs, (str, Path)) else list(results_dirs)
    return build_tables(read_store(dirs, filters), dirs, filters, pareto_on)


def write_report(report: Report, out_dir: str | Path, formats: str | Sequence[str] = DEFAULT_FORMATS) -> list[Path]:
    """Write the report into ``out_dir`` (created), every file atomically; return the paths.

    ``csv``: ``accuracy_vs_cost.csv``, ``per_joint.csv``, ``failed.csv``, ``skipped.csv`` (raw
    numbers; empty cells where not measured), and ``learning_curves.csv`` where a training run
    has two or more validations (:attr:`Report.learning`), ``latency_matrix.csv`` where the records
    span several machines (:data:`hgbench.analysis.render.LATENCY_MATRIX_CSV`); ``png``: ``plots/*.png``
    (:func:`hgbench.analysis.plots.write_plots`; ``plots/learning_curves.png`` likewise); ``md``:
    ``report.md``; ``html``: ``report.html``.

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
            "failed.csv": report.failed,
            "skipped.csv": pd.DataFrame(report.skipped, columns=SKIPPED_COLUMNS),
        }
        if not report.learning.empty:
            tables[LEARNING_CURVES_CSV] = report.learning[LEARNING_COLUMNS]
        if not report.latency_matrix.empty:
            tables[LATENCY_MATRIX_CSV] = report.latency_matrix
        for name, df in tables.items():
            atomic_write_bytes(out / name, csv_bytes(df))
            written.append(out / name)
    plots: list[tuple[str, Path]] = []
    if "png" in formats:
        from hgbench.analysis.plots import write_plots  # matplotlib: only when plots are asked for

        plots = write_plots(report, out / "plots")
        written += [p for _, p in plots]
    tables_written = [p for p in written if p.suffix == ".csv"]
    if "md" in formats:
        atomic_write_bytes(out / "report.md", render_markdown(report, plots, out, tables_written).encode())
        written.append(out / "report.md")
    if "html" in formats:
        atomic_write_bytes(out / "report.html", render_html(report, plots, out, tables_written).encode())
        written.append(out / "report.html")
    return written


def report_from_options(
    results: Sequence[str | Path], out: str | Path | None, formats: str, filters: Filters, pareto_on: str = "latency"
) -> tuple[Report, list[Path]]:
    """``hgbench report``: :func:`build_report` over ``results``, then :func:`write_report` to
    ``out`` (default: :func:`hgbench.paths.report_dir` of the first folder). Returns the report
    and the files written. Checked before any record is read: the formats, that every results
    folder exists, and that ``out`` is (or can be made) a writable folder.

    Raises:
        ValueError: an unknown format or Pareto cost, a ``--device`` filter that matches no
            record (:func:`hgbench.analysis.rows.check_devices`); NoUsableRecordsError: nothing
            to report; FileNotFoundError: a results folder that does not exist;
            NotADirectoryError, hgbench.paths.MachineFaultError: ``out`` is a file or cannot
            be written (:func:`hgbench.paths.check_writable_folder`, naming ``--out``).
    """
    from hgbench.paths import check_writable_folder, report_dir

    fmts = parse_formats(formats)
    check_results_dirs(results)
    target = Path(out) if out is not None else report_dir(Path(results[0]))
    created = not target.exists()
    check_writable_folder(target, "--out")
    try:
        rep = build_report(results, filters, pareto_on)
    except BaseException:
        if created:  # leave no empty output folder behind a refused report
            with contextlib.suppress(OSError):
                target.rmdir()
        raise
    return rep, write_report(rep, target, fmts)
