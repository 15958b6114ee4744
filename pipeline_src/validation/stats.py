"""Two-sample tests with an effect size and a significance that survive ties.

Why not TFDV's Jensen-Shannon divergence: it is computed on TFDV's own
histograms, scores a clean night 1.0 when the values are a few exact camera
sizes (point masses) and moves with sample size alone (BENCHMARKS.md).

Numeric properties: the effect is the Kolmogorov-Smirnov distance D (the
largest gap between the two cumulative distributions, in [0, 1], unitless,
exact under ties). Its p-value is scipy's exact or asymptotic KS p-value for
continuous values (no ties, or a stray few); with material ties (at least a
tenth of the pooled values repeat: camera sizes, aspect ratios) and at most
`MAX_PERMUTATION_LEVELS` distinct values it is a permutation p-value,
exact conditional on the pooled values: under the null, tonight is a random
subset of the pooled sample, so its count per distinct value is multivariate
hypergeometric, and D follows from those counts alone.

Categorical properties: the effect is the total variation distance (half the
L1 distance between the two frequency vectors, in [0, 1]). The p-value is
scipy's chi-square test of homogeneity when every expected count is >= 5,
Fisher's exact test for a 2x2 table with tiny counts, and otherwise a
permutation p-value of the chi-square statistic (the conditional exact test R
runs as `chisq.test(simulate.p.value = TRUE)`).

Imports numpy and scipy only: the detector's tests run without TensorFlow.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np
from scipy import stats as sps

MAX_PERMUTATION_LEVELS = 5000   # tied samples with more distinct values: scipy's KS p-value
MATERIAL_TIES = 0.9             # distinct / pooled values at or below this: tied data
EXACT_KS_MAX_PRODUCT = 100_000  # n * m above this: the asymptotic KS p-value (accurate there, and fast)
_CHUNK = 1000                  # permutations drawn at once (memory: chunk x levels int64)
HISTOGRAM_BINS = 20
MAX_DISCRETE_BARS = 12          # fewer distinct pooled values: one bar per value


@dataclasses.dataclass(frozen=True)
class TestResult:
    test: str                 # which test produced the p-value
    effect_name: str          # KS distance | total variation distance
    effect: float
    p_value: float
    details: dict[str, Any]   # means, Wasserstein distances, the histogram


def _permutation_p(observed: float, null_draws: np.ndarray) -> float:
    """(1 + #{null >= observed}) / (B + 1): never 0, valid for any B."""
    hits = int(np.count_nonzero(null_draws >= observed - 1e-12))
    return (1 + hits) / (len(null_draws) + 1)


def _hypergeometric_draws(counts: np.ndarray, tonight: int, permutations: int,
                          rng: np.random.Generator):
    """Tonight's counts per level under the null, in chunks of (<= _CHUNK, levels)."""
    # numpy's two exact samplers: one draw per level, or one step per sampled item.
    method = "marginals" if len(counts) <= tonight else "count"
    done = 0
    while done < permutations:
        size = min(_CHUNK, permutations - done)
        yield rng.multivariate_hypergeometric(counts, tonight, size=size, method=method)
        done += size


def _ks_from_counts(tonight_counts: np.ndarray, pooled_counts: np.ndarray, n: int, m: int
                    ) -> np.ndarray:
    """KS distance for each row of tonight's counts per (sorted) level."""
    tonight_cdf = np.cumsum(tonight_counts, axis=-1) / n
    baseline_cdf = np.cumsum(pooled_counts - tonight_counts, axis=-1) / m
    return np.abs(tonight_cdf - baseline_cdf).max(axis=-1)


def histogram(tonight: np.ndarray, baseline: np.ndarray) -> dict[str, Any]:
    """Shared bins for both samples, as fractions: what the report draws."""
    pooled = np.concatenate([tonight, baseline])
    levels = np.unique(pooled)
    if len(levels) <= MAX_DISCRETE_BARS:
        return {"values": [float(v) for v in levels],
                "tonight": [float(np.mean(tonight == v)) for v in levels],
                "baseline": [float(np.mean(baseline == v)) for v in levels]}
    low, high = float(pooled.min()), float(pooled.max())
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    return {"edges": [float(e) for e in edges],
            "tonight": [float(x) for x in np.histogram(tonight, edges)[0] / len(tonight)],
            "baseline": [float(x) for x in np.histogram(baseline, edges)[0] / len(baseline)]}


def compare_numeric(tonight: Sequence[float], baseline: Sequence[float], *,
                    permutations: int, rng: np.random.Generator) -> TestResult:
    """KS distance and a tie-exact p-value; Wasserstein distances for the record."""
    x = np.asarray(tonight, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        raise ValueError("both samples need at least one value")
    pooled = np.concatenate([x, y])
    levels, inverse, pooled_counts = np.unique(pooled, return_inverse=True, return_counts=True)
    tonight_counts = np.bincount(inverse[:n], minlength=len(levels))
    effect = float(_ks_from_counts(tonight_counts, pooled_counts, n, m))
    # Ties that matter (a tenth of the values repeat: sizes, aspect ratios, saturated
    # scores) get the tie-exact permutation p-value; a stray tie among continuous
    # values leaves scipy's KS p-value accurate, and far cheaper.
    tied = len(levels) <= MATERIAL_TIES * len(pooled)
    if len(levels) == 1:
        test, p_value = "identical values", 1.0
    elif tied and len(levels) <= MAX_PERMUTATION_LEVELS:
        null = np.concatenate([_ks_from_counts(draws, pooled_counts, n, m) for draws in
                               _hypergeometric_draws(pooled_counts, n, permutations, rng)])
        test, p_value = f"Kolmogorov-Smirnov, permutation ({permutations})", _permutation_p(
            effect, null)
    else:
        method = "exact" if n * m <= EXACT_KS_MAX_PRODUCT else "asymp"
        result = sps.ks_2samp(x, y, method=method)
        test = f"Kolmogorov-Smirnov, {'exact' if method == 'exact' else 'asymptotic'}"
        p_value = float(result.pvalue)
    spread = float(np.std(y))
    wasserstein = float(sps.wasserstein_distance(x, y))
    return TestResult(
        test=test, effect_name="KS distance", effect=effect, p_value=float(p_value),
        details={"mean_tonight": float(x.mean()), "mean_baseline": float(y.mean()),
                 "wasserstein": wasserstein, "baseline_std": spread,
                 "wasserstein_scaled": wasserstein / spread if spread > 0 else None,
                 "distinct_values": int(len(levels)),
                 "histogram": histogram(x, y)})


def _chi2_statistic(table: np.ndarray) -> np.ndarray:
    """Pearson's statistic for (..., 2, K) tables (no continuity correction)."""
    rows = table.sum(axis=-1, keepdims=True)
    cols = table.sum(axis=-2, keepdims=True)
    expected = rows * cols / table.sum(axis=(-2, -1), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (table - expected) ** 2 / expected, 0.0)
    return terms.sum(axis=(-2, -1))


def compare_categorical(tonight: Sequence[str], baseline: Sequence[str], *,
                        permutations: int, rng: np.random.Generator) -> TestResult:
    """Total variation distance; chi-square, Fisher's exact or a permutation p-value."""
    x, y = [str(v) for v in tonight], [str(v) for v in baseline]
    if not x or not y:
        raise ValueError("both samples need at least one value")
    categories = sorted(set(x) | set(y))
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((2, len(categories)), dtype=np.int64)
    for row, values in ((0, x), (1, y)):
        np.add.at(table[row], [index[v] for v in values], 1)
    n, m = len(x), len(y)
    fractions = table / np.array([[n], [m]])
    effect = float(0.5 * np.abs(fractions[0] - fractions[1]).sum())
    expected = table.sum(axis=0)[None, :] * np.array([[n], [m]]) / (n + m)
    if len(categories) == 1:
        test, p_value = "identical values", 1.0
    elif expected.min() >= 5:
        chi2, p_value, _, _ = sps.chi2_contingency(table)
        test = "chi-square"
    elif len(categories) == 2:
        _, p_value = sps.fisher_exact(table)
        test = "Fisher's exact"
    else:
        pooled = table.sum(axis=0)
        observed = float(_chi2_statistic(table.astype(np.float64)))
        null = []
        for draws in _hypergeometric_draws(pooled, n, permutations, rng):
            tables = np.stack([draws, pooled[None, :] - draws], axis=1).astype(np.float64)
            null.append(_chi2_statistic(tables))
        test = f"chi-square, permutation ({permutations})"
        p_value = _permutation_p(observed, np.concatenate(null))
    return TestResult(
        test=test, effect_name="total variation distance", effect=effect,
        p_value=float(p_value),
        details={"categories": categories,
                 "histogram": {"categories": categories,
                               "tonight": [float(v) for v in fractions[0]],
                               "baseline": [float(v) for v in fractions[1]]}})


def bonferroni_alpha(false_alarm_rate: float, tests: int) -> float:
    """The level each test is held to so that all of them together false-alarm <= the rate."""
    return false_alarm_rate / max(tests, 1)


def seed_for(*parts: Optional[str]) -> int:
    """A stable per-test seed: the same night and property give the same p-value."""
    import zlib

    return zlib.crc32("|".join(str(p) for p in parts).encode())
