"""preprocessing_fn through tf.Transform's Beam implementation, on in-memory examples."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")
tft_beam = pytest.importorskip("tensorflow_transform.beam")
from tensorflow_transform.tf_metadata import dataset_metadata  # noqa: E402

from pipeline_src import features
from pipeline_src.model import preprocessing  # noqa: E402

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
        assert set(row) == {features.IMAGE_XF, features.LABEL_XF, features.WEIGHT_XF}
        image = np.asarray(row[features.IMAGE_XF], dtype=np.float32).reshape(SIZE, SIZE, 3)
        assert image.min() >= 0.0 and image.max() <= 1.0
        np.testing.assert_allclose(image[SIZE // 2, SIZE // 2], colour, atol=0.03)
        assert int(np.asarray(row[features.LABEL_XF]).reshape(())) == index
        # An unknown label weighs nothing in evaluation; a known one counts fully.
        assert float(np.asarray(row[features.WEIGHT_XF]).reshape(())) == (1.0 if index >= 0 else 0.0)
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


@pytest.mark.parametrize("height,width", [(30, 90), (90, 30), (64, 64), (20, 500), (1000, 750)])
def test_resize_with_pad_matches_tf_image(height, width):
    image = tf.random.stateless_uniform([height, width, 3], [height, width], maxval=255.0)
    ours = preprocessing._resize_with_pad(image, SIZE)
    reference = tf.image.resize_with_pad(image, SIZE, SIZE, antialias=True)
    assert ours.shape == (SIZE, SIZE, 3)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-3)


def test_resize_with_pad_keeps_a_sliver():
    """A 7x500 strip: tf.image.resize_with_pad fails (0 rows), ours keeps 1 row."""
    image = tf.ones([7, 500, 3]) * 255.0
    ours = preprocessing._resize_with_pad(image, SIZE).numpy()
    assert ours.shape == (SIZE, SIZE, 3)
    assert ours[SIZE // 2 - 1].min() > 250 and ours[0].max() == 0.0 and ours[SIZE // 2].max() == 0.0


def test_preprocessing_fn_needs_no_analysis_pass():
    """No analyzers and no stateful ops (asserts, tables): TFX can run the in-place Transform."""
    import tensorflow_transform as tft

    specs = {features.IMAGE: tf.TensorSpec([None, 1], tf.string),
             features.LABEL: tf.TensorSpec([None, 1], tf.string),
             features.SOURCE: tf.SparseTensorSpec([None, None], tf.string)}
    fn = lambda inputs: preprocessing.preprocessing_fn(inputs, CONFIG)  # noqa: E731
    assert tft.get_analyze_input_columns(fn, specs, force_tf_compat_v1=False) == []


def test_tfx_transform_executor_takes_the_in_place_path(tmp_path, caplog):
    """TFX Transform as the pipeline configures it: dotted preprocessing_fn, custom_config,
    materialize=False, disable_statistics=True -> graph written without a Beam pass."""
    import json
    import logging
    import os

    import tensorflow_transform as tft
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.components.transform import executor as transform_executor
    from tfx.types import artifact_utils, standard_artifacts
    from tfx.types import standard_component_specs as specs

    split_dir = tmp_path / "examples" / "Split-train"
    split_dir.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split_dir / "data.gz"), options="GZIP") as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature={
            features.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[RAW[0][0]])),
            features.LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"lion"])),
        })).SerializeToString())
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train"])
    schema = schema_pb2.Schema()
    for name in (features.IMAGE, features.LABEL):
        feature = schema.feature.add(name=name, type=schema_pb2.BYTES)
        feature.shape.dim.add(size=1)  # as SchemaGen(infer_feature_shape=True) writes it
        feature.presence.min_fraction = 1.0
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    schema_artifact = standard_artifacts.Schema()
    schema_artifact.uri = str(tmp_path / "schema")
    graph = standard_artifacts.TransformGraph()
    graph.uri = str(tmp_path / "graph")

    with caplog.at_level(logging.WARNING):
        transform_executor.Executor().Do(
            {specs.EXAMPLES_KEY: [examples], specs.SCHEMA_KEY: [schema_artifact]},
            {specs.TRANSFORM_GRAPH_KEY: [graph]},
            {specs.PREPROCESSING_FN_KEY: "pipeline_src.model.preprocessing.preprocessing_fn",
             specs.CUSTOM_CONFIG_KEY: json.dumps(CONFIG),
             specs.DISABLE_STATISTICS_KEY: 1, specs.FORCE_TF_COMPAT_V1_KEY: 0,
             specs.SPLITS_CONFIG_KEY: None})
    assert "in-place Transform" in caplog.text
    assert os.path.isdir(tmp_path / "graph" / "transform_fn")

    output = tft.TFTransformOutput(str(tmp_path / "graph"))
    layer = output.transform_features_layer()
    out = layer({features.IMAGE: tf.constant([[RAW[1][0]]]),
                 features.LABEL: tf.constant([[b"tiger"]])})
    assert out[features.IMAGE_XF].shape == (1, SIZE, SIZE, 3)
    assert out[features.LABEL_XF].numpy().tolist() == [1]
    serving = layer({features.IMAGE: tf.constant([[RAW[2][0]]])})  # IMAGE alone
    assert set(serving) == {features.IMAGE_XF}
