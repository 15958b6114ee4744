"""End to end through the model package: tiny ExampleGen-like data -> run_fn -> SavedModel.

One session-scoped run of the Trainer's run_fn (conftest.py's `trained`: a
transform graph written by tf.Transform's Beam implementation, as the Transform
component does), then checks on what it wrote: the training history, the
three exported signatures and the eval predictions recorded beside them.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
beam = pytest.importorskip("apache_beam")
tft = pytest.importorskip("tensorflow_transform")

from pipeline_src import features  # noqa: E402
from pipeline_src.model import data, exporter, predictions, warm_start  # noqa: E402

import model_testing as mt  # noqa: E402
from model_testing import COLOURS, LABELS, SIZE, example, image_bytes  # noqa: E402


@pytest.mark.slow
def test_input_fn_drops_unknown_labels_and_yields_transformed_batches(trained):
    fn_args = trained.fn_args
    output = tft.TFTransformOutput(fn_args.transform_graph_path)
    batches = list(data.input_fn(fn_args.train_files, output, 8, training=True, repeat=False))
    labels = np.concatenate([label.numpy() for _, label in batches])
    assert len(labels) == 32  # 36 known labels, 3 zebras dropped, last partial batch dropped
    assert set(labels.tolist()) <= {0, 1, 2}
    image, label = batches[0]
    assert image.shape == (8, SIZE, SIZE, 3) and image.dtype == tf.float32
    assert label.dtype == tf.int64
    assert 0.0 <= float(tf.reduce_min(image)) and float(tf.reduce_max(image)) <= 1.0
    evaluation = list(data.input_fn(fn_args.eval_files, output, 4, training=False))
    assert [len(label) for _, label in evaluation] == [4, 4, 1]


@pytest.mark.slow
def test_a_selection_is_read_from_the_files_once_and_kept_for_every_later_epoch(
        trained, tmp_path):
    """A warm night's records (`keep`) are filtered out of the whole history once: the
    second epoch reads no file, so it still runs after the files are gone."""
    import shutil

    fn_args = trained.fn_args
    output = tft.TFTransformOutput(fn_args.transform_graph_path)
    copies = []
    for number, path in enumerate(data.list_files(fn_args.train_files)):
        copies.append(str(tmp_path / f"part-{number}.gz"))
        shutil.copyfile(path, copies[-1])
    keep = [i % 3 == 0 for i in range(len(list(warm_start.scan(copies).nights)))]
    ds = data.input_fn(copies, output, 4, training=True, repeat=False, keep=keep,
                       drop_remainder=False)
    first = sorted(np.concatenate([label.numpy() for _, label in ds]).tolist())
    for path in copies:
        os.remove(path)
    second = sorted(np.concatenate([label.numpy() for _, label in ds]).tolist())
    assert second == first and 0 < len(first) <= sum(keep)


@pytest.mark.slow
def test_run_fn_records_a_history_of_every_epoch_that_learned(trained):
    """history.json in the model_run dir: loss and accuracy per epoch, train and eval."""
    fn_args = trained.fn_args
    with open(os.path.join(fn_args.model_run_dir, "history.json")) as handle:
        history = json.load(handle)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == mt.CUSTOM_CONFIG["epochs"] for values in history.values())
    assert history["loss"][-1] < history["loss"][0] / 2           # it learned
    assert history["val_loss"][-1] < history["val_loss"][0]
    # The last epoch's weights are the exported ones: all 9 eval images right.
    assert history["val_accuracy"][-1] == 1.0
    # TensorBoard's logs of the same run, train and validation.
    for run in ("train", "validation"):
        events = tf.io.gfile.glob(os.path.join(fn_args.model_run_dir, run, "events.out.tfevents.*"))
        assert events, f"no TensorBoard events for {run}"


@pytest.mark.slow
def test_the_exported_signatures_take_raw_bytes_and_examples_and_return_label_scores(trained):
    """What the Model artifact holds: Format-Serving/ with the three signatures' contracts,
    the reference predictions and the training record (warm_start.py)."""
    assert sorted(os.listdir(trained.model_uri)) == sorted(
        [mt.SERVING_DIR, predictions.REFERENCE_FILE, warm_start.TRAINING_RECORD_FILE])
    record = warm_start.read_training_record(trained.model_uri)
    assert (record["mode"], record["base_model"]) == ("full", None)
    loaded = trained.loaded
    assert set(loaded.signatures) == {exporter.SERVING_SIGNATURE, exporter.TRANSFORM_SIGNATURE,
                                      exporter.EXAMPLES_SIGNATURE}
    n = len(LABELS)
    serve = loaded.signatures[exporter.SERVING_SIGNATURE]
    _, inputs = serve.structured_input_signature
    assert inputs == {exporter.SERVING_INPUT: tf.TensorSpec([None], tf.string,
                                                            name=exporter.SERVING_INPUT)}
    outputs = serve.structured_outputs
    assert set(outputs) == {exporter.SCORES, exporter.CLASSES}
    assert (outputs[exporter.SCORES].dtype, outputs[exporter.SCORES].shape.as_list()) == (
        tf.float32, [None, n])
    assert (outputs[exporter.CLASSES].dtype, outputs[exporter.CLASSES].shape.as_list()) == (
        tf.string, [None, n])
    for name in (exporter.TRANSFORM_SIGNATURE, exporter.EXAMPLES_SIGNATURE):
        _, inputs = loaded.signatures[name].structured_input_signature
        assert inputs == {exporter.EXAMPLES_INPUT: tf.TensorSpec([None], tf.string,
                                                                 name=exporter.EXAMPLES_INPUT)}
    scores = loaded.signatures[exporter.EXAMPLES_SIGNATURE].structured_outputs
    assert set(scores) == {exporter.SCORES}
    assert scores[exporter.SCORES].shape.as_list() == [None, n]


@pytest.mark.slow
def test_run_fn_records_the_models_own_eval_predictions_beside_the_saved_model(trained):
    """The prediction-drift baseline: the exported model's class and confidence per eval
    example, in file order, in the Model artifact next to Format-Serving (where the
    validator's predictions.read_reference looks for it)."""
    path = os.path.join(trained.model_uri, predictions.REFERENCE_FILE)
    assert os.path.dirname(trained.fn_args.serving_model_dir) == trained.model_uri
    with open(path) as handle:
        recorded = json.load(handle)
    assert predictions.read_reference(trained.model_uri) == recorded
    assert set(recorded) == {features.PREDICTED_CLASS, features.CONFIDENCE}
    assert recorded[features.PREDICTED_CLASS] == trained.eval_labels
    scores = trained.loaded.signatures[exporter.EXAMPLES_SIGNATURE](
        **{exporter.EXAMPLES_INPUT: tf.constant(trained.eval_records)})[exporter.SCORES].numpy()
    np.testing.assert_allclose(recorded[features.CONFIDENCE], scores.max(axis=1), rtol=1e-5)
    assert all(1 / len(LABELS) < c <= 1.0 for c in recorded[features.CONFIDENCE])


@pytest.mark.slow
def test_serving_default_classifies_raw_image_bytes(trained):
    serve = trained.loaded.signatures[exporter.SERVING_SIGNATURE]
    rng = random.Random(123)
    expected = LABELS * 2
    images = [image_bytes(rng, COLOURS[label], fmt) for label, fmt
              in zip(expected, ["JPEG", "PNG", "JPEG", "PNG", "JPEG", "PNG"])]
    out = serve(**{exporter.SERVING_INPUT: tf.constant(images)})
    scores, classes = out[exporter.SCORES].numpy(), out[exporter.CLASSES].numpy()
    assert scores.shape == (6, len(LABELS)) and scores.dtype == np.float32
    assert (scores >= 0).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert classes.shape == (6, len(LABELS))
    assert all([c.decode() for c in row] == LABELS for row in classes)
    predicted = [LABELS[i] for i in scores.argmax(axis=1)]
    assert predicted == expected


@pytest.mark.slow
def test_examples_signatures_for_tfma(trained):
    loaded = trained.loaded
    rng = random.Random(321)
    records = [example(image_bytes(rng, COLOURS["tiger"]), "tiger"),
               example(image_bytes(rng, COLOURS["bear"]), "bear", source=False),
               example(image_bytes(rng, COLOURS["lion"]), None, source=False)]
    batch = tf.constant(records)

    transformed = loaded.signatures[exporter.TRANSFORM_SIGNATURE](
        **{exporter.EXAMPLES_INPUT: batch})
    assert set(transformed) == {features.IMAGE_XF, features.LABEL_XF, features.WEIGHT_XF}
    assert transformed[features.IMAGE_XF].shape == (3, SIZE, SIZE, 3)
    assert transformed[features.LABEL_XF].numpy().tolist() == [1, 2, -1]
    # The unlabelled example cannot be scored, so TFMA gives it no weight.
    assert transformed[features.WEIGHT_XF].numpy().tolist() == [1.0, 1.0, 0.0]

    scores = loaded.signatures[exporter.EXAMPLES_SIGNATURE](
        **{exporter.EXAMPLES_INPUT: batch})[exporter.SCORES].numpy()
    assert scores.shape == (3, len(LABELS))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert scores.argmax(axis=1).tolist() == [1, 2, 0]


# The Evaluator on this SavedModel, with the pipeline's own EvalConfig: test_blessing.py.
