"""TFX Tuner entry point: Tuner(tuner_fn='pipeline_src.model.tuner.tuner_fn', ...).

Off by default (`training.tuner_trials: 0`, no Tuner node). When on, each night
first tries `tuner_trials` points of hyperparameters.SEARCH_SPACE (random search,
seeded), each a fresh model trained `tuner_epochs` passes over the train split
and scored on the eval split's accuracy; the Trainer then trains with the best
values (its `hyperparameters` input). The trials train from scratch: a search
compares hyperparameters, not how far from the serving model each started.

The search is a KerasTuner Tuner whose run_trial builds the project's tf_keras
model (KerasTuner's own fit path assumes Keras 3 models).
"""
from __future__ import annotations

from typing import Any, Mapping

import keras_tuner
from absl import logging
import tensorflow_transform as tft
import tf_keras as keras
from tfx.components.tuner.component import TunerFnResult

from pipeline_src.model import data, hyperparameters, model as model_lib, trainer

OBJECTIVE = "val_accuracy"
DEFAULT_TRIALS, DEFAULT_EPOCHS = 0, 2


def search_settings(custom_config: Mapping[str, Any] | None) -> dict:
    """The Trainer's settings plus the search's own budget."""
    settings = trainer.read_settings(custom_config)
    custom_config = dict(custom_config or {})
    settings["tuner_trials"] = int(custom_config.get("tuner_trials", DEFAULT_TRIALS))
    settings["tuner_epochs"] = int(custom_config.get("tuner_epochs", DEFAULT_EPOCHS))
    if settings["tuner_trials"] < 1:
        raise ValueError("the Tuner node runs only with training.tuner_trials >= 1")
    return settings


class EmeraldSearch(keras_tuner.Tuner):
    """Each trial: the configured architecture with the trial's values, trained and scored."""

    def __init__(self, settings: dict, **kwargs):
        super().__init__(**kwargs)
        self.settings = settings

    def run_trial(self, trial, train, validation, epochs: int, steps_per_epoch=None):
        values = hyperparameters.apply(self.settings, trial.hyperparameters.values)
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.settings["seed"])
        candidate = model_lib.build_model(
            values["image_size"], len(values["labels"]), values["learning_rate"],
            dropout=values["dropout"], architecture=values["architecture"],
            backbone_weights=values["backbone_weights"])
        history = candidate.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                validation_data=validation, verbose=2)
        score = float(history.history["val_accuracy"][-1])
        logging.info("trial %s %s: %s %.4f", trial.trial_id, trial.hyperparameters.values,
                     OBJECTIVE, score)
        return {OBJECTIVE: score}


def tuner_fn(fn_args) -> TunerFnResult:
    settings = search_settings(fn_args.custom_config)
    model_lib.skip_autograph_for_tf_keras()
    tf_transform_output = tft.TFTransformOutput(
        fn_args.transform_graph_path or fn_args.transform_output)
    tft_layer = tf_transform_output.transform_features_layer()
    train = data.input_fn(fn_args.train_files, tf_transform_output, settings["batch_size"],
                          training=True, repeat=False, seed=settings["seed"],
                          shuffle_buffer=settings["shuffle_buffer"], tft_layer=tft_layer)
    validation = data.input_fn(fn_args.eval_files, tf_transform_output,
                               settings["batch_size"], training=False, tft_layer=tft_layer)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective=keras_tuner.Objective(OBJECTIVE, "max"),
        max_trials=settings["tuner_trials"], seed=settings["seed"],
        hyperparameters=hyperparameters.keras_tuner_space())
    search = EmeraldSearch(settings, oracle=oracle, directory=fn_args.working_dir,
                           project_name="emerald_search", overwrite=True)
    return TunerFnResult(tuner=search, fit_kwargs={
        "train": train, "validation": validation, "epochs": settings["tuner_epochs"]})
