"""The classifier: [size, size, 3] in [0, 1] -> softmax over the labels.

Two architectures (`training.architecture`):
- small_cnn (the default, the demo's): three conv blocks, about 25k parameters; an
  epoch over a few thousand 64x64 images takes seconds on 2 CPU cores.
- mobilenet_v3_small: Keras' MobileNetV3Small backbone (no top) under the same
  head, for real photos; its weights from `training.backbone_weights` (a file,
  gs:// or http(s) URL of a Keras weights file, or "imagenet"), else random.

Keras 2 (tf_keras), the Keras TFX 1.16 / tf.Transform / TFMA are built on.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Optional

from absl import logging
import tf_keras as keras

from pipeline_src import features
from pipeline_src.names import ARCHITECTURES, MOBILENET_V3_SMALL, SMALL_CNN  # noqa: F401


def skip_autograph_for_tf_keras() -> None:
    """Stops AutoGraph from transpiling tf_keras' own code (idempotent).

    AutoGraph's allowlist skips the `keras` package, which was Keras 2 before
    TF 2.16; the same code now ships as `tf_keras` and is not skipped, so every
    first fit()/evaluate() (and the TFT layer, a tf_keras.Model) transpiles
    hundreds of Keras internals: about 20 s per process on 2 cores, against
    1 s with the rule restored. tf_keras runs in graph mode without AutoGraph,
    as it always did. Uses a private TF module, so failure is only logged.
    """
    try:
        from tensorflow.python.autograph.core import config as autograph_config
        rules = tuple(autograph_config.CONVERSION_RULES)
        rule = autograph_config.DoNotConvert("tf_keras")
        if not any(getattr(r, "_prefix", None) == "tf_keras" for r in rules):
            autograph_config.CONVERSION_RULES = (rule,) + rules
    except Exception as exc:  # noqa: BLE001 - an optimisation, never a failure
        logging.warning("could not exclude tf_keras from AutoGraph: %s", exc)


def _block(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


BACKBONE = "backbone"        # the backbone's layer name: its weights load as one


def _small_cnn(inputs):
    x = inputs
    for i, filters in enumerate((16, 32, 64)):
        x = _block(x, filters, f"block{i + 1}")
    return keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="head_conv")(x)


def local_weights_file(weights: str, folder: str) -> str:
    """A weights file Keras can open: a local path as it is; gs:// copied and http(s)
    downloaded into `folder` (Keras' own cache would write to ~/.keras)."""
    if weights.startswith(("http://", "https://")):
        name = os.path.basename(weights.split("?", 1)[0]) or "backbone.h5"
        return keras.utils.get_file(name, origin=weights, cache_dir=folder,
                                    cache_subdir="")
    if "://" in weights:
        import tensorflow as tf

        local = os.path.join(folder, os.path.basename(weights))
        tf.io.gfile.copy(weights, local, overwrite=True)
        return local
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"training.backbone_weights: no file {weights}")
    return weights


def _mobilenet_v3_small(inputs, image_size: int, weights: Optional[str]):
    """MobileNetV3Small without its top. Its own preprocessing is off: the input is
    already in [0, 1] (the Transform's output) and is mapped to the [-1, 1] it expects."""
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(inputs)
    imagenet = weights == "imagenet"
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(image_size, image_size, 3), include_top=False,
        weights="imagenet" if imagenet else None, include_preprocessing=False)
    backbone._name = BACKBONE
    if weights and not imagenet:
        with tempfile.TemporaryDirectory(prefix="emerald-backbone-") as folder:
            backbone.load_weights(local_weights_file(weights, folder))
        logging.info("backbone weights loaded from %s", weights)
    return backbone(x)


def build_model(image_size: int, n_labels: int, learning_rate: float = 1e-3,
                dropout: float = 0.2, decay_steps: Optional[int] = None,
                architecture: str = SMALL_CNN,
                backbone_weights: Optional[str] = None) -> keras.Model:
    """Compiled model; input named IMAGE_XF, output 'scores' (softmax probabilities).

    decay_steps: the training's length in steps; the learning rate then follows a
    cosine from `learning_rate` down to zero over it, so the weights the night keeps
    are those of a settled last epoch, not of one that happened to land mid-swing (at
    a constant rate the e2e's nights swung between 0.56 and 0.92 validation accuracy
    from one epoch to the next). None: a constant rate.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"training.architecture {architecture!r} is not one of "
                         f"{', '.join(ARCHITECTURES)}")
    inputs = keras.Input(shape=(image_size, image_size, 3), name=features.IMAGE_XF)
    x = (_small_cnn(inputs) if architecture == SMALL_CNN
         else _mobilenet_v3_small(inputs, image_size, backbone_weights))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(n_labels, activation="softmax", name="scores")(x)
    model = keras.Model(inputs, outputs, name="emerald_cnn" if architecture == SMALL_CNN
                        else f"emerald_{architecture}")
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
            if decay_steps else learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def steps_of(images: int, batch_size: int, epochs: int, steps_per_epoch: Optional[int]) -> int:
    """How many optimizer steps `fit` takes: batches per epoch (the partial one dropped,
    unless fewer images than a batch) times the epochs."""
    per_epoch = steps_per_epoch or (images // batch_size if images >= batch_size
                                    else math.ceil(images / batch_size))
    return max(1, per_epoch * epochs)
