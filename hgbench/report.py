"""Join training, accuracy and cost records into one accuracy-vs-cost table (Markdown and CSV).

One row per training run (variant x dataset x protocol), plus one per profiled variant that
was never trained. Cost columns come from the profile records of the same variant and number
of joints, at the report's batch size and input size, from one host. A measurement that is
missing stays missing (empty in the CSV, "—" in Markdown), never zero.
"""

from __future__ import annotations

import math
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hgbench.evaluate import PCK_CONVENTION
from hgbench.results import RecordError, atomic_write_bytes, iter_records

BACKEND_LABELS = {"eager": "eager", "torchscript": "TorchScript"}
MISSING = "—"


@dataclass
class Report:
    """The joined table and what it was built from.

    Attributes:
        table: one row per variant x dataset x protocol (columns carry their units).
        conditions: lines describing how each kind of number was measured.
        skipped: ``(path, reason)`` for every record file that was not used.
    """

    table: pd.DataFrame
    conditions: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_markdown(self) -> str:
        lines = ["# hgbench report", "", *[f"- {c}" for c in self.conditions], ""]
        if self.table.empty:
            lines.append("No training or profile records found.")
        else:
            lines.append(_format(self.table).to_markdown(index=False))
        if self.skipped:
            lines += ["", "Records skipped:", *[f"- `{p}`: {r}" for p, r in self.skipped]]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        return self.table.to_csv(index=False)


def _format(table: pd.DataFrame) -> pd.DataFrame:
    """Cells as text: missing -> "—", parameters with thousands separators, floats to 2 decimals."""

    def cell(col: str, v) -> str:
        if _missing(v):
            return MISSING
        if col == "parameters":
            return f"{int(v):,}"
        if isinstance(v, float):
            return f"{v:.2f}"
        return str(v)

    return pd.DataFrame({col: [cell(col, v) for v in table[col]] for col in table.columns})


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def build_report(results_dir: str | Path, batch_size: int = 1, input_size: int = 256, host: str | None = None) -> Report:
    """Read every record under ``results_dir`` and join them (see the module docstring).

    Args:
        batch_size, input_size: the profiling conditions whose latency is reported.
        host: whose profile records to use; default this machine's if it has any, else the
            host with the most recent record. Records of other hosts are listed as skipped,
            never mixed into the same column.
    """
    trains, profiles, skipped = [], [], []
    for path, rec in iter_records(Path(results_dir)):
        if isinstance(rec, RecordError):
            skipped.append((str(path), str(rec).split(": ", 1)[-1]))
            continue
        if rec["kind"] == "train":
            if rec.get("complete"):
                trains.append(rec)
            else:
                skipped.append((str(path), "training run not complete"))
        elif rec["kind"] == "profile":
            profiles.append(rec)

    # the profile records to use: one host, the requested conditions, status ok
    hosts = {p["provenance"].get("hostname") for p in profiles}
    if host is None and hosts:
        here = socket.gethostname()
        host = here if here in hosts else max(profiles, key=lambda p: p["created"])["provenance"].get("hostname")
    cost: dict[tuple[str, int], dict] = {}
    conditions_seen = {}
    for p in sorted(profiles, key=lambda p: p["created"]):
        reason = None
        if p["provenance"].get("hostname") != host:
            reason = f"measured on host {p['provenance'].get('hostname')!r}, the report uses {host!r}"
        elif p["batch_size"] != batch_size or p["input_size"] != input_size:
            reason = f"batch {p['batch_size']} input {p['input_size']}; the report uses batch {batch_size} input {input_size}"
        elif p["status"] != "ok":
            reason = f"profiling failed: {p.get('error')}"
        if reason:
            skipped.append((p["_path"], reason))
            continue
        entry = cost.setdefault((p["variant"], p["num_joints"]), {})
        entry["parameters"] = p["parameters"]
        entry["gmacs_fvcore"] = p["gmacs_fvcore"]
        entry["gmacs_thop"] = p["gmacs_thop"]
        label = BACKEND_LABELS.get(p["backend"], p["backend"])
        entry[f"{label} p50 (ms)"] = p["latency_ms"]["p50_ms"]
        entry[f"{label} p90 (ms)"] = p["latency_ms"]["p90_ms"]
        conditions_seen[p["backend"]] = (p["provenance"].get("cpu_model"), p["threads"], p["device"], p["latency_ms"]["n"])

    rows = []
    trained_keys = set()
    for t in sorted(trains, key=lambda t: (t["dataset"], t["protocol"], t["variant"])):
        trained_keys.add((t["variant"], t["num_joints"]))
        c = cost.get((t["variant"], t["num_joints"]), {})
        final = t.get("final") or {}
        row = {
            "variant": t["variant"],
            "dataset": t["dataset"],
            "protocol": t["protocol"],
            "overrides": t.get("overrides") or "",
            "joints": t["num_joints"],
            "parameters": t["parameters"],
            "GMACs (fvcore)": c.get("gmacs_fvcore"),
            "GMACs (thop)": c.get("gmacs_thop"),
        }
        row.update({k: v for k, v in c.items() if k.endswith("(ms)")})
        row["training time (min)"] = t["train_time_s"] / 60.0
        row.update({f"{g} PCK (%)": v for g, v in (final.get("groups") or {}).items()})
        row["Mean PCK (%)"] = final.get("mean")
        rows.append(row)
    for (variant, joints), c in sorted(cost.items()):
        if (variant, joints) not in trained_keys:
            row = {"variant": variant, "dataset": None, "protocol": None, "overrides": "", "joints": joints,
                   "parameters": c["parameters"], "GMACs (fvcore)": c["gmacs_fvcore"], "GMACs (thop)": c["gmacs_thop"]}
            row.update({k: v for k, v in c.items() if k.endswith("(ms)")})
            rows.append(row)

    table = pd.DataFrame(rows)
    if not table.empty:
        latency_cols = [f"{BACKEND_LABELS[b]} {q} (ms)" for b in BACKEND_LABELS for q in ("p50", "p90")]
        for col in latency_cols + ["training time (min)", "Mean PCK (%)"]:
            if col not in table:
                table[col] = float("nan")
        ordered = [c for c in table.columns if not c.endswith("(ms)") and "PCK" not in c and c != "training time (min)"]
        ordered += latency_cols + [c for c in table.columns if c.endswith("(ms)") and c not in latency_cols]
        ordered += ["training time (min)"] + [c for c in table.columns if "PCK" in c and c != "Mean PCK (%)"] + ["Mean PCK (%)"]
        table = table[ordered]

    conditions = [
        f"Accuracy: {PCK_CONVENTION}; on each dataset's validation split, the last validation of the run.",
        f"GMACs: 10^9 multiply-accumulates per sample at input {input_size}x{input_size}, counted by fvcore and by thop "
        "(they differ in which operators they count); FLOPs ~ 2 x MACs.",
        "Parameters: of the trained network (its dataset's number of joints), else of the profiled one.",
        "Training time: wall-clock minutes of the optimisation steps (data loading included, validation excluded), under the protocol named in the row.",
    ]
    for backend, (cpu, threads, device, n) in sorted(conditions_seen.items()):
        conditions.append(
            f"{BACKEND_LABELS.get(backend, backend)} latency: batch {batch_size}, input {input_size}x{input_size}, "
            f"{device} ({cpu}), {threads} threads, host {host}; median (p50) and p90 of {n}+ timed runs after warm-up, ms per batch."
        )
    return Report(table, conditions, skipped)


def write_report(report: Report, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (Markdown; ``.md`` added if missing) and the CSV beside it, atomically."""
    out = Path(out)
    md = out if out.suffix == ".md" else out.with_suffix(".md")
    csv = md.with_suffix(".csv")
    atomic_write_bytes(md, report.to_markdown().encode())
    atomic_write_bytes(csv, report.to_csv().encode())
    return md, csv
