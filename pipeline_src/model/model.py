"""A small Keras CNN: [size, size, 3] in [0, 1] -> softmax over the labels.

Keras 2 (tf_keras), the Keras TFX 1.16 / tf.Transform / TFMA are built on.
About 25k parameters; an epoch over a few thousand 64x64 images takes
seconds on 2 CPU cores.
"""
from __future__ import annotations

import tf_keras as keras

from pipeline_src import features


def _block(x, filters: int, name: str):
    x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def build_model(image_size: int, n_labels: int, learning_rate: float = 1e-3,
                dropout: float = 0.2) -> keras.Model:
    """Compiled model; input named IMAGE_XF, output 'scores' (softmax probabilities)."""
    inputs = keras.Input(shape=(image_size, image_size, 3), name=features.IMAGE_XF)
    x = inputs
    for i, filters in enumerate((16, 32, 64)):
        x = _block(x, filters, f"block{i + 1}")
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="head_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(n_labels, activation="softmax", name="scores")(x)
    model = keras.Model(inputs, outputs, name="emerald_cnn")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model
