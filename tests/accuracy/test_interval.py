"""Bootstrap intervals of accuracies (hgbench.accuracy.interval): coverage of known cases,
width against the number of persons, the seed, the ratio estimator, and the undefined cases."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from hgbench.accuracy.interval import bootstrap_ci, intervals_overlap, pooled_cis, pooled_percent

ALL = {"all": tuple(range(14))}


def _persons(
    rng: np.random.Generator, persons: int, p: float, joints: int = 14, spread: float | None = None
) -> np.ndarray:
    """``(persons, joints)`` correctness: each joint correct with probability p (``spread`` None),
    or with a per-person probability drawn from Beta(p x spread, (1 - p) x spread) (joints of one
    person correlated; the pooled truth is still p); 10 % of the joints not scored (NaN)."""
    ability = np.full(persons, p) if spread is None else rng.beta(p * spread, (1 - p) * spread, size=persons)
    correct = (rng.random((persons, joints)) < ability[:, None]).astype(float)
    correct[rng.random((persons, joints)) < 0.1] = np.nan
    return correct


def _coverage(truth_pct: float, datasets: list[np.ndarray], **kw) -> float:
    hits = 0
    for k, c in enumerate(datasets):
        low, high = pooled_cis(c, {"all": tuple(range(c.shape[1]))}, seed=k, **kw)["all"]
        hits += low <= truth_pct <= high
    return hits / len(datasets)


def test_interval_of_a_known_binomial_covers_the_truth_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    datasets = [_persons(rng, 150, 0.7) for _ in range(200)]
    assert 0.90 <= _coverage(70.0, datasets) <= 0.98


def test_persons_are_the_resampling_unit_when_their_joints_are_correlated():
    """Joints of one person share a difficulty: resampling persons keeps the nominal coverage,
    treating every joint as its own person (what resampling joint instances amounts to) does not."""
    rng = np.random.default_rng(2)
    datasets = [_persons(rng, 150, 0.6, spread=4.0) for _ in range(200)]
    assert 0.90 <= _coverage(60.0, datasets) <= 0.98
    as_joints = [c.reshape(-1, 1) for c in datasets[:100]]  # (persons x joints, 1): every joint independent
    assert _coverage(60.0, as_joints, n_resamples=500) < 0.8


def test_interval_narrows_as_one_over_the_root_of_the_persons():
    rng = np.random.default_rng(3)
    widths = {}
    for n in (100, 400, 1600):
        w = [np.subtract(*pooled_cis(_persons(rng, n, 0.7), ALL, seed=k)["all"][::-1]) for k in range(5)]
        widths[n] = float(np.mean(w))
    assert widths[100] > widths[400] > widths[1600] > 0
    assert widths[400] / widths[100] == pytest.approx(0.5, abs=0.1)
    assert widths[1600] / widths[400] == pytest.approx(0.5, abs=0.1)


def test_same_input_same_interval_and_other_seeds_move_the_ends_little():
    c = _persons(np.random.default_rng(4), 250, 0.6, spread=4.0)
    assert bootstrap_ci(c) == bootstrap_ci(c.copy())
    width = np.subtract(*bootstrap_ci(c)[::-1])
    ends = np.array([bootstrap_ci(c, seed=s) for s in range(10)])
    assert len({tuple(e) for e in ends}) > 1  # the seed is used
    assert ends.std(axis=0).max() < 0.05 * width  # Monte-Carlo error of 2000 resamples: small against the width


def test_ratio_estimator_is_the_pooled_accuracy_not_a_mean_of_persons():
    # 10 x (one person with 14 scored joints, all correct; nine with 1 scored joint, wrong):
    # pooled 14/23 = 60.9 %, mean of per-person accuracies 10 %
    one = np.full((10, 14), np.nan)
    one[0] = 1.0
    one[1:, 0] = 0.0
    c = np.tile(one, (10, 1))
    hits, scored = np.nan_to_num(c).sum(axis=0), np.isfinite(c).sum(axis=0)
    pooled = float(pooled_percent(hits, scored))
    assert pooled == pytest.approx(100 * 14 / 23)
    from hgbench.accuracy.pck import summarize_pck
    from hgbench.data.keypoints import LSP

    result = summarize_pck(c, LSP, 0.2)
    assert result.mean == pytest.approx(pooled)  # the statistic on the full sample is the reported Mean
    low, high = bootstrap_ci(c)
    assert low < pooled < high and low > 10.0 + 20  # nowhere near the mean of per-person accuracies
    assert result.mean_ci == pytest.approx((low, high))


def test_one_resampling_serves_several_columns_and_agrees_with_the_general_form():
    c = _persons(np.random.default_rng(5), 120, 0.5, spread=4.0)
    assert pooled_cis(c, ALL)["all"] == pytest.approx(bootstrap_ci(c))
    cols = {"left": (0, 2, 4), "right": (1, 3, 5)}

    def two(h, s):
        return np.stack([pooled_percent(h[list(cols["left"])], s[list(cols["left"])]),
                         pooled_percent(h[list(cols["right"])], s[list(cols["right"])])])  # fmt: skip

    low, high = bootstrap_ci(c, two)
    got = pooled_cis(c, cols)
    assert got["left"] == pytest.approx((low[0], high[0])) and got["right"] == pytest.approx((low[1], high[1]))


def test_bool_input_with_a_mask_equals_nan_input():
    c = _persons(np.random.default_rng(6), 80, 0.7)
    scored = np.isfinite(c)
    assert bootstrap_ci(np.nan_to_num(c).astype(bool), scored=scored) == bootstrap_ci(c)
    with pytest.raises(ValueError, match="persons, joints"):
        bootstrap_ci(np.ones(5))
    with pytest.raises(ValueError, match="must agree"):
        bootstrap_ci(np.ones((5, 2), bool), scored=np.ones((5, 3), bool))


def test_undefined_and_degenerate_cases():
    assert all(math.isnan(v) for v in bootstrap_ci(np.ones((1, 14))))  # one person: no spread to resample
    assert all(math.isnan(v) for v in bootstrap_ci(np.full((50, 14), np.nan)))  # nothing scored
    assert bootstrap_ci(np.ones((50, 14))) == (100.0, 100.0)  # no miss sampled: the bootstrap cannot see one
    # a column scored for one person only is missing from some resamples: undefined, not made up
    c = np.ones((200, 3))
    c[1:, 2] = np.nan
    got = pooled_cis(c, {"common": (0, 1), "rare": (2,)})
    assert got["common"] == (100.0, 100.0) and all(math.isnan(v) for v in got["rare"])


def test_intervals_overlap():
    assert intervals_overlap((1.0, 3.0), (2.0, 4.0)) and intervals_overlap((1.0, 2.0), (2.0, 4.0))
    assert intervals_overlap((1.0, 2.0), (2.5, 4.0)) is False
    assert intervals_overlap(None, (1.0, 2.0)) is None and intervals_overlap((math.nan, 1.0), (0.0, 2.0)) is None


def test_validation_sized_intervals_are_cheap():
    """Validation runs after every epoch: 250 persons x 14 joints, 7 groups and the Mean."""
    from hgbench.accuracy.pck import summarize_pck
    from hgbench.data.keypoints import LSP

    c = _persons(np.random.default_rng(7), 250, 0.6, spread=4.0)
    summarize_pck(c, LSP, 0.2)  # warm-up
    start = time.perf_counter()
    summarize_pck(c, LSP, 0.2)
    assert time.perf_counter() - start < 1.0  # about 0.1 s on one idle core; generous for a shared machine
