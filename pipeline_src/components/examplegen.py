"""ExampleGen for image spans: the corpus plus one span per Toto night.

The stock FileBasedExampleGen reads CSV/TFRecord/Parquet; images need decoding
to derive the features skew and drift are computed on (TFDV sees nothing in
raw bytes). The output is an Examples artifact whose `span` is tonight's date
(days since the epoch) with the train / eval / previous splits `spans.py`
plans, from spans on disk or under a gs:// prefix.

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

import datetime as dt
import json
import logging
import os
from typing import Any, Optional

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from pipeline_src import features, images, names
from pipeline_src.components import span_cache
from pipeline_src.components.spans import SourceImage, SplitPlan, plan_splits, span_of
from pipeline_src.validation import columns as property_columns
from pipeline_src.validation import summary as feature_summary

log = logging.getLogger(__name__)


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


def write_splits(plan: SplitPlan, output_uri: str, max_pixels: int,
                 cache_dir: Optional[str] = None) -> dict[str, Any]:
    """Writes gzipped TFRecords per split; returns counts and the rejected images.

    Span by span (the corpus, then Toto's nights in order), each image once, its
    record written to every split that holds it (last night is in train and
    previous). A split holds one file per span it draws on, named as Beam shards
    (`data_tfrecord-00002-of-00005.gz`, the third of its five spans), which TFX and
    `model.data` read by the pattern `Split-{name}/*`. With `cache_dir`, a span whose
    listing is unchanged since its examples were made is copied, not decoded: its
    records file whole into each split holding the whole span (span_cache.py).
    Each split's feature summary is merged from its spans' (validation/summary.py),
    and its property columns joined from theirs (validation/columns.py): a cached
    span's from its entry, so neither the report's training baseline nor the skew
    test's costs a pass over the history. Both go beside the splits
    (names.FEATURE_SUMMARY_FILE, names.PROPERTY_COLUMNS_FILE).
    """
    import tensorflow as tf

    splits_of: dict[str, list[str]] = {}          # image uri -> the splits it goes to
    for split, members in plan.splits.items():
        for image in members:
            splits_of.setdefault(image.uri, []).append(split)
    shards = _shard_paths(plan, splits_of, output_uri)
    for split in plan.splits:
        tf.io.gfile.makedirs(os.path.join(output_uri, f"Split-{split}"))
    for path in (path for named in shards.values() for path in named.values()):
        if tf.io.gfile.exists(path):       # a retry into the same folder: a file there may be
            tf.io.gfile.remove(path)       # a link to a cached span, never to be written into
        if not any(split in named for named in shards.values()):
            with tf.io.TFRecordWriter(os.path.join(         # an empty split: one empty file
                    output_uri, f"Split-{split}", _shard_name(0, 1)), options="GZIP"):
                pass
    counts = dict.fromkeys(plan.splits, 0)
    night_counts: dict[str, dict[str, int]] = {}
    rejected: list[dict[str, str]] = []
    summaries = {split: feature_summary.empty() for split in plan.splits}
    columns = {split: property_columns.empty() for split in plan.splits}

    def decode(image: SourceImage) -> span_cache.Decoded:
        try:
            values = to_example_features(image, _read(plan, image), max_pixels)
        except (images.BadImage, OSError) as bad:
            return None, _reason(bad)
        return _serialize(values), None

    def account(image: SourceImage, reason: Optional[str]) -> None:
        if reason is not None:
            rejected.append({"object": image.uri, "reason": reason})
            return
        for split in splits_of[image.uri]:
            counts[split] += 1
            per_night = night_counts.setdefault(split, {})
            per_night[image.night] = per_night.get(image.night, 0) + 1

    for span, listing in plan.spans.items():
        listing = [image for image in listing if image.uri in splits_of]
        if not listing:
            continue
        targets = {tuple(splits_of[image.uri]) for image in listing}
        entry = span_cache.lookup(listing, span, cache_dir, max_pixels) \
            if len(targets) == 1 else None
        if entry is not None:                     # the whole span goes where one goes
            span_cache.copy_records(entry, list(shards[span].values()))
            for image, reason in zip(listing, entry.reasons):
                account(image, reason)
            for split in shards[span]:
                summaries[split] = feature_summary.merge([summaries[split], entry.summary])
                property_columns.extend(columns[split], entry.columns)
            continue
        writers = {split: tf.io.TFRecordWriter(path, options="GZIP")
                   for split, path in shards[span].items()}
        try:
            for image, serialized, reason in span_cache.span_examples(
                    listing, span, cache_dir, max_pixels, decode):
                account(image, reason)
                if reason is None:
                    values = feature_summary.values_of(serialized)
                    for split in splits_of[image.uri]:
                        writers[split].write(serialized)
                        feature_summary.add(summaries[split], values)
                        property_columns.append(columns[split], values)
        finally:
            for writer in writers.values():
                writer.close()
    _write_text(os.path.join(output_uri, names.FEATURE_SUMMARY_FILE),
                json.dumps(summaries, sort_keys=True))
    _write_text(os.path.join(output_uri, names.PROPERTY_COLUMNS_FILE), json.dumps(columns))
    return {"counts": counts, "night_counts": night_counts, "rejected": rejected,
            "summaries": summaries}


def _shard_name(index: int, count: int) -> str:
    return f"data_tfrecord-{index:05d}-of-{count:05d}.gz"


def _shard_paths(plan: SplitPlan, splits_of: dict[str, list[str]],
                 output_uri: str) -> dict[str, dict[str, str]]:
    """span -> {split: the path of that span's file in the split}, for the splits the
    span has images in; a split's files numbered in span order."""
    drawn: dict[str, list[str]] = {split: [] for split in plan.splits}   # split -> spans
    for span, listing in plan.spans.items():
        for split in plan.splits:
            if any(split in splits_of.get(image.uri, ()) for image in listing):
                drawn[split].append(span)
    shards: dict[str, dict[str, str]] = {span: {} for span in plan.spans}
    for split, spans in drawn.items():
        for index, span in enumerate(spans):
            shards[span][split] = os.path.join(
                output_uri, f"Split-{split}", _shard_name(index, len(spans)))
    return shards


def _read(plan: SplitPlan, image: SourceImage) -> bytes:
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
    """Decodes tonight's spans into tf.Examples."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX API
        night = dt.date.fromisoformat(exec_properties["night"])
        input_base = exec_properties["input_base"]       # a path or gs:// URI
        plan = plan_splits(input_base, night, exec_properties["eval_split"],
                           int(exec_properties["hash_eval_percent"]))
        examples = artifact_utils.get_single_instance(output_dict["examples"])
        result = write_splits(plan, examples.uri, int(exec_properties["max_pixels"]),
                              cache_dir=span_cache.cache_dir_for(examples.uri))
        log_rejected(result["rejected"], night)
        examples.split_names = artifact_utils.encode_split_names(list(plan.splits))
        examples.span = span_of(night)
        examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
        examples.set_string_custom_property("night", night.isoformat())
        examples.set_string_custom_property("eval_mode", plan.eval_mode)
        examples.set_string_custom_property("previous_night", plan.previous_night or "none")
        examples.set_string_custom_property("split_counts", json.dumps(result["counts"]))
        # Images per night in each split, so lineage reads from MLMD what a model learnt from.
        examples.set_string_custom_property(
            names.EXAMPLES_NIGHT_COUNTS, json.dumps(result["night_counts"], sort_keys=True))
        examples.set_int_custom_property("rejected_count", len(result["rejected"]))
        _write_text(os.path.join(examples.uri, "rejected.json"),
                    json.dumps(result["rejected"], indent=1))
        if not result["counts"][features.TRAIN]:
            raise ValueError(f"no training images under {input_base} for night {night}")


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
    INPUTS = {}
    OUTPUTS = {"examples": ChannelParameter(type=standard_artifacts.Examples)}


class ImageExampleGen(base_component.BaseComponent):
    """Tonight's images as tf.Examples in train / eval / previous splits."""

    SPEC_CLASS = ImageExampleGenSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, input_base, night, eval_split: str = "newest_night",
                 hash_eval_percent: int = 25, max_pixels: int = images.DEFAULT_MAX_PIXELS):
        super().__init__(spec=ImageExampleGenSpec(
            input_base=input_base, night=night, eval_split=eval_split,
            hash_eval_percent=hash_eval_percent, max_pixels=max_pixels,
            examples=channel.Channel(type=standard_artifacts.Examples)))
