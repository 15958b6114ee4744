"""detector.run_night: one false-alarm budget over every family, both halves of a finding."""
from __future__ import annotations

import pytest

from pipeline_src.validation import detector


def _family(kind, tonight, reference, min_effect=0.3, skipped=None):
    return detector.Family(kind, "training", {"aspect_ratio": tonight},
                           {"aspect_ratio": reference},
                           detector.specs({"aspect_ratio": min_effect}), skipped=skipped)


PORTRAIT, LANDSCAPE = [0.75] * 12, [4 / 3] * 12


def test_the_budget_is_split_over_every_test_of_every_family_and_skipped_ones_do_not_count():
    result = detector.run_night(
        [_family("skew", PORTRAIT, LANDSCAPE), _family("drift", PORTRAIT, LANDSCAPE),
         _family("prediction", [], [], skipped="no model")],
        false_alarm_rate=0.01, permutations=999, seed="n")
    assert result["tests"] == 2 and result["alpha"] == pytest.approx(0.005)
    assert [c["kind"] for c in result["comparisons"]] == ["skew", "drift"]
    assert result["skipped"] == [{"kind": "prediction", "baseline": "training",
                                  "reason": "no model"}]


def test_a_clear_tied_shift_fires_even_when_few_permutations_are_configured():
    """1 / (B + 1) must stay below the level, however many tests share the budget."""
    families = [_family(f"skew{i}", PORTRAIT, LANDSCAPE) for i in range(40)]
    result = detector.run_night(families, false_alarm_rate=0.01, permutations=99, seed="n")
    assert all(c["fired"] for c in result["comparisons"])
    assert result["permutations"] >= 2 / result["alpha"]


def test_a_finding_needs_significance_and_an_effect_above_the_minimum():
    # Significant but small: 60 of 500 move, against the minimum 0.3.
    small = detector.run_night([_family("skew", [0.75] * 60 + [4 / 3] * 440, [4 / 3] * 3000,
                                        min_effect=0.3)], false_alarm_rate=0.01,
                               permutations=999, seed="n")
    (c,) = small["comparisons"]
    assert c["effect"] == pytest.approx(0.12) and c["significant"] and not c["fired"]
    # Large but not significant: one image tonight.
    tiny = detector.run_night([_family("skew", [0.75], LANDSCAPE)], false_alarm_rate=0.01,
                              permutations=999, seed="n")
    (c,) = tiny["comparisons"]
    assert c["effect"] == 1.0 and not c["significant"] and not c["fired"]
    # Both: fired.
    both = detector.run_night([_family("skew", PORTRAIT, LANDSCAPE)], false_alarm_rate=0.01,
                              permutations=999, seed="n")
    assert both["comparisons"][0]["fired"] and detector.fired(both) == both["comparisons"]


def test_the_same_night_gives_the_same_p_values():
    args = dict(false_alarm_rate=0.01, permutations=999, seed="2026-01-02")
    mixed = [0.75] * 5 + [4 / 3] * 7
    first = detector.run_night([_family("skew", mixed, LANDSCAPE + PORTRAIT)], **args)
    again = detector.run_night([_family("skew", mixed, LANDSCAPE + PORTRAIT)], **args)
    assert first["comparisons"][0]["p_value"] == again["comparisons"][0]["p_value"]
