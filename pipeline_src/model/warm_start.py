"""Warm start: tonight's Trainer continues from the serving model instead of a fresh init.

Retraining the CNN from scratch every night costs `training.epochs` passes over
a history that only grows; most of it the serving model has already learnt. A
warm night starts from the serving (last blessed) model's weights and trains
`training.warm_start_epochs` passes over

    the images new to that model  +  a replay sample of the older ones,

the replay (`training.replay_fraction` of the older images, at most
`training.replay_max_images` of them) being there so the model does not forget
the corpus while it adapts to Toto's newest nights. The cap is what keeps a warm
night's cost flat: a share of a history that grows for months would not be.

**Which images are new.** Every Model artifact carries a training record
(`emerald_training.json`, beside Format-Serving and the reference predictions)
with `night_counts`: how many images of each `night` value ("corpus" or a Toto
night) the model has been trained on, cumulatively through its own warm starts.
A train-split image is new to the base model when its night is not in the
base's `night_counts`, or when that night now has more images than recorded
(late uploads re-ingested, or the corpus once the bootstrap night's 75/25 hash
split gives way to the whole corpus): then the whole night counts as new, a
conservative rule at night granularity that never misses an image. A base
model without a record (trained before warm starts existed) is not warm
started: nothing tells what it has seen.

**The replay sample** is deterministic: the older images ranked by a SHA-256
of (seed, tonight's new nights, the image's fingerprint) and the first
replay_size() taken. The same data and base model give the
same sample (a retried Trainer trains on the same images), and the sample
rotates as the nights go by, so the whole history is replayed over time.

Finding the new images costs one more read of the train split (night, label
and a fingerprint per record: no decoding), on warm and full nights alike (a
full night's record is tomorrow's baseline).

**Compatible** means the base record's labels and image_size equal tonight's
and the base SavedModel's Keras variables have the same names and shapes as
tonight's freshly built model. Anything else (or `full_retrain`, or
`training.warm_start: false`) is a full retrain, and the record says why.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import numpy as np

from pipeline_src import features
from pipeline_src.names import FULL_RETRAIN_KEY  # custom_config key, set at launch

TRAINING_RECORD_FILE = "emerald_training.json"
WARM = "warm_start"
FULL = "full"
_SCAN_BATCH = 256


def record_path(model_uri: str) -> str:
    return os.path.join(model_uri, TRAINING_RECORD_FILE)


def write_training_record(model_uri: str, record: Mapping[str, Any]) -> str:
    """Writes the record beside the SavedModel (tf.io.gfile, so a gs:// artifact works)."""
    import tensorflow as tf

    path = record_path(model_uri)
    with tf.io.gfile.GFile(path, "w") as handle:
        json.dump(dict(record), handle, indent=1, sort_keys=True)
    return path


def read_training_record(model_uri: str) -> Optional[dict]:
    """The Model artifact's training record, or None (a model from before warm starts)."""
    import tensorflow as tf

    path = record_path(model_uri)
    if not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as handle:
            record = json.load(handle)
    except (ValueError, tf.errors.OpError) as exc:
        logging.warning("unreadable training record %s: %s", path, exc)
        return None
    return record if isinstance(record, dict) else None


def model_uri_of(serving_dir: str) -> str:
    """fn_args.base_model is {Model artifact uri}/Format-Serving: the artifact's folder."""
    return os.path.dirname(serving_dir.rstrip("/"))


@dataclasses.dataclass(frozen=True)
class TrainImages:
    """The train split's images in input order (data.list_files, one sequential read)."""
    nights: tuple[str, ...]
    labels: tuple[str, ...]
    fingerprints: tuple[int, ...]   # farmhash64 of the encoded image

    def __len__(self) -> int:
        return len(self.nights)

    def night_counts(self, mask: Optional[np.ndarray] = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i, night in enumerate(self.nights):
            if mask is None or mask[i]:
                counts[night] = counts.get(night, 0) + 1
        return dict(sorted(counts.items()))


def scan(file_patterns) -> TrainImages:
    """One pass over the split reading night, label and an image fingerprint (no decoding)."""
    import tensorflow as tf

    from pipeline_src.model import data

    spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="")
            for name in (features.NIGHT, features.LABEL, features.IMAGE)}

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        return (parsed[features.NIGHT], parsed[features.LABEL],
                tf.fingerprint(parsed[features.IMAGE]))

    ds = tf.data.TFRecordDataset(data.list_files(file_patterns), compression_type="GZIP")
    nights, labels, prints = [], [], []
    for night, label, fingerprint in ds.batch(_SCAN_BATCH).map(parse):
        nights += [n.decode() for n in night.numpy()]
        labels += [v.decode() for v in label.numpy()]
        prints += np.frombuffer(fingerprint.numpy().tobytes(), ">u8").tolist()
    return TrainImages(tuple(nights), tuple(labels), tuple(prints))


def new_images(images: TrainImages, base_record: Mapping[str, Any]) -> np.ndarray:
    """Mask of the images new to the base model (the module docstring's night rule)."""
    seen = {str(k): int(v) for k, v in (base_record.get("night_counts") or {}).items()}
    now = images.night_counts()
    new_nights = {night for night, n in now.items() if n > seen.get(night, 0)}
    return np.array([night in new_nights for night in images.nights], bool)


def replay_size(n_older: int, fraction: float, max_images: int = 0) -> int:
    """round(fraction x n_older), halves up: the configured share of the older history,
    and no more than `max_images` (0: no cap)."""
    share = min(n_older, int(math.floor(fraction * n_older + 0.5)))
    return min(share, max_images) if max_images > 0 else share


def replay_sample(images: TrainImages, is_new: np.ndarray, fraction: float, seed: int,
                  eligible: Optional[np.ndarray] = None, max_images: int = 0) -> np.ndarray:
    """Mask of the replayed older images: deterministic, replay_size() of them.

    `eligible` (default all) limits the older images to those training can use
    (a known label), so the replayed count is what the model really sees.
    """
    eligible = np.ones(len(images), bool) if eligible is None else eligible
    older = [i for i in range(len(images)) if eligible[i] and not is_new[i]]
    new_nights = sorted({images.nights[i] for i in range(len(images)) if is_new[i]})
    salt = f"{seed}|{','.join(new_nights)}|"

    def rank(i: int):
        key = f"{salt}{images.fingerprints[i]}".encode()
        return hashlib.sha256(key).digest(), i

    chosen = sorted(older, key=rank)[:replay_size(len(older), fraction, max_images)]
    mask = np.zeros(len(images), bool)
    mask[chosen] = True
    return mask


@dataclasses.dataclass
class Decision:
    mode: str                          # WARM | FULL
    reason: str
    base_model: Optional[str] = None   # the base Model artifact's uri, when there is one
    base_record: Optional[dict] = None
    weights: Optional[dict] = None     # variable name -> value, when WARM


def base_variables(serving_dir: str) -> dict[str, np.ndarray]:
    """The Keras variables of an Emerald SavedModel (the exporter's ServingModule.model)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(serving_dir)
    model = getattr(loaded, "model", None)
    if model is None or not hasattr(model, "variables"):
        raise ValueError("it holds no Keras model (not exported by pipeline_src.model.exporter)")
    return {v.name: v.numpy() for v in model.variables}


def shape_mismatch(base: Mapping[str, np.ndarray], model) -> Optional[str]:
    """Why the base's variables do not fit `model`, or None when every name and shape match."""
    wanted = {v.name: tuple(v.shape) for v in model.variables}
    have = {name: tuple(value.shape) for name, value in base.items()}
    missing = sorted(set(wanted) - set(have))
    extra = sorted(set(have) - set(wanted))
    if missing or extra:
        return f"layer weights differ: missing {missing[:3]}, unexpected {extra[:3]}"
    for name in sorted(wanted):
        if wanted[name] != have[name]:
            return (f"layer weight {name} is {list(have[name])} in the base model, "
                    f"{list(wanted[name])} now")
    return None


def decide(*, warm_start: bool, full_retrain: bool, base_serving_dir: Optional[str],
           labels: Sequence[str], image_size: int, model=None) -> Decision:
    """Warm start from the base model, or a full retrain with the reason why.

    `model`: tonight's model, whose layer shapes the base must match; None leaves that
    last check to confirm() (run_fn builds the model after its datasets, see trainer.py).
    """
    if full_retrain:
        return Decision(FULL, f"full retrain requested ({FULL_RETRAIN_KEY})")
    if not warm_start:
        return Decision(FULL, "warm start is off (training.warm_start: false)")
    if not base_serving_dir:
        return Decision(FULL, "no blessed model to start from")
    uri = model_uri_of(base_serving_dir)
    record = read_training_record(uri)
    if record is None:
        return Decision(FULL, f"the base model {uri} has no training record "
                              "(trained before warm starts): what it has seen is unknown")
    if list(record.get("labels") or []) != list(labels):
        return Decision(FULL, f"labels changed: the base model has {record.get('labels')}, "
                              f"now {list(labels)}")
    if record.get("image_size") != image_size:
        return Decision(FULL, f"image_size changed: the base model has "
                              f"{record.get('image_size')}, now {image_size}")
    try:
        weights = base_variables(base_serving_dir)
    except Exception as exc:  # noqa: BLE001 - an unloadable base is a full retrain, not a failure
        return Decision(FULL, f"the base model {uri} cannot be loaded: {exc}")
    warm = Decision(WARM, f"the base model {uri} matches (labels, image_size, layer weights)",
                    base_model=uri, base_record=record, weights=weights)
    return warm if model is None else confirm(warm, model)


def confirm(decision: Decision, model) -> Decision:
    """A warm decision stays warm only if the base's weights fit `model`, name and shape."""
    if decision.mode != WARM:
        return decision
    mismatch = shape_mismatch(decision.weights, model)
    if mismatch:
        return Decision(FULL, f"architecture changed: {mismatch}")
    return decision


def load_weights(model, weights: Mapping[str, np.ndarray]) -> None:
    for variable in model.variables:
        variable.assign(weights[variable.name])


def known_labels(images: TrainImages, labels: Sequence[str]) -> np.ndarray:
    """Mask of the images training uses: input_fn drops unknown labels (LABEL_XF -1)."""
    wanted = set(labels)
    return np.array([label in wanted for label in images.labels], bool)


def select(images: TrainImages, base_record: Mapping[str, Any], labels: Sequence[str],
           fraction: float, seed: int, max_images: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(new, replayed) masks of a warm night, both limited to images with a known label."""
    known = known_labels(images, labels)
    is_new = new_images(images, base_record)
    return is_new & known, replay_sample(images, is_new, fraction, seed, eligible=known,
                                         max_images=max_images)


def trained_on(images: TrainImages, base_record: Optional[Mapping[str, Any]]) -> dict[str, int]:
    """night_counts of the new record: every image of tonight's train split per night
    (unknown labels too, so tomorrow's comparison counts alike), plus, warm, the base's."""
    counts = images.night_counts()
    for night, n in ((base_record or {}).get("night_counts") or {}).items():
        counts[night] = max(int(n), counts.get(night, 0))
    return dict(sorted(counts.items()))
