"""Fast unit checks of the model package (no Beam, no training)."""
from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from pipeline_src import features  # noqa: E402
from pipeline_src.model import data, exporter, model, trainer  # noqa: E402


def test_build_model_shapes():
    m = model.build_model(64, 3, learning_rate=0.003)
    assert m.input_shape == (None, 64, 64, 3)
    assert m.input_names == [features.IMAGE_XF]
    scores = m(np.random.default_rng(0).random((2, 64, 64, 3), np.float32), training=False)
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert m.count_params() < 100_000


def test_learning_rate_decays_to_zero_over_the_nights_steps():
    import tf_keras as keras
    m = model.build_model(16, 3, learning_rate=0.01, decay_steps=10)
    rate = keras.optimizers.schedules.deserialize(m.optimizer.get_config()["learning_rate"])
    assert float(rate(0)) == pytest.approx(0.01)
    assert float(rate(5)) == pytest.approx(0.005)
    assert float(rate(10)) == pytest.approx(0.0, abs=1e-9)
    constant = model.build_model(16, 3, learning_rate=0.01)
    assert float(constant.optimizer.learning_rate) == pytest.approx(0.01)


def test_steps_of_counts_the_batches_fit_takes():
    assert model.steps_of(100, 32, 3, None) == 9      # the partial batch dropped
    assert model.steps_of(10, 32, 3, None) == 3       # fewer than a batch: one each epoch
    assert model.steps_of(100, 32, 4, 7) == 28        # train_steps fixes the epoch's length
    assert model.steps_of(0, 32, 0, None) == 1


def test_schedule():
    assert trainer.schedule(None, 12) == (12, None, False)
    assert trainer.schedule(0, 12) == (12, None, False)
    assert trainer.schedule(100, 12) == (12, 9, True)
    assert trainer.schedule(5, 12) == (5, 1, True)


def test_settings_require_keys():
    with pytest.raises(ValueError, match="learning_rate"):
        trainer.read_settings({"labels": ["a"], "image_size": 8, "epochs": 1, "batch_size": 2})


def test_augment_keeps_range_shape_and_is_deterministic():
    image = tf.random.stateless_uniform([64, 64, 3], [1, 2])
    seed = tf.constant([3, 4], tf.int64)
    out = data.augment(image, seed)
    assert out.shape == (64, 64, 3)
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_array_equal(out.numpy(), data.augment(image, seed).numpy())


def test_as_raw_feature_matches_each_spec_kind():
    values = tf.constant([b"a", b"b"])
    assert exporter.as_raw_feature(values, tf.io.FixedLenFeature([], tf.string)).shape == (2,)
    assert exporter.as_raw_feature(values, tf.io.FixedLenFeature([1], tf.string)).shape == (2, 1)
    sparse = exporter.as_raw_feature(values, tf.io.VarLenFeature(tf.string))
    assert isinstance(sparse, tf.SparseTensor)
    assert tf.sparse.to_dense(sparse).numpy().tolist() == [[b"a"], [b"b"]]


def test_examples_parse_spec_defaults_the_label():
    spec = exporter.examples_parse_spec({
        features.IMAGE: tf.io.FixedLenFeature([1], tf.string),
        features.LABEL: tf.io.FixedLenFeature([1], tf.string),
        features.HEIGHT: tf.io.FixedLenFeature([1], tf.int64),
    })
    assert set(spec) == {features.IMAGE, features.LABEL}
    assert spec[features.LABEL].default_value == [b""]
