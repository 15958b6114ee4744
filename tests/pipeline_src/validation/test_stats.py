"""stats.py against truths known by hand or by enumeration (no TensorFlow)."""
from __future__ import annotations

import itertools
import math
import zlib

import numpy as np
import pytest
from scipy import stats as sps

from pipeline_src.validation import stats


def _rng(seed=0):
    return np.random.default_rng(seed)


def _mc_tolerance(p: float, permutations: int) -> float:
    """Five Monte Carlo standard errors of a permutation p-value, plus its +1 offset."""
    return 5 * math.sqrt(p * (1 - p) / permutations) + 2 / (permutations + 1)


def _exact_conditional_p(tonight, baseline, statistic) -> float:
    """Share of all C(n+m, n) labelled splits of the pooled sample at least as extreme."""
    pooled = list(tonight) + list(baseline)
    n = len(tonight)
    observed = statistic(tonight, baseline)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), n):
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        hits += statistic([pooled[i] for i in chosen], rest) >= observed - 1e-9
        total += 1
    assert total == math.comb(len(pooled), n)
    return hits / total


def _ks(x, y) -> float:
    return float(sps.ks_2samp(x, y).statistic)   # scipy's D is exact under ties


def _chi2(x, y) -> float:
    categories = sorted(set(x) | set(y))
    table = np.array([[list(x).count(c) for c in categories],
                      [list(y).count(c) for c in categories]])
    return float(sps.chi2_contingency(table, correction=False)[0])


# ------------------------------------------------------------------ numeric

def test_identical_continuous_samples_have_no_effect():
    x = _rng(1).normal(size=40)
    result = stats.compare_numeric(x, x.copy(), permutations=999, rng=_rng())
    assert result.effect == 0.0
    assert result.p_value == 1.0
    # every value now appears twice in the pooled sample: the tie-exact path
    assert result.test == "Kolmogorov-Smirnov, permutation (999)"
    assert result.effect_name == "KS distance"


def test_identical_tied_samples_have_no_effect():
    x = np.array([1.333, 1.333, 0.75, 1.778, 1.333, 0.75])
    result = stats.compare_numeric(x, x[::-1].copy(), permutations=999, rng=_rng())
    assert result.effect == 0.0
    assert result.p_value == 1.0          # every permuted D is >= 0
    assert result.test.startswith("Kolmogorov-Smirnov, permutation")


def test_one_value_everywhere():
    result = stats.compare_numeric([2.0] * 3, [2.0] * 5, permutations=99, rng=_rng())
    assert (result.test, result.effect, result.p_value) == ("identical values", 0.0, 1.0)


def test_disjoint_samples_have_ks_distance_one_and_the_exact_p_value():
    # No ties: scipy's exact test. D = 1 only if all five tonight values sit
    # below (or above) all five baseline values: 2 of C(10, 5) = 252 orderings.
    result = stats.compare_numeric([0.1, 0.2, 0.3, 0.4, 0.5], [1.1, 1.2, 1.3, 1.4, 1.5],
                                   permutations=999, rng=_rng())
    assert result.effect == 1.0
    assert result.test == "Kolmogorov-Smirnov, exact"
    assert result.p_value == pytest.approx(2 / 252)


def test_disjoint_tied_samples_have_ks_distance_one():
    result = stats.compare_numeric([0.75] * 4, [1.333] * 3 + [1.778] * 3, permutations=9999,
                                   rng=_rng())
    assert result.effect == 1.0
    assert result.test.startswith("Kolmogorov-Smirnov, permutation")
    # Exact conditional p: of the C(10, 4) = 210 ways to pick tonight's 4, only
    # the four 0.75s are separated from the rest (four values above every
    # other one would need four 1.778s; there are three).
    exact = 1 / math.comb(10, 4)
    assert result.p_value == pytest.approx(exact, abs=_mc_tolerance(exact, 9999))


def test_permutation_p_value_is_never_zero():
    # exact p = 2 / C(40, 20) ~ 1e-11: no permuted split reaches D = 1, and the
    # p-value is then (1 + 0) / (B + 1), not 0.
    result = stats.compare_numeric([0.75] * 20, [1.333] * 20, permutations=99, rng=_rng())
    assert result.effect == 1.0
    assert result.p_value == pytest.approx(1 / 100)


def test_ks_distance_by_hand():
    # ECDFs at 1, 2, 3: tonight 2/3, 2/3, 1; baseline 0, 1/2, 1: the largest gap is 2/3.
    result = stats.compare_numeric([1, 1, 3], [2, 3], permutations=99, rng=_rng())
    assert result.effect == pytest.approx(2 / 3)


def test_ks_distance_under_ties_matches_scipy():
    rng = _rng(2)
    x = rng.choice([0.75, 1.333, 1.778], size=30, p=[0.6, 0.3, 0.1])
    y = rng.choice([0.75, 1.333, 1.778], size=80, p=[0.2, 0.5, 0.3])
    result = stats.compare_numeric(x, y, permutations=99, rng=_rng())
    assert result.effect == pytest.approx(_ks(x, y))
    assert result.effect > 0.2               # the shift is there: a D of 0 would also "match"


def test_continuous_p_value_is_scipys():
    rng = _rng(3)
    x, y = rng.normal(size=20), rng.normal(0.5, 1.0, size=60)
    result = stats.compare_numeric(x, y, permutations=99, rng=_rng())
    assert result.test == "Kolmogorov-Smirnov, exact"
    assert result.p_value == pytest.approx(sps.ks_2samp(x, y, method="exact").pvalue)
    big = stats.compare_numeric(rng.normal(size=400), rng.normal(size=400), permutations=99,
                                rng=_rng())
    assert big.test == "Kolmogorov-Smirnov, asymptotic"


@pytest.mark.parametrize("tonight, baseline", [
    # 3 levels, tonight 3 values: numpy's "marginals" sampler
    ([1, 1, 2], [2, 2, 3, 3, 3, 1]),
    # 4 levels, tonight 2 values: the "count" sampler
    ([1, 4], [2, 2, 3, 3, 1, 4, 4]),
    # a camera-size-like case: 3 levels, 4 tonight, 6 baseline
    ([0.75, 0.75, 0.75, 1.333], [1.333, 1.333, 1.778, 1.333, 0.75, 1.778]),
])
def test_tied_permutation_p_value_is_the_exact_conditional_one(tonight, baseline):
    exact = _exact_conditional_p(tonight, baseline, _ks)
    assert 0.02 < exact < 0.9                # a p-value an error could move
    permutations = 9999
    result = stats.compare_numeric(tonight, baseline, permutations=permutations, rng=_rng(4))
    assert result.test == f"Kolmogorov-Smirnov, permutation ({permutations})"
    assert result.p_value == pytest.approx(exact, abs=_mc_tolerance(exact, permutations))


def test_tied_permutation_p_value_is_valid_under_the_null():
    # Size of the test: with point masses from one population, P(p <= a) <= a.
    rng = _rng(5)
    values, weights = [0.75, 1.333, 1.778], [0.15, 0.6, 0.25]
    p_values = np.array([
        stats.compare_numeric(rng.choice(values, 12, p=weights), rng.choice(values, 40, p=weights),
                              permutations=199, rng=rng).p_value
        for _ in range(400)])
    for level in (0.05, 0.1, 0.25):
        rate = np.mean(p_values <= level)
        assert rate <= level + 3 * math.sqrt(level * (1 - level) / 400)
    # ...and it is not uselessly conservative (p == 1 always would pass the above).
    assert np.mean(p_values <= 0.25) > 0.1


def test_empty_sample_is_refused():
    with pytest.raises(ValueError):
        stats.compare_numeric([], [1.0], permutations=9, rng=_rng())
    with pytest.raises(ValueError):
        stats.compare_categorical(["a"], [], permutations=9, rng=_rng())


# ------------------------------------------------------------------ categorical

def test_identical_categorical_samples_have_no_effect():
    x = ["lion"] * 20 + ["tiger"] * 15 + ["bear"] * 10
    result = stats.compare_categorical(x, list(reversed(x)), permutations=99, rng=_rng())
    assert result.effect == 0.0
    assert result.test == "chi-square"
    assert result.p_value == pytest.approx(1.0)
    assert result.effect_name == "total variation distance"


def test_total_variation_distance_by_hand():
    # tonight a 1/2, b 1/2, c 0; baseline a 1/6, b 1/2, c 1/3: (1/3 + 0 + 1/3) / 2
    result = stats.compare_categorical(list("aabb"), list("abbbcc"), permutations=99, rng=_rng())
    assert result.effect == pytest.approx(1 / 3)
    disjoint = stats.compare_categorical(["lion"] * 3, ["bear"] * 4, permutations=99, rng=_rng())
    assert disjoint.effect == 1.0
    # four categories, two up and two down by 0.3 each: TVD 0.6 (L-infinity would say 0.3)
    spread = stats.compare_categorical(list("aaaabbbbcd"), list("abccccdddd"), permutations=99,
                                       rng=_rng())
    assert spread.effect == pytest.approx(0.6)


def test_chi_square_path_by_hand():
    tonight = ["lion"] * 20 + ["tiger"] * 30 + ["bear"] * 50
    baseline = ["lion"] * 30 + ["tiger"] * 30 + ["bear"] * 40
    # columns (bear, lion, tiger) total 90, 50, 60 of 200; each row is 100:
    # expected 45, 25, 30 in both rows.
    chi2 = 2 * ((50 - 45) ** 2 / 45 + (20 - 25) ** 2 / 25 + (30 - 30) ** 2 / 30)
    result = stats.compare_categorical(tonight, baseline, permutations=99, rng=_rng())
    assert result.test == "chi-square"
    assert result.p_value == pytest.approx(sps.chi2.sf(chi2, df=2))
    assert result.effect == pytest.approx(0.1)
    assert result.details["categories"] == ["bear", "lion", "tiger"]


def test_fisher_path_by_hand():
    # table [[3, 0], [1, 3]]: tonight's count of "a" is hypergeometric, C(7, 3) = 35
    # splits: P(0) = 1/35, P(1) = 12/35, P(2) = 18/35, P(3) = 4/35. Two-sided: the
    # outcomes no more likely than the observed 3: (1 + 4) / 35.
    result = stats.compare_categorical(list("aaa"), list("bbba"), permutations=99, rng=_rng())
    assert result.test == "Fisher's exact"
    assert result.p_value == pytest.approx(5 / 35)
    assert result.effect == pytest.approx(0.75)


@pytest.mark.parametrize("tonight, baseline", [
    (list("aab"), list("bcca")),
    (["lion", "lion", "tiger", "bear"], ["tiger", "tiger", "bear", "bear", "lion", "bear"]),
])
def test_permutation_chi_square_is_the_exact_conditional_test(tonight, baseline):
    exact = _exact_conditional_p(tonight, baseline, _chi2)
    assert 0.02 < exact < 0.9
    permutations = 9999
    result = stats.compare_categorical(tonight, baseline, permutations=permutations,
                                       rng=_rng(6))
    assert result.test == f"chi-square, permutation ({permutations})"
    assert result.p_value == pytest.approx(exact, abs=_mc_tolerance(exact, permutations))


# ------------------------------------------------------------------ seeds, alpha, histogram

def test_same_seed_same_p_value_other_seed_other_draws():
    tonight, baseline = [1, 1, 2, 3], [2, 2, 3, 3, 1, 3]
    first = stats.compare_numeric(tonight, baseline, permutations=499, rng=_rng(7))
    again = stats.compare_numeric(tonight, baseline, permutations=499, rng=_rng(7))
    assert first.p_value == again.p_value
    others = {stats.compare_numeric(tonight, baseline, permutations=499, rng=_rng(s)).p_value
              for s in range(8, 14)}
    assert len(others | {first.p_value}) > 1      # the draws do depend on the seed


def test_seed_for_is_stable_and_separates_tests():
    assert stats.seed_for("2026-01-05", "skew", "brightness") == zlib.crc32(
        b"2026-01-05|skew|brightness")           # stable across processes (no hash())
    seeds = {stats.seed_for("2026-01-05", kind, name) for kind in ("skew", "drift")
             for name in ("brightness", "aspect_ratio")}
    assert len(seeds) == 4


def test_bonferroni_alpha():
    assert stats.bonferroni_alpha(0.01, 18) == pytest.approx(0.01 / 18)
    assert stats.bonferroni_alpha(0.01, 0) == 0.01


def test_histogram_bars_for_few_values_bins_for_many():
    bars = stats.histogram(np.array([1.0, 1.0, 2.0]), np.array([2.0, 3.0]))
    assert bars["values"] == [1.0, 2.0, 3.0]
    assert bars["tonight"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert bars["baseline"] == pytest.approx([0.0, 0.5, 0.5])
    rng = _rng(8)
    bins = stats.histogram(rng.random(50), rng.random(70))
    assert len(bins["edges"]) == stats.HISTOGRAM_BINS + 1
    assert sum(bins["tonight"]) == pytest.approx(1.0)
    assert sum(bins["baseline"]) == pytest.approx(1.0)
