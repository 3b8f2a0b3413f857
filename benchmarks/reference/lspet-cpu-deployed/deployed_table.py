"""The deployed table of README.md beside this script, from the report's accuracy-vs-cost CSV.

Usage (from the repository root, after ``run.sh``)::

    python benchmarks/reference/lspet-cpu-deployed/deployed_table.py

One row per variant x batch x backend x precision: latency p50 (ms per batch), int8's latency
against the same backend's fp32 in the same run (ratio below 1: int8 is faster), the accuracy of
that setting's own artifact with its 95 % interval, and its difference to eager fp32 on the same
persons with its paired 95 % interval (percentage points).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CSV = Path(__file__).parent / "report" / "accuracy_vs_cost.csv"


def main() -> None:
    df = pd.read_csv(CSV).sort_values(["variant", "batch size", "backend", "precision"])
    p50 = {
        (r["variant"], r["batch size"], r["backend"], r["precision"]): r["latency p50 (ms/batch)"]
        for _, r in df.iterrows()
    }
    print(
        "| variant | batch | backend | precision | p50 (ms) | int8/fp32 latency | PCK@0.2 (%) [95 % CI] "
        "| vs eager fp32 (points) [95 % CI] |"
    )
    print("|---|---:|---|---|---:|---:|---|---|")
    for _, r in df.iterrows():
        key = (r["variant"], r["batch size"], r["backend"])
        fp32 = p50.get((*key, "fp32"))
        ratio = f"{r['latency p50 (ms/batch)'] / fp32:.2f}" if r["precision"] == "int8" and fp32 else ""
        acc = f"{r['accuracy (%)']:.2f} [{r['accuracy 95% CI low (%)']:.2f}, {r['accuracy 95% CI high (%)']:.2f}]"
        lo, hi = r["vs eager fp32 95% CI low (points)"], r["vs eager fp32 95% CI high (points)"]
        diff = f"{r['vs eager fp32 (points)']:+.2f}" + ("" if pd.isna(lo) else f" [{lo:+.2f}, {hi:+.2f}]")
        print(
            f"| {r['variant']} | {r['batch size']} | {r['backend']} | {r['precision']} | {r['latency p50 (ms/batch)']:.2f} | "
            f"{ratio} | {acc} | {diff} |"
        )


if __name__ == "__main__":
    main()
