"""Compare two sets of profile records: did latency, memory or size change, and is it a regression?

``hgbench compare BASELINE CURRENT`` reads the ``"profile"`` records of two results folders
(:func:`hgbench.records.scan`), matches them one to one by their key's setting
(:meth:`hgbench.records.RecordKey.without_machine`: the machine may differ) and compares each
metric of :data:`METRICS`. Two machines are compared by passing their folders,
``<results>/profile/<label A>`` and ``<results>/profile/<label B>`` (machine labels:
``hgbench profile --machine-label``, default the host name; two labels may be of one host):
their records match on the setting whatever their labels, hosts or device names, and the
calibration below takes the machines' difference out of each ratio.

Timing metrics (latency p50 and p90, throughput) are normalised by the calibration workload
that ``hgbench profile`` times in the same process as the model (record field
``calibration``): the machine factor ``m = current calibration p50 / baseline calibration
p50`` says how much slower the current machine (or the current load) runs a fixed workload, and

    latency ratio    = (current p50 / current calibration p50) / (baseline p50 / baseline calibration p50)
                     = (current p50 / baseline p50) / m
    throughput ratio = (current throughput / baseline throughput) * m

so that a machine that is uniformly 2x slower reads as a ratio of 1, not as a regression.

A timing metric is a *regression* only when two independent checks both say "slower":

1. its normalised ratio is beyond the metric's threshold (latency above ``1 + t``,
   throughput below ``1 - t``, ``t`` in percent / 100), and
2. a one-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``, ``alternative="greater"``)
   on the raw per-batch latency samples (``latency_ms.samples_ms``), each side divided by its
   own calibration p50, rejects "current is not slower" at level ``alpha``.

The threshold alone would flag noise on a machine whose medians wander; the test alone flags
differences of 1 % once there are thousands of samples (every GPU run has them). Together:
slower by a margin that matters, and not by chance. Improvements use the mirrored rules
(``alternative="less"``). The test is on the whole sample distribution, so p50, p90 and
throughput of one record share one p-value per direction.

Peak memory has a threshold but no samples (one number per run), so no test; parameters and
GMACs are deterministic counts whose every change is reported as ``changed``: a different
network is a different benchmark, not a slower one, so they never fail a comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from scipy.stats import mannwhitneyu

from hgbench.paths import check_writable_file
from hgbench.records import KEY_FIELDS, Record, RecordKey, scan
from hgbench.records.schema import machine_label

DEFAULT_ALPHA = 0.01

REGRESSION = "regression"
IMPROVEMENT = "improvement"
UNCHANGED = "unchanged"
CHANGED = "changed"
NEW = "new"
MISSING = "missing"
ERROR = "error"


@dataclass(frozen=True)
class Metric:
    """One compared quantity of a profile record.

    Attributes:
        name: the name used by ``--threshold NAME=PERCENT``.
        label: column text, with the unit.
        path: keys leading to the value in the record body.
        higher_is_better: throughput; every other metric is better lower.
        timing: normalised by the calibration and tested on the raw latency samples.
        gating: a change beyond the threshold in the bad direction is a ``regression`` (and
            fails the comparison); ``False``: any change beyond the threshold is reported as
            ``changed`` and never fails (parameters, GMACs).
        default_threshold: percent; see :data:`METRICS` for why each value.
        min_abs: for a non-timing gating metric, the smallest absolute change (in the metric's
            unit) that can count as a regression or improvement.
    """

    name: str
    label: str
    path: tuple[str, ...]
    higher_is_better: bool
    timing: bool
    gating: bool
    default_threshold: float
    min_abs: float = 0.0

    def value(self, record: Record | dict[str, Any]) -> float | None:
        """The metric's value in a record, or ``None`` when it was not measured."""
        v: Any = record
        for k in self.path:
            v = v.get(k) if hasattr(v, "get") else None
            if v is None:
                return None
        return float(v)


# Default thresholds (percent), and why:
# - p50 10 %: the smallest slowdown worth failing a build for, on a quiet or dedicated machine (a
#   GPU runner), where a median over >= 1 s of calls is steady to a few percent and the
#   Mann-Whitney test keeps chance differences out. On a busy shared machine no one-shot
#   measurement is that steady (README "Latency regressions": back-to-back runs of hg1 moved by
#   up to 1.8x once calibrated), which is why the CI gate (hgbench.profile.gate measures, hgbench.analysis.gate judges) interleaves.
# - p90 20 %: the tail moves with interrupts and neighbours, about twice as much as the median.
# - throughput 10 %: batch / p50, so the same evidence as p50, in samples/s.
# - peak memory 20 %, and at least 1 MiB: the CUDA allocator's peak is deterministic for the same
#   code and input, so 20 % is a real change; the CPU figure (increase of the resident set) moves
#   with allocator caching by fractions of a MiB, hence the absolute floor. No samples: no test.
# - parameters, GMACs 0 %: deterministic counts; any change means another network ("changed").
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("p50", "latency p50 (ms)", ("latency_ms", "p50_ms"), False, True, True, 10.0),
        Metric("p90", "latency p90 (ms)", ("latency_ms", "p90_ms"), False, True, True, 20.0),
        Metric("throughput", "throughput (samples/s)", ("throughput_samples_per_s",), True, True, True, 10.0),
        Metric("peak_memory", "peak memory (MiB)", ("peak_memory_mib",), False, False, True, 20.0, min_abs=1.0),
        Metric("parameters", "parameters", ("parameters",), False, False, False, 0.0),
        Metric("gmacs", "GMACs (fvcore)", ("gmacs_fvcore",), False, False, False, 0.0),
    )
}

_OFF = ("off", "none")


def parse_thresholds(items: Iterable[str] | None) -> dict[str, float | None]:
    """Thresholds in percent per metric: the defaults of :data:`METRICS`, overridden by
    ``items`` of the form ``metric=percent`` (``p50=20``) or ``metric=off`` (the metric is still
    shown but never judged: always ``unchanged``).

    Returns:
        ``{metric name: percent or None (off)}`` for every metric of :data:`METRICS`.

    Raises:
        ValueError: an item without ``=``, an unknown metric (the known ones are listed), a
            percent that is not a finite number >= 0.
    """
    out: dict[str, float | None] = {name: m.default_threshold for name, m in METRICS.items()}
    for item in items or ():
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep:
            raise ValueError(
                f"--threshold {item!r}: expected METRIC=PERCENT, e.g. p50=20 (metrics: {', '.join(METRICS)})"
            )
        if name not in METRICS:
            raise ValueError(f"--threshold {item!r}: unknown metric {name!r}; known: {', '.join(METRICS)}")
        if text.lower() in _OFF:
            out[name] = None
            continue
        try:
            percent = float(text.rstrip("%"))
        except ValueError:
            percent = math.nan
        if not math.isfinite(percent) or percent < 0:
            raise ValueError(f"--threshold {item!r}: the percent must be a number >= 0 (or 'off'), got {text!r}")
        out[name] = percent
    return out


def machine_factor(base_calib_ms: float, cur_calib_ms: float) -> float:
    """How much slower the current run executes the calibration workload than the baseline run:
    ``cur_calib_ms / base_calib_ms`` (both p50, ms). Raises ``ValueError`` unless both > 0."""
    if not (base_calib_ms > 0 and cur_calib_ms > 0):
        raise ValueError(f"calibration p50 must be > 0 ms, got baseline {base_calib_ms!r} and current {cur_calib_ms!r}")
    return cur_calib_ms / base_calib_ms


def normalised_ratio(base: float, cur: float, factor: float = 1.0, *, higher_is_better: bool = False) -> float:
    """``current / baseline`` with the machine ``factor`` (:func:`machine_factor`) taken out.

    A time (lower is better) scales with the machine: ``(cur / base) / factor``, i.e.
    ``(cur / cur_calib) / (base / base_calib)``. A rate (higher is better, samples/s) scales
    inversely: ``(cur / base) * factor``. With ``factor = 1`` (``--no-normalize``, or a metric
    that is not a timing) it is the plain ratio.

    Returns ``inf`` (or 1.0 when both are 0) for a zero baseline.
    """
    if base == 0:
        return 1.0 if cur == 0 else math.inf
    raw = cur / base
    return raw * factor if higher_is_better else raw / factor


def slower_p_values(base_samples: list[float], cur_samples: list[float]) -> tuple[float, float]:
    """One-sided Mann-Whitney U tests of two latency sample sets (same unit, already normalised).

    Returns:
        ``(p_slower, p_faster)``: the p-value of "current is stochastically greater (slower)
        than baseline" (``scipy.stats.mannwhitneyu(cur, base, alternative="greater")``) and of
        "current is smaller (faster)" (``alternative="less"``). scipy's ``method="auto"``: the
        exact distribution when a side has <= 8 samples and there are no ties, else the normal
        approximation with tie and continuity corrections.

    Raises:
        ValueError: either side has no samples.
    """
    if len(base_samples) == 0 or len(cur_samples) == 0:
        raise ValueError("the Mann-Whitney test needs samples on both sides")
    p_slower = float(mannwhitneyu(cur_samples, base_samples, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(cur_samples, base_samples, alternative="less").pvalue)
    return p_slower, p_faster


def min_attainable_p(n_base: int, n_cur: int) -> float:
    """The smallest one-sided p-value :func:`slower_p_values` can give with these sample counts:
    that of two fully separated sets (every current sample above every baseline one). For the
    exact test (scipy uses it when a side has <= 8 samples and there are no ties) it is
    ``1 / C(n_base + n_cur, n_base)``: 0.05 with 3 and 3 samples, so such a test can never
    reject at ``alpha = 0.01``."""
    return float(mannwhitneyu(range(n_base, n_base + n_cur), range(n_base), alternative="greater").pvalue)


@dataclass
class Row:
    """One line of a comparison: one metric of one record pair (or one unmatched record).

    ``baseline``/``current`` are the raw values in the metric's unit; ``ratio`` is
    :func:`normalised_ratio`; ``factor`` the machine factor used (1.0 when not normalised);
    ``p_value`` the one-sided p in the direction of the observed change (``None`` when no test
    applies); ``failing`` says whether this row makes the comparison fail (exit status 1).
    """

    key: RecordKey
    metric: str | None
    baseline: float | None
    current: float | None
    ratio: float | None
    factor: float | None
    p_value: float | None
    verdict: str
    failing: bool = False
    note: str = ""


@dataclass
class Comparison:
    """The result of :func:`compare_records`: rows, the settings, and what was left out."""

    rows: list[Row]
    thresholds: dict[str, float | None]
    alpha: float
    normalize: bool
    sides: dict[str, str] = field(default_factory=dict)  # "baseline"/"current" -> RecordSet.describe()
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Some row is a regression (or a run that failed where the baseline worked)."""
        return any(r.failing for r in self.rows)

    @property
    def exit_code(self) -> int:
        """0: nothing failed; 1: a regression."""
        return 1 if self.failed else 0

    def regressed_variants(self) -> list[str]:
        """Variant names with a failing row, sorted, each once."""
        return sorted({r.key.variant for r in self.rows if r.failing})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for ``--json``): settings, rows (key fields inline; an infinite ratio,
        from a zero baseline, as ``None``), skipped, warnings."""
        rows = []
        for r in self.rows:
            d = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(r).items()}
            d["key"] = r.key.as_dict()
            d["record"] = r.key.label()
            rows.append(d)
        return {
            "baseline": self.sides.get("baseline"),
            "current": self.sides.get("current"),
            "thresholds": self.thresholds,
            "alpha": self.alpha,
            "normalize": self.normalize,
            "failed": self.failed,
            "regressed_variants": self.regressed_variants(),
            "rows": rows,
            "skipped": [{"path": p, "reason": why} for p, why in self.skipped],
            "warnings": self.warnings,
        }


@dataclass
class RecordSet:
    """Profile records of one side, by key, with the files that were left out and why."""

    path: Path
    records: dict[RecordKey, Record]
    skipped: list[tuple[str, str]]

    def describe(self) -> str:
        """One line: the folder, how many records, their machine labels
        (:func:`hgbench.records.schema.machine_label`) with the hosts they ran on, devices and
        calibration p50s: ``"results/profile/a100: 12 records; machine a100 (host node3); device
        NVIDIA A100; calibration p50 1.2 ms"``."""

        def values(get) -> str:
            found = sorted({str(get(r)) for r in self.records.values()})
            return ", ".join(found[:3]) + (f" (+{len(found) - 3})" if len(found) > 3 else "")

        calib = values(
            lambda r: (
                f"{r['calibration']['p50_ms']:.3g} ms"
                if isinstance(r.get("calibration"), dict) and isinstance(r["calibration"].get("p50_ms"), (int, float))
                else "none"
            )
        )
        labels = values(lambda r: machine_label(r.get("provenance")))
        hosts = values(lambda r: (r.get("provenance") or {}).get("hostname"))
        machine = labels if hosts == labels else f"{labels} (host {hosts})"
        return (
            f"{self.path}: {len(self.records)} records; machine {machine}; "
            f"device {values(lambda r: r.get('device_name'))}; calibration p50 {calib}"
        )


def load_record_set(path: Path, side: str = "records") -> RecordSet:
    """Read the profile records of a results folder (every ``*.json`` below it, e.g.
    ``results/`` or ``results/profile/<machine label>``) or of one record file, by
    :func:`hgbench.records.scan`.

    Records of another kind (train, eval) are ignored silently; files the schema rule refuses are
    skipped with the reason; a profile record whose values break a rule of
    :mod:`hgbench.records.validation` (a NaN or negative latency, a completed setting without
    latency, a parameter count < 1) is refused: left out, its setting would read as ``missing``
    and the comparison would pass without it.

    Args:
        side: ``"BASELINE"`` or ``"CURRENT"``, to name the argument in messages.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a record breaks a value rule (naming the file, the field and the value); no
            usable profile record was found (the reasons for the skipped files are
            listed), or two records have the same setting (several machines' records in one
            folder: pass one machine's folder, ``<results>/profile/<machine label>``; the
            message names the machine labels of the two).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{side} {path}: no such results folder or record file")
    found = scan(path, kinds=["profile"], dedupe=False)
    if found.invalid:  # a NaN latency, a completed setting without one: never compared as missing
        bad, why = found.invalid[0]
        more = f" (and {len(found.invalid) - 1} more)" if len(found.invalid) > 1 else ""
        raise ValueError(f"{side} {path}: refused record {bad}: {why}{more}")
    records: dict[RecordKey, Record] = {}
    for rec in found.records:
        key = rec.key().without_machine()
        if key in records:
            first, second = (machine_label(r.get("provenance")) for r in (records[key], rec))
            machines = f"machines {first} and {second}" if first != second else f"both of machine {first}"
            raise ValueError(
                f"{side} {path}: two records of {key.label()} ({machines}): {records[key].path} and {rec.path}; "
                f"pass one machine's folder (<results>/profile/<machine label>) or one record file"
            )
        records[key] = rec
    if not records:
        detail = "; ".join(f"{p}: {why}" for p, why in found.skipped[:5]) or "no profile records at all"
        raise ValueError(f"{side} {path}: no usable profile records ({detail}); run `hgbench profile --results ...`")
    return RecordSet(path, records, found.skipped)


def _calibration(rec: Record) -> tuple[str, float]:
    cal = rec.get("calibration")
    if not isinstance(cal, dict) or not isinstance(cal.get("p50_ms"), (int, float)) or not cal["p50_ms"] > 0:
        raise ValueError(
            f"{rec.path}: field 'calibration' has no p50_ms > 0; re-run hgbench profile "
            f"(it times the calibration workload), or compare with --no-normalize"
        )
    return str(cal.get("workload")), float(cal["p50_ms"])


def _samples(rec: Record) -> list[float]:
    samples = (rec.get("latency_ms") or {}).get("samples_ms")
    if not samples:
        raise ValueError(f"{rec.path}: field 'latency_ms.samples_ms' is empty or missing; re-run hgbench profile")
    return [float(s) for s in samples]


def _judge(
    metric: Metric,
    ratio: float,
    t: float | None,
    p_slow: float | None,
    p_fast: float | None,
    abs_change: float,
    alpha: float,
) -> tuple[str, bool, float | None, str]:
    """Verdict, failing, shown p-value and note for one metric of one record pair (see the
    module docstring); ``t`` in percent or ``None`` (off)."""
    slower = ratio < 1 if metric.higher_is_better else ratio > 1
    shown_p = (p_slow if slower else p_fast) if metric.timing else None
    if t is None:
        return UNCHANGED, False, shown_p, "threshold off"
    limit = t / 100
    if metric.higher_is_better:
        worse, better = ratio < 1 - limit, ratio > 1 + limit
    else:
        worse, better = ratio > 1 + limit, ratio < 1 - limit
    if not (worse or better):
        return UNCHANGED, False, shown_p, ""
    if not metric.gating:
        return CHANGED, False, None, ""
    if not metric.timing:
        if abs_change < metric.min_abs:
            return UNCHANGED, False, None, f"change below {metric.min_abs:g}"
        return (REGRESSION, True, None, "") if worse else (IMPROVEMENT, False, None, "")
    if shown_p is not None and shown_p < alpha:
        return (REGRESSION, True, shown_p, "") if worse else (IMPROVEMENT, False, shown_p, "")
    direction = "slower" if worse else "faster"
    return UNCHANGED, False, shown_p, f"{direction} beyond the threshold, but not significant (p >= {alpha:g})"


def compare_records(
    baseline: RecordSet,
    current: RecordSet,
    thresholds: dict[str, float | None] | None = None,
    alpha: float = DEFAULT_ALPHA,
    normalize: bool = True,
) -> Comparison:
    """Compare two record sets key by key (see the module docstring for the rules).

    Args:
        thresholds: percent per metric (:func:`parse_thresholds`); default: the defaults.
        alpha: significance level of the one-sided Mann-Whitney tests, 0 < alpha < 1.
        normalize: divide timings by each run's calibration p50 (``False``: raw ratios, for two
            runs on one quiet machine, or records without calibration).

    Returns:
        A :class:`Comparison`: one row per metric of each matched pair with a value on both
        sides; one row each for ``new`` (current only), ``missing`` (baseline only) and
        ``error`` (the current run failed; failing unless the baseline had failed too).

    Raises:
        ValueError: ``alpha`` out of range; no key in common (both sides' keys are listed);
            with ``normalize``, a matched record without calibration, or the two sides timed
            different calibration workloads; a matched record without raw samples.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"--alpha must be in (0, 1), got {alpha}")
    thresholds = parse_thresholds(()) if thresholds is None else thresholds
    base, cur = baseline.records, current.records
    common = [k for k in base if k in cur]
    if not common:

        def some(keys: Iterable[RecordKey]) -> str:
            labels = [k.label() for k in sorted(keys, key=RecordKey.sort_key)]
            return ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")

        raise ValueError(
            f"no record of CURRENT {current.path} matches one of BASELINE {baseline.path} by "
            f"({', '.join(KEY_FIELDS['profile'])}). BASELINE has: {some(base)}. CURRENT has: {some(cur)}"
        )
    comp = Comparison(
        [],
        thresholds,
        alpha,
        normalize,
        {"baseline": baseline.describe(), "current": current.describe()},
        skipped=baseline.skipped + current.skipped,
    )
    for key in sorted(set(base) | set(cur), key=RecordKey.sort_key):
        if key not in cur:
            comp.rows.append(Row(key, None, None, None, None, None, None, MISSING, note="in baseline only"))
            continue
        if key not in base:
            comp.rows.append(Row(key, None, None, None, None, None, None, NEW, note="in current only"))
            continue
        b, c = base[key], cur[key]
        if c.get("status") != "ok":
            both = b.get("status") != "ok"
            note = f"current: {c.get('error')}" + ("; the baseline failed too" if both else "")
            comp.rows.append(Row(key, None, None, None, None, None, None, ERROR, failing=not both, note=note))
            continue
        if b.get("status") != "ok":
            comp.rows.append(
                Row(key, None, None, None, None, None, None, NEW, note=f"baseline failed: {b.get('error')}")
            )
            continue
        comp.rows.extend(_compare_pair(key, b, c, comp))
    return comp


def _compare_pair(key: RecordKey, b: Record, c: Record, comp: Comparison) -> list[Row]:
    factor = 1.0
    if comp.normalize:
        (wb, cb), (wc, cc) = _calibration(b), _calibration(c)
        if wb != wc:
            raise ValueError(
                f"{c.path}: calibration workload {wc!r} differs from the baseline's {wb!r} ({b.path}); "
                f"the two cannot normalise each other: re-measure both with one hgbench version, or pass --no-normalize"
            )
        factor = machine_factor(cb, cc)
    if b.get("threads") != c.get("threads"):
        comp.warnings.append(f"{key.label()}: threads {b.get('threads')} (baseline) vs {c.get('threads')} (current)")
    p_slow = p_fast = None
    if b.get("latency_ms") is not None and c.get("latency_ms") is not None:
        bs, cs = _samples(b), _samples(c)
        scale_b = factor if comp.normalize else 1.0  # divide each side by its own calibration: ratio of scales = factor
        p_slow, p_fast = slower_p_values([s * scale_b for s in bs], cs)
        floor = min_attainable_p(len(bs), len(cs))
        if floor >= comp.alpha:
            comp.warnings.append(
                f"{key.label()}: {len(bs)} and {len(cs)} samples: the test cannot reach p < {comp.alpha:g} "
                f"(best {floor:.3g}); profile with more --min-iters"
            )
    rows = []
    for name, metric in METRICS.items():
        vb, vc = metric.value(b), metric.value(c)
        if vb is None or vc is None:
            continue
        f = factor if metric.timing else 1.0
        ratio = normalised_ratio(vb, vc, f, higher_is_better=metric.higher_is_better)
        verdict, failing, p, note = _judge(
            metric,
            ratio,
            comp.thresholds[name],
            p_slow if metric.timing else None,
            p_fast if metric.timing else None,
            abs(vc - vb),
            comp.alpha,
        )
        rows.append(Row(key, name, vb, vc, ratio, f if metric.timing else None, p, verdict, failing, note))
    return rows


def compare_results(
    baseline: Path,
    current: Path,
    thresholds: dict[str, float | None] | None = None,
    alpha: float = DEFAULT_ALPHA,
    normalize: bool = True,
    json_out: Path | None = None,
) -> Comparison:
    """:func:`load_record_set` both sides, then :func:`compare_records`; with ``json_out``
    (``hgbench compare --json``), also :func:`write_comparison` there, a path checked before
    any record is read (:func:`hgbench.paths.check_writable_file`).

    Raises:
        ValueError, NotADirectoryError, hgbench.paths.MachineFaultError: ``json_out`` is a
            folder, one of the two record files compared, or in a folder that cannot be
            written (naming ``--json``); as
            :func:`load_record_set` and :func:`compare_records`.
    """
    if json_out is not None:
        check_writable_file(json_out, "--json", "comparison.json")
        for side, given in (("BASELINE", Path(baseline)), ("CURRENT", Path(current))):
            if Path(json_out).is_file() and given.is_file() and Path(json_out).samefile(given):
                raise ValueError(f"--json {json_out}: is the {side} record, which the comparison would replace; "
                                 "give another file name")  # fmt: skip
    comp = compare_records(
        load_record_set(baseline, "BASELINE"), load_record_set(current, "CURRENT"), thresholds, alpha, normalize
    )
    if json_out is not None:
        write_comparison(comp, json_out)
    return comp


_STYLE = {
    REGRESSION: "bold red",
    ERROR: "bold red",
    IMPROVEMENT: "green",
    CHANGED: "yellow",
    NEW: "cyan",
    MISSING: "magenta",
}


def _fmt(v: float | None, metric: str | None = None) -> str:
    if v is None:
        return "—"
    if metric == "parameters":
        return f"{int(v):,}"
    if math.isinf(v):
        return "inf"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"


def comparison_table(comp: Comparison, show_all: bool = False, metrics: Iterable[str] | None = None):
    """A ``rich.table.Table`` of the rows that are not ``unchanged`` (all rows with
    ``show_all``; only the rows of ``metrics``, and the rows of unmatched or failed records,
    when given): record, metric, baseline, current, machine factor, normalised ratio, p-value,
    verdict, note."""
    from rich.table import Table

    norm = "calibration-normalised" if comp.normalize else "not normalised"
    table = Table(
        title=f"hgbench compare: ratio = current / baseline ({norm}), one-sided Mann-Whitney p, alpha {comp.alpha:g}"
    )
    for col in ("record", "metric", "baseline", "current", "machine", "ratio", "p", "verdict", "note"):
        table.add_column(col, justify="right" if col in ("baseline", "current", "machine", "ratio", "p") else "left")
    for r in comp.rows:
        if (r.verdict == UNCHANGED and not show_all) or (
            metrics is not None and r.metric is not None and r.metric not in metrics
        ):
            continue
        label = METRICS[r.metric].label if r.metric else "—"
        style = _STYLE.get(r.verdict, "")
        verdict = f"[{style}]{r.verdict}[/]" if style else r.verdict
        p = "—" if r.p_value is None else f"{r.p_value:.2g}"
        table.add_row(
            r.key.label(),
            label,
            _fmt(r.baseline, r.metric),
            _fmt(r.current, r.metric),
            _fmt(r.factor),
            _fmt(r.ratio),
            p,
            verdict,
            r.note,
        )
    return table


def summary_line(comp: Comparison) -> str:
    """Counts of the verdicts, e.g. ``2 regression, 40 unchanged (over 7 record pairs)``."""
    counts: dict[str, int] = {}
    for r in comp.rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    pairs = len({r.key for r in comp.rows})
    order = (REGRESSION, ERROR, IMPROVEMENT, CHANGED, NEW, MISSING, UNCHANGED)
    text = ", ".join(f"{counts[v]} {v}" for v in order if v in counts)
    return f"{text} (rows over {pairs} records)"


def write_comparison(comp: Comparison, path: Path) -> None:
    """Write ``comp`` as JSON (:meth:`Comparison.to_dict`) to ``path``, atomically."""
    import json

    from hgbench.records import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(comp.to_dict(), indent=1) + "\n").encode())
