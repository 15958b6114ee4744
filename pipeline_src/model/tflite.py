"""A TFLite model beside the SavedModel, written only when it agrees with it.

Where: {serving_model_dir}/assets.extra/model.tflite, with tflite.json beside
it (what was checked and why the file is there or not). TF Serving ignores
assets.extra, and the Pusher copies the whole serving folder, so the file
travels with the model through the Evaluator and is published only with a
blessed model: {serving}/{version}/assets.extra/model.tflite.

Input contract: a float32 tensor `image_xf` [N, H, W, 3] (H = W = data.image_size)
in [0, 1], RGB: the transformed image (features.IMAGE_XF), i.e. what
preprocessing.decode_and_resize makes of the JPEG / PNG bytes: decoded to RGB,
fitted inside the square keeping its aspect ratio (antialiased bilinear
resize), centred with black bars, divided by 255. Output `scores`: float32
[N, n_labels], the softmax in the order of data.labels (tflite.json lists it).

Why not raw JPEG bytes in: converting the `serving_default` signature, even
with SELECT_TF_OPS, fails: the antialiased resize (tf.ScaleAndTranslate) is
neither a TFLite builtin nor a Flex op, and the decode would need the Flex
delegate (megabytes in an app). Dropping the antialiasing would make the
TFLite preprocessing differ from training's (train/serve skew), so the app
prepares the tensor. The conversion uses builtin ops only: any TFLite runtime
runs it, without the Flex delegate.

The check: the SavedModel (its `from_examples` signature, raw bytes through
the transform graph) and the TFLite interpreter (on the `transform_features`
output of the same records) score tonight's eval images, at most
DEFAULT_MAX_IMAGES of them; the share with the same top-1 must reach
min_agreement. A failed conversion or check only withholds the file (and is
logged as a warning): the night still goes on.
"""
from __future__ import annotations

import json
import os
import time
from typing import Iterable, Iterator, Sequence

from absl import logging

from pipeline_src import features
from pipeline_src.model import files
from pipeline_src.names import SCORES

ASSETS_EXTRA = "assets.extra"
TFLITE_FILE = "model.tflite"
REPORT_FILE = "tflite.json"
INPUT_NAME = features.IMAGE_XF
DEFAULT_MIN_AGREEMENT = 0.99
DEFAULT_MAX_IMAGES = 2000
_BATCH = 64


def tflite_path(serving_model_dir: str) -> str:
    return os.path.join(serving_model_dir, ASSETS_EXTRA, TFLITE_FILE)


def report_path(serving_model_dir: str) -> str:
    return os.path.join(serving_model_dir, ASSETS_EXTRA, REPORT_FILE)


def read_report(serving_model_dir: str):
    """tflite.json of a serving folder, or None (TFLite off, or a model from before it)."""
    return files.read_json(report_path(serving_model_dir))


def contract(image_size: int, labels: Sequence[str]) -> dict:
    """The input and output tensors as tflite.json documents them."""
    return {
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [-1, image_size, image_size, 3],
                  "range": [0.0, 1.0],
                  "preprocessing": "RGB, fitted inside the square keeping the aspect ratio "
                                   "(antialiased bilinear), centred on black, / 255 "
                                   "(pipeline_src.model.preprocessing.decode_and_resize)"},
        "output": {"name": SCORES, "dtype": "float32", "shape": [-1, len(labels)],
                   "meaning": "softmax scores, in the order of labels"},
        "labels": [str(label) for label in labels],
    }


def convert_saved_model(serving_model_dir: str, image_size: int) -> bytes:
    """The exported SavedModel's Keras model (as restored, the weights that were saved)
    as a TFLite flatbuffer taking the documented tensor; builtin ops only."""
    import tensorflow as tf

    loaded = tf.saved_model.load(serving_model_dir)

    @tf.function(input_signature=[
        tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=INPUT_NAME)])
    def scores(image):
        return {SCORES: loaded.model(image, training=False)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [scores.get_concrete_function()], loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def interpreter_scores(tflite_model: bytes):
    """A function images [N, H, W, 3] -> scores [N, n_labels] running the TFLite model."""
    import numpy as np
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=tflite_model)
    runner = interpreter.get_signature_runner()

    def run(images):
        return runner(**{INPUT_NAME: np.asarray(images, np.float32)})[SCORES]
    return run


def saved_model_batches(serving_model_dir: str, records: Iterable[bytes]) -> Iterator[tuple]:
    """(IMAGE_XF, SavedModel scores) per batch of serialized tf.Examples, both from the
    exported signatures: the scores from raw bytes, as TF Serving would answer."""
    import tensorflow as tf

    from pipeline_src.model import exporter

    signatures = tf.saved_model.load(serving_model_dir).signatures
    transform = signatures[exporter.TRANSFORM_SIGNATURE]
    from_examples = signatures[exporter.EXAMPLES_SIGNATURE]

    def one(batch):
        examples = tf.constant(batch)
        return (transform(examples=examples)[features.IMAGE_XF].numpy(),
                from_examples(examples=examples)[SCORES].numpy())

    batch = []
    for record in records:
        batch.append(record)
        if len(batch) == _BATCH:
            yield one(batch)
            batch = []
    if batch:
        yield one(batch)


def same_top1(scores_a, scores_b) -> int:
    """How many rows have the same argmax."""
    import numpy as np

    return int((np.argmax(scores_a, axis=1) == np.argmax(scores_b, axis=1)).sum())


def check(tflite_model: bytes, serving_model_dir: str, eval_files,
          max_images: int = DEFAULT_MAX_IMAGES) -> tuple[int, int]:
    """(images compared, images with the same top-1) on the first max_images eval records."""
    import itertools

    from pipeline_src.model import predictions

    run = interpreter_scores(tflite_model)
    images = agreeing = 0
    records = itertools.islice(predictions.records(eval_files), max_images)
    for image_xf, saved_scores in saved_model_batches(serving_model_dir, records):
        images += len(image_xf)
        agreeing += same_top1(run(image_xf), saved_scores)
    return images, agreeing


def write_beside(serving_model_dir: str, eval_files, labels: Sequence[str], image_size: int, *,
                 min_agreement: float = DEFAULT_MIN_AGREEMENT,
                 max_images: int = DEFAULT_MAX_IMAGES) -> dict:
    """Converts, checks and writes model.tflite (only if it agrees) and tflite.json (always).

    Returns the report: contract(), images, agreement, min_agreement, converted
    (model.tflite was written), reason, seconds (conversion + check).
    """
    import tensorflow as tf

    started = time.monotonic()
    report = {**contract(image_size, labels), "file": TFLITE_FILE, "images": 0,
              "agreement": None, "min_agreement": float(min_agreement), "converted": False}
    tflite_model = None
    try:
        tflite_model = convert_saved_model(serving_model_dir, image_size)
        images, agreeing = check(tflite_model, serving_model_dir, eval_files, max_images)
        report.update(images=images, agreement=agreeing / images if images else None,
                      bytes=len(tflite_model))
        if not images:
            report["reason"] = "no eval images to check the TFLite model against"
        elif report["agreement"] < min_agreement:
            report["reason"] = (f"TFLite and the SavedModel agree on the top-1 of {agreeing} "
                                f"of {images} eval images ({report['agreement']:.4f}), "
                                f"below min_agreement {min_agreement}")
        else:
            report.update(converted=True, reason=(
                f"same top-1 as the SavedModel on {agreeing} of {images} eval images"))
    except Exception as error:   # noqa: BLE001 - an extra artifact: it must not fail the night
        logging.warning("TFLite conversion or check failed", exc_info=True)
        report["reason"] = f"conversion or check failed: {type(error).__name__}: {error}"
    report["seconds"] = round(time.monotonic() - started, 3)

    path = tflite_path(serving_model_dir)
    if report["converted"]:
        files.write(path, tflite_model, "wb")
        logging.info("wrote %s in %.1f s: %s", path, report["seconds"], report["reason"])
    else:
        if tf.io.gfile.exists(path):   # never leave an unchecked file from an earlier attempt
            tf.io.gfile.remove(path)
        logging.warning("no TFLite model (%.1f s): %s", report["seconds"], report["reason"])
    files.write(report_path(serving_model_dir), json.dumps(report, indent=1) + "\n")
    return report
