"""The detector on simulated nights: false alarms, power, and TFDV's JSD on the same nights.

The nights come from `pipeline_src.validation.simulate` (numpy, fixed seeds):
a training set of 3000 images whose sizes are four exact camera sizes (so
aspect_ratio and pixel_area are point masses), continuous pixel statistics and
three labels; and the demo's training set (exactly 120 images at 400x300 and
36 at 240x320) with "one camera" clean nights, every image at its most common
size. Each night runs the shipped settings: 1 % false alarms per night
(Bonferroni over the skew and drift families, 18 tests), 9999 permutations,
minimum effect 0.3 (KS) / 0.2 (label TVD). bench/bench_detector.py runs the
same nights, more of them.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from pipeline_src.validation import simulate

CLEAN_NIGHTS = 200
SHIFT_NIGHTS = 100
TFDV_NIGHTS = 50
SHIFTED_PROPERTY = {"brightness": "brightness", "portrait": "aspect_ratio"}


@pytest.fixture(scope="module")
def train():
    return simulate.training()


@pytest.fixture(scope="module")
def demo_train():
    return simulate.demo_training()


@pytest.fixture(scope="module")
def emerald(train, demo_train):
    """case -> one entry per night: {family kind: properties fired}. Computed once per case."""

    @functools.lru_cache(maxsize=None)
    def run(n: int, shift, count: int):
        baseline = demo_train if shift == "one camera" else train
        out = []
        for i, tonight, last in simulate.nights(n, count, shift=shift):
            result = simulate.run(tonight, baseline, last, seed=f"sim-{n}-{shift}-{i}")
            assert result["tests"] == 18 and result["alpha"] == pytest.approx(0.01 / 18)
            out.append({kind: simulate.fired_features(result, kind) for kind in ("skew", "drift")})
            if i == 0:
                tests = {(c["kind"], c["feature"]): c["test"] for c in result["comparisons"]}
                assert tests["skew", "aspect_ratio"].startswith("Kolmogorov-Smirnov, permutation")
        return out

    return run


def test_training_set_is_point_masses_and_continuous_values(train):
    assert len(train["label"]) == simulate.TRAINING_SIZE
    assert len(np.unique(train["aspect_ratio"])) == 3          # 4:3 twice, 3:4, 16:9
    assert len(np.unique(train["pixel_area"])) == 4
    assert len(np.unique(train["brightness"])) == simulate.TRAINING_SIZE
    assert set(np.unique(train["label"])) == {"lion", "tiger", "bear"}
    # a night is reproducible from its seed, and different seeds differ
    assert np.array_equal(simulate.night(3, 36)["brightness"], simulate.night(3, 36)["brightness"])
    assert not np.array_equal(simulate.night(3, 36)["brightness"],
                              simulate.night(4, 36)["brightness"])


def test_demo_training_and_one_camera_nights(train, demo_train):
    """The demo's training: 120 at 4/3 and 36 at 3/4 exactly; a one-camera night is all 4/3."""
    aspects, counts = np.unique(demo_train["aspect_ratio"], return_counts=True)
    assert aspects.tolist() == [0.75, 4 / 3] and counts.tolist() == [36, 120]
    assert sorted(np.unique(demo_train["pixel_area"]).tolist()) == [240 * 320, 400 * 300]
    assert len(np.unique(demo_train["brightness"])) == simulate.DEMO_TRAINING_SIZE
    assert simulate.ONE_CAMERA == ((400, 300, 1.0),)
    tonight = simulate.night(1, 36, shift="one camera")
    assert set(tonight["aspect_ratio"].tolist()) == {4 / 3}
    assert set(tonight["pixel_area"].tolist()) == {400 * 300}
    assert np.array_equal(tonight["brightness"],
                          simulate.night(1, 36, shift="one camera")["brightness"])
    assert not np.array_equal(tonight["brightness"], simulate.night(1, 36)["brightness"])
    assert simulate.training_for("one camera")["label"].tolist() == demo_train["label"].tolist()
    assert simulate.training_for(None)["label"].tolist() == train["label"].tolist()
    # the other clean nights and the default training are unchanged by the demo population
    assert len(np.unique(simulate.night(1, 500)["aspect_ratio"])) == 3


@pytest.mark.parametrize("n, shift", [(6, None), (36, None), (500, None), (36, "one camera")])
def test_false_alarms_on_clean_nights_at_most_one_percent(emerald, n, shift):
    nights = emerald(n, shift, CLEAN_NIGHTS)
    alarms = sum(bool(night["skew"] or night["drift"]) for night in nights)
    print(f"\nEmerald, clean nights of {n} ({shift or 'mixed cameras'}): {alarms} of "
          f"{CLEAN_NIGHTS} false-alarmed")
    assert alarms <= 0.01 * CLEAN_NIGHTS


@pytest.mark.parametrize("shift", ["brightness", "portrait"])
def test_shifts_are_detected_at_36_images(emerald, shift):
    nights = emerald(36, shift, SHIFT_NIGHTS)
    detected = sum(SHIFTED_PROPERTY[shift] in night["skew"] for night in nights)
    print(f"\nEmerald, {shift} shift at 36: {SHIFTED_PROPERTY[shift]} fired (skew) on "
          f"{detected} of {SHIFT_NIGHTS}")
    assert detected >= 0.95 * SHIFT_NIGHTS


def test_tfdv_jsd_on_the_same_nights(train, demo_train, emerald, monkeypatch):
    """TFDV's JSD false-alarms on small clean nights and on a whole night at the training's
    dominant camera size, and misses darker nights at 36."""
    import apache_beam

    def no_beam(self, *args, **kwargs):
        raise AssertionError("in-memory statistics started a Beam pipeline")

    monkeypatch.setattr(apache_beam.Pipeline, "run", no_beam)
    detectors = {None: simulate.TfdvDetector(train),
                 "demo": simulate.TfdvDetector(demo_train)}
    rates = {}
    for n, shift in ((6, None), (36, None), (500, None), (36, "one camera"),
                     (36, "brightness"), (36, "portrait")):
        tfdv_detector = detectors["demo" if shift == "one camera" else None]
        validated = [tfdv_detector.validate(tonight)
                     for _, tonight, _ in simulate.nights(n, TFDV_NIGHTS, shift=shift)]
        flagged = [f for f, _ in validated]
        clean = shift in simulate.CLEAN
        ours = emerald(n, shift, CLEAN_NIGHTS if clean else SHIFT_NIGHTS)[:TFDV_NIGHTS]
        if clean:
            rates[n, shift] = {"tfdv": np.mean([bool(f) for f in flagged]),
                               "tfdv_aspect": np.mean(["aspect_ratio" in f for f in flagged]),
                               "tfdv_aspect_jsd": float(np.median(
                                   [m.get("aspect_ratio", 0.0) for _, m in validated])),
                               "emerald": np.mean([bool(o["skew"] or o["drift"]) for o in ours]),
                               "emerald_skew": np.mean([bool(o["skew"]) for o in ours])}
        else:
            name = SHIFTED_PROPERTY[shift]
            rates[n, shift] = {"tfdv": np.mean([name in f for f in flagged]),
                               "emerald_skew": np.mean([name in o["skew"] for o in ours])}
    print("\n" + "\n".join(f"{case}: {value}" for case, value in rates.items()))

    # Clean nights of 6: TFDV flags (nearly) every night, the aspect-ratio point
    # masses alone a large share of them; Emerald's skew family none or almost none.
    assert rates[6, None]["tfdv"] >= 0.8
    assert rates[6, None]["tfdv_aspect"] >= 0.3
    assert rates[6, None]["emerald_skew"] <= 0.02
    # Large clean nights: both quiet.
    assert rates[500, None]["tfdv"] <= 0.02 and rates[500, None]["emerald_skew"] == 0.0
    # A whole clean night at the demo training's dominant size (400x300, aspect 4/3):
    # TFDV's JSD on aspect_ratio scores the maximum, 1.0, and flags (nearly) every night;
    # Emerald, whose KS distance is 36/156 = 0.23 < 0.3, flags none or almost none.
    assert rates[36, "one camera"]["tfdv"] >= 0.9
    assert rates[36, "one camera"]["tfdv_aspect"] >= 0.9
    assert rates[36, "one camera"]["tfdv_aspect_jsd"] >= 0.9
    assert rates[36, "one camera"]["emerald"] <= 0.02
    # Darker nights of 36: TFDV's 0.25 JSD misses a good share; Emerald does not.
    assert rates[36, "brightness"]["tfdv"] <= 0.9
    assert rates[36, "brightness"]["emerald_skew"] >= 0.95
    # An all-portrait night: both see it.
    assert rates[36, "portrait"]["tfdv"] >= 0.95 and rates[36, "portrait"]["emerald_skew"] >= 0.95
