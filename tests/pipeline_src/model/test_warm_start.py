"""Warm start: the real run_fn, starting from the last model or not, and the replay sample.

Two nights of tiny colour data with a `night` feature, as ExampleGen writes it:

    base night   train: corpus (4 a label) + 2026-01-01 (2 a label)   eval: 2026-01-02
    tonight      train: the same + 2026-01-02 (2 a label, new)         eval: 2026-01-03

The base model is trained by run_fn (no base: a full retrain); tonight runs
run_fn twice from it, warm and with full_retrain asked. A callback records the
weights fit() starts from, so "warm starts from the base" is a comparison of
tensors that fails if the weights are not loaded (a fresh init differs).
Those run_fn tests train three models (about 1.5 minutes on 2 cores): slow, as
the other training tests are. The decisions (compatible or not, and why) are
checked quickly on light SavedModels with the exporter's layout.
"""
from __future__ import annotations

import os
import random
from types import SimpleNamespace

import numpy as np
import pytest

import model_testing as mt

BASE_NIGHTS = {"corpus": 4, "2026-01-01": 2}
NEW_NIGHT = "2026-01-02"
SETTINGS = {**mt.CUSTOM_CONFIG, "epochs": 2, "warm_start": True, "warm_start_epochs": 1,
            "replay_fraction": 0.5, "replay_max_images": 7}


def _examples(rng, night: str, per_label: int) -> list[bytes]:
    return [mt.example(mt.image_bytes(rng, mt.COLOURS[label]), label, extra={"night": night})
            for label in mt.LABELS for _ in range(per_label)]


def _fn_args(root, examples_dir, name, custom_config, transform_graph, base_model=None):
    from tfx.components.trainer.fn_args_utils import FnArgs

    return FnArgs(
        working_dir=str(root / name / "working"),
        train_files=[str(examples_dir / "Split-train" / "*")],
        eval_files=[str(examples_dir / "Split-eval" / "*")],
        train_steps=None, eval_steps=None,
        transform_graph_path=transform_graph, transform_output=transform_graph,
        serving_model_dir=str(root / name / "model" / mt.SERVING_DIR),
        model_run_dir=str(root / name / "model_run"),
        base_model=base_model, custom_config=custom_config)


def _run(fn_args):
    """run_fn, returning the weights fit() started from (variable name -> value)."""
    import tf_keras as keras

    from pipeline_src.model import trainer

    started = {}

    class StartingWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            started.update({v.name: v.numpy() for v in self.model.variables})

    original = trainer.callbacks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "callbacks", lambda args: original(args) + [StartingWeights()])
        trainer.run_fn(fn_args)
    return started


@pytest.fixture(scope="module")
def nights(tmp_path_factory, transform_graph):
    pytest.importorskip("tensorflow")
    from pipeline_src.model import trainer, warm_start

    root = tmp_path_factory.mktemp("warm_start")
    rng = random.Random(3)
    base_train = [r for night, n in BASE_NIGHTS.items() for r in _examples(rng, night, n)]
    new = _examples(rng, NEW_NIGHT, 2)
    base_dir, tonight_dir = root / "base_examples", root / "tonight_examples"
    mt.write_split(base_dir / "Split-train", base_train)
    mt.write_split(base_dir / "Split-eval", _examples(rng, NEW_NIGHT, 1))
    mt.write_split(tonight_dir / "Split-train", base_train + new)
    mt.write_split(tonight_dir / "Split-eval", _examples(rng, "2026-01-03", 1))

    base = _fn_args(root, base_dir, "base", SETTINGS, transform_graph)
    _run(base)
    warm = _fn_args(root, tonight_dir, "warm", SETTINGS, transform_graph,
                    base_model=base.serving_model_dir)
    warm_start_weights = _run(warm)
    full = _fn_args(root, tonight_dir, "full", {**SETTINGS, trainer.FULL_RETRAIN_KEY: "true"},
                    transform_graph, base_model=base.serving_model_dir)
    full_start_weights = _run(full)
    return SimpleNamespace(
        base=base, warm=warm, full=full, root=root,
        base_weights=warm_start.base_variables(base.serving_model_dir),
        warm_start_weights=warm_start_weights, full_start_weights=full_start_weights,
        base_record=trainer.read_training_record(os.path.dirname(base.serving_model_dir)),
        warm_record=trainer.read_training_record(os.path.dirname(warm.serving_model_dir)),
        full_record=trainer.read_training_record(os.path.dirname(full.serving_model_dir)))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_without_a_base_model_the_first_night_is_a_full_retrain(nights):
    record = nights.base_record
    assert record["mode"] == "full" and record["reason"] == "no blessed model to start from"
    assert record["base_model"] is None and record["epochs"] == SETTINGS["epochs"]
    assert record["trained_on_nights"] == ["2026-01-01", "corpus"]
    assert record["night_counts"] == {"2026-01-01": 6, "corpus": 12}
    assert record["train_images"] == record["new_images"] == 18


@pytest.mark.slow
def test_warm_start_begins_from_the_base_models_weights(nights):
    assert nights.warm_start_weights, "fit() never started"
    assert _same(nights.warm_start_weights, nights.base_weights)
    record = nights.warm_record
    assert record["mode"] == "warm_start"
    assert record["base_model"] == os.path.dirname(nights.base.serving_model_dir)
    assert record["epochs"] == SETTINGS["warm_start_epochs"]
    # New: tonight's 2026-01-02 (6 images); replay: half of the 18 the base saw, capped at 7.
    assert record["new_images"] == 6 and record["new_nights"] == [NEW_NIGHT]
    assert record["replayed_images"] == 7 and record["train_images"] == 24
    assert record["replay_max_images"] == 7
    assert record["trained_on_nights"] == ["2026-01-01", NEW_NIGHT, "corpus"]


@pytest.mark.slow
def test_warm_start_trains_the_base_model_further(nights):
    from pipeline_src.model import warm_start

    exported = warm_start.base_variables(nights.warm.serving_model_dir)
    assert not _same(exported, nights.base_weights)


@pytest.mark.slow
def test_full_retrain_on_demand_starts_from_a_fresh_init(nights):
    assert nights.full_start_weights, "fit() never started"
    kernel = "scores/kernel:0"
    assert not np.allclose(nights.full_start_weights[kernel], nights.base_weights[kernel])
    assert not _same(nights.full_start_weights, nights.base_weights)
    record = nights.full_record
    assert record["mode"] == "full" and "full_retrain" in record["reason"]
    assert record["base_model"] is None and record["epochs"] == SETTINGS["epochs"]
    assert record["new_images"] == 24 and record["replayed_images"] == 0


def _light_base(tmp_path, keras_model, record) -> str:
    """A Model artifact as the exporter lays it out (a tf.Module whose `model` is the Keras
    model, in Format-Serving) with a training record, without the transform graph."""
    import tensorflow as tf

    from pipeline_src.model import warm_start

    module = tf.Module()
    module.model = keras_model
    serving_dir = os.path.join(str(tmp_path), mt.SERVING_DIR)
    tf.saved_model.save(module, serving_dir)
    if record is not None:
        warm_start.write_training_record(str(tmp_path), record)
    return serving_dir


RECORD = {"mode": "full", "labels": mt.LABELS, "image_size": mt.SIZE,
          "night_counts": {"corpus": 12}}


def _decide(serving_dir, model, labels=mt.LABELS, image_size=mt.SIZE, **kwargs):
    from pipeline_src.model import warm_start

    return warm_start.decide(**{"warm_start": True, "full_retrain": False, **kwargs},
                             base_serving_dir=serving_dir, labels=labels,
                             image_size=image_size, model=model)


def test_a_matching_base_is_warm_started_with_its_weights(tmp_path):
    pytest.importorskip("tensorflow")
    from pipeline_src.model import model as model_lib, warm_start

    base = model_lib.build_model(mt.SIZE, len(mt.LABELS))
    tonight = model_lib.build_model(mt.SIZE, len(mt.LABELS))
    assert not np.allclose(base.get_layer("scores").get_weights()[0],
                           tonight.get_layer("scores").get_weights()[0])
    decision = _decide(_light_base(tmp_path, base, RECORD), tonight)
    assert decision.mode == "warm_start" and decision.base_model == str(tmp_path)
    warm_start.load_weights(tonight, decision.weights)
    assert all(np.array_equal(a, b) for a, b in zip(base.get_weights(), tonight.get_weights()))


def test_architecture_mismatch_falls_back_to_full_with_a_reason(tmp_path):
    """A base whose layers differ (the colour-rule model), its record claiming the same
    labels and image size: the layer weights decide."""
    pytest.importorskip("tensorflow")
    from pipeline_src.model import model as model_lib

    serving_dir = _light_base(tmp_path, mt.colour_rule_model({c: c for c in mt.LABELS}), RECORD)
    decision = _decide(serving_dir, model_lib.build_model(mt.SIZE, len(mt.LABELS)))
    assert decision.mode == "full" and decision.weights is None
    assert decision.reason.startswith("architecture changed: layer weights differ: missing [")


def test_a_changed_weight_shape_labels_or_image_size_is_a_full_retrain(tmp_path):
    pytest.importorskip("tensorflow")
    from pipeline_src.model import model as model_lib

    wider = model_lib.build_model(mt.SIZE, len(mt.LABELS) + 1)
    serving_dir = _light_base(tmp_path, wider, RECORD)
    model = model_lib.build_model(mt.SIZE, len(mt.LABELS))
    decision = _decide(serving_dir, model)
    assert decision.mode == "full"
    assert decision.reason == ("architecture changed: layer weight scores/bias:0 is [4] in the "
                               "base model, [3] now")
    for labels, size, reason in ((mt.LABELS + ["zebra"], mt.SIZE, "labels changed"),
                                 (mt.LABELS, 32, "image_size changed")):
        changed = _decide(serving_dir, model, labels=labels, image_size=size)
        assert changed.mode == "full" and changed.reason.startswith(reason)


def test_no_record_warm_start_off_or_full_retrain_asked_is_a_full_retrain(tmp_path):
    pytest.importorskip("tensorflow")
    from pipeline_src.model import model as model_lib, trainer, warm_start

    model = model_lib.build_model(mt.SIZE, len(mt.LABELS))
    old = _light_base(tmp_path / "old", model, None)
    assert warm_start.read_training_record(str(tmp_path / "old")) is None
    assert "no training record" in _decide(old, model).reason
    matching = _light_base(tmp_path / "new", model, RECORD)
    assert _decide(matching, model, warm_start=False).reason == (
        "warm start is off (training.warm_start: false)")
    assert _decide(matching, model, full_retrain=True).reason == (
        "full retrain requested (full_retrain)")
    assert _decide(None, model).reason == "no blessed model to start from"
    # The key a launch sets; a rendered Airflow template ("True") counts.
    settings = trainer.read_settings({**mt.CUSTOM_CONFIG, trainer.FULL_RETRAIN_KEY: "True"})
    assert settings["full_retrain"] is True and settings["warm_start"] is False
