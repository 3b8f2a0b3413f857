"""Confidence intervals of accuracies: a bootstrap over persons.

An accuracy such as PCK@0.2 is a ratio over joint instances (correct / scored), but the
instances are not independent: the joints of one person share an image, a scale, a pose and
often a failure (a person read mirrored gets both sides wrong). The unit that was sampled
is the person, so the persons are resampled (with replacement, all of one person's joints
together: a cluster bootstrap) and the statistic is recomputed on each resample. Resampling
joint instances instead would treat 14 correlated joints as 14 independent draws and give
intervals that are too narrow.

**Estimator.** A pooled accuracy (a group's or the Mean's) is a ratio estimator:
``100 x sum over persons of correct joints / sum over persons of scored joints``, recomputed on
each resample as a ratio of the resample's sums. It is not the mean of per-person accuracies
(persons with more annotated joints weigh more, as in the point estimate), and on the full
sample it is exactly the pooled accuracy that :mod:`hgbench.accuracy.pck` reports.

**Method.** :func:`scipy.stats.bootstrap` (SciPy's reference,
https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.bootstrap.html) with
``paired=True``: SciPy then resamples one index array of persons and applies it to every array
of ``data`` (here the per-person correct and scored counts), which is how a ratio of sums over
the same persons is expressed in its API; ``vectorized=True`` with the persons on the last axis,
so a batch of resamples is one NumPy reduction. The interval is the percentile interval
(``method="percentile"``): the 2.5th and 97.5th percentiles of the bootstrap distribution. It
needs no jackknife (BCa's costs ``persons`` more evaluations and its memory grows with
``persons^2``, too much for COCO's thousands of persons at every validation) and is defined
where BCa is not (an accuracy of 0 or 100 %: every resample equal). Where the sample has no
miss (or no hit) at all, every resample agrees and the interval is the point itself: the
bootstrap cannot see what it never sampled.

**Constants.** :data:`N_RESAMPLES` = 2000: the Monte-Carlo error of the interval's ends is
then a small fraction of its width (``tests/accuracy/test_interval.py`` checks it against other seeds),
and Efron and Tibshirani (*An Introduction to the Bootstrap*, 1993) ask for 1000 or more
resamples for percentile intervals; more would cost time at every validation of a training
run. :data:`SEED` is fixed so that the same predictions always give the same interval (a
record rewritten from the same predictions does not change, and two variants scored on the
same persons are resampled with the same person indices); its value has no meaning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE_LEVEL = 0.95
N_RESAMPLES = 2000
METHOD = "percentile"
SEED = 0  # any fixed value: what matters is that it is fixed (module docstring)
_MAX_BATCH_ELEMENTS = 2**23  # resamples x persons x columns per vectorised call (about 64 MiB of float64 each array)

Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


def pooled_percent(hits: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Percent pooled over the first axis: ``100 x hits.sum(0) / scored.sum(0)``.

    Args:
        hits, scored: ``(J, ...)`` totals of correct and of scored instances per joint (or
            column) over a sample of persons; the trailing axes index resamples.

    Returns:
        ``(...)`` percent; NaN where nothing is scored.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * hits.sum(axis=0) / scored.sum(axis=0)


def _per_person(correct: np.ndarray, scored: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(hits, scored)`` as float ``(P, J)`` 0/1 arrays from a correctness array (see
    :func:`bootstrap_ci`). Raises ValueError for a shape that is not ``(P, J)``."""
    correct = np.asarray(correct)
    if correct.ndim != 2:
        raise ValueError(f"correct must be (persons, joints); got shape {correct.shape}")
    if scored is None:
        on = np.isfinite(correct) if correct.dtype.kind == "f" else np.ones(correct.shape, bool)
    else:
        on = np.asarray(scored, bool)
        if on.shape != correct.shape:
            raise ValueError(f"scored has shape {on.shape}, correct {correct.shape}; they must agree")
        on = on & (np.isfinite(correct) if correct.dtype.kind == "f" else True)
    hits = np.where(on, np.nan_to_num(correct.astype(np.float64)), 0.0)
    return hits, on.astype(np.float64)


def _bootstrap(
    hits: np.ndarray,
    scored: np.ndarray,
    statistic: Statistic,
    confidence_level: float,
    n_resamples: int,
    method: str,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of ``statistic`` over per-person counts ``hits``, ``scored`` ``(P, C)``
    (persons with nothing scored dropped first); ``(low, high)`` arrays of the statistic's shape."""
    keep = scored.sum(axis=1) > 0
    hits, scored = hits[keep], scored[keep]
    shape = np.shape(statistic(hits.sum(axis=0), scored.sum(axis=0)))
    if len(hits) < 2:  # no spread to resample from
        nan = np.full(shape, np.nan)
        return nan, nan.copy()

    def on_persons(h: np.ndarray, s: np.ndarray, axis: int = -1) -> np.ndarray:
        # h, s: (C, ..., P) with the persons on `axis`: totals per column, then the statistic
        return statistic(h.sum(axis=axis), s.sum(axis=axis))

    batch = max(1, min(n_resamples, _MAX_BATCH_ELEMENTS // hits.size))
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # a resample without any scored instance in a column makes that column's percentiles NaN
        # (SciPy warns DegenerateDataWarning); the interval is then reported as undefined
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(
            (hits.T, scored.T), on_persons, n_resamples=n_resamples, batch=batch, vectorized=True, paired=True, axis=-1,
            confidence_level=confidence_level, method=method, rng=np.random.default_rng(seed),
        )  # fmt: skip
    ci = res.confidence_interval
    return np.asarray(ci.low, np.float64).reshape(shape), np.asarray(ci.high, np.float64).reshape(shape)


def bootstrap_ci(
    correct: np.ndarray,
    statistic: Statistic = pooled_percent,
    *,
    scored: np.ndarray | None = None,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = N_RESAMPLES,
    method: str = METHOD,
    seed: int = SEED,
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """A bootstrap confidence interval of an accuracy, resampling persons (module docstring).

    Args:
        correct: ``(P, J)``, persons x joints: 1 correct, 0 wrong, NaN not scored (float, as
            :func:`hgbench.accuracy.pck.pck_correct` returns it), or bool with ``scored``.
        statistic: maps the totals of a sample of persons, ``hits`` and ``scored`` (each
            ``(J, ...)``: correct and scored instances per joint; trailing axes index
            resamples), to the statistic in percent, ``(...)``, or to ``K`` statistics at once,
            ``(K, ...)`` (one resampling serves them all). Default :func:`pooled_percent`, the
            accuracy pooled over every scored joint instance (a ratio estimator).
        scored: ``(P, J)`` bool, which entries are scored (default: the finite ones).
        confidence_level: two-sided, 0.95 for a 95 % interval.
        n_resamples, method, seed: of :func:`scipy.stats.bootstrap` (``rng`` =
            ``numpy.random.default_rng(seed)``), :data:`N_RESAMPLES`, :data:`METHOD`, :data:`SEED`.

    Returns:
        ``(low, high)`` in the statistic's unit (percent): floats for one statistic, ``(K,)``
        arrays for ``K``. NaN where the interval is undefined: fewer than two persons with a
        scored joint, or a statistic that is NaN on some resample (a column none of whose
        instances was drawn).

    Raises:
        ValueError: ``correct`` is not two-dimensional, or ``scored`` has another shape.
    """
    hits, on = _per_person(correct, scored)
    low, high = _bootstrap(hits, on, statistic, confidence_level, n_resamples, method, seed)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high


def pooled_cis(
    correct: np.ndarray,
    columns: Mapping[str, Sequence[int]],
    *,
    scored: np.ndarray | None = None,
    confidence_level: float = CONFIDENCE_LEVEL,
    n_resamples: int = N_RESAMPLES,
    method: str = METHOD,
    seed: int = SEED,
) -> dict[str, tuple[float, float]]:
    """Intervals of several pooled accuracies from one resampling of the persons.

    Each column (a group such as ``"Shoulder": (8, 9)``, or the Mean: every joint) is the
    percent of correct among the scored instances of its joints, pooled (a ratio estimator).
    Per-person counts are summed per column before resampling, which the ratio of sums allows
    and which makes the resampling as cheap as for ``len(columns)`` joints.

    Args:
        correct, scored, confidence_level, n_resamples, method, seed: as :func:`bootstrap_ci`.
        columns: name -> joint indices (columns of ``correct``) pooled into it.

    Returns:
        name -> ``(low, high)`` percent (NaN, NaN where undefined, as :func:`bootstrap_ci`).
    """
    hits, on = _per_person(correct, scored)
    names = list(columns)
    weights = np.zeros((hits.shape[1], len(names)))
    for k, name in enumerate(names):
        weights[list(columns[name]), k] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = _bootstrap(
            hits @ weights, on @ weights, lambda h, s: 100.0 * h / s, confidence_level, n_resamples, method, seed
        )
    return {name: (float(low[k]), float(high[k])) for k, name in enumerate(names)}


def intervals_overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool | None:
    """Whether the closed intervals ``a`` and ``b`` share a point; None when either is missing
    or not finite.

    Overlapping 95 % intervals are the report's criterion for "not distinguishable". It is
    conservative: two accuracies whose intervals overlap slightly can still differ at the 5 %
    level, and a paired comparison on the same persons (which the records do not keep) would be
    sharper.
    """
    if a is None or b is None or not np.all(np.isfinite([*a, *b])):
        return None
    return bool(a[0] <= b[1] and b[0] <= a[1])
