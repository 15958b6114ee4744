"""The spans a node works from: tonight's span artifact and the history TFX resolved.

ImageExampleGen makes one Examples artifact per span (the corpus, each of Toto's
nights), once; a span made again (late or re-uploaded photos, a file damaged on
disk) is a new version of the same span. The nodes that need the history (the
ExampleGen itself, the Trainer, the ImageDistributionValidator) take
`history_channel()`: every span's latest version, through TFX's own `all_spans`
resolver function over the pipeline's Examples, resolved when the node launches.

What a night trains on is every span up to the night but tonight's, whole (all its
splits), plus tonight's train split; it evaluates on tonight's eval split
(`spans.span_splits` says why the splits are what they are). A history span after
tonight's night (a past night run again) is left out, as is an artifact of another
layout (an Examples artifact made before spans were artifacts: ExampleGen makes
those spans anew, see examplegen.py).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from typing import Optional, Sequence

from pipeline_src import features, names

FORMAT = 1          # the span artifact's layout (names.SPAN_FORMAT): splits, files, properties


def history_channel():
    """Every span's latest version: TFX's all_spans over the pipeline's Examples.

    A channel by type alone (no producer), as the serving model's Resolver sees every
    Model: it is resolved from MLMD when the consuming node launches, so the
    ExampleGen can take its own earlier outputs without a cycle in the DAG.
    """
    from tfx import v1 as tfx
    from tfx.dsl.input_resolution import canned_resolver_functions
    from tfx.types import standard_artifacts

    return canned_resolver_functions.all_spans(
        tfx.dsl.Channel(type=standard_artifacts.Examples))


def is_span(artifact) -> bool:
    """An Examples artifact of this layout (one span, made by ImageExampleGen)."""
    return artifact.get_int_custom_property(names.SPAN_FORMAT) == FORMAT


def span_name(artifact) -> str:
    return artifact.get_string_custom_property(names.SPAN_NAME)


def night_of(artifact) -> str:
    """The night an artifact was made for (YYYY-MM-DD): tonight's is the night's."""
    return artifact.get_string_custom_property(names.NIGHT_PROPERTY)


def latest_by_span(history: Sequence) -> dict[int, object]:
    """span -> its latest version among `history`, spans of this layout only (all_spans
    already gives one per span; a list put together by hand may hold more)."""
    latest: dict[int, object] = {}
    for artifact in history:
        if not is_span(artifact):
            continue
        held = latest.get(artifact.span)
        if held is None or (artifact.version, artifact.id or 0) > (held.version, held.id or 0):
            latest[artifact.span] = artifact
    return latest


def training_spans(tonight, history: Sequence) -> list:
    """The spans tonight trains on whole, oldest first: the history up to tonight's night,
    but tonight's span."""
    from pipeline_src.components.spans import span_of

    if not history:
        return []
    last = span_of(dt.date.fromisoformat(night_of(tonight)))
    return [artifact for span, artifact in sorted(latest_by_span(history).items())
            if span != tonight.span and span <= last]


def previous_span(tonight, history: Sequence) -> Optional[object]:
    """The drift baseline: the span of the night's `previous_night`, None without one."""
    previous = tonight.get_string_custom_property("previous_night")
    if not previous or previous == "none":
        return None
    for artifact in latest_by_span(history).values():
        if span_name(artifact) == previous:
            return artifact
    raise ValueError(f"the previous night's span ({previous}) is not in the resolved history "
                     f"of {tonight.uri}")


def split_uri(artifact, split: str) -> str:
    return os.path.join(artifact.uri, f"Split-{split}")


def file_pattern(artifact, split: str) -> str:
    return os.path.join(split_uri(artifact, split), "*")


def training_patterns(tonight, history: Sequence) -> list[str]:
    """The files a night trains on: each training span's splits, then tonight's train."""
    patterns = [file_pattern(a, split) for a in training_spans(tonight, history)
                for split in features.SPAN_SPLITS]
    return patterns + [file_pattern(tonight, features.TRAIN)]


def span_counts(artifact) -> dict[str, int]:
    return json.loads(artifact.get_string_custom_property(names.SPAN_COUNTS) or "{}")


def span_summaries(artifact) -> dict:
    """{split: feature summary} of one span, from its custom property."""
    return json.loads(artifact.get_string_custom_property(names.SPAN_SUMMARY) or "{}")
