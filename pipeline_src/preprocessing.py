"""Transform's preprocessing_fn: raw image bytes -> a square float image; label -> index.

Referenced by dotted path from the pipeline:

    Transform(preprocessing_fn="pipeline_src.preprocessing.preprocessing_fn",
              custom_config={"labels": [...], "image_size": 64},
              materialize=False, ...)

No analyzers: the output is a pure function of each example, so the transform
graph is cheap to build and the model applies it itself (training input_fn and
serving signatures). IMAGE_XF depends on IMAGE only, so the TFT layer can be
called with {IMAGE: bytes} alone at serving time.
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


def decode_and_resize(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """[batch] JPEG/PNG bytes -> float32 [batch, size, size, 3] in [0, 1].

    Pads to square (letterbox, black bars) and resizes, keeping the aspect ratio.
    """
    def one(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        image = tf.image.resize_with_pad(
            image, image_size, image_size, antialias=True)  # float32 in [0, 255]
        return tf.clip_by_value(image / 255.0, 0.0, 1.0)

    images = tf.map_fn(
        one, image_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))
    return tf.ensure_shape(images, [None, image_size, image_size, 3])


def label_index(label: tf.Tensor, labels: Sequence[str]) -> tf.Tensor:
    """[batch] label strings -> int64 index into `labels`, UNKNOWN_LABEL (-1) otherwise."""
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            keys=tf.constant(list(labels), dtype=tf.string),
            values=tf.range(len(labels), dtype=tf.int64)),
        default_value=tf.constant(UNKNOWN_LABEL, tf.int64))
    return table.lookup(label)


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
        outputs[features.LABEL_XF] = label_index(to_vector(inputs[features.LABEL]), labels)
    return outputs
