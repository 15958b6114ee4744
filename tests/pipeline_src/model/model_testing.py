"""Tiny data and models of known quality for the model tests (test_model_training, test_blessing).

Images are one colour per label (lion red, tiger green, bear blue) with noise
and a random size, so the real CNN learns them in a few epochs and a
hand-set "colour rule" model classifies them exactly as its rule says.

    images     image_bytes, example, write_split
    transform  RAW_SPEC, CUSTOM_CONFIG, write_transform_graph (what Transform writes)
    models     colour_rule_model, one_class_model, export_model (through the project's exporter,
               into a Model artifact's Format-Serving, as the Trainer does)

Imported by name (`import model_testing`): pytest puts this folder on sys.path.
"""
from __future__ import annotations

import io
import os
import random
from typing import Mapping, Optional

import numpy as np
from PIL import Image

from pipeline_src import features, names

LABELS = ["lion", "tiger", "bear"]
COLOURS = {"lion": (220, 40, 30), "tiger": (40, 200, 50), "bear": (30, 50, 210)}
SIZE = 64
CUSTOM_CONFIG = {"labels": LABELS, "image_size": SIZE, "epochs": 10, "batch_size": 8,
                 "learning_rate": 0.01, "seed": 7}
SERVING_DIR = "Format-Serving"   # the Trainer's serving_model_dir inside the Model artifact


def raw_spec():
    """SchemaGen (infer_feature_shape=True) makes single-valued features FixedLenFeature([1])."""
    import tensorflow as tf

    return {
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


def example(image: bytes, label: Optional[str], source: bool = True,
            extra: Optional[Mapping[str, object]] = None) -> bytes:
    """A serialized tf.Example; `extra` adds str (bytes) or int (int64) features."""
    import tensorflow as tf

    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        if isinstance(value, float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))

    feats = {features.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}
    if label is not None:
        feats[features.LABEL] = feature(label)
    if source:
        feats[features.SOURCE] = feature("corpus")
        feats[features.BRIGHTNESS] = feature(0.5)
    for name, value in (extra or {}).items():
        feats[name] = feature(value)
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def write_split(directory, records) -> str:
    """A split as ExampleGen writes it: gzipped TFRecords in {examples}/Split-{name}/."""
    import tensorflow as tf

    os.makedirs(directory)
    path = os.path.join(directory, names.EXAMPLES_SHARD_FILE)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for record in records:
            writer.write(record)
    return path


def write_transform_graph(output_dir, tmp_dir) -> str:
    """The transform graph of the project's preprocessing_fn, as the Transform component writes it."""
    import apache_beam as beam
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io

    from pipeline_src.model import preprocessing

    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(raw_spec())

    def fn(inputs, custom_config=CUSTOM_CONFIG):
        return preprocessing.preprocessing_fn(inputs, custom_config)

    with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(tmp_dir)):
        raw = pipeline | beam.Create([{features.IMAGE: [b""], features.LABEL: [b"lion"],
                                       features.SOURCE: [b"corpus"],
                                       features.BRIGHTNESS: [0.5]}])
        transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(fn)
        _ = transform_fn | tft_beam.WriteTransformFn(str(output_dir))
    # Like TFX Transform: the raw schema next to the graph (TFTransformOutput.raw_feature_spec).
    metadata_io.write_metadata(
        metadata, os.path.join(str(output_dir), tft.TFTransformOutput.RAW_METADATA_DIR))
    return str(output_dir)


# ------------------------------------------------------------------ models of known quality

def colour_rule_model(rule: Mapping[str, str], gain: float = 40.0):
    """A Keras model that answers by the image's dominant colour: rule maps the colour of a
    label (COLOURS' keys) to the label predicted, e.g. {"lion": "lion", "tiger": "lion",
    "bear": "bear"} calls every tiger a lion. Mean colour -> Dense -> softmax: no training."""
    import tf_keras as keras

    channel = {"lion": 0, "tiger": 1, "bear": 2}   # the dominant channel of each label's colour
    kernel = np.zeros((3, len(LABELS)), np.float32)
    for colour, predicted in rule.items():
        kernel[channel[colour], LABELS.index(predicted)] = gain
    inputs = keras.Input(shape=(SIZE, SIZE, 3), name=features.IMAGE_XF)
    mean = keras.layers.GlobalAveragePooling2D()(inputs)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="scores")(mean)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([kernel, np.zeros(len(LABELS), np.float32)])
    return model


def one_class_model(label: str):
    """The project's CNN (model.build_model) with an output layer that always says `label`."""
    from pipeline_src.model import model as model_lib

    model = model_lib.build_model(SIZE, len(LABELS))
    dense = model.get_layer("scores")
    kernel, _ = dense.get_weights()
    bias = np.zeros(len(LABELS), np.float32)
    bias[LABELS.index(label)] = 10.0
    dense.set_weights([np.zeros_like(kernel), bias])
    return model


def export_model(model, transform_graph: str, model_uri) -> str:
    """Exports through pipeline_src.model.exporter into {model_uri}/Format-Serving; returns model_uri."""
    import tensorflow_transform as tft

    from pipeline_src.model import exporter

    exporter.export(model, tft.TFTransformOutput(transform_graph), LABELS,
                    os.path.join(str(model_uri), SERVING_DIR))
    return str(model_uri)
