"""Feature summaries that merge exactly: the training baseline, made span by span.

Training is the corpus plus every earlier night. TFDV's statistics over it would
cost the whole history every night (issue 11), although each span's images are
the same night after night. What the night's report shows of training (a number's
count, mean, standard deviation, min and max; a category's distinct values and
their counts) adds up exactly from one summary per span: counts, means and sums of
squared deviations merge by Chan's parallel formula, min and max by min and max,
value counts by addition. ExampleGen keeps each span's summary in MLMD with the
span's Examples artifact, and writes the night's merged summaries into tonight's.

A summary is plain JSON: {"count": n, "numeric": {feature: [n, mean, m2, min, max]},
"categorical": {feature: {value: count}}}. The encoded image is neither.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from pipeline_src import features

NUMERIC = features.INT_FEATURES + features.FLOAT_FEATURES
CATEGORICAL = tuple(name for name in features.BYTES_FEATURES if name != features.IMAGE)

Summary = dict[str, Any]


def empty() -> Summary:
    return {"count": 0, "numeric": {}, "categorical": {}}


def add(summary: Summary, values: Mapping[str, Any]) -> None:
    """One example's values (feature -> a number, or str/bytes for a category)."""
    summary["count"] += 1
    for name in NUMERIC:
        if name in values:
            _merge_numeric(summary["numeric"], name, [1, float(values[name]), 0.0,
                                                     float(values[name]), float(values[name])])
    for name in CATEGORICAL:
        if name in values:
            value = values[name]
            value = value.decode() if isinstance(value, bytes) else str(value)
            counts = summary["categorical"].setdefault(name, {})
            counts[value] = counts.get(value, 0) + 1


def add_serialized(summary: Summary, serialized: bytes) -> None:
    """One serialized tf.Example (ExampleGen's record)."""
    add(summary, values_of(serialized))


def values_of(serialized: bytes) -> dict[str, Any]:
    """The summarised features' values of one serialized tf.Example."""
    from tensorflow.core.example import example_pb2

    feature = example_pb2.Example.FromString(serialized).features.feature
    values: dict[str, Any] = {}
    for name in NUMERIC:
        if name in feature:
            kind = feature[name].WhichOneof("kind")
            listed = getattr(feature[name], kind).value if kind else []
            if listed:
                values[name] = listed[0]
    for name in CATEGORICAL:
        if name in feature and feature[name].bytes_list.value:
            values[name] = feature[name].bytes_list.value[0]
    return values


def merge(summaries: Iterable[Summary]) -> Summary:
    out = empty()
    for summary in summaries:
        out["count"] += summary["count"]
        for name, moments in summary["numeric"].items():
            _merge_numeric(out["numeric"], name, list(moments))
        for name, counts in summary["categorical"].items():
            merged = out["categorical"].setdefault(name, {})
            for value, count in counts.items():
                merged[value] = merged.get(value, 0) + count
    return out


def _merge_numeric(into: dict, name: str, other: list) -> None:
    if name not in into:
        into[name] = other
        return
    n_a, mean_a, m2_a, min_a, max_a = into[name]
    n_b, mean_b, m2_b, min_b, max_b = other
    n = n_a + n_b
    delta = mean_b - mean_a
    into[name] = [n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n,
                  min(min_a, min_b), max(max_a, max_b)]


def numeric(summary: Summary, name: str) -> dict[str, float]:
    """count, mean, std_dev (of the population, as TFDV's), min, max of one number."""
    n, mean, m2, low, high = summary["numeric"][name]
    return {"count": n, "mean": mean, "std_dev": math.sqrt(max(m2, 0.0) / n) if n else 0.0,
            "min": low, "max": high}


def top_values(summary: Summary, name: str) -> list[tuple[str, int]]:
    """(value, count), the most frequent first (ties by value)."""
    counts = summary["categorical"].get(name, {})
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))
