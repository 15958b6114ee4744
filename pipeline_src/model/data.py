"""tf.data input pipeline: ExampleGen's gzipped TFRecords -> (IMAGE_XF, LABEL_XF) batches.

Transform runs with materialize=False, so the transform graph is applied here
(the same TFT layer the exported signatures use): no train/serve skew.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import tensorflow as tf
import tensorflow_transform as tft

from pipeline_src import features

# Raw records are shuffled before decoding; images are a few hundred KB each.
DEFAULT_SHUFFLE_BUFFER = 512
# Raw examples parsed and transformed per call of the TFT layer.
_TRANSFORM_BATCH = 64


def list_files(file_patterns: Union[str, Iterable[str]]) -> list[str]:
    """Expands the file patterns (fn_args.train_files, e.g. '.../Split-train/*')."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted({f for pattern in patterns for f in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no input files match {patterns}")
    return files


def augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Light, label-preserving augmentation of one [size, size, 3] image in [0, 1].

    Aimed at the gap between the bright corpus and the Toto photos: darker
    (multiplicative brightness down to 0.4), lower or higher contrast, mirrored,
    sometimes blurred (down- and up-sampled) and sometimes pillarboxed (black
    bars left and right, as a letterboxed portrait photo has). Stateless ops
    seeded per example, so a run is reproducible.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=7)
    size = tf.shape(image)[0]
    uniform = lambda i, lo=0.0, hi=1.0: tf.random.stateless_uniform(  # noqa: E731
        [], seeds[i], minval=lo, maxval=hi)

    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    image = image * uniform(1, 0.4, 1.15)
    image = tf.image.stateless_random_contrast(image, 0.6, 1.3, seeds[2])

    def blur(img):
        factor = uniform(3, 0.25, 0.6)
        small = tf.cast(tf.cast(size, tf.float32) * factor, tf.int32)
        img = tf.image.resize(img, [small, small], antialias=True)
        return tf.image.resize(img, [size, size])
    image = tf.cond(uniform(4) < 0.3, lambda: blur(image), lambda: image)

    def pillarbox(img):
        bar = tf.cast(tf.cast(size, tf.float32) * uniform(6, 0.05, 0.25), tf.int32)
        cols = tf.range(size)
        keep = tf.cast((cols >= bar) & (cols < size - bar), img.dtype)
        return img * keep[tf.newaxis, :, tf.newaxis]
    image = tf.cond(uniform(5) < 0.25, lambda: pillarbox(image), lambda: image)
    return tf.clip_by_value(image, 0.0, 1.0)


def input_fn(file_patterns: Union[str, Iterable[str]],
             tf_transform_output: tft.TFTransformOutput,
             batch_size: int,
             *,
             training: bool,
             repeat: Optional[bool] = None,
             seed: int = 42,
             shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
             tft_layer=None,
             keep: Optional[Sequence[bool]] = None,
             drop_remainder: Optional[bool] = None) -> tf.data.Dataset:
    """Batches of (IMAGE_XF float32 [b, s, s, 3], LABEL_XF int64 [b]).

    training=True: shuffled (seeded, reshuffled each pass), augmented, and
    repeated unless repeat=False (the caller then runs whole epochs); the last
    partial batch is dropped. training=False: file order, not repeated, not
    augmented. Examples whose label is unknown (LABEL_XF == -1) are dropped
    in both cases.

    keep: one bool per record in input order (list_files, read sequentially):
    only those records are used (a warm night's new + replayed images, see
    warm_start.py), read from the files once and kept in memory for the epochs after. drop_remainder defaults to `training`; a warm night smaller
    than one batch turns it off, or it would have no batch at all.
    """
    drop_remainder = training if drop_remainder is None else drop_remainder
    repeat = training if repeat is None else repeat
    files = list_files(file_patterns)
    feature_spec = tf_transform_output.raw_feature_spec()
    tft_layer = tft_layer if tft_layer is not None else tf_transform_output.transform_features_layer()

    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if keep is not None:
        # Kept in memory once filtered: a warm night's selection is bounded (tonight plus
        # at most replay_max_images), the split it is drawn from is the whole history, so
        # every epoch after the first reads no file (issue 11).
        mask = tf.constant(list(keep), tf.bool)
        ds = ds.enumerate().filter(lambda i, record: mask[i]).map(lambda i, record: record)
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def transform(serialized):
        raw = tf.io.parse_example(serialized, feature_spec)
        transformed = tft_layer(raw)
        label = tf.reshape(transformed[features.LABEL_XF], [-1])
        return transformed[features.IMAGE_XF], label

    ds = ds.batch(_TRANSFORM_BATCH).map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.unbatch().filter(lambda image, label: label >= 0)
    if training:
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, randoms)).map(
            lambda example, r: (augment(example[0], r), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
