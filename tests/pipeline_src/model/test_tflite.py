"""The TFLite model beside the SavedModel (pipeline_src/model/tflite.py).

What must hold before a model.tflite is published: it takes the documented
tensor (IMAGE_XF, float32 [N, H, W, 3] in [0, 1]) and answers the softmax in
the labels' order, and it gives the SavedModel's top-1 on tonight's eval
images. Checked on the Trainer's own output (conftest's `trained`: the real
CNN) and on colour-rule models exported through the project's exporter; a
TFLite model that disagrees (or fails to convert) leaves no file, only the
json that says why, and the night goes on.
"""
from __future__ import annotations

import json
import os
import random

import attr
import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_transform")

from pipeline_src import config, features  # noqa: E402
from pipeline_src.model import exporter, preprocessing, tflite, trainer  # noqa: E402

import model_testing as mt  # noqa: E402

HONEST = {"lion": "lion", "tiger": "tiger", "bear": "bear"}
ROTATED = {"lion": "tiger", "tiger": "bear", "bear": "lion"}   # every answer another label


def _fresh_images(seed: int, per_label: int = 10) -> list[bytes]:
    """New JPEGs and PNGs of every label, none of them seen by the export or the check."""
    rng = random.Random(seed)
    return [mt.image_bytes(rng, mt.COLOURS[label], fmt)
            for label in mt.LABELS for fmt in ("JPEG", "PNG") for _ in range(per_label // 2)]


def _eval_split(directory, seed: int = 3, per_label: int = 8) -> list[str]:
    rng = random.Random(seed)
    records = [mt.example(mt.image_bytes(rng, mt.COLOURS[label]), label)
               for label in mt.LABELS for _ in range(per_label)]
    mt.write_split(os.path.join(str(directory), "Split-eval"), records)
    return [os.path.join(str(directory), "Split-eval", "*")]


def _exported(tmp_path, transform_graph, rule=HONEST, name="model") -> str:
    model_uri = mt.export_model(mt.colour_rule_model(rule), transform_graph, tmp_path / name)
    return os.path.join(model_uri, mt.SERVING_DIR)


def _top1_agreement_on_raw_bytes(serving_dir: str, tflite_file: str, images: list[bytes]) -> float:
    """The SavedModel's serving signature on the bytes vs the TFLite model on the documented
    tensor, made from the same bytes as the contract says (preprocessing.decode_and_resize)."""
    serve = tf.saved_model.load(serving_dir).signatures[exporter.SERVING_SIGNATURE]
    saved = serve(**{exporter.SERVING_INPUT: tf.constant(images)})[exporter.SCORES].numpy()
    tensor = preprocessing.decode_and_resize(tf.constant(images), mt.SIZE).numpy()
    with open(tflite_file, "rb") as handle:
        lite = tflite.interpreter_scores(handle.read())(tensor)
    return tflite.same_top1(saved, lite) / len(images)


def _assert_documented_tensors(tflite_file: str) -> None:
    interpreter = tf.lite.Interpreter(model_path=tflite_file)
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": [features.IMAGE_XF], "outputs": [exporter.SCORES]}}
    (inputs,), (outputs,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inputs["shape_signature"].tolist() == [-1, mt.SIZE, mt.SIZE, 3]
    assert inputs["dtype"] == np.float32 and outputs["dtype"] == np.float32
    assert outputs["shape_signature"].tolist() == [-1, len(mt.LABELS)]


@pytest.mark.slow
def test_the_trainer_writes_a_checked_tflite_model_beside_the_savedmodel(trained):
    """run_fn's own output: the real CNN, converted, checked on the eval split, in assets.extra."""
    serving_dir = trained.fn_args.serving_model_dir
    assert os.path.exists(tflite.tflite_path(serving_dir))
    _assert_documented_tensors(tflite.tflite_path(serving_dir))
    report = tflite.read_report(serving_dir)
    assert report["converted"] is True
    assert report["images"] == len(trained.eval_records) and report["agreement"] >= 0.99
    assert report["labels"] == mt.LABELS and report["min_agreement"] == 0.99
    assert report["input"]["shape"] == [-1, mt.SIZE, mt.SIZE, 3]
    assert report["output"]["shape"] == [-1, len(mt.LABELS)]
    # TF Serving's view of the folder is unchanged: the three signatures load as before.
    assert exporter.SERVING_SIGNATURE in tf.saved_model.load(serving_dir).signatures
    assert _top1_agreement_on_raw_bytes(
        serving_dir, tflite.tflite_path(serving_dir), _fresh_images(11, per_label=20)) >= 0.99


def test_an_agreeing_tflite_model_is_written_and_the_json_records_the_check(
        tmp_path, transform_graph):
    serving_dir = _exported(tmp_path, transform_graph)
    eval_files = _eval_split(tmp_path / "examples")
    report = tflite.write_beside(serving_dir, eval_files, mt.LABELS, mt.SIZE)

    path = tflite.tflite_path(serving_dir)
    assert os.path.dirname(path) == os.path.join(serving_dir, "assets.extra")
    _assert_documented_tensors(path)
    assert report["converted"] is True and report["images"] == 24
    assert report["agreement"] == 1.0 and report["seconds"] > 0
    assert tflite.read_report(serving_dir) == json.loads(json.dumps(report))
    assert _top1_agreement_on_raw_bytes(serving_dir, path, _fresh_images(5)) >= 0.99
    # The scores themselves, not only the top-1: a float32 conversion, no quantisation.
    tensor = preprocessing.decode_and_resize(tf.constant(_fresh_images(6)), mt.SIZE).numpy()
    with open(path, "rb") as handle:
        lite = tflite.interpreter_scores(handle.read())(tensor)
    keras_scores = mt.colour_rule_model(HONEST)(tensor).numpy()
    np.testing.assert_allclose(lite, keras_scores, atol=1e-5)
    np.testing.assert_allclose(lite.sum(axis=1), 1.0, atol=1e-5)


def test_a_disagreeing_tflite_model_is_not_written_and_the_json_says_why(
        tmp_path, transform_graph, monkeypatch):
    """The converter's output replaced by another model's (every answer different): no file,
    even one left by an earlier attempt, and no exception (the night goes on)."""
    serving_dir = _exported(tmp_path, transform_graph)
    other_dir = _exported(tmp_path, transform_graph, ROTATED, name="other")
    convert = tflite.convert_saved_model
    monkeypatch.setattr(tflite, "convert_saved_model",
                        lambda _serving_dir, image_size: convert(other_dir, image_size))
    stale = tflite.tflite_path(serving_dir)
    os.makedirs(os.path.dirname(stale))
    open(stale, "wb").close()

    report = tflite.write_beside(serving_dir, _eval_split(tmp_path / "examples"), mt.LABELS,
                                 mt.SIZE)

    assert not os.path.exists(stale)
    written = tflite.read_report(serving_dir)
    assert written["converted"] is False and written["agreement"] == 0.0
    assert written["images"] == 24 and "below min_agreement 0.99" in written["reason"]
    assert written == json.loads(json.dumps(report))


def test_a_min_agreement_no_model_can_reach_withholds_even_an_exact_conversion(
        tmp_path, transform_graph):
    serving_dir = _exported(tmp_path, transform_graph)
    report = tflite.write_beside(serving_dir, _eval_split(tmp_path / "examples"), mt.LABELS,
                                 mt.SIZE, min_agreement=1.01)
    assert report["agreement"] == 1.0 and report["converted"] is False
    assert not os.path.exists(tflite.tflite_path(serving_dir))
    assert "24 of 24" in tflite.read_report(serving_dir)["reason"]


def test_a_failed_conversion_is_recorded_not_raised(tmp_path, transform_graph, monkeypatch):
    serving_dir = _exported(tmp_path, transform_graph)

    def broken(_serving_dir, _image_size):
        raise RuntimeError("op not supported")
    monkeypatch.setattr(tflite, "convert_saved_model", broken)
    report = tflite.write_beside(serving_dir, _eval_split(tmp_path / "examples"), mt.LABELS,
                                 mt.SIZE)
    assert report["converted"] is False and report["agreement"] is None
    assert report["reason"] == "conversion or check failed: RuntimeError: op not supported"
    assert not os.path.exists(tflite.tflite_path(serving_dir))


def test_the_tflite_settings_and_their_defaults(tmp_path):
    assert trainer.read_settings(mt.CUSTOM_CONFIG)["tflite"] is True
    assert trainer.read_settings(mt.CUSTOM_CONFIG)["tflite_min_agreement"] == 0.99
    off = trainer.read_settings({**mt.CUSTOM_CONFIG, "tflite": "false", "tflite_min_agreement": 0.95})
    assert off["tflite"] is False and off["tflite_min_agreement"] == 0.95

    loaded = config.load_config(env={})
    assert loaded.training.tflite is True and loaded.serving.tflite_min_agreement == 0.99
    text = config.DEFAULT_CONFIG_FILE.read_text()
    for old, new, message in (
            ("tflite_min_agreement: 0.99", "tflite_min_agreement: 1.5",
             r"serving.tflite_min_agreement 1.5 is not in \(0, 1\]"),
            ("tflite_min_agreement: 0.99", "tflite_min_agreement: 0",
             r"serving.tflite_min_agreement 0.0 is not in \(0, 1\]")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text.replace(old, new))
        with pytest.raises(config.ConfigError, match=message):
            config.load_config(bad, env={})
    bad.write_text(text.replace("tflite: true", "tflite: false"))
    assert config.load_config(bad, env={}).training.tflite is False


@pytest.mark.slow
def test_tflite_off_writes_nothing_beside_the_savedmodel(trained, tmp_path):
    """run_fn again on the same data (one step: what is written matters, not what is learned)."""
    fn_args = attr.evolve(
        trained.fn_args, train_steps=1, serving_model_dir=str(tmp_path / "model" / mt.SERVING_DIR),
        model_run_dir=None, custom_config={**mt.CUSTOM_CONFIG, "epochs": 1, "tflite": False})
    trainer.run_fn(fn_args)
    assert tf.io.gfile.exists(os.path.join(fn_args.serving_model_dir, "saved_model.pb"))
    assert not os.path.exists(os.path.join(fn_args.serving_model_dir, tflite.ASSETS_EXTRA))
