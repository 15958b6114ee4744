"""Exports the trained model with the transform graph as a SavedModel with three signatures.

    serving_default     image_bytes: string [None] (raw JPEG / PNG)
                        -> scores: float32 [None, n_labels], classes: string [None, n_labels]
    transform_features  examples: string [None] (serialized tf.Example)
                        -> {IMAGE_XF, LABEL_XF}   (TFMA preprocessing_function_names)
    from_examples       examples: string [None] (serialized tf.Example)
                        -> scores                 (TFMA signature_name)

Every signature goes through the same TFT layer the training input_fn used.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf
import tensorflow_transform as tft

from pipeline_src import features
from pipeline_src.names import CLASSES, SCORES, SERVING_INPUT, SERVING_SIGNATURE  # noqa: F401

TRANSFORM_SIGNATURE = "transform_features"
EXAMPLES_SIGNATURE = "from_examples"

EXAMPLES_INPUT = "examples"


def as_raw_feature(values: tf.Tensor, spec) -> tf.Tensor | tf.SparseTensor:
    """[batch] values -> the shape the transform graph's raw input has for `spec`."""
    if isinstance(spec, tf.io.VarLenFeature):
        n = tf.shape(values, out_type=tf.int64)[0]
        indices = tf.stack([tf.range(n), tf.zeros([n], tf.int64)], axis=1)
        return tf.SparseTensor(indices, values, tf.stack([n, tf.constant(1, tf.int64)]))
    if isinstance(spec, tf.io.FixedLenFeature) and len(spec.shape) == 1 and spec.shape[0] == 1:
        return values[:, tf.newaxis]
    if isinstance(spec, tf.io.FixedLenFeature) and not spec.shape:
        return values
    raise ValueError(f"unsupported raw feature spec for a single value: {spec}")


def examples_parse_spec(raw_feature_spec: dict) -> dict:
    """The raw spec reduced to what the transform uses: IMAGE, and LABEL defaulting to ''.

    So examples without a label parse (LABEL_XF is then -1) and features the
    transform does not use need not be present.
    """
    spec = {features.IMAGE: raw_feature_spec[features.IMAGE]}
    label = raw_feature_spec.get(features.LABEL)
    if isinstance(label, tf.io.FixedLenFeature) and label.default_value is None:
        default = [b""] * label.shape[0] if label.shape else b""
        label = tf.io.FixedLenFeature(label.shape, label.dtype, default_value=default)
    if label is not None:
        spec[features.LABEL] = label
    return spec


class ServingModule(tf.Module):
    """Holds the Keras model and the TFT layer (tracked, so its assets are saved)."""

    def __init__(self, model, tf_transform_output: tft.TFTransformOutput,
                 labels: Sequence[str], tft_layer=None):
        super().__init__(name="emerald")
        self.model = model
        self.tft_layer = (tft_layer if tft_layer is not None
                          else tf_transform_output.transform_features_layer())
        self._labels = [str(label) for label in labels]
        raw_spec = tf_transform_output.raw_feature_spec()
        self._image_spec = raw_spec[features.IMAGE]
        self._parse_spec = examples_parse_spec(raw_spec)

    def _transform_examples(self, examples):
        raw = tf.io.parse_example(examples, self._parse_spec)
        transformed = self.tft_layer(raw)
        out = {features.IMAGE_XF: transformed[features.IMAGE_XF]}
        for name in (features.LABEL_XF, features.WEIGHT_XF):   # absent without a label
            if name in transformed:
                out[name] = tf.reshape(transformed[name], [-1])
        return out

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve_image_bytes(self, image_bytes):
        transformed = self.tft_layer(
            {features.IMAGE: as_raw_feature(image_bytes, self._image_spec)})
        scores = self.model(transformed[features.IMAGE_XF], training=False)
        classes = tf.tile(tf.constant([self._labels]), [tf.shape(scores)[0], 1])
        return {SCORES: scores, CLASSES: classes}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_features(self, examples):
        return self._transform_examples(examples)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def from_examples(self, examples):
        transformed = self._transform_examples(examples)
        return {SCORES: self.model(transformed[features.IMAGE_XF], training=False)}

    def signatures(self) -> dict:
        return {
            SERVING_SIGNATURE: self.serve_image_bytes.get_concrete_function(),
            TRANSFORM_SIGNATURE: self.transform_features.get_concrete_function(),
            EXAMPLES_SIGNATURE: self.from_examples.get_concrete_function(),
        }


def export(model, tf_transform_output: tft.TFTransformOutput, labels: Sequence[str],
           export_dir: str, tft_layer=None) -> str:
    """Saves model + transform graph to export_dir (the Trainer's serving_model_dir)."""
    module = ServingModule(model, tf_transform_output, labels, tft_layer=tft_layer)
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    return export_dir
