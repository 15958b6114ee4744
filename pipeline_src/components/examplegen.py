"""ExampleGen for image spans: one Examples artifact per span, each made once.

The stock FileBasedExampleGen reads CSV/TFRecord/Parquet; images need decoding
to derive the features skew and drift are computed on (TFDV sees nothing in
raw bytes). A span is the corpus or one of Toto's nights (spans.py); its
artifact's `span` is the night's day number (the corpus 0), its splits are
train and eval (`spans.span_splits`), and beside them it keeps its rejected
images and its property columns, and in MLMD its counts, its feature summary
and the key of the listing it was made of (span_history.py reads them).

A night makes tonight's span (`examples`: the night's own Toto folder, or the
corpus on a night without one) and, into `updated_spans`, any earlier span
whose listing changed since its artifact was made (late or re-uploaded photos,
a file damaged or replaced on disk, a night never made): TFX's all_spans then
gives the new version in its place. Nothing else is read: a night's cost is its
own photos, however long the history (issue 11). The history comes in as
`history` (span_history.history_channel), so this node learns from MLMD what
exists; tonight's artifact also records the night's plan (what it trains and
evaluates on, per split and night) for the report and `emerald lineage`.

A span damaged on disk after ingestion (an image truncated or overwritten, a
file that cannot be read) never stops the night and is never dropped in
silence: the file is rejected with its reason (`rejected.json`, the
`rejected_count` property the night's report shows) and named in the log with
how to repair it. A folder under toto/ that looks like a night but is no date
is an error naming it. GCS 5xx, throttling and timeouts are retried with
backoff; a read that still fails fails the night with the object named (the
image is not damaged, the storage is not answering), and Airflow retries it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from typing import Any, Sequence

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from pipeline_src import features, images, names
from pipeline_src.components import span_history
from pipeline_src.components.spans import (NightPlan, SourceImage, Span, plan_night,
                                           span_splits)
from pipeline_src.validation import columns as property_columns
from pipeline_src.validation import summary as feature_summary

log = logging.getLogger(__name__)
UPDATED_SPANS = "updated_spans"          # the output key of earlier spans made anew
RECORD_FEATURES = sorted(features.BYTES_FEATURES + features.INT_FEATURES
                         + features.FLOAT_FEATURES)


def to_example_features(image: SourceImage, data: bytes, max_pixels: int) -> dict[str, Any]:
    """The raw features of one image; raises images.BadImage."""
    _, info = images.decode(data, max_pixels)
    hour = info.capture_time.hour if info.capture_time else -1
    return {
        features.IMAGE: data,
        features.LABEL: image.label,
        features.HEIGHT: info.height,
        features.WIDTH: info.width,
        features.ASPECT_RATIO: info.width / info.height,
        features.BRIGHTNESS: info.brightness,
        features.PIXEL_AREA: info.width * info.height,
        features.RMS_CONTRAST: info.pixels.rms_contrast,
        features.MEAN_RED: info.pixels.mean_red,
        features.MEAN_GREEN: info.pixels.mean_green,
        features.MEAN_BLUE: info.pixels.mean_blue,
        features.SHARPNESS: info.pixels.sharpness,
        features.SOURCE: image.source,
        features.NIGHT: image.night,
        features.CAPTURE_HOUR: hour,
        features.ORIENTATION: features.orientation(info.width, info.height),
    }


def _serialize(values: dict[str, Any]) -> bytes:
    import tensorflow as tf

    feature = {}
    for name, value in values.items():
        if name in features.BYTES_FEATURES:
            raw = value if isinstance(value, bytes) else str(value).encode()
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw]))
        elif name in features.INT_FEATURES:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def span_key(images_: Sequence[SourceImage], max_pixels: int) -> str:
    """What decides a span's records: each object's place in the layout (source, night,
    label, file name: not its absolute uri, so a source moved or renamed whole makes
    nothing anew), generation and size, max_pixels (it decides rejections), the features
    a record holds and the artifact's layout. Another key is a span to make anew."""
    listing = [[image.source, image.night, image.label, image.filename,
                image.object.generation if image.object else "",
                image.object.size if image.object else -1] for image in images_]
    text = json.dumps({"format": span_history.FORMAT, "max_pixels": int(max_pixels),
                       "features": RECORD_FEATURES, "images": listing})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclasses.dataclass
class MadeSpan:
    """One span's artifact as this night knows it: made tonight, or read from MLMD."""
    name: str
    counts: dict[str, int]                       # per split
    summaries: dict[str, feature_summary.Summary]
    rejected: list[dict[str, str]]

    @classmethod
    def of(cls, artifact) -> "MadeSpan":
        return cls(span_history.span_name(artifact), span_history.span_counts(artifact),
                   span_history.span_summaries(artifact), [])

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def write_span(plan: NightPlan, span: Span, splits: dict[str, list[SourceImage]],
               uri: str, max_pixels: int) -> MadeSpan:
    """Decodes one span's images into gzipped TFRecords, one file per split, each image
    once; beside them each split's property columns and the rejected images."""
    import tensorflow as tf

    split_of = {image.uri: split for split, members in splits.items() for image in members}
    counts = dict.fromkeys(splits, 0)
    summaries = {split: feature_summary.empty() for split in splits}
    columns = {split: property_columns.empty() for split in splits}
    rejected: list[dict[str, str]] = []
    writers = {}
    for split in splits:
        tf.io.gfile.makedirs(os.path.join(uri, f"Split-{split}"))
        path = os.path.join(uri, f"Split-{split}", names.EXAMPLES_SHARD_FILE)
        if tf.io.gfile.exists(path):          # a retry into the same folder
            tf.io.gfile.remove(path)
        writers[split] = tf.io.TFRecordWriter(path, options="GZIP")
    try:
        for image in span.images:
            try:
                values = to_example_features(image, _read(plan, image), max_pixels)
            except (images.BadImage, OSError) as bad:
                rejected.append({"object": image.uri, "reason": _reason(bad)})
                continue
            serialized = _serialize(values)
            split = split_of[image.uri]
            writers[split].write(serialized)
            counts[split] += 1
            measured = feature_summary.values_of(serialized)
            feature_summary.add(summaries[split], measured)
            property_columns.append(columns[split], measured)
    finally:
        for writer in writers.values():
            writer.close()
    _write_text(os.path.join(uri, names.PROPERTY_COLUMNS_FILE), json.dumps(columns))
    _write_text(os.path.join(uri, names.REJECTED_FILE), json.dumps(rejected, indent=1))
    return MadeSpan(span.name, counts, summaries, rejected)


def _describe_span(artifact, span: Span, made: MadeSpan, key: str, version: int,
                   night: dt.date) -> None:
    artifact.span = span.number
    artifact.version = version
    artifact.split_names = artifact_utils.encode_split_names(list(features.SPAN_SPLITS))
    examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
    artifact.set_int_custom_property(names.SPAN_FORMAT, span_history.FORMAT)
    artifact.set_string_custom_property(names.SPAN_NAME, span.name)
    artifact.set_string_custom_property(names.SPAN_KEY, key)
    artifact.set_string_custom_property(names.NIGHT_PROPERTY, night.isoformat())
    artifact.set_string_custom_property(names.SPAN_COUNTS, json.dumps(made.counts))
    artifact.set_string_custom_property(names.SPAN_SUMMARY,
                                        json.dumps(made.summaries, sort_keys=True))
    artifact.set_int_custom_property(names.SPAN_REJECTED, len(made.rejected))


def _new_examples(uri: str):
    artifact = standard_artifacts.Examples()
    artifact.uri = uri
    return artifact


def make_spans(plan: NightPlan, history: dict[int, Any], tonight, updated: list,
               max_pixels: int, eval_split: str, hash_eval_percent: int
               ) -> dict[str, MadeSpan]:
    """Makes tonight's span into `tonight` and each stale earlier span into a new artifact
    appended to `updated` (TFX wants them in folders under the output's first uri)."""
    import tensorflow as tf

    updated_root = updated[0].uri if updated else None
    updated.clear()
    made: dict[str, MadeSpan] = {}
    for span in plan.spans.values():
        known = history.get(span.number)
        key = span_key(span.images, max_pixels)
        if span is not plan.tonight and known is not None and \
                known.get_string_custom_property(names.SPAN_KEY) == key:
            continue                                    # made before, unchanged since
        if span is plan.tonight:
            artifact = tonight
        else:
            if updated_root is None:
                raise ValueError(f"span {span.name} must be made anew, and the node has no "
                                 f"{UPDATED_SPANS} output to put it in")
            artifact = _new_examples(os.path.join(updated_root, span.name))
            tf.io.gfile.makedirs(artifact.uri)
            updated.append(artifact)
        splits = span_splits(span, eval_split, hash_eval_percent)
        made[span.name] = write_span(plan, span, splits, artifact.uri, max_pixels)
        _describe_span(artifact, span, made[span.name], key,
                       known.version + 1 if known is not None else 0, plan.night)
        if artifact is not tonight:
            log.info("span %s made anew (version %d): its listing changed since it was made",
                     span.name, artifact.version)
    return made


def describe_night(tonight, plan: NightPlan, made: dict[str, MadeSpan],
                   history: dict[int, Any]) -> list[dict[str, str]]:
    """The night's plan on tonight's artifact: what it trains and evaluates on, per split
    and night, and the night's feature summary beside it (the report's training
    baseline), merged span by span from MLMD; returns the night's rejections."""
    def known(span: Span) -> MadeSpan:
        return made.get(span.name) or MadeSpan.of(history[span.number])

    own = known(plan.tonight)
    training = [known(span) for span in plan.training_spans()]
    previous = known(plan.spans[plan.previous_night]) if plan.previous_night else None
    train_summary = feature_summary.merge(
        [s for span in training for s in span.summaries.values()]
        + [own.summaries[features.TRAIN]])
    night_counts = {features.TRAIN: {span.name: span.total for span in training if span.total},
                    features.EVAL: {own.name: own.counts[features.EVAL]},
                    features.PREVIOUS: {previous.name: previous.total} if previous else {}}
    if own.counts[features.TRAIN]:
        night_counts[features.TRAIN][own.name] = own.counts[features.TRAIN]
    night_counts = {split: {n: c for n, c in per.items() if c} for split, per in
                    night_counts.items()}
    split_counts = {split: sum(per.values()) for split, per in night_counts.items()}
    tonight.set_string_custom_property(names.SPLIT_COUNTS, json.dumps(split_counts))
    tonight.set_string_custom_property(names.EXAMPLES_NIGHT_COUNTS,
                                       json.dumps(night_counts, sort_keys=True))
    tonight.set_string_custom_property("eval_mode", plan.eval_mode)
    tonight.set_string_custom_property("previous_night", plan.previous_night or "none")
    rejected = [r for span in made.values() for r in span.rejected]
    tonight.set_int_custom_property("rejected_count", len(rejected))
    _write_text(os.path.join(tonight.uri, names.FEATURE_SUMMARY_FILE), json.dumps({
        features.TRAIN: train_summary, features.EVAL: own.summaries[features.EVAL],
        features.PREVIOUS: feature_summary.merge(previous.summaries.values()) if previous
        else feature_summary.empty()}, sort_keys=True))
    _write_text(os.path.join(tonight.uri, names.REJECTED_FILE), json.dumps(rejected, indent=1))
    return rejected


def _read(plan: NightPlan, image: SourceImage) -> bytes:
    """The image's bytes, checksum verified. A local file that cannot be read is an
    OSError (a rejection); a GCS read that outlasts its retries is an IngestError,
    which fails the night: the object is intact, the storage is not answering."""
    _, data = plan.storage.read(image.object)
    return data


def _reason(error: Exception) -> str:
    if isinstance(error, images.BadImage):
        return error.reason
    return f"unreadable: {error.strerror or error}"      # an OSError


def log_rejected(rejected: list[dict[str, str]], night: dt.date) -> None:
    """Every rejected span file in the log: ingestion decoded each one, so a rejection
    here means the span was damaged on disk since."""
    for reject in rejected:
        log.warning("night %s: span file %s rejected (%s): ingestion accepts only images "
                    "that decode, so it changed on disk since; remove it and ingest its "
                    "night again to fetch it anew", night, reject["object"], reject["reason"])


class Executor(base_executor.BaseExecutor):
    """Makes tonight's span, and each earlier span whose listing changed."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX API
        night = dt.date.fromisoformat(exec_properties["night"])
        input_base = exec_properties["input_base"]       # a path or gs:// URI
        eval_split = exec_properties["eval_split"]
        plan = plan_night(input_base, night, eval_split)
        history = span_history.latest_by_span(input_dict.get("history", []))
        tonight = artifact_utils.get_single_instance(output_dict["examples"])
        updated = output_dict.get(UPDATED_SPANS, [])
        updated_root = updated[0].uri if updated else None
        made = make_spans(plan, history, tonight, updated, int(exec_properties["max_pixels"]),
                          eval_split, int(exec_properties["hash_eval_percent"]))
        rejected = describe_night(tonight, plan, made, history)
        log_rejected(rejected, night)
        counts = json.loads(tonight.get_string_custom_property(names.SPLIT_COUNTS))
        if not counts.get(features.TRAIN):
            raise ValueError(f"no training images under {input_base} for night {night}")
        if updated_root and not updated:      # no span made anew: TFX publishes none, so
            _remove_empty_folder(updated_root)   # the folder it made for one is nobody's


def _remove_empty_folder(uri: str) -> None:
    import tensorflow as tf

    if tf.io.gfile.isdir(uri) and not tf.io.gfile.listdir(uri):
        tf.io.gfile.rmtree(uri)


def _write_text(uri: str, text: str) -> None:
    import tensorflow as tf

    with tf.io.gfile.GFile(uri, "w") as handle:
        handle.write(text)


class ImageExampleGenSpec(ComponentSpec):
    PARAMETERS = {
        "input_base": ExecutionParameter(type=str),
        "night": ExecutionParameter(type=str),
        "eval_split": ExecutionParameter(type=str),
        "hash_eval_percent": ExecutionParameter(type=int),
        "max_pixels": ExecutionParameter(type=int),
    }
    INPUTS = {"history": ChannelParameter(type=standard_artifacts.Examples, optional=True,
                                          allow_empty=True)}
    OUTPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples),
               UPDATED_SPANS: ChannelParameter(type=standard_artifacts.Examples)}


class ImageExampleGen(base_component.BaseComponent):
    """Tonight's span as tf.Examples (train / eval splits), and earlier spans made anew."""

    SPEC_CLASS = ImageExampleGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, input_base, night, eval_split: str = "newest_night",
                 hash_eval_percent: int = 25, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                 history=None):
        super().__init__(spec=ImageExampleGenSpec(
            input_base=input_base, night=night, eval_split=eval_split,
            hash_eval_percent=hash_eval_percent, max_pixels=max_pixels, history=history,
            examples=channel.Channel(type=standard_artifacts.Examples),
            updated_spans=channel.Channel(type=standard_artifacts.Examples)))
