"""TFX Trainer entry point: Trainer(run_fn='pipeline_src.model.trainer.run_fn', ...).

custom_config keys: labels (list of str), image_size (int), epochs (int),
batch_size (int), learning_rate (float); optional seed (int, default 42),
dropout (float, 0.2), architecture (names.ARCHITECTURES, small_cnn), backbone_weights,
shuffle_buffer (int), warm_start (bool, default false), warm_start_epochs
(int, default 5), replay_fraction (float, default 0.25), replay_max_images (int,
default 0: no cap), tflite (bool, default
true: a checked model.tflite beside the SavedModel, tflite.py), tflite_min_agreement
(float, default 0.99) and FULL_RETRAIN_KEY (bool or "true"/"false", default false:
the DAG param full_retrain sets it).
fn_args.hyperparameters (the optional Tuner's best, hyperparameters.py) override
learning_rate and dropout.

Warm start (warm_start.py): with warm_start on, a base model (the Trainer's
base_model input, the latest blessed model) whose architecture matches and no
full_retrain asked, the model starts from the base's weights and trains
warm_start_epochs passes over the images new to it plus a replay sample of
the older ones; otherwise `epochs` passes over the whole train split from a
fresh init. Either way a training record (mode, reason, base model, epochs,
image counts, nights) is written beside the SavedModel: read_training_record.

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
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from pipeline_src import features
from pipeline_src.config import is_true
from pipeline_src.model import (data, exporter, hyperparameters, model as model_lib,
                                predictions, tflite, warm_start)
from pipeline_src.model.warm_start import FULL_RETRAIN_KEY, read_training_record  # noqa: F401

DEFAULT_SEED = 42
DEFAULT_WARM_START_EPOCHS = 5
DEFAULT_REPLAY_FRACTION = 0.25
DEFAULT_DROPOUT = 0.2


def read_settings(custom_config: Mapping[str, Any] | None) -> dict:
    """The Trainer's custom_config cast once: typed values, defaults filled, checked
    (the Tuner searches from the same settings)."""
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
        "warm_start": is_true(custom_config.get("warm_start", False)),
        "warm_start_epochs": int(custom_config.get("warm_start_epochs",
                                                   DEFAULT_WARM_START_EPOCHS)),
        "replay_fraction": float(custom_config.get("replay_fraction", DEFAULT_REPLAY_FRACTION)),
        "replay_max_images": int(custom_config.get("replay_max_images", 0)),
        "full_retrain": is_true(custom_config.get(FULL_RETRAIN_KEY, False)),
        "dropout": float(custom_config.get("dropout", DEFAULT_DROPOUT)),
        "architecture": str(custom_config.get("architecture", model_lib.SMALL_CNN)),
        "backbone_weights": custom_config.get("backbone_weights") or None,
        "tflite": is_true(custom_config.get("tflite", True)),
        "tflite_min_agreement": float(custom_config.get("tflite_min_agreement",
                                                        tflite.DEFAULT_MIN_AGREEMENT)),
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


def callbacks(fn_args) -> list:
    """The fit callbacks (a function, so a test can add one that watches the weights)."""
    result = [_EpochLogger()]
    if fn_args.model_run_dir:
        result.append(keras.callbacks.TensorBoard(
            log_dir=fn_args.model_run_dir, update_freq="epoch", profile_batch=0))
    return result


def _plan(settings: dict, decision: warm_start.Decision, images) -> dict:
    """What to train on, and for how long, as `decision` says (warm or full)."""
    known = warm_start.known_labels(images, settings["labels"])
    if decision.mode == warm_start.WARM:
        new, replayed = warm_start.select(images, decision.base_record, settings["labels"],
                                          settings["replay_fraction"], settings["seed"],
                                          settings["replay_max_images"])
        keep, epochs = new | replayed, settings["warm_start_epochs"]
    else:
        new, replayed = known, np.zeros(len(images), bool)
        keep, epochs = None, settings["epochs"]
    logging.info("%s: %s; %d new and %d replayed images", decision.mode, decision.reason,
                 int(new.sum()), int(replayed.sum()))
    record = {
        "mode": decision.mode, "reason": decision.reason, "base_model": decision.base_model,
        "epochs": epochs, "train_images": int(known.sum()), "new_images": int(new.sum()),
        "replayed_images": int(replayed.sum()),
        "new_nights": sorted({images.nights[i] for i in np.flatnonzero(new)}),
        "night_counts": warm_start.trained_on(images, decision.base_record),
        "labels": settings["labels"], "image_size": settings["image_size"],
        "warm_start_epochs": settings["warm_start_epochs"],
        "replay_fraction": settings["replay_fraction"],
        "replay_max_images": settings["replay_max_images"],
    }
    record["trained_on_nights"] = sorted(record["night_counts"])
    return {"record": record, "keep": keep, "selected": int((new | replayed).sum())}


def _datasets(fn_args, settings: dict, tf_transform_output, tft_layer, plan: dict):
    """(train, eval, epochs, steps_per_epoch) for model.fit, as the plan says."""
    epochs, steps_per_epoch, repeat = schedule(fn_args.train_steps, plan["record"]["epochs"])
    plan["record"]["epochs"] = epochs if plan["selected"] and plan["record"]["epochs"] else 0
    train_ds = data.input_fn(
        fn_args.train_files, tf_transform_output, settings["batch_size"], training=True,
        repeat=repeat, seed=settings["seed"], shuffle_buffer=settings["shuffle_buffer"],
        tft_layer=tft_layer, keep=plan["keep"],
        drop_remainder=plan["selected"] >= settings["batch_size"])
    eval_ds = data.input_fn(
        fn_args.eval_files, tf_transform_output, settings["batch_size"], training=False,
        tft_layer=tft_layer)
    return train_ds, eval_ds, epochs, steps_per_epoch


def _build(settings: dict, plan: dict, epochs: int, steps_per_epoch) -> keras.Model:
    """The CNN, its learning rate decaying over exactly this night's training steps."""
    return model_lib.build_model(
        settings["image_size"], len(settings["labels"]), settings["learning_rate"],
        dropout=settings["dropout"], architecture=settings["architecture"],
        backbone_weights=settings["backbone_weights"],
        decay_steps=model_lib.steps_of(plan["selected"], settings["batch_size"], epochs,
                                       steps_per_epoch))


def run_fn(fn_args) -> None:
    """Trains the CNN (warm or full, see the module docstring) and exports it to
    serving_model_dir, with the reference predictions and the training record beside it."""
    # The Tuner's best values (its node runs only with training.tuner_trials > 0).
    tuned = hyperparameters.best_values(getattr(fn_args, "hyperparameters", None))
    settings = hyperparameters.apply(read_settings(fn_args.custom_config), tuned)
    model_lib.skip_autograph_for_tf_keras()
    keras.backend.clear_session()
    keras.utils.set_random_seed(settings["seed"])

    tf_transform_output = tft.TFTransformOutput(
        fn_args.transform_graph_path or fn_args.transform_output)
    _check_image_size(tf_transform_output, settings["image_size"])
    tft_layer = tf_transform_output.transform_features_layer()

    decision = warm_start.decide(
        warm_start=settings["warm_start"], full_retrain=settings["full_retrain"],
        base_serving_dir=getattr(fn_args, "base_model", None), labels=settings["labels"],
        image_size=settings["image_size"])
    images = warm_start.scan(fn_args.train_files)
    plan = _plan(settings, decision, images)
    train_ds, eval_ds, epochs, steps_per_epoch = _datasets(
        fn_args, settings, tf_transform_output, tft_layer, plan)
    # The model is built after the datasets, as before warm starts existed: Keras draws
    # its initial weights from the seeded global sequence, so a full retrain starts from
    # the same weights as it always did. Its layer shapes are what the base must match.
    model = _build(settings, plan, epochs, steps_per_epoch)
    confirmed = warm_start.confirm(decision, model)
    if confirmed is not decision:            # warm was planned, the architecture says no
        decision, plan = confirmed, _plan(settings, confirmed, images)
        train_ds, eval_ds, epochs, steps_per_epoch = _datasets(
            fn_args, settings, tf_transform_output, tft_layer, plan)
        model = _build(settings, plan, epochs, steps_per_epoch)   # the full run's schedule
    if decision.mode == warm_start.WARM:
        warm_start.load_weights(model, decision.weights)
    record = plan["record"]
    record.update(architecture=settings["architecture"], hyperparameters=tuned,
                  learning_rate=settings["learning_rate"], dropout=settings["dropout"])

    history = None
    if record["epochs"]:
        logging.info("training %d epochs (%s steps each) on %d images of %s, evaluating on %s",
                     epochs, steps_per_epoch or "all", plan["selected"], fn_args.train_files,
                     fn_args.eval_files)
        history = model.fit(
            train_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
            validation_data=eval_ds, validation_steps=fn_args.eval_steps or None,
            callbacks=callbacks(fn_args), verbose=2)
    else:   # a warm night with nothing to train on: the base model as it is
        logging.info("nothing to train on: exporting the base model's weights unchanged")

    if fn_args.model_run_dir and history is not None:
        tf.io.gfile.makedirs(fn_args.model_run_dir)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, "history.json"), "w") as f:
            json.dump({k: [float(v) for v in vals] for k, vals in history.history.items()}, f)

    exporter.export(model, tf_transform_output, settings["labels"],
                    fn_args.serving_model_dir, tft_layer=tft_layer)
    logging.info("exported the serving model to %s", fn_args.serving_model_dir)
    if settings["tflite"]:   # in assets.extra: published with the SavedModel, if blessed
        tflite.write_beside(fn_args.serving_model_dir, fn_args.eval_files, settings["labels"],
                            settings["image_size"],
                            min_agreement=settings["tflite_min_agreement"])
    record_reference_predictions(fn_args.serving_model_dir, fn_args.eval_files,
                                 settings["labels"])
    path = warm_start.write_training_record(
        warm_start.model_uri_of(fn_args.serving_model_dir), record)
    logging.info("wrote the training record %s (%s)", path, decision.mode)


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
