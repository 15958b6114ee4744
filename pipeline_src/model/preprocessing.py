"""Transform's preprocessing_fn: raw image bytes -> a square float image; label -> index.

Referenced by dotted path from the pipeline:

    Transform(preprocessing_fn="pipeline_src.model.preprocessing.preprocessing_fn",
              custom_config={"labels": [...], "image_size": 64},
              materialize=False, disable_statistics=True, ...)

No analyzers and no stateful ops: the output is a pure function of each
example, so with Transform(materialize=False, disable_statistics=True) TFX
takes its in-place path (writes the graph, no Beam pass over the images), and
the model applies the graph itself (training input_fn and serving signatures).
IMAGE_XF depends on IMAGE only, so the TFT layer can be called with
{IMAGE: bytes} alone at serving time.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import tensorflow as tf

from pipeline_src import features

UNKNOWN_LABEL = -1


def _settings(custom_config: Mapping[str, Any] | None) -> tuple[list[str], int]:
    custom_config = custom_config or {}
    missing = [k for k in ("labels", "image_size") if k not in custom_config]
    if missing:
        raise ValueError(
            f"preprocessing_fn needs custom_config keys {missing} "
            "(Transform(custom_config={'labels': [...], 'image_size': N}))")
    labels = [str(label) for label in custom_config["labels"]]
    if not labels:
        raise ValueError("custom_config['labels'] is empty")
    image_size = int(custom_config["image_size"])
    if image_size <= 0:
        raise ValueError(f"custom_config['image_size'] = {image_size} must be positive")
    return labels, image_size


def to_vector(value, default: str = "") -> tf.Tensor:
    """A [batch] string tensor from a dense [batch] / [batch, 1] or sparse feature.

    The schema decides the raw shape: SchemaGen's inferred shape gives
    FixedLenFeature([1]) -> [batch, 1], a shapeless schema gives a
    VarLenFeature -> SparseTensor [batch, None]. Takes the first value.
    """
    if isinstance(value, tf.RaggedTensor):
        value = value.to_sparse()
    if isinstance(value, tf.SparseTensor):
        dense = tf.sparse.to_dense(value, default_value=default)
        dense = tf.pad(dense, [[0, 0], [0, 1]], constant_values=default)
        return dense[:, 0]
    value = tf.convert_to_tensor(value)
    if value.shape.rank == 1:
        return value
    return tf.reshape(value, [-1])


def _resize_with_pad(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """tf.image.resize_with_pad (fit inside, keep the aspect ratio, centre, pad
    with zeros), written without its runtime assertions: Assert ops are
    stateful, and a stateful op makes TFT think the preprocessing_fn needs an
    analysis pass over the data (no in-place Transform)."""
    shape = tf.shape(image)
    height = tf.cast(shape[0], tf.float32)
    width = tf.cast(shape[1], tf.float32)
    ratio = tf.maximum(width, height) / float(image_size)
    new_height = tf.clip_by_value(tf.cast(tf.floor(height / ratio), tf.int32), 1, image_size)
    new_width = tf.clip_by_value(tf.cast(tf.floor(width / ratio), tf.int32), 1, image_size)
    image = tf.image.resize(image, tf.stack([new_height, new_width]), antialias=True)
    # Offsets as tf.image.resize_with_pad computes them (from the unrounded size).
    top = tf.clip_by_value(tf.cast(tf.floor((image_size - height / ratio) / 2), tf.int32),
                           0, image_size - new_height)
    left = tf.clip_by_value(tf.cast(tf.floor((image_size - width / ratio) / 2), tf.int32),
                            0, image_size - new_width)
    return tf.pad(image, [[top, image_size - new_height - top],
                          [left, image_size - new_width - left],
                          [0, 0]])


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """[batch] JPEG/PNG bytes -> float32 [batch, size, size, 3] in [0, 1].

    Letterboxes: fits the image inside the square, keeping its aspect ratio,
    with black bars (tf.image.resize_with_pad, antialiased).
    """
    def one(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        image = _resize_with_pad(image, image_size)  # float32 in [0, 255]
        image = tf.clip_by_value(image / 255.0, 0.0, 1.0)
        return tf.reshape(image, [image_size, image_size, 3])

    images = tf.map_fn(
        one, image_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))
    return tf.reshape(images, [-1, image_size, image_size, 3])


def label_index(label: tf.Tensor, labels: Sequence[str]) -> tf.Tensor:
    """[batch] label strings -> int64 index into `labels`, UNKNOWN_LABEL (-1) otherwise.

    A static lookup over the configured labels, done as a comparison with the
    constant label vector rather than a tf.lookup table: no table resource
    (re-initialised on every call inside TFT's tf.function, and a stateful op
    that would cost the in-place Transform), and the result is the same.
    """
    vocabulary = tf.constant(list(labels), dtype=tf.string)
    matches = tf.equal(tf.expand_dims(label, 1), tf.expand_dims(vocabulary, 0))
    index = tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int64)
    return tf.where(tf.reduce_any(matches, axis=1), index,
                    tf.constant(UNKNOWN_LABEL, tf.int64))


def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Mapping[str, Any] | None = None) -> dict[str, tf.Tensor]:
    """TFT preprocessing_fn: {IMAGE, LABEL} -> {IMAGE_XF, LABEL_XF}.

    custom_config: {"labels": [str, ...], "image_size": int}.
    LABEL may be absent (e.g. an unlabelled serving request): then only
    IMAGE_XF is produced.
    """
    labels, image_size = _settings(custom_config)
    outputs = {
        features.IMAGE_XF: decode_and_resize(to_vector(inputs[features.IMAGE]), image_size),
    }
    if features.LABEL in inputs:
        label_xf = label_index(to_vector(inputs[features.LABEL]), labels)
        outputs[features.LABEL_XF] = label_xf
        # Evaluation weight: an image whose label the schema does not know cannot be
        # scored (the schema check reports it instead), so it weighs nothing.
        outputs[features.WEIGHT_XF] = tf.cast(label_xf >= 0, tf.float32)
    return outputs
