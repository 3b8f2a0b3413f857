"""Do calibration probes tell disturbed seconds from quiet ones, and does keeping only quiet
windows make two runs agree better? The measurement behind :mod:`hgbench.profile.quiet`.

Usage::

    python benchmarks/quiet_windows.py --seconds 300 --save trace.json   # measure, then analyse
    python benchmarks/quiet_windows.py --load trace.json                 # analyse a saved trace

Measure: one variant (default hg2, 64 px, random weights of the sweep's seed) prepared once
per setting (TorchScript batch 1, eager batch 4, ONNX Runtime batch 1), then for ``--seconds``
round after round: a probe (:data:`hgbench.profile.quiet.PROBE_CALLS` calls of the
calibration workload), a 0.15 s window of one setting, a probe, the next setting, ... with
``--threads`` threads. Analyse: the probe medians relative to their 10th percentile (the
quiet level), each setting's median over windows whose two probes were within the tolerance
(quiet) and over the others (disturbed), and many simulated pairs of runs that each draw
three windows per setting at random times: the median and 90th percentile over pairs of
``|log(run 2 median / run 1 median)|`` (%) when every window is kept and when a window is
replaced by the next one of the same setting until its probes are quiet (up to
``--attempts``), as :class:`hgbench.profile.quiet.QuietTimer` does.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

SETTINGS = (("torchscript", 1), ("eager", 4), ("onnxruntime", 1))
WINDOW_S = 0.15


def measure(variant: str, seconds: float, threads: int) -> list[tuple[str, float, list[float]]]:
    """``[(name, seconds since start, samples in ms)]``: probes are named ``"probe"``."""
    import torch

    from hgbench.config import get_variant
    from hgbench.profile.backends import RunSettings, get_backend
    from hgbench.profile.latency import time_callable
    from hgbench.profile.quiet import QuietTimer
    from hgbench.profile.run import make_input
    from hgbench.profile.sweep import build_profiled_model

    torch.set_num_threads(threads)
    model = build_profiled_model(get_variant(variant), 16, 64, torch.device("cpu"))
    fns = {}
    for backend, batch in SETTINGS:
        x = make_input(batch, 64)
        prepared = get_backend(backend).prepare(model, x, RunSettings())
        fns[f"{backend} b{batch}"] = lambda fn=prepared.fn, xi=prepared.prepare_input(x): fn(xi)  # noqa: B008 - binds this setting's input now
    timer = QuietTimer(torch.device("cpu"))
    trace = []
    with torch.inference_mode():
        for fn in fns.values():
            time_callable(fn, warmup_iters=3, warmup_s=0.3, min_iters=1, min_time_s=0.0)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for name, fn in fns.items():
                trace.append(("probe", time.perf_counter() - start, [timer.probe()]))
                trace.append((name, time.perf_counter() - start,
                              time_callable(fn, warmup_iters=1, min_iters=3, min_time_s=WINDOW_S).samples_ms))  # fmt: skip
        trace.append(("probe", time.perf_counter() - start, [timer.probe()]))
    return trace


def analyse(trace: list, tolerance: float, attempts: int, draws: int = 2000, repetitions: int = 3) -> str:
    """The report described in the module docstring, as text."""
    probes = np.array([np.median(s) for name, _, s in trace if name == "probe"])
    level = float(np.percentile(probes, 10))
    edges = [0.0, 1.05, 1.10, 1.15, 1.20, 1.30, 1.40, 1.60, math.inf]
    counts = np.histogram(probes / level, bins=edges)[0]
    lines = [f"{len(probes)} probes over {trace[-1][1]:.0f} s; quiet level (10th percentile) {level:.3f} ms",
             "probe / quiet level: "
              + ", ".join(f"{a:g}-{b:g}: {c}" for a, b, c in zip(edges, edges[1:], counts, strict=False))]  # fmt: skip
    windows: dict[str, list[tuple[float, bool]]] = {}
    for i, (name, _, samples) in enumerate(trace):
        if name != "probe":
            worse = max(np.median(trace[i - 1][2]), np.median(trace[i + 1][2]))
            windows.setdefault(name, []).append((float(np.median(samples)), bool(worse <= level * (1 + tolerance))))
    rng = random.Random(0)
    lines.append(f"tolerance {tolerance:.0%}, up to {attempts} windows per repetition, {repetitions} repetitions per run, "
                 f"{draws} simulated pairs of runs; |log(run 2 median / run 1 median)| median / 90th percentile:")  # fmt: skip
    for name, wins in windows.items():
        quiet = [p for p, q in wins if q]
        busy = [p for p, q in wins if not q]

        def run(gated: bool, wins: list = wins) -> float:
            picked = []
            for i in rng.sample(range(len(wins) - attempts), repetitions):
                j = i
                while gated and not wins[j][1] and j < i + attempts - 1:
                    j += 1
                picked.append(wins[j][0])
            return float(np.median(picked))

        diffs = {g: sorted(abs(math.log(run(g) / run(g))) * 100 for _ in range(draws)) for g in (False, True)}
        lines.append(
            f"  {name}: {len(quiet)} of {len(wins)} windows quiet (median {np.median(quiet):.2f} ms, "
            f"disturbed {np.median(busy):.2f} ms); every window kept {np.median(diffs[False]):.1f} % / "
            f"{diffs[False][int(0.9 * draws)]:.1f} %, quiet windows {np.median(diffs[True]):.1f} % / {diffs[True][int(0.9 * draws)]:.1f} %"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="hg2")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--attempts", type=int, default=10)
    parser.add_argument("--save", type=Path, help="write the measured trace here (JSON)")
    parser.add_argument("--load", type=Path, help="analyse this saved trace instead of measuring")
    args = parser.parse_args(argv)
    if args.load:
        try:
            trace = json.loads(args.load.read_text())
        except (OSError, ValueError) as e:
            print(f"quiet_windows: cannot read the trace {args.load}: {e}", file=sys.stderr)
            return 2
    else:
        trace = measure(args.variant, args.seconds, args.threads)
        if args.save:
            tmp = args.save.with_suffix(args.save.suffix + ".tmp")
            tmp.write_text(json.dumps(trace))
            tmp.replace(args.save)
    windows = min(sum(name == n for n, _, _ in trace) for name in {n for n, _, _ in trace if n != "probe"})
    if windows < args.attempts + 3:
        print(
            f"quiet_windows: {windows} windows per setting, need at least --attempts + 3 = {args.attempts + 3}; "
            "measure longer (--seconds)",
            file=sys.stderr,
        )
        return 2
    print(analyse(trace, args.tolerance, args.attempts), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
