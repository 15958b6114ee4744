"""Simulated per-image properties, for the detector's tests and benchmark only.

Not used by the pipeline. A "night" here is a dict of per-image properties
(the names `features.COMPARED_NUMERIC` and `label`), as ExampleGen records
them, drawn from one fixed population:

- the size comes from a few exact camera sizes with fixed probabilities, so
  `aspect_ratio` and `pixel_area` are point masses (3 and 4 distinct values);
- `brightness` (mean luminance) is Beta-distributed; the channel means are the
  luminance times a per-image colour cast, and brightness is recomputed from
  them (ITU-R 601 weights) so the four stay consistent;
- `rms_contrast` is a scaled Beta in [0, 0.5], `sharpness` (variance of the
  Laplacian of luminance in [0, 1]) is log-normal;
- `label` has fixed proportions.

Shifts: `exposure=0.7` multiplies every pixel by 0.7 (an underexposed night:
brightness, channel means and rms contrast x0.7, sharpness x0.49);
`cameras=PORTRAIT` takes every image with the phone held upright.

A second training population, the demo's (`demo_training`): exactly 120
images at 400x300 (the corpus, landscape 4:3) and 36 at 240x320 (one night of
Toto's portrait 3:4 camera), so aspect_ratio and pixel_area are two point
masses; the other properties come from the same population as above. Its
clean night "one camera" (`night(..., shift="one camera")`) takes every image
at the demo training's most common size, 400x300 (`ONE_CAMERA`: Toto used the
landscape camera tonight), the other properties again from the same
population. That is not a shift: the night's sizes are the training's
dominant mode, and its KS distance from training on aspect_ratio and
pixel_area is 36/156 = 0.23, below the 0.3 minimum effect. It is compared with
the demo training (`training_for`) and, like other clean nights, with the
night before (another such night).

Everything is numpy only and deterministic from the seed. `families` builds
the detector's skew (tonight vs training) and drift (tonight vs last night)
families with the settings the product ships (`FALSE_ALARM_RATE`,
`PERMUTATIONS`, `MIN_EFFECTS`). `TfdvDetector` is the old TFDV check on the
same nights, for comparison (it imports TFDV when constructed).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

# (width, height, probability): mostly landscape, as in the training corpus.
CAMERAS = ((4000, 3000, 0.45),    # 4:3 compact / DSLR
           (3024, 4032, 0.15),    # phone, upright (portrait 3:4)
           (1920, 1080, 0.25),    # video still, 16:9
           (640, 480, 0.15))      # old webcam, 4:3
PORTRAIT = ((3024, 4032, 1.0),)
# The demo's training set: the corpus (landscape 4:3) plus one night of Toto's
# portrait camera, in exact counts (`demo_training`).
DEMO_CAMERAS = ((400, 300, 120 / 156),   # the curated corpus, landscape 4:3
                (240, 320, 36 / 156))    # Toto's camera, portrait 3:4
DEMO_TRAINING_SIZE = 156
# A clean night at the demo training's most common size only.
ONE_CAMERA = (max(DEMO_CAMERAS, key=lambda camera: camera[2])[:2] + (1.0,),)
LABELS = (("lion", 0.40), ("tiger", 0.35), ("bear", 0.25))

NUMERIC = ("aspect_ratio", "pixel_area", "brightness", "rms_contrast", "mean_red",
           "mean_green", "mean_blue", "sharpness")
CATEGORICAL = ("label",)

# What the product ships (the detector's configuration defaults).
FALSE_ALARM_RATE = 0.01
PERMUTATIONS = 9999
MIN_EFFECTS = {**{name: 0.3 for name in NUMERIC}, "label": 0.2}

TRAINING_SIZE = 3000
_LUMA = np.array([0.299, 0.587, 0.114])
_CAST = np.array([0.04, 0.0, -0.10])    # mean log colour cast per channel (warm daylight)


def images(n: int, rng: np.random.Generator, *, exposure: float = 1.0,
           cameras: Sequence[tuple] = CAMERAS, exact: bool = False) -> dict[str, np.ndarray]:
    """n images' properties, as one array per property.

    Sizes are drawn from `cameras` with its probabilities, or with `exact`, in
    exactly those proportions (n * probability images each, which must be whole
    numbers), in a random order.
    """
    sizes = np.array([(w, h) for w, h, _ in cameras], dtype=np.int64)
    weights = np.array([p for _, _, p in cameras], dtype=np.float64)
    weights = weights / weights.sum()
    if exact:
        counts = np.rint(n * weights).astype(np.int64)
        if counts.sum() != n or not np.allclose(counts, n * weights):
            raise ValueError(f"{n} images do not split exactly in proportions {weights}")
        size = sizes[rng.permutation(np.repeat(np.arange(len(sizes)), counts))]
    else:
        size = sizes[rng.choice(len(sizes), size=n, p=weights)]
    width, height = size[:, 0], size[:, 1]
    luminance = rng.beta(6.5, 9.0, size=n)
    cast = np.exp(_CAST + rng.normal(0.0, 0.06, size=(n, 3)))
    rgb = np.clip(luminance[:, None] * cast, 0.0, 1.0) * exposure
    labels = np.array([name for name, _ in LABELS])
    label_p = np.array([p for _, p in LABELS])
    return {
        "aspect_ratio": width / height,
        "pixel_area": (width * height).astype(np.int64),
        "brightness": rgb @ _LUMA,
        "rms_contrast": 0.5 * rng.beta(5.0, 7.0, size=n) * exposure,
        "mean_red": rgb[:, 0], "mean_green": rgb[:, 1], "mean_blue": rgb[:, 2],
        "sharpness": rng.lognormal(np.log(0.004), 0.7, size=n) * exposure ** 2,
        "label": labels[rng.choice(len(labels), size=n, p=label_p)],
    }


def training(seed: int = 0, n: int = TRAINING_SIZE) -> dict[str, np.ndarray]:
    """The training set's properties (the skew baseline)."""
    return images(n, np.random.default_rng([seed, 0xC0FFEE]))


def demo_training(seed: int = 0) -> dict[str, np.ndarray]:
    """The demo's training set: 120 images at 400x300 and 36 at 240x320, exactly."""
    return images(DEMO_TRAINING_SIZE, np.random.default_rng([seed, 0xDE30]),
                  cameras=DEMO_CAMERAS, exact=True)


def training_for(shift: Optional[str]) -> dict[str, np.ndarray]:
    """The training set a kind of night is compared with: the demo's for "one camera"."""
    return demo_training() if shift == "one camera" else training()


# Kinds of night that are clean: a sequence of nights, each compared with the one before.
CLEAN = (None, "one camera")


def night(seed: int, n: int, *, shift: Optional[str] = None) -> dict[str, np.ndarray]:
    """One night of n images: clean (shift None), "one camera" (clean, every image at
    the demo training's most common size), "brightness" (x0.7) or "portrait"."""
    rng = np.random.default_rng([seed, n, _shift_code(shift)])
    if shift is None:
        return images(n, rng)
    if shift == "one camera":
        return images(n, rng, cameras=ONE_CAMERA)
    if shift == "brightness":
        return images(n, rng, exposure=0.7)
    if shift == "portrait":
        return images(n, rng, cameras=PORTRAIT)
    raise ValueError(f"unknown shift {shift!r}")


def _shift_code(shift: Optional[str]) -> int:
    try:
        return {None: 0, "brightness": 1, "portrait": 2, "one camera": 3}[shift]
    except KeyError:
        raise ValueError(f"unknown shift {shift!r}") from None


def nights(n: int, count: int, *, shift: Optional[str] = None):
    """(index, tonight, last night) for `count` nights of n images.

    Clean nights (shift None or "one camera") form a sequence, each compared
    with the one before (night index + 1 against night index, of the same
    kind). A shifted night i is compared with the clean night i of the same
    size as its last night: the shift starts tonight. The first nights of a
    longer run are the nights of a shorter one.
    """
    if shift in CLEAN:
        previous = night(0, n, shift=shift)
        for i in range(count):
            tonight = night(i + 1, n, shift=shift)
            yield i, tonight, previous
            previous = tonight
    else:
        for i in range(count):
            yield i, night(i, n, shift=shift), night(i, n)


def families(tonight: Mapping[str, Sequence], train: Mapping[str, Sequence],
             last_night: Optional[Mapping[str, Sequence]] = None) -> list:
    """Skew (vs training) and, given last night, drift: the detector's families."""
    from pipeline_src.validation import detector

    properties = detector.specs(MIN_EFFECTS, categorical=CATEGORICAL)
    result = [detector.Family("skew", "training", tonight, train, properties)]
    if last_night is not None:
        result.append(detector.Family("drift", "last night", tonight, last_night, properties))
    return result


def run(tonight, train, last_night=None, *, seed: str, permutations: int = PERMUTATIONS
        ) -> dict:
    """The detector on one simulated night, with the shipped settings."""
    from pipeline_src.validation import detector

    return detector.run_night(families(tonight, train, last_night),
                              false_alarm_rate=FALSE_ALARM_RATE, permutations=permutations,
                              seed=seed)


def fired_features(result: Mapping, kind: Optional[str] = None) -> set:
    """The properties that fired (in the family `kind`, or in any family)."""
    return {c["feature"] for c in result["comparisons"] if c["fired"] and kind in (None, c["kind"])}


class TfdvDetector:
    """The detector Emerald replaced: TFDV's skew comparators at their old thresholds.

    Approximate Jensen-Shannon divergence on `aspect_ratio` (0.2) and
    `brightness` (0.25), L-infinity on `label` (0.3), between the training
    statistics and tonight's, as `tfdv.validate_statistics(training, schema,
    serving_statistics=tonight)` computes them. Statistics come from
    `generate_statistics_from_dataframe` with one job: in memory, no Beam
    pipeline. TensorFlow Data Validation is imported here, not with the module.
    """

    THRESHOLDS = {"aspect_ratio": ("jensen_shannon_divergence", 0.2),
                  "brightness": ("jensen_shannon_divergence", 0.25),
                  "label": ("infinity_norm", 0.3)}

    def __init__(self, train: Mapping[str, Sequence]):
        import tensorflow_data_validation as tfdv

        self._tfdv = tfdv
        self.training_statistics = self.statistics(train)
        self.schema = tfdv.infer_schema(self.training_statistics)
        for name, (comparator, threshold) in self.THRESHOLDS.items():
            getattr(tfdv.get_feature(self.schema, name).skew_comparator,
                    comparator).threshold = threshold

    def statistics(self, properties: Mapping[str, Sequence]):
        import pandas as pd

        return self._tfdv.generate_statistics_from_dataframe(pd.DataFrame(dict(properties)))

    def validate(self, tonight: Mapping[str, Sequence]) -> tuple[set, dict]:
        """The properties TFDV flags tonight, and every skew measurement's value."""
        anomalies = self._tfdv.validate_statistics(
            self.training_statistics, self.schema,
            serving_statistics=self.statistics(tonight))
        measured = {info.path.step[0]: m.value for info in anomalies.drift_skew_info
                    for m in info.skew_measurements}
        return set(anomalies.anomaly_info.keys()), measured
