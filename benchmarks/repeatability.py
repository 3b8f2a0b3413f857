"""How well two (or more) runs of the same ``hgbench profile`` command agree on their medians.

Usage::

    python benchmarks/repeatability.py RESULTS_A RESULTS_B [RESULTS_C ...] [--markdown OUT.md]

Each argument is a results folder written by one run of the same command. Records are paired
by file name (the name holds variant, joints, backend, device, precision, flags, batch and
input size; the host folder is ignored, so runs of two machines pair too). For every setting
measured ``ok`` in all runs it prints each run's p50 and the spread
``max(p50) / min(p50) - 1`` (%), then a summary: the median and the largest spread, and the
share of settings within 2 %, 5 % and 10 %, per run how many repetitions were timed in a
quiet window (``latency_ms.windows``, :mod:`hgbench.profile.quiet`), and per run the state of
the machine: the run's calibration p50 (the records' ``calibration``) and the median quiet level
of its windows, with how far the runs' calibrations lie apart. A pair whose calibrations differ
by more than a few per cent ran on a machine in different states (a shared VM's slow periods
can last a whole run), and its spread measures the machine rather than the tool. Exit status 2
when fewer than two folders or no common settings are given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hgbench.profile.quiet import window_summary
from hgbench.records import Record, scan

Run = list[tuple[str, Record]]
"""One run's valid profile records: ``(setting, record)``, the setting being the record key's
stem (:meth:`hgbench.records.RecordKey.stem`), read once by :func:`read_run`."""


def read_run(results_dir: Path) -> Run:
    """The valid profile records under ``results_dir`` that were measured as their own variant
    (files that are not records are left out, and so are the copies a sweep writes for variants
    that build the same network as another, ``measured_as``: their spread is the measured one's)."""
    found = scan(results_dir, kinds=["profile"], dedupe=False).records
    return [(rec.key().without_machine().stem(), rec) for rec in found if rec.measured_as is None]


def p50_by_setting(run: Run) -> dict[str, float]:
    """``{record file name: latency p50 (ms)}`` of the run's ``ok`` records."""
    return {setting: float(rec["latency_ms"]["p50_ms"]) for setting, rec in run
            if rec.get("status") == "ok" and rec.get("latency_ms")}  # fmt: skip


def spread_table(runs: list[Run]) -> pd.DataFrame:
    """One row per setting found ``ok`` in every run: the p50 of each run (ms) and the
    spread ``max / min - 1`` in %."""
    runs = [p50_by_setting(run) for run in runs]
    common = sorted(set.intersection(*(set(r) for r in runs)))
    rows = []
    for name in common:
        values = [r[name] for r in runs]
        rows.append({"setting": name, **{f"p50 run {i + 1} (ms)": v for i, v in enumerate(values)},
                     "spread (%)": 100 * (max(values) / min(values) - 1)})  # fmt: skip
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> dict[str, float]:
    """Median and largest spread (%), and the share of settings (%) within 2, 5 and 10 %."""
    s = table["spread (%)"].to_numpy()
    return {
        "settings": len(s),
        "median spread (%)": float(np.median(s)),
        "largest spread (%)": float(s.max()),
        "within 2 % (%)": 100 * float(np.mean(s <= 2)),
        "within 5 % (%)": 100 * float(np.mean(s <= 5)),
        "within 10 % (%)": 100 * float(np.mean(s <= 10)),
    }


def to_markdown(table: pd.DataFrame, stats: dict[str, float]) -> str:
    """The table and its summary as Markdown."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(row[c] if isinstance(row[c], str) else f"{row[c]:.2f}" for c in cols) + " |")
    lines += ["", "| " + " | ".join(stats) + " |", "|" + "---|" * len(stats),
              "| " + " | ".join(f"{v:.0f}" if k == "settings" else f"{v:.1f}" for k, v in stats.items()) + " |"]  # fmt: skip
    return "\n".join(lines) + "\n"


def windows_text(runs: list[Run]) -> str:
    """One line per run: how many repetitions were kept in a quiet window and how many windows
    were timed (:func:`hgbench.profile.quiet.window_summary`)."""
    lines = []
    for i, run in enumerate(runs, 1):
        counts = window_summary(rec.get("latency_ms") for _, rec in run)
        if counts["repetitions"]:
            lines.append(
                f"run {i}: {counts['quiet']} of {counts['repetitions']} repetitions in a quiet window, "
                f"{counts['windows']} windows timed"
            )
        else:
            lines.append(f"run {i}: timed without calibration probes (no latency_ms.windows)")
    return "\n".join(lines) + "\n"


SAME_STATE_PCT = 3.0
"""Calibration spread (%) up to which two runs count as made on a machine in the same state. The
development VM's consecutive whole-registry runs: 0.3 % and 2 % in the same state, 17.7 % and
9-11 % across states (``reference/cpu-registry-64px/README.md``)."""


def machine_text(runs: list[Run]) -> str:
    """One line per run: its calibration p50 (ms; the median over its records' ``calibration``,
    which a run pools over all its blocks) and the median ``quiet_level_ms`` of its windows;
    then the calibration spread ``max / min - 1`` (%) over the runs that have one."""
    lines, cal = [], []
    for i, run in enumerate(runs, 1):
        p50s, levels = [], []
        for _, rec in run:
            if (rec.get("calibration") or {}).get("p50_ms") is not None:
                p50s.append(float(rec["calibration"]["p50_ms"]))
            levels += [float(w["quiet_level_ms"]) for w in (rec.get("latency_ms") or {}).get("windows") or [] if w]
        if not p50s:
            lines.append(f"run {i}: no calibration in its records")
            continue
        cal.append(float(np.median(p50s)))
        level = f", median quiet level {np.median(levels):.3f} ms" if levels else ""
        lines.append(f"run {i}: calibration p50 {cal[-1]:.3f} ms{level}")
    if len(cal) > 1:
        spread = 100 * (max(cal) / min(cal) - 1)
        verdict = (
            "the machine was in different states: the settings' spread measures that too"
            if spread > SAME_STATE_PCT
            else "the machine was in the same state"
        )
        lines.append(f"calibration spread between runs: {spread:.1f} % ({verdict})")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="results folders, one per run of the same command")
    parser.add_argument("--markdown", type=Path, help="also write the table and summary to this Markdown file")
    args = parser.parse_args(argv)
    if len(args.folders) < 2:
        print("repeatability: give at least two results folders (one per run)", file=sys.stderr)
        return 2
    runs = [read_run(folder) for folder in args.folders]
    table = spread_table(runs)
    if table.empty:
        print(f"repeatability: no setting is ok in all of {', '.join(map(str, args.folders))}", file=sys.stderr)
        return 2
    text = to_markdown(table, summary(table)) + "\n" + windows_text(runs) + machine_text(runs)
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
