"""Where a whole-registry profile sweep spends its wall time (issue 29): run the sweep, then
print the breakdown (timed windows, preparation, complexity, warm-up, probes, ...) per run.

Usage::

    # run the benchmark's sweep (default: the whole registry, eager/torchscript/onnxruntime,
    # batch 1, 64 px, default repetitions) with an hgbench command line, timing its wall time
    python benchmarks/sweep_time.py run --results RUN [--hgbench "hgbench"] [--label after] [-- EXTRA PROFILE OPTIONS]
    # the table of one or more runs (Markdown with --markdown)
    python benchmarks/sweep_time.py table RUN [RUN ...] [--markdown OUT.md]
    # per backend, the after/before ratio of the medians (raw, and divided by the calibrations' ratio)
    python benchmarks/sweep_time.py ratios BEFORE_RUN AFTER_RUN

``run`` writes ``<RUN>/sweep_time.json`` beside the records: the command, its exit status and
wall time measured from outside (process start to exit), and the label. ``table`` reads it
and the run's records:

- ``measured``: the settings timed (a variant that builds the same network as another is
  timed once, its record a copy naming it: ``measured_as``, hgbench after issue 29);
- ``kept samples``: the timed samples of every measured record, summed (what the latencies are
  computed from); ``build``: their ``build_time_s`` summed (repetition 1's preparation);
- where the run wrote a sweep record (:class:`hgbench.records.SweepRecord`, hgbench after issue
  29), its ``time_s`` per phase (:data:`hgbench.profile.timeline.PHASES`); an older hgbench
  leaves those columns empty.

Shares are of the wall time measured from outside. Compare runs of one sitting on one machine
only (``benchmarks/reference/sweep-time/README.md``); two runs' agreement on the medians is
``benchmarks/repeatability.py``'s.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from hgbench.fileio import atomic_write_json
from hgbench.records import scan

SWEEP = ["--backend", "eager,torchscript,onnxruntime", "--batch-size", "1", "--input-size", "64"]
"""The benchmark's sweep (issue 29): every registered variant, three CPU backends, batch 1, 64 px,
the default budget (3 repetitions)."""
RUN_FILE = "sweep_time.json"
PHASE_COLUMNS = ("timed", "retimed", "warmup", "prepare", "complexity", "probes", "models", "reference", "numerics",
                 "records", "cleanup", "ceilings", "startup", "other")  # fmt: skip


def run(results: Path, hgbench: str, label: str, extra: list[str]) -> int:
    """Run ``<hgbench> profile <SWEEP> <extra> --results <results>`` and write :data:`RUN_FILE`;
    returns the command's exit status."""
    command = [*shlex.split(hgbench), "profile", *SWEEP, *extra, "--results", str(results)]
    start = time.perf_counter()
    status = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - start
    results.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results / RUN_FILE, {"label": label, "command": shlex.join(command), "exit_status": status,
                                           "wall_s": round(wall, 3)})  # fmt: skip
    print(f"{label}: {wall:.1f} s, exit status {status}")
    return status


def summarise(results: Path) -> dict:
    """One row of the table for the run in ``results`` (module docstring)."""
    meta = json.loads((results / RUN_FILE).read_text())
    found = scan(results, kinds=["profile", "sweep"], dedupe=False).records
    profiles = [r for r in found if r.kind == "profile"]
    measured = [r for r in profiles if r.measured_as is None]  # not the copies for variants of the same network
    sweeps = sorted((r for r in found if r.kind == "sweep"), key=lambda r: r.started)
    wall = meta["wall_s"]
    samples = sum(sum((r.latency_ms or {}).get("samples_ms") or []) for r in measured) / 1000
    row = {"run": meta["label"], "settings": len(profiles), "measured": len(measured),
           "failed": sum(r.status != "ok" for r in profiles), "wall (s)": wall, "kept samples (s)": samples,
           "kept samples (%)": 100 * samples / wall, "build (s)": sum(r.build_time_s or 0.0 for r in measured)}  # fmt: skip
    if sweeps:
        time_s = sweeps[-1].time_s
        inside = time_s.get("timed", 0.0) + time_s.get("retimed", 0.0)
        row["in timed windows (%)"] = 100 * inside / wall
        row.update({f"{name} (s)": time_s.get(name) for name in PHASE_COLUMNS})
        row["wall inside hgbench (s)"] = sweeps[-1].wall_s
    return row


def table(folders: list[Path]) -> pd.DataFrame:
    """The rows of ``folders`` (each a ``run`` results folder), in the order given."""
    return pd.DataFrame([summarise(f) for f in folders]).set_index("run")


def latency_ratios(before: Path, after: Path) -> pd.DataFrame:
    """Per backend, over the settings measured ``ok`` in both runs: the median, smallest and
    largest ratio ``after p50 / before p50``, raw and divided by the ratio of the runs' pooled
    calibration p50s (what ``hgbench compare`` divides by): does the changed sweep measure the
    same latencies?"""
    runs = []
    for folder in (before, after):
        found = scan(folder, kinds=["profile"], dedupe=False).records
        runs.append({r.key().without_machine().stem(): r for r in found if r.status == "ok" and r.latency_ms})
    common = sorted(set(runs[0]) & set(runs[1]))
    rows = []
    for name in common:
        b, a = runs[0][name], runs[1][name]
        raw = a.latency_ms["p50_ms"] / b.latency_ms["p50_ms"]
        machine = a.calibration["p50_ms"] / b.calibration["p50_ms"]
        rows.append({"backend": b.backend, "raw": raw, "calibrated": raw / machine})
    frame = pd.DataFrame(rows)
    return frame.groupby("backend").agg(settings=("raw", "size"), raw_median=("raw", "median"), raw_min=("raw", "min"),
                                        raw_max=("raw", "max"), calibrated_median=("calibrated", "median"))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p_run = sub.add_parser("run", help="run the benchmark's sweep and time it")
    p_run.add_argument("--results", type=Path, required=True)
    p_run.add_argument(
        "--hgbench", default="hgbench", help="the command line that runs hgbench (another tree: a wrapper)"
    )
    p_run.add_argument("--label", default="run")
    p_run.add_argument("extra", nargs="*", help="more profile options, after --")
    p_table = sub.add_parser("table", help="the breakdown of runs")
    p_table.add_argument("runs", type=Path, nargs="+")
    p_table.add_argument("--markdown", type=Path)
    p_ratio = sub.add_parser("ratios", help="per backend: after p50 / before p50, raw and calibrated")
    p_ratio.add_argument("before", type=Path)
    p_ratio.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    if args.what == "run":
        return run(args.results, args.hgbench, args.label, args.extra)
    if args.what == "ratios":
        print(to_markdown(latency_ratios(args.before, args.after), digits=3), end="")
        return 0
    frame = table(args.runs)
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.float_format", "{:.1f}".format):
        print(frame.T)
    if args.markdown:
        args.markdown.write_text(to_markdown(frame.T))
    return 0


def to_markdown(frame: pd.DataFrame, digits: int = 1) -> str:
    """A Markdown table of ``frame`` (numbers to ``digits`` decimals, missing as "—")."""

    def cell(v) -> str:
        return (
            "—"
            if v is None or (isinstance(v, float) and v != v)
            else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))
        )

    lines = ["| | " + " | ".join(map(str, frame.columns)) + " |", "|---" * (len(frame.columns) + 1) + "|"]
    lines += [
        "| " + str(i) + " | " + " | ".join(cell(v) for v in row) + " |"
        for i, row in zip(frame.index, frame.values, strict=True)
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
