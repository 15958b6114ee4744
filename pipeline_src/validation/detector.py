"""A night's skew, drift and prediction-drift tests, under one false-alarm budget.

A finding needs both halves: the test is significant at the night's
false-alarm rate divided by the number of tests run that night (Bonferroni:
every test of every family together false-alarms on at most that share of
clean nights), and the effect is above the property's configured minimum
(large samples make trivial shifts significant; the minimum says what is
worth a person's attention). Every comparison is returned, fired or not, so
the night's record shows each statistic and the trend over nights.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from pipeline_src.validation import stats

NUMERIC = "numeric"
CATEGORICAL = "categorical"


@dataclasses.dataclass(frozen=True)
class PropertySpec:
    name: str
    type: str              # numeric | categorical
    min_effect: float      # KS distance or total variation distance worth a finding


@dataclasses.dataclass(frozen=True)
class Family:
    """One comparison of tonight against one baseline, property by property."""
    kind: str                                  # skew | drift | prediction
    baseline: str                              # what tonight is compared with, for people
    tonight: Mapping[str, Sequence[Any]]
    reference: Mapping[str, Sequence[Any]]
    properties: tuple[PropertySpec, ...]
    skipped: Optional[str] = None              # why this family was not tested


def specs(min_effects: Mapping[str, float], categorical: Sequence[str] = ()) -> tuple:
    """PropertySpecs from the configuration's per-property minimum effects."""
    return tuple(PropertySpec(name, CATEGORICAL if name in categorical else NUMERIC, float(value))
                 for name, value in min_effects.items())


def _testable(family: Family, spec: PropertySpec) -> bool:
    return (family.skipped is None and len(family.tonight.get(spec.name, ())) > 0
            and len(family.reference.get(spec.name, ())) > 0)


def run_night(families: Sequence[Family], *, false_alarm_rate: float, permutations: int,
              seed: str) -> dict[str, Any]:
    """Every comparison of the night, with the level each test was held to."""
    planned = [(f, s) for f in families for s in f.properties if _testable(f, s)]
    alpha = stats.bonferroni_alpha(false_alarm_rate, len(planned))
    # A permutation p-value is never below 1 / (B + 1): enough resamples that a
    # clear shift can reach half the level, whatever the rate and the test count.
    permutations = max(int(permutations), math.ceil(2 / alpha))
    comparisons = []
    for family, spec in planned:
        rng = np.random.default_rng(stats.seed_for(seed, family.kind, spec.name))
        compare = stats.compare_numeric if spec.type == NUMERIC else stats.compare_categorical
        result = compare(family.tonight[spec.name], family.reference[spec.name],
                         permutations=permutations, rng=rng)
        significant = result.p_value < alpha
        comparisons.append({
            "kind": family.kind, "feature": spec.name, "type": spec.type,
            "baseline": family.baseline, "test": result.test,
            "effect_name": result.effect_name, "effect": result.effect,
            "min_effect": spec.min_effect, "p_value": result.p_value, "alpha": alpha,
            "n_tonight": len(family.tonight[spec.name]),
            "n_baseline": len(family.reference[spec.name]),
            "significant": significant,
            "fired": significant and result.effect > spec.min_effect,
            "details": result.details,
        })
    skipped = [{"kind": f.kind, "baseline": f.baseline, "reason": f.skipped}
               for f in families if f.skipped is not None]
    return {"false_alarm_rate": false_alarm_rate, "tests": len(planned), "alpha": alpha,
            "permutations": permutations, "comparisons": comparisons, "skipped": skipped}


def fired(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for c in result["comparisons"] if c["fired"]]
