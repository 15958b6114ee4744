"""End to end through the model package: tiny ExampleGen-like data -> run_fn -> SavedModel.

One module-scoped run of the Trainer's run_fn (a transform graph written by
tf.Transform's Beam implementation, as the Transform component does), then
checks on the three exported signatures.
"""
from __future__ import annotations

import io
import os
import random

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")
beam = pytest.importorskip("apache_beam")
tft = pytest.importorskip("tensorflow_transform")
import tensorflow_transform.beam as tft_beam  # noqa: E402
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io  # noqa: E402
from tfx.components.trainer.fn_args_utils import FnArgs  # noqa: E402

from pipeline_src import features
from pipeline_src.model import preprocessing  # noqa: E402
from pipeline_src.model import data, exporter, trainer  # noqa: E402

LABELS = ["lion", "tiger", "bear"]
COLOURS = {"lion": (220, 40, 30), "tiger": (40, 200, 50), "bear": (30, 50, 210)}
SIZE = 64
CUSTOM_CONFIG = {"labels": LABELS, "image_size": SIZE, "epochs": 10, "batch_size": 8,
                 "learning_rate": 0.01, "seed": 7}

# SchemaGen (infer_feature_shape=True) makes single-valued features FixedLenFeature([1]).
RAW_SPEC = {
    features.IMAGE: tf.io.FixedLenFeature([1], tf.string),
    features.LABEL: tf.io.FixedLenFeature([1], tf.string),
    features.SOURCE: tf.io.FixedLenFeature([1], tf.string),
    features.BRIGHTNESS: tf.io.FixedLenFeature([1], tf.float32),
}


def image_bytes(rng: random.Random, colour, fmt="JPEG") -> bytes:
    width, height = rng.randint(40, 160), rng.randint(40, 160)
    pixels = np.clip(np.array(colour, np.float32)[None, None, :]
                     + np.random.default_rng(rng.randint(0, 2**31)).normal(0, 20, (height, width, 3)),
                     0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def example(image: bytes, label: str | None, source: bool = True) -> bytes:
    feats = {features.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
    if label is not None:
        feats[features.LABEL] = tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[label.encode()]))
    if source:
        feats[features.SOURCE] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"corpus"]))
        feats[features.BRIGHTNESS] = tf.train.Feature(float_list=tf.train.FloatList(value=[0.5]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def write_split(directory, records):
    os.makedirs(directory)
    path = os.path.join(directory, "data_tfrecord-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)


def write_transform_graph(output_dir, tmp_dir):
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(RAW_SPEC)

    def fn(inputs, custom_config=CUSTOM_CONFIG):
        return preprocessing.preprocessing_fn(inputs, custom_config)

    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=tmp_dir):
        raw = pipeline | beam.Create([{features.IMAGE: [b""], features.LABEL: [b"lion"],
                                       features.SOURCE: [b"corpus"],
                                       features.BRIGHTNESS: [0.5]}])
        transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    # Like TFX Transform: the raw schema next to the graph (TFTransformOutput.raw_feature_spec).
    metadata_io.write_metadata(
        metadata, os.path.join(output_dir, tft.TFTransformOutput.RAW_METADATA_DIR))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("emerald_model")
    rng = random.Random(0)
    train = [example(image_bytes(rng, COLOURS[label]), label)
             for label in LABELS for _ in range(12)]
    train += [example(image_bytes(rng, (128, 128, 128)), "zebra") for _ in range(3)]
    rng.shuffle(train)
    evaluation = [example(image_bytes(rng, COLOURS[label], "PNG"), label)
                  for label in LABELS for _ in range(3)]
    examples_dir = root / "examples"
    write_split(examples_dir / "Split-train", train)
    write_split(examples_dir / "Split-eval", evaluation)
    transform_graph = str(root / "transform_graph")
    write_transform_graph(transform_graph, str(root / "tft_tmp"))

    fn_args = FnArgs(
        working_dir=str(root / "working"),
        train_files=[str(examples_dir / "Split-train" / "*")],
        eval_files=[str(examples_dir / "Split-eval" / "*")],
        train_steps=None, eval_steps=None,
        transform_graph_path=str(transform_graph), transform_output=str(transform_graph),
        serving_model_dir=str(root / "serving_model_dir"),
        model_run_dir=str(root / "model_run"),
        custom_config=CUSTOM_CONFIG)
    trainer.run_fn(fn_args)
    return fn_args, tf.saved_model.load(fn_args.serving_model_dir)


@pytest.mark.slow
def test_input_fn_drops_unknown_labels_and_yields_transformed_batches(trained):
    fn_args, _ = trained
    output = tft.TFTransformOutput(fn_args.transform_graph_path)
    batches = list(data.input_fn(fn_args.train_files, output, 8, training=True, repeat=False))
    labels = np.concatenate([label.numpy() for _, label in batches])
    assert len(labels) == 32  # 36 known labels, 3 zebras dropped, last partial batch dropped
    assert set(labels.tolist()) <= {0, 1, 2}
    image, label = batches[0]
    assert image.shape == (8, SIZE, SIZE, 3) and image.dtype == tf.float32
    assert label.dtype == tf.int64
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
    evaluation = list(data.input_fn(fn_args.eval_files, output, 4, training=False))
    assert [len(label) for _, label in evaluation] == [4, 4, 1]


@pytest.mark.slow
def test_run_fn_writes_history(trained):
    fn_args, _ = trained
    history = os.path.join(fn_args.model_run_dir, "history.json")
    assert os.path.exists(history)
    assert os.path.exists(os.path.join(fn_args.serving_model_dir, "saved_model.pb"))


@pytest.mark.slow
def test_serving_default_classifies_raw_image_bytes(trained):
    _, loaded = trained
    assert set(loaded.signatures) == {exporter.SERVING_SIGNATURE, exporter.TRANSFORM_SIGNATURE,
                                      exporter.EXAMPLES_SIGNATURE}
    serve = loaded.signatures[exporter.SERVING_SIGNATURE]
    rng = random.Random(123)
    expected = LABELS * 2
    images = [image_bytes(rng, COLOURS[label], fmt) for label, fmt
              in zip(expected, ["JPEG", "PNG", "JPEG", "PNG", "JPEG", "PNG"])]
    out = serve(**{exporter.SERVING_INPUT: tf.constant(images)})
    scores, classes = out[exporter.SCORES].numpy(), out[exporter.CLASSES].numpy()
    assert scores.shape == (6, len(LABELS)) and scores.dtype == np.float32
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert classes.shape == (6, len(LABELS))
    assert all([c.decode() for c in row] == LABELS for row in classes)
    predicted = [LABELS[i] for i in scores.argmax(axis=1)]
    assert predicted == expected


@pytest.mark.slow
def test_examples_signatures_for_tfma(trained):
    _, loaded = trained
    rng = random.Random(321)
    records = [example(image_bytes(rng, COLOURS["tiger"]), "tiger"),
               example(image_bytes(rng, COLOURS["bear"]), "bear", source=False),
               example(image_bytes(rng, COLOURS["lion"]), None, source=False)]
    batch = tf.constant(records)

    transformed = loaded.signatures[exporter.TRANSFORM_SIGNATURE](
        **{exporter.EXAMPLES_INPUT: batch})
    assert set(transformed) == {features.IMAGE_XF, features.LABEL_XF, features.WEIGHT_XF}
    assert transformed[features.IMAGE_XF].shape == (3, SIZE, SIZE, 3)
    assert transformed[features.LABEL_XF].numpy().tolist() == [1, 2, -1]
    # The unlabelled example cannot be scored, so TFMA gives it no weight.
    assert transformed[features.WEIGHT_XF].numpy().tolist() == [1.0, 1.0, 0.0]

    scores = loaded.signatures[exporter.EXAMPLES_SIGNATURE](
        **{exporter.EXAMPLES_INPUT: batch})[exporter.SCORES].numpy()
    assert scores.shape == (3, len(LABELS))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert scores.argmax(axis=1).tolist() == [1, 2, 0]


@pytest.mark.slow
def test_tfma_model_spec_the_evaluator_uses(trained, tmp_path):
    """The EvalConfig the pipeline's Evaluator should use works on this SavedModel."""
    tfma = pytest.importorskip("tensorflow_model_analysis")
    fn_args, _ = trained
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name=exporter.EXAMPLES_SIGNATURE,
            preprocessing_function_names=[exporter.TRANSFORM_SIGNATURE],
            label_key=features.LABEL_XF, prediction_key=exporter.SCORES)],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy"),
            tfma.MetricConfig(class_name="ExampleCount")])],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[features.SOURCE])])
    result = tfma.run_model_analysis(
        eval_shared_model=tfma.default_eval_shared_model(
            eval_saved_model_path=fn_args.serving_model_dir, eval_config=eval_config),
        eval_config=eval_config, data_location=fn_args.eval_files[0],
        file_format="tfrecords", output_path=str(tmp_path / "tfma"))
    metrics = dict(result.slicing_metrics)
    overall = metrics[()][""][""]
    assert overall["example_count"]["doubleValue"] == 9
    assert overall["sparse_categorical_accuracy"]["doubleValue"] == 1.0
    assert (((features.SOURCE, "corpus"),)) in metrics
