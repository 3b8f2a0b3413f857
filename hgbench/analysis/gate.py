"""The verdict of the latency regression gate (``hgbench latency-check``, ``.ci/run``): this
run's gate records (measured by :mod:`hgbench.profile.gate`: every registered variant's CPU
forward pass interleaved with a frozen reference network) compared with the committed
reference records by :mod:`hgbench.analysis.compare`, a flagged variant re-measured before the
check fails. This module reads records only; the measuring is given to :func:`run_gate`.

Why it does not flake on a shared 2-core machine, yet fails on a real slowdown (the
measurement's part, interleaving with a frozen network of the variants' operations, is in
:mod:`hgbench.profile.gate`):

* **A generous gate on robust statistics.** A regression needs the calibrated median above
  1.5x the reference's (:data:`GATE_THRESHOLDS`) AND a one-sided Mann-Whitney test on the
  calibration-normalised samples at ``alpha = 0.01``: a 2x slowdown crosses 1.5x with a 1.3x
  margin; an unchanged re-run measured 0.86x to 1.11x under the heaviest load seen.
* **A retry.** A flagged variant is re-measured (``retries`` times) in a fresh interleaved
  session and fails only if every attempt is flagged.

What it does not catch: slowdowns under ~1.5x, GPU-only or backend-only regressions (use
``hgbench compare`` with the default 10 % between two ``hgbench profile`` runs on one quiet
machine or a GPU runner; README "Latency regressions").
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from hgbench.analysis.compare import Comparison, compare_results, parse_thresholds
from hgbench.paths import LATENCY_GATE_DIR, check_writable_folder

GATE_THRESHOLDS = ("p50=50", "p90=off", "throughput=off", "peak_memory=off")
"""``hgbench compare`` thresholds of the gate: only the calibrated median, at 1.5x (the tail and
the CPU resident-set increase are too noisy on a shared machine; throughput is p50 again)."""

Measure = Callable[..., object]
"""How :func:`run_gate` measures: ``measure(names, folder, progress=progress)`` writes the gate
records of the variants ``names`` (``None``: all) into ``folder``
(:func:`hgbench.profile.gate.measure_variants`)."""


def run_gate(
    reference: Path = LATENCY_GATE_DIR,
    names: Iterable[str] | None = None,
    out: Path | None = None,
    *,
    measure: Measure,
    thresholds: Iterable[str] = GATE_THRESHOLDS,
    alpha: float = 0.01,
    retries: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[Comparison, list[Comparison], Path]:
    """Measure the current code (``measure``: :func:`hgbench.profile.gate.measure_variants`, given
    ``progress``) into ``out/attempt1`` (``out`` default: a new temporary folder), compare with
    the reference records (:func:`hgbench.analysis.compare.compare_results`, calibrated,
    ``thresholds`` in ``hgbench compare`` syntax), then re-measure the variants that failed, up
    to ``retries`` times, into ``out/attempt2``, ...; a variant fails only if every attempt
    fails (:func:`merge_attempt`).

    Returns:
        ``(final, attempts, out)``: the comparison whose failures stand (the first attempt's
        rows, each failing variant's rows replaced by its last re-measurement's), every
        attempt's comparison, and the output folder.

    Raises:
        FileNotFoundError: no reference folder (create it with ``hgbench latency-check --update``).
        ValueError: ``retries`` < 0, ``out`` not empty, bad thresholds, no reference record
            matches, a reference of another workload.
        NotADirectoryError, hgbench.paths.MachineFaultError: ``out`` is a file or cannot be
            written (:func:`hgbench.paths.check_writable_folder`, naming ``--out``; before any
            measurement).
        KeyError: an unknown variant name.
    """
    reference = Path(reference)
    if retries < 0:
        raise ValueError(f"--retries must be >= 0, got {retries}")
    if out is not None and Path(out).is_dir() and any(Path(out).iterdir()):
        raise ValueError(f"--out {out}: not empty; pass a new or empty folder (its records would be compared too)")
    if not reference.is_dir():
        raise FileNotFoundError(
            f"{reference}: no reference records; create them with `hgbench latency-check --update` "
            f"(on a quiet machine) and commit them"
        )
    parsed = parse_thresholds(list(thresholds))
    if out is not None:
        check_writable_folder(Path(out), "--out")
    out = Path(tempfile.mkdtemp(prefix="hgbench-latency-check-")) if out is None else Path(out)
    measure(names, out / "attempt1", progress=progress)
    final = compare_results(reference, out / "attempt1", parsed, alpha)
    attempts = [final]
    for i in range(1, retries + 1):
        flagged = final.regressed_variants()
        if not flagged:
            break
        again = out / f"attempt{i + 1}"
        measure(flagged, again, progress=progress)
        attempts.append(compare_results(reference, again, parsed, alpha))
        final = merge_attempt(final, attempts[-1], flagged)
    final.rows.sort(key=lambda r: (r.key.sort_key(), r.metric or ""))
    return final, attempts, out


def merge_attempt(final: Comparison, retry: Comparison, flagged: Iterable[str]) -> Comparison:
    """The comparison that stands after a re-measurement of the ``flagged`` variants: the earlier
    rows of the variants that passed, the re-measured rows of the flagged ones (a flagged
    variant still failing in ``retry`` fails), the warnings of both."""
    flagged = set(flagged)
    return Comparison(
        [r for r in final.rows if r.key.variant not in flagged] + [r for r in retry.rows if r.key.variant in flagged],
        final.thresholds,
        final.alpha,
        final.normalize,
        final.sides,
        final.skipped,
        final.warnings + retry.warnings,
    )
