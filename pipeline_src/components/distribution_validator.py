"""ImageDistributionValidator: Emerald's skew, drift and prediction-drift node.

Replaces TFDV's DistributionValidator (whose approximate Jensen-Shannon
divergence false-alarms on camera sizes, see BENCHMARKS.md). Reads the
per-image properties ExampleGen computed for each span, compares

- skew:       tonight (tonight's eval split) against what the night trains on (every
              span of the history up to tonight, whole, and tonight's train split);
- drift:      tonight against last night (the span of `previous_night`), when there is
              one;
- prediction: the serving model's outputs on tonight's images against its
              outputs on its own evaluation data (recorded by the Trainer),
              when a blessed model serves;

and writes every comparison, fired or not, to its output artifact
(`comparisons.json`, plus counts as MLMD custom properties). It decides
nothing: the data gate reads the findings, applies acknowledgments and the
block / warn policy.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact, artifact_utils, channel, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from pipeline_src import features, names as artifact_names
from pipeline_src.components import span_history
from pipeline_src.validation import columns as property_columns
from pipeline_src.validation import detector

COMPARISONS_FILE = "comparisons.json"
SKEW, DRIFT, PREDICTION = "skew", "drift", "prediction"
KINDS = (SKEW, DRIFT, PREDICTION)
_PARSE_BATCH = 1024


class DistributionComparisons(artifact.Artifact):
    """Every skew / drift / prediction comparison of one night, in comparisons.json."""

    TYPE_NAME = "EmeraldDistributionComparisons"


def settings_json(*, labels: Sequence[str], false_alarm_rate: float, permutations: int,
                  min_effects: Mapping[str, Mapping[str, float]]) -> str:
    """The executor's settings as one JSON execution property (compiled into the IR)."""
    return json.dumps({"labels": list(labels), "false_alarm_rate": float(false_alarm_rate),
                       "permutations": int(permutations),
                       "min_effects": {k: dict(v) for k, v in min_effects.items()}})


def read_properties(split_uri: str, names: Sequence[str]) -> dict[str, Any]:
    """The named scalar features of every example in one split, as columns (numpy arrays)."""
    import numpy as np
    import tensorflow as tf

    from pipeline_src.model import data

    kinds = {**{n: tf.string for n in features.BYTES_FEATURES},
             **{n: tf.int64 for n in features.INT_FEATURES},
             **{n: tf.float32 for n in features.FLOAT_FEATURES}}
    spec = {n: tf.io.FixedLenFeature([1], kinds[n]) for n in names}
    batches: dict[str, list] = {n: [] for n in names}
    files = data.list_files(os.path.join(split_uri, "*"))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(_PARSE_BATCH)
    for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)):
        for name in names:
            batches[name].append(batch[name].numpy()[:, 0])
    empty = {tf.string: bytes, tf.int64: np.int64, tf.float32: np.float32}   # an empty split
    columns = {n: np.concatenate(b) if b else np.zeros(0, empty[kinds[n]])
               for n, b in batches.items()}
    for name in names:                       # category names as text, like the model's classes
        if kinds[name] == tf.string:
            columns[name] = np.char.decode(columns[name].astype(bytes), "utf-8") \
                if len(columns[name]) else np.array([], str)
    return columns


def _split_uri(examples, split: str) -> str:
    return artifact_utils.get_split_uri([examples], split)


def split_properties(examples, names: Sequence[str]):
    """A function split -> the named properties of one span's examples, as columns.

    From the property columns ExampleGen wrote beside the span's splits: a few numbers
    per image, so the training baseline costs no pass over the history's photos (issue
    11). A span artifact without that file is read record by record, with the same
    result.
    """
    import tensorflow as tf

    path = os.path.join(examples.uri, artifact_names.PROPERTY_COLUMNS_FILE)
    if not tf.io.gfile.exists(path):
        return lambda split: read_properties(_split_uri(examples, split), names)
    with tf.io.gfile.GFile(path) as handle:
        stored = json.load(handle)
    return lambda split: property_columns.arrays(stored[split], names)


def _joined(parts: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    import numpy as np

    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def _whole(span, names: Sequence[str]) -> list[dict[str, Any]]:
    properties = split_properties(span, names)
    return [properties(split) for split in features.SPAN_SPLITS]


def _prediction_family(examples, serving_models: list, settings: dict, specs) -> detector.Family:
    baseline = "the serving model's evaluation data"
    if not serving_models:
        return detector.Family(PREDICTION, baseline, {}, {}, specs,
                               skipped="no blessed model serves yet")
    import tensorflow as tf
    from tfx.utils import path_utils

    from pipeline_src.model import exporter, predictions

    model = serving_models[0]
    reference = predictions.read_reference(model.uri)
    if reference is None:
        return detector.Family(PREDICTION, baseline, {}, {}, specs,
                               skipped=f"the serving model ({model.uri}) has no recorded "
                                       "evaluation outputs")
    loaded = tf.saved_model.load(path_utils.serving_model_path(model.uri))
    signature = loaded.signatures[exporter.EXAMPLES_SIGNATURE]
    tonight = predictions.predict_records(
        signature, predictions.records(os.path.join(_split_uri(examples, features.EVAL), "*")),
        settings["labels"])
    return detector.Family(PREDICTION, f"{baseline} (model {model.id})", tonight, reference,
                           specs)


def families(examples, history: Sequence, serving_models: list,
             settings: dict) -> list[detector.Family]:
    """Skew, drift and prediction families for tonight's span and its history."""
    effects = settings["min_effects"]
    data_specs = {kind: detector.specs(effects.get(kind, {}), features.COMPARED_CATEGORICAL)
                  for kind in (SKEW, DRIFT)}
    names = sorted({s.name for kind in (SKEW, DRIFT) for s in data_specs[kind]})
    properties = split_properties(examples, names)
    tonight = properties(features.EVAL)
    training = _joined([part for span in span_history.training_spans(examples, history)
                        for part in _whole(span, names)] + [properties(features.TRAIN)], names)
    out = [detector.Family(SKEW, "training", tonight, training, data_specs[SKEW])]
    previous = span_history.previous_span(examples, history)
    if previous is None:
        out.append(detector.Family(DRIFT, "last night", {}, {}, data_specs[DRIFT],
                                   skipped="no earlier Toto night"))
    else:
        out.append(detector.Family(DRIFT, f"toto {span_history.span_name(previous)}", tonight,
                                   _joined(_whole(previous, names), names), data_specs[DRIFT]))
    prediction_specs = detector.specs(effects.get(PREDICTION, {}), (features.PREDICTED_CLASS,))
    out.append(_prediction_family(examples, serving_models, settings, prediction_specs))
    return out


class Executor(base_executor.BaseExecutor):
    """Runs the night's comparisons; records all of them."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX API
        import tensorflow as tf

        settings = json.loads(exec_properties["settings"])
        examples = artifact_utils.get_single_instance(input_dict["examples"])
        night = examples.get_string_custom_property("night")
        result = detector.run_night(
            families(examples, list(input_dict.get("history", [])),
                     list(input_dict.get("serving_model", [])), settings),
            false_alarm_rate=settings["false_alarm_rate"],
            permutations=settings["permutations"], seed=night)
        result.update(night=night, previous_night=examples.get_string_custom_property(
            "previous_night") or "none", examples_uri=examples.uri)
        out = artifact_utils.get_single_instance(output_dict["comparisons"])
        with tf.io.gfile.GFile(os.path.join(out.uri, COMPARISONS_FILE), "w") as handle:
            json.dump(result, handle, indent=1, sort_keys=True)
        out.set_string_custom_property("night", night)
        out.set_int_custom_property("tests", result["tests"])
        fired = detector.fired(result)
        out.set_int_custom_property("fired", len(fired))
        out.set_string_custom_property("fired_features", ",".join(
            f"{c['kind']}:{c['feature']}" for c in fired))


def load_comparisons(uri: str) -> dict[str, Any]:
    """comparisons.json of a DistributionComparisons artifact."""
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(uri, COMPARISONS_FILE)) as handle:
        return json.load(handle)


class ImageDistributionValidatorSpec(ComponentSpec):
    PARAMETERS = {"settings": ExecutionParameter(type=str)}
    INPUTS = {
        "examples": ChannelParameter(type=standard_artifacts.Examples),
        "history": ChannelParameter(type=standard_artifacts.Examples, optional=True,
                                    allow_empty=True),
        "serving_model": ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {"comparisons": ChannelParameter(type=DistributionComparisons)}


class ImageDistributionValidator(base_component.BaseComponent):
    """Skew, drift and prediction drift on per-image properties, with effect and p-value."""

    SPEC_CLASS = ImageDistributionValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples, settings: str, serving_model=None, history=None):
        super().__init__(spec=ImageDistributionValidatorSpec(
            examples=examples, history=history, serving_model=serving_model, settings=settings,
            comparisons=channel.Channel(type=DistributionComparisons)))
