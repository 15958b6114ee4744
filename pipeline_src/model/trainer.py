"""TFX Trainer entry point: Trainer(run_fn='pipeline_src.model.trainer.run_fn', ...).

custom_config keys: labels (list of str), image_size (int), epochs (int),
batch_size (int), learning_rate (float); optional seed (int, default 42) and
shuffle_buffer (int).

train_steps (TrainArgs.num_steps): None / 0 -> `epochs` full passes over the
train split; N -> N steps in total, spread over `epochs` epochs of a repeated
dataset. eval_steps (EvalArgs.num_steps): None / 0 -> the whole eval split.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping

from absl import logging
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from pipeline_src import features
from pipeline_src.model import data, exporter, model as model_lib, predictions

DEFAULT_SEED = 42


def _settings(custom_config: Mapping[str, Any] | None) -> dict:
    custom_config = dict(custom_config or {})
    required = ("labels", "image_size", "epochs", "batch_size", "learning_rate")
    missing = [k for k in required if k not in custom_config]
    if missing:
        raise ValueError(f"Trainer custom_config is missing {missing}")
    return {
        "labels": [str(label) for label in custom_config["labels"]],
        "image_size": int(custom_config["image_size"]),
        "epochs": int(custom_config["epochs"]),
        "batch_size": int(custom_config["batch_size"]),
        "learning_rate": float(custom_config["learning_rate"]),
        "seed": int(custom_config.get("seed", DEFAULT_SEED)),
        "shuffle_buffer": int(custom_config.get("shuffle_buffer", data.DEFAULT_SHUFFLE_BUFFER)),
    }


def _check_image_size(tf_transform_output: tft.TFTransformOutput, image_size: int) -> None:
    spec = tf_transform_output.transformed_feature_spec().get(features.IMAGE_XF)
    shape = list(getattr(spec, "shape", []) or [])
    if shape and shape[:2] != [image_size, image_size]:
        raise ValueError(f"the transform graph makes {features.IMAGE_XF} {shape}, "
                         f"but the Trainer's custom_config says image_size {image_size}")


def schedule(train_steps: int | None, epochs: int) -> tuple[int, int | None, bool]:
    """(epochs, steps_per_epoch, repeat) for model.fit."""
    if not train_steps:
        return epochs, None, False
    epochs = max(1, min(epochs, train_steps))
    return epochs, math.ceil(train_steps / epochs), True


class _EpochLogger(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted((logs or {}).items()))
        logging.info("epoch %d/%d: %s", epoch + 1, self.params.get("epochs", 0), metrics)


def run_fn(fn_args) -> None:
    """Trains the CNN on the transformed train split and exports it to serving_model_dir."""
    settings = _settings(fn_args.custom_config)
    model_lib.skip_autograph_for_tf_keras()
    keras.backend.clear_session()
    keras.utils.set_random_seed(settings["seed"])

    tf_transform_output = tft.TFTransformOutput(
        fn_args.transform_graph_path or fn_args.transform_output)
    _check_image_size(tf_transform_output, settings["image_size"])
    tft_layer = tf_transform_output.transform_features_layer()

    epochs, steps_per_epoch, repeat = schedule(fn_args.train_steps, settings["epochs"])
    train_ds = data.input_fn(
        fn_args.train_files, tf_transform_output, settings["batch_size"], training=True,
        repeat=repeat, seed=settings["seed"], shuffle_buffer=settings["shuffle_buffer"],
        tft_layer=tft_layer)
    eval_ds = data.input_fn(
        fn_args.eval_files, tf_transform_output, settings["batch_size"], training=False,
        tft_layer=tft_layer)

    model = model_lib.build_model(
        settings["image_size"], len(settings["labels"]), settings["learning_rate"])
    callbacks = [_EpochLogger()]
    if fn_args.model_run_dir:
        callbacks.append(keras.callbacks.TensorBoard(
            log_dir=fn_args.model_run_dir, update_freq="epoch", profile_batch=0))
    logging.info("training %d epochs (%s steps each) on %s, evaluating on %s",
                 epochs, steps_per_epoch or "all", fn_args.train_files, fn_args.eval_files)
    history = model.fit(
        train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
        validation_data=eval_ds, validation_steps=fn_args.eval_steps or None,
        callbacks=callbacks, verbose=2)

    if fn_args.model_run_dir:
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
            json.dump({k: [float(v) for v in vals] for k, vals in history.history.items()}, f)

    exporter.export(model, tf_transform_output, settings["labels"],
                    fn_args.serving_model_dir, tft_layer=tft_layer)
    logging.info("exported the serving model to %s", fn_args.serving_model_dir)
    record_reference_predictions(fn_args.serving_model_dir, fn_args.eval_files,
                                 settings["labels"])


def record_reference_predictions(serving_model_dir: str, eval_files, labels) -> str:
    """The exported model's outputs on its evaluation split, kept in the Model artifact.

    The baseline of prediction drift: on a later night, while this model serves,
    its outputs on tonight's images are compared with these.
    """
    signature = tf.saved_model.load(serving_model_dir).signatures[exporter.EXAMPLES_SIGNATURE]
    predicted = predictions.predict_records(signature, predictions.records(eval_files), labels)
    path = predictions.write_reference(os.path.dirname(serving_model_dir.rstrip("/")), predicted)
    logging.info("recorded %d reference predictions in %s",
                 len(predicted[features.PREDICTED_CLASS]), path)
    return path
