"""Feature summaries merge exactly: span by span gives what the whole gives at once.

Simulated values whose truth numpy knows: numbers on very different scales and
offsets (a pixel area near 300,000 beside a brightness near 0.4, where a naive
sum of squares loses digits), parts of very different sizes, one of them empty.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from pipeline_src import features
from pipeline_src.validation import summary as feature_summary


def _examples(rng: random.Random, n: int, night: str) -> list[dict]:
    return [{features.PIXEL_AREA: rng.choice([307_200, 307_201, 196_608]),
             features.BRIGHTNESS: 0.4 + rng.gauss(0, 0.05),
             features.CAPTURE_HOUR: rng.randrange(24),
             features.LABEL: rng.choice(["lion", "tiger", "bear"]).encode(),
             features.NIGHT: night} for _ in range(n)]


def _summary(examples: list[dict]) -> dict:
    summary = feature_summary.empty()
    for values in examples:
        feature_summary.add(summary, values)
    return summary


def test_merging_span_summaries_gives_the_whole_histories_numbers():
    rng = random.Random(3)
    parts = [_examples(rng, 2001, "corpus"), _examples(rng, 1, "2026-01-01"), [],
             _examples(rng, 300, "2026-01-02"), _examples(rng, 7, "2026-01-03")]
    everything = [values for part in parts for values in part]
    merged = feature_summary.merge(_summary(part) for part in reversed(parts))
    assert merged["count"] == len(everything) == 2309
    for name in (features.PIXEL_AREA, features.BRIGHTNESS, features.CAPTURE_HOUR):
        truth = np.array([values[name] for values in everything], dtype=np.float64)
        got = feature_summary.numeric(merged, name)
        assert got["count"] == truth.size
        assert got["mean"] == pytest.approx(truth.mean(), rel=1e-12)
        assert got["std_dev"] == pytest.approx(truth.std(), rel=1e-9)    # population, as TFDV
        assert (got["min"], got["max"]) == (truth.min(), truth.max())
    labels = [values[features.LABEL].decode() for values in everything]
    assert dict(feature_summary.top_values(merged, features.LABEL)) == {
        label: labels.count(label) for label in set(labels)}
    nights = feature_summary.top_values(merged, features.NIGHT)
    assert nights[0] == ("corpus", 2001) and dict(nights)["2026-01-01"] == 1


def test_a_summary_survives_json_and_a_serialized_example_reads_the_same():
    import json

    import tensorflow as tf

    values = _examples(random.Random(5), 1, "corpus")[0]
    feature = {
        features.PIXEL_AREA: tf.train.Feature(int64_list=tf.train.Int64List(
            value=[values[features.PIXEL_AREA]])),
        features.CAPTURE_HOUR: tf.train.Feature(int64_list=tf.train.Int64List(
            value=[values[features.CAPTURE_HOUR]])),
        features.BRIGHTNESS: tf.train.Feature(float_list=tf.train.FloatList(
            value=[values[features.BRIGHTNESS]])),
        features.LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[values[features.LABEL]])),
        features.NIGHT: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"corpus"])),
        features.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"\xff\xd8"])),
    }
    serialized = tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
    from_proto = feature_summary.empty()
    feature_summary.add_serialized(from_proto, serialized)
    from_values = json.loads(json.dumps(_summary([values])))
    assert from_proto["categorical"] == from_values["categorical"]
    assert features.IMAGE not in from_proto["categorical"]            # sized, never counted
    for name in (features.PIXEL_AREA, features.CAPTURE_HOUR, features.BRIGHTNESS):
        assert feature_summary.numeric(from_proto, name) == pytest.approx(
            feature_summary.numeric(from_values, name), rel=1e-6)    # float32 in the proto
