"""The serving model's outputs on a set of examples: what prediction drift compares.

The Trainer records the model's outputs on its own evaluation split next to
the SavedModel (`reference_path`); each night the validator runs the serving
model on tonight's images and compares the two (Rabanser et al. 2019,
"Failing Loudly": black-box shift detection on a classifier's outputs). Needs
no labels, and runs before tonight's push.
"""
from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

from pipeline_src import features
from pipeline_src.model import exporter, files

REFERENCE_FILE = "emerald_eval_predictions.json"   # beside Format-Serving in the Model artifact
_BATCH = 64


def reference_path(model_uri: str) -> str:
    return os.path.join(model_uri, REFERENCE_FILE)


def outputs(scores, labels: Sequence[str]) -> dict[str, list]:
    """Predicted class (argmax) and confidence (top score) per row of `scores`."""
    import numpy as np

    scores = np.asarray(scores)
    if scores.size == 0:
        return {features.PREDICTED_CLASS: [], features.CONFIDENCE: []}
    top = scores.argmax(axis=1)
    return {features.PREDICTED_CLASS: [str(labels[i]) for i in top],
            features.CONFIDENCE: [float(v) for v in scores.max(axis=1)]}


def predict_records(signature, records: Iterable[bytes], labels: Sequence[str]) -> dict[str, list]:
    """Runs the SavedModel's `from_examples` signature over serialized tf.Examples."""
    import numpy as np
    import tensorflow as tf

    batches, batch = [], []
    for record in records:
        batch.append(record)
        if len(batch) == _BATCH:
            batches.append(signature(examples=tf.constant(batch))[exporter.SCORES].numpy())
            batch = []
    if batch:
        batches.append(signature(examples=tf.constant(batch))[exporter.SCORES].numpy())
    scores = np.concatenate(batches) if batches else np.zeros((0, len(labels)))
    return outputs(scores, labels)


def records(file_patterns) -> Iterable[bytes]:
    import tensorflow as tf

    from pipeline_src.model import data

    for record in tf.data.TFRecordDataset(data.list_files(file_patterns), compression_type="GZIP"):
        yield record.numpy()


def write_reference(model_uri: str, predicted: dict[str, list]) -> str:
    path = reference_path(model_uri)
    files.write(path, json.dumps(predicted))
    return path


def read_reference(model_uri: str):
    """The model's outputs on its own evaluation data, or None (a model from before this file)."""
    return files.read_json(reference_path(model_uri))
