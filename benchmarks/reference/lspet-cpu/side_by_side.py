"""Seed 002's Table 1 next to hgbench's LSPET CPU reference, with Spearman rank correlations.

Reads the committed report of this folder (``report/per_joint.csv`` and
``report/accuracy_vs_cost.csv``, written by ``hgbench report``) and Elhagry et al.'s Table 1
(seed ``002_bdd2d633fa65b35a.txt``, transcribed in ``elhagry_table1.csv``), and writes
``side_by_side.md``: for each variant, the paper's row (MPII, PCKh@0.5 per group, 256 px, GPU
training and inference times) above hgbench's row (LSPET, PCK@0.2 per group with the mean's
95 % interval, parameters, GMACs, CPU latency, CPU training time), then the Spearman rank
correlation (``scipy.stats.spearmanr``) between the paper's and hgbench's orderings of mean
accuracy, parameters, inference time and training time, over the variants both hold.

Run from the repository root::

    python benchmarks/reference/lspet-cpu/side_by_side.py [--backend eager] [--batch 1]

The paper's "Num. of Parameters" is read as MiB of float32 weights (its 8-stack "97.7M" is
25.59 M parameters x 4 bytes; see ``variants/hg1-ghost.yaml``); its training times are h:mm
(hg1-ds1's printed "38.31" read as 38:31) and its inference times mm:ss for the 493 MPII
validation images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from hgbench.records import atomic_write_bytes

HERE = Path(__file__).resolve().parent
GROUPS = ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"]


def _hmm_hours(text: str) -> float:
    """``"h:mm"`` as hours."""
    h, m = text.split(":")
    return int(h) + int(m) / 60


def _mmss_minutes(text: str) -> float:
    """``"mm:ss"`` as minutes."""
    m, s = text.split(":")
    return int(m) + int(s) / 60


def load_paper(path: Path) -> pd.DataFrame:
    """Table 1 with numeric columns: ``params_mib``, ``train_h``, ``infer_min`` added."""
    paper = pd.read_csv(path, dtype={"training_hmm": str, "inference_mmss": str})
    paper["params_mib"] = paper["parameters_printed"].str.rstrip("M").astype(float)
    paper["train_h"] = paper["training_hmm"].map(_hmm_hours)
    paper["infer_min"] = paper["inference_mmss"].map(_mmss_minutes)
    return paper.set_index("variant")


def load_ours(report: Path, backend: str, batch: int) -> pd.DataFrame:
    """hgbench's per-variant accuracy (per group, mean and its interval), parameters, GMACs
    (flop_counter's FLOPs / 2), training hours and the p50 latency (ms/batch) of ``backend``
    at ``batch``.

    Raises:
        SystemExit: the report has no row for ``backend`` at ``batch``.
    """
    acc = pd.read_csv(report / "per_joint.csv").set_index("variant")
    cost = pd.read_csv(report / "accuracy_vs_cost.csv")
    cost = cost[(cost["backend"] == backend) & (cost["batch size"] == batch)]
    if cost.empty:
        raise SystemExit(
            f"{report / 'accuracy_vs_cost.csv'}: no {backend} row at batch {batch}; pass --backend/--batch"
        )
    cost = cost.set_index("variant")
    ours = acc[[f"{g} (%)" for g in GROUPS] + ["Mean (%)", "Mean 95% CI low (%)", "Mean 95% CI high (%)"]].copy()
    ours.columns = [*GROUPS, "Mean", "mean_low", "mean_high"]
    ours["params_m"] = acc["parameters"] / 1e6
    ours["params_mib"] = acc["weights fp32 (MiB)"]
    ours["gmacs"] = cost["GFLOPs flop_counter (per sample)"].reindex(ours.index) / 2
    ours["latency_ms"] = cost["latency p50 (ms/batch)"].reindex(ours.index)
    ours["train_h"] = acc["training (h)"]
    return ours


def side_by_side(paper: pd.DataFrame, ours: pd.DataFrame, backend: str, batch: int) -> str:
    """The Markdown table and the rank correlations (see the module docstring)."""
    both = [v for v in paper.index if v in ours.index]
    head = "| variant | source | " + " | ".join(GROUPS) + " | Mean | parameters | GMACs | training | inference |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for v in both:
        p, o = paper.loc[v], ours.loc[v]
        lines.append(
            f"| {v} | paper (MPII PCKh@0.5, 256 px, GPU) | "
            + " | ".join(f"{p[g]:.2f}" for g in GROUPS)
            + f" | {p['Mean']:.2f} | {p['params_mib']:g} MiB | | {p['training_hmm']} h | {p['inference_mmss']} min / 493 images |"
        )
        lines.append(
            "| | hgbench (LSPET PCK@0.2, 64 px, CPU) | "
            + " | ".join(f"{o[g]:.1f}" for g in GROUPS)
            + f" | **{o['Mean']:.1f}** [{o['mean_low']:.1f}, {o['mean_high']:.1f}]"
            + f" | {o['params_m']:.2f} M ({o['params_mib']:.1f} MiB) | {o['gmacs']:.3f} | {o['train_h'] * 60:.0f} min"
            + f" | {o['latency_ms']:.2f} ms ({backend}, batch {batch}) |"
        )
    pairs = [
        ("mean accuracy", "Mean", "Mean"),
        ("parameters", "params_mib", "params_mib"),
        ("inference time", "infer_min", "latency_ms"),
        ("training time", "train_h", "train_h"),
    ]
    lines += ["", "| ordering | Spearman rho | p | variants |", "|---|---|---|---|"]
    for name, pc, oc in pairs:
        x, y = paper.loc[both, pc], ours.loc[both, oc]
        ok = x.notna() & y.notna()
        if ok.sum() < 3:
            lines.append(f"| {name} | n/a | | {int(ok.sum())} |")
            continue
        res = spearmanr(x[ok], y[ok])
        lines.append(f"| {name} | {res.statistic:+.2f} | {res.pvalue:.3f} | {int(ok.sum())} |")
    ranks = pd.DataFrame(
        {
            "paper accuracy rank": paper.loc[both, "Mean"].rank(ascending=False),
            "hgbench accuracy rank": ours.loc[both, "Mean"].rank(ascending=False),
            "paper inference rank": paper.loc[both, "infer_min"].rank(),
            "hgbench latency rank": ours.loc[both, "latency_ms"].rank(),
        }
    )
    lines += ["", "| variant | " + " | ".join(ranks.columns) + " |", "|---|" + "---|" * len(ranks.columns)]
    for v, r in ranks.iterrows():
        lines.append(f"| {v} | " + " | ".join(f"{x:g}" for x in r) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--report", type=Path, default=HERE / "report")
    ap.add_argument("--paper", type=Path, default=HERE / "elhagry_table1.csv")
    ap.add_argument("--backend", default="eager")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--out", type=Path, default=HERE / "side_by_side.md")
    args = ap.parse_args()
    text = side_by_side(
        load_paper(args.paper), load_ours(args.report, args.backend, args.batch), args.backend, args.batch
    )
    atomic_write_bytes(args.out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
