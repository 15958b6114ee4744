"""preprocessing_fn through tf.Transform's Beam implementation, on in-memory examples."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")
tft_beam = pytest.importorskip("tensorflow_transform.beam")
from tensorflow_transform.tf_metadata import dataset_metadata  # noqa: E402

from pipeline_src import features, preprocessing  # noqa: E402

LABELS = ["lion", "tiger", "bear"]
SIZE = 64
CONFIG = {"labels": LABELS, "image_size": SIZE}


def encode(color, size, fmt="JPEG", mode="RGB") -> bytes:
    image = Image.new(mode, size, color)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


RAW = [
    # (bytes, label, expected label index, expected centre colour)
    (encode((255, 0, 0), (120, 80), "JPEG"), "lion", 0, (1.0, 0.0, 0.0)),      # landscape
    (encode((0, 255, 0), (30, 90), "PNG"), "tiger", 1, (0.0, 1.0, 0.0)),       # portrait
    (encode((0, 0, 255), (64, 64), "PNG"), "bear", 2, (0.0, 0.0, 1.0)),        # square
    (encode(128, (50, 70), "PNG", mode="L"), "bear", 2, (0.5, 0.5, 0.5)),       # grayscale
    (encode((255, 255, 255, 255), (500, 100), "PNG", mode="RGBA"), "zebra", -1, (1.0, 1.0, 1.0)),
]


def run_transform(tmp_path, shape):
    spec = {
        features.IMAGE: tf.io.FixedLenFeature(shape, tf.string),
        features.LABEL: tf.io.FixedLenFeature(shape, tf.string),
        features.BRIGHTNESS: tf.io.FixedLenFeature(shape, tf.float32),
    }
    wrap = (lambda v: [v]) if shape else (lambda v: v)
    raw_data = [{features.IMAGE: wrap(data), features.LABEL: wrap(label.encode()),
                 features.BRIGHTNESS: wrap(0.5)}
                for data, label, _, _ in RAW]
    metadata = dataset_metadata.DatasetMetadata.from_feature_spec(spec)

    def fn(inputs, custom_config=CONFIG):
        return preprocessing.preprocessing_fn(inputs, custom_config)

    with tft_beam.Context(temp_dir=str(tmp_path / "tft_tmp"), force_tf_compat_v1=False):
        (transformed, _), _ = ((raw_data, metadata)
                               | tft_beam.AnalyzeAndTransformDataset(fn))
    return transformed


@pytest.mark.parametrize("shape", [[], [1]], ids=["scalar", "schemagen_shape_1"])
def test_preprocessing_fn_images_and_labels(tmp_path, shape):
    transformed = run_transform(tmp_path, shape)
    assert len(transformed) == len(RAW)
    for row, (_, _, index, colour) in zip(transformed, RAW):
        assert set(row) == {features.IMAGE_XF, features.LABEL_XF}
        image = np.asarray(row[features.IMAGE_XF], dtype=np.float32).reshape(SIZE, SIZE, 3)
        assert image.min() >= 0.0 and image.max() <= 1.0
        np.testing.assert_allclose(image[SIZE // 2, SIZE // 2], colour, atol=0.03)
        assert int(np.asarray(row[features.LABEL_XF]).reshape(())) == index
    # Letterboxing: the landscape image has black bars top and bottom,
    # the portrait one left and right.
    landscape = np.asarray(transformed[0][features.IMAGE_XF]).reshape(SIZE, SIZE, 3)
    portrait = np.asarray(transformed[1][features.IMAGE_XF]).reshape(SIZE, SIZE, 3)
    assert landscape[0, SIZE // 2].max() == 0.0 and landscape[SIZE // 2, 0, 0] > 0.9
    assert portrait[SIZE // 2, 0].max() == 0.0 and portrait[0, SIZE // 2, 1] > 0.9


def test_preprocessing_fn_in_graph_without_label():
    """Eager check of the same code path, including an absent LABEL (serving)."""
    images = tf.constant([RAW[0][0], RAW[3][0]])
    out = preprocessing.preprocessing_fn({features.IMAGE: images}, CONFIG)
    assert set(out) == {features.IMAGE_XF}
    assert out[features.IMAGE_XF].shape == (2, SIZE, SIZE, 3)
    assert out[features.IMAGE_XF].dtype == tf.float32


def test_preprocessing_fn_sparse_label():
    label = tf.sparse.from_dense(tf.constant([["tiger"], [""]]))
    label = tf.SparseTensor(label.indices, label.values, label.dense_shape)
    out = preprocessing.preprocessing_fn(
        {features.IMAGE: tf.constant([RAW[0][0], RAW[1][0]]), features.LABEL: label}, CONFIG)
    assert out[features.LABEL_XF].numpy().tolist() == [1, -1]


def test_preprocessing_fn_needs_custom_config():
    with pytest.raises(ValueError, match="labels"):
        preprocessing.preprocessing_fn({features.IMAGE: tf.constant([RAW[0][0]])}, {})
