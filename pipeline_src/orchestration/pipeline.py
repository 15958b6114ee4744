"""The nightly TFX pipeline: one `create_pipeline(...)` with explicit arguments.

Machine-specific values (where the spans, the pipeline root, the schema file
and the serving directory are, and which night it is) are runtime parameters,
so the compiled IR in include/compiled/ is the same on every machine and the
launcher fills them in from the configuration (see pipeline_src/orchestration/node.py).
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.orchestration import data_types
from tensorflow_metadata.proto.v0 import schema_pb2

from pipeline_src import features, names
# Runtime parameters, substituted at launch (names.py is their one home).
from pipeline_src.names import (INPUT_BASE, NIGHT_PARAMETER, PUSH_DESTINATION,
                                SCHEMA_FILE_PARAMETER as SCHEMA_FILE)
from pipeline_src.components.examplegen import ImageExampleGen
from pipeline_src.components.span_history import history_channel
from pipeline_src.components.trainer import SpanTrainer, SpanTuner
from pipeline_src.model import exporter
from pipeline_src.serving.strategy import ServingModelStrategy
from pipeline_src.components.distribution_validator import ImageDistributionValidator, settings_json


PREPROCESSING_FN = "pipeline_src.model.preprocessing.preprocessing_fn"
RUN_FN = "pipeline_src.model.trainer.run_fn"
TUNER_FN = "pipeline_src.model.tuner.tuner_fn"
ACCURACY = "sparse_categorical_accuracy"
# TFMA computes accuracy in float32 (18/20 is 0.89999998, and 0.9 - 1.0 is -0.10000002),
# so both bounds are widened by more than float32's rounding and far less than one
# picture of any night: an accuracy of exactly min_accuracy, or a drop of exactly
# max_accuracy_drop, blesses (tests/pipeline_src/model/test_blessing.py).
THRESHOLD_SLACK = 1e-6


def _parameter(name: str) -> data_types.RuntimeParameter:
    return data_types.RuntimeParameter(name=name, ptype=str)


def eval_config(min_accuracy: float, max_accuracy_drop: float,
                slices: Sequence[str]) -> tfma.EvalConfig:
    """Bless at >= min_accuracy and no regression against the last blessed model."""
    # Bless on the overall slice: per-slice thresholds on a few dozen images
    # would fail on one picture; slices are reported, not gated.
    accuracy = tfma.MetricConfig(
        class_name="SparseCategoricalAccuracy",
        per_slice_thresholds=[tfma.PerSliceMetricThreshold(
            slicing_specs=[tfma.SlicingSpec()],
            threshold=tfma.MetricThreshold(
                value_threshold=tfma.GenericValueThreshold(
                    lower_bound={"value": min_accuracy - THRESHOLD_SLACK}),
                change_threshold=tfma.GenericChangeThreshold(
                    direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                    absolute={"value": -max_accuracy_drop - THRESHOLD_SLACK})))])
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=exporter.EXAMPLES_SIGNATURE,
            preprocessing_function_names=[exporter.TRANSFORM_SIGNATURE],
            label_key=features.LABEL_XF,
            example_weight_key=features.WEIGHT_XF,
            prediction_key=exporter.SCORES)],
        slicing_specs=[tfma.SlicingSpec()] + [
            tfma.SlicingSpec(feature_keys=[name]) for name in slices],
        metrics_specs=[tfma.MetricsSpec(
            metrics=[tfma.MetricConfig(class_name="ExampleCount"), accuracy],
            example_weights=tfma.ExampleWeightOptions(weighted=True))])


def schema(labels: Sequence[str]) -> schema_pb2.Schema:
    """The curated schema, made from the configuration (labels are not typed twice)."""
    result = schema_pb2.Schema()
    result.default_environment.extend(["TRAINING", "SERVING"])
    domains = {
        features.LABEL: list(labels),
        features.SOURCE: ["corpus", "toto"],
        features.ORIENTATION: ["landscape", "portrait", "square"],
    }
    for name, values in domains.items():
        domain = result.string_domain.add(name=name)
        domain.value.extend(values)
    kinds = ([(n, schema_pb2.BYTES) for n in features.BYTES_FEATURES]
             + [(n, schema_pb2.INT) for n in features.INT_FEATURES]
             + [(n, schema_pb2.FLOAT) for n in features.FLOAT_FEATURES])
    for name, kind in kinds:
        feature = result.feature.add(name=name, type=kind)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add(size=1)
        if name in domains:
            feature.domain = name
        if name == features.IMAGE:
            feature.image_domain.SetInParent()
        if name == features.LABEL:
            feature.not_in_environment.append("SERVING")
    return result


def create_pipeline(
    *,
    pipeline_name: str,
    labels: Sequence[str],
    image_size: int,
    eval_split: str,
    hash_eval_percent: int,
    max_pixels: int,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    false_alarm_rate: float,
    permutations: int,
    min_effects: Mapping[str, Mapping[str, float]],
    min_accuracy: float,
    max_accuracy_drop: float,
    slices: Sequence[str],
    beam_pipeline_args: Sequence[str],
    pipeline_root: str = "",
    input_base: Optional[str] = None,
    night: Optional[str] = None,
    schema_file: Optional[str] = None,
    serving_dir: Optional[str] = None,
    metadata_path: Optional[str] = None,
    warm_start: bool = False,
    warm_start_epochs: int = 5,
    replay_fraction: float = 0.25,
    replay_max_images: int = 0,
    dropout: float = 0.2,
    architecture: str = names.SMALL_CNN,
    backbone_weights: Optional[str] = None,
    tuner_trials: int = 0,
    tuner_epochs: int = 2,
    tflite: bool = True,
    tflite_min_agreement: float = 0.99,
) -> tfx.dsl.Pipeline:
    """The nightly pipeline. Paths and night left as None become runtime parameters.

    warm_start, warm_start_epochs, replay_fraction, replay_max_images: the Trainer's warm start
    (pipeline_src/model/warm_start.py), from the serving model. architecture,
    backbone_weights, dropout: the model (pipeline_src/model/model.py).
    tuner_trials > 0 adds a Tuner node (pipeline_src/model/tuner.py) whose best
    hyperparameters the Trainer takes; 0 (the default) leaves it out.
    """
    push_destination = (_parameter(PUSH_DESTINATION) if serving_dir is None else
                        tfx.proto.PushDestination(filesystem=tfx.proto.PushDestination.Filesystem(
                            base_directory=serving_dir)))
    # One Examples artifact per span, made once (components/examplegen.py): tonight's
    # span is `examples`; the nodes that need the history (the ExampleGen to know what
    # exists, the Trainer, the skew test) take every span's latest version through
    # TFX's all_spans resolver (components/span_history.py), so a night's cost follows
    # its own photos, not the history's (issue 11).
    example_gen = ImageExampleGen(
        input_base=input_base or _parameter(INPUT_BASE),
        night=night or _parameter(NIGHT_PARAMETER),
        eval_split=eval_split, hash_eval_percent=hash_eval_percent, max_pixels=max_pixels,
        history=history_channel())
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=schema_file or _parameter(SCHEMA_FILE))
    # With the schema, TFDV knows the encoded image is an image (image_domain) and keeps
    # it out of its top-k / uniques counts. Without it, every image's bytes is a distinct
    # "string" value counted through a shuffle: memory and time grow with the whole
    # history's bytes (BENCHMARKS.md, "Peak memory per node"). Tonight's eval split only:
    # its schema check is ExampleValidator's, and the training baseline the report shows
    # is ExampleGen's feature summary, merged span by span (validation/summary.py), so
    # the node's cost follows tonight's images, not the history's (issue 11).
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        exclude_splits=[features.TRAIN])
    # Schema anomalies of tonight only: earlier nights were checked on their own
    # night, so one bad night (an unknown label) does not block every later one.
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        exclude_splits=[features.TRAIN])
    # The serving model (pipeline_src/serving/strategy.py: what {serving}/CURRENT names,
    # a rollback included; else the latest blessed one): the Evaluator's baseline, the
    # Trainer's warm start and what prediction drift watches.
    model_resolver = tfx.dsl.Resolver(
        strategy_class=ServingModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(names.RESOLVER)
    # Skew, drift and prediction drift (of the serving model's outputs).
    distribution_validator = ImageDistributionValidator(
        examples=example_gen.outputs["examples"], history=history_channel(),
        serving_model=model_resolver.outputs["model"],
        settings=settings_json(labels=labels, false_alarm_rate=false_alarm_rate,
                               permutations=permutations, min_effects=min_effects),
    ).with_id(names.DISTRIBUTION_VALIDATOR)

    model_config = {"labels": list(labels), "image_size": image_size}
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config=model_config,
        materialize=False,
        disable_statistics=True,   # in-place: writes the graph, no Beam pass over images
        splits_config=tfx.proto.SplitsConfig(analyze=[features.TRAIN]))
    # base_model: the serving model (none on the first night), warm started from when
    # its architecture matches; FULL_RETRAIN_KEY false here, true when a launch asks
    # for a full retrain.
    training_config = {**model_config, "epochs": epochs, "batch_size": batch_size,
                       "learning_rate": learning_rate, "dropout": float(dropout),
                       "architecture": architecture, "backbone_weights": backbone_weights}
    tuner = None
    if tuner_trials:
        tuner = SpanTuner(
            tuner_fn=TUNER_FN,
            examples=example_gen.outputs["examples"], history=history_channel(),
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(splits=[features.TRAIN]),
            eval_args=tfx.proto.EvalArgs(splits=[features.EVAL]),
            custom_config={**training_config, "tuner_trials": int(tuner_trials),
                           "tuner_epochs": int(tuner_epochs)}).with_id(names.TUNER)
    trainer = SpanTrainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"], history=history_channel(),
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        base_model=model_resolver.outputs["model"],
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        train_args=tfx.proto.TrainArgs(splits=[features.TRAIN]),
        eval_args=tfx.proto.EvalArgs(splits=[features.EVAL]),
        custom_config={**training_config, "warm_start": bool(warm_start),
                       "warm_start_epochs": int(warm_start_epochs),
                       "replay_fraction": float(replay_fraction),
                       "replay_max_images": int(replay_max_images),
                       "tflite": bool(tflite),
                       "tflite_min_agreement": float(tflite_min_agreement),
                       names.FULL_RETRAIN_KEY: False}).with_id(names.TRAINER)
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        example_splits=[features.EVAL],
        eval_config=eval_config(min_accuracy, max_accuracy_drop, slices))
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=push_destination)

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,   # "" : a runtime parameter, filled in at launch
        components=[example_gen, statistics_gen, schema_gen, example_validator,
                    model_resolver, distribution_validator, transform]
                   + ([tuner] if tuner else []) + [trainer, evaluator, pusher],
        enable_cache=False,
        beam_pipeline_args=list(beam_pipeline_args),
        metadata_connection_config=(
            tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
            if metadata_path else None))
