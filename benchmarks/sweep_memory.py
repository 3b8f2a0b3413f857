"""Does a long ``hgbench profile`` sweep keep its memory flat?

Usage::

    python benchmarks/sweep_memory.py [--variants hg2,hg4] [--backend torchscript] [--repetitions 6]
                                      [--input-size 64] [--batch-size 1] [--max-growth-mb 100]

Runs :func:`hgbench.profile.sweep.run_sweep` in this process (records go to a temporary folder,
the artefact cache is a temporary folder too, so ONNX exports and roofline ceilings are measured
afresh) with a small timing budget, reads the process's resident set size (``VmRSS`` of
``/proc/self/status``, after ``gc.collect`` and ``malloc_trim``) after every setting of every
repetition, and prints one row per repetition: RSS at its end and growth over the previous one.

A sweep times every setting in every repetition, preparing it again each time (see
``hgbench/profile/sweep.py``); anything a backend keeps alive per prepare therefore grows with
settings x repetitions. From repetition 2 on, the repetitions do the same work, so the growth
between the end of repetition 2 and the end of the last one, per repetition, is what a leak costs
(``growth/rep``). Exit status 1 when it exceeds ``--max-growth-mb``. Linux only (reads
``/proc``).

Measured on the 2-core development VM (commit 16ece01, ``--variants hg1,hg2 --repetitions 4``,
four backends, batch 1, 64 px; 131 s wall while two other jobs shared the cores): RSS 236 MiB
before, 627 MiB after repetition 1, then +8, +14, +18 MiB per repetition: +15.9 MiB per
repetition after the second, 2.0 MiB per prepare. Before TorchScript's class registry was
cleared between settings, hg2 alone grew by ~60 MiB per TorchScript prepare. The whole-registry
run: ``benchmarks/reference/cpu-registry-64px/README.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

from hgbench.config import select_variants
from hgbench.profile import RunSettings, memory
from hgbench.profile.sweep import Budget, run_sweep
from hgbench.records.provenance import collect_provenance


def rss_mib() -> float:
    """Resident set size of this process in MiB after collecting garbage and trimming the heap."""
    memory.release_freed_memory()
    mib = memory.rss_mib()
    if mib is None:
        raise SystemExit("sweep_memory.py: /proc/self/status has no VmRSS (Linux only)")
    return mib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="hg2,hg4")
    parser.add_argument("--backend", default="eager,torchscript,compile,onnxruntime")
    parser.add_argument("--repetitions", type=int, default=6)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch-size", default="1")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--max-growth-mb",
        type=float,
        default=None,
        help="exit 1 when RSS grows by more than this per repetition after the second",
    )
    args = parser.parse_args(argv)
    if args.repetitions < 3:
        parser.error("--repetitions: at least 3 (growth is measured from the end of repetition 2)")

    torch.set_num_threads(args.threads)
    backends = [b for b in args.backend.split(",") if b]
    sizes = [int(s) for s in args.batch_size.split(",") if s]
    specs = select_variants(args.variants)
    settings_per_rep = len(specs) * len(backends) * len(sizes)
    samples: list[float] = []

    def on_step(label: str, advance: bool) -> None:
        if advance:
            samples.append(rss_mib())

    start = rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        run_sweep(
            [(spec, 16) for spec in specs], backends=backends,
            settings_list=[RunSettings(precision="fp32", cache_dir=cache / "artefacts")], batch_sizes=sizes,
            input_size=args.input_size, device=torch.device("cpu"), threads=args.threads,
            budget=Budget(warmup_iters=1, warmup_s=0.0, min_iters=args.repetitions, min_time_s=0.0,
                          repetitions=args.repetitions),
            results_dir=Path(tmp) / "results", provenance=collect_provenance(threads=args.threads),
            cache_dir=cache, on_step=on_step,
        )  # fmt: skip

    ends = [samples[(r + 1) * settings_per_rep - 1] for r in range(args.repetitions)]
    print(
        f"variants {args.variants}, backends {','.join(backends)}, batch {args.batch_size}, "
        f"{args.input_size} px, {settings_per_rep} settings per repetition; RSS before the sweep {start:.0f} MiB"
    )
    print("| repetition | RSS at its end (MiB) | growth over the previous (MiB) |")
    print("|---|---|---|")
    for r, end in enumerate(ends, start=1):
        previous = start if r == 1 else ends[r - 2]
        print(f"| {r} | {end:.0f} | {end - previous:+.0f} |")
    per_rep = (ends[-1] - ends[1]) / (args.repetitions - 2)
    print(f"growth/rep after repetition 2: {per_rep:+.1f} MiB ({per_rep / settings_per_rep:+.1f} MiB per prepare)")
    if args.max_growth_mb is not None and per_rep > args.max_growth_mb:
        print(f"FAIL: above --max-growth-mb {args.max_growth_mb}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
