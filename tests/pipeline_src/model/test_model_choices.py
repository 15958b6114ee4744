"""Model choices of the configuration: the small CNN or a MobileNetV3Small backbone.

Nothing can be downloaded here, so the backbone is built with random weights
(`weights=None`) and its weights loading is shown with a weights file of our own:
from a path, and from an http:// URL served by a real local HTTP server.
"""
from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from pipeline_src import features  # noqa: E402
from pipeline_src.model import model  # noqa: E402

SIZE = 64


def _backbone_weights(m) -> list[np.ndarray]:
    return [w.numpy() for w in m.get_layer(model.BACKBONE).weights]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def saved_backbone(tmp_path_factory):
    """A backbone's weights saved as a Keras weights file, and those weights."""
    m = model.build_model(SIZE, 3, architecture=model.MOBILENET_V3_SMALL)
    path = tmp_path_factory.mktemp("weights") / "backbone.h5"
    m.get_layer(model.BACKBONE).save_weights(str(path))
    return path, _backbone_weights(m)


def test_the_backbone_builds_with_random_weights_under_the_same_contract():
    m = model.build_model(SIZE, 3, architecture=model.MOBILENET_V3_SMALL)
    assert m.input_names == [features.IMAGE_XF]
    assert m.input_shape == (None, SIZE, SIZE, 3)
    scores = m(np.random.default_rng(0).random((2, SIZE, SIZE, 3), np.float32), training=False)
    assert scores.shape == (2, 3)
    np.testing.assert_allclose(scores.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert m.count_params() > 10 * model.build_model(SIZE, 3).count_params()
    assert m.get_layer("scores").output_shape == (None, 3)


def test_backbone_weights_load_from_a_file(saved_backbone):
    path, weights = saved_backbone
    fresh = model.build_model(SIZE, 3, architecture=model.MOBILENET_V3_SMALL)
    assert not _same(_backbone_weights(fresh), weights)        # another random init
    loaded = model.build_model(SIZE, 3, architecture=model.MOBILENET_V3_SMALL,
                               backbone_weights=str(path))
    assert _same(_backbone_weights(loaded), weights)


def test_backbone_weights_load_from_a_url(saved_backbone, tmp_path):
    path, weights = saved_backbone
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{path.name}"
        loaded = model.build_model(SIZE, 3, architecture=model.MOBILENET_V3_SMALL,
                                   backbone_weights=url)
    finally:
        server.shutdown()
    assert _same(_backbone_weights(loaded), weights)


def test_a_missing_weights_file_and_an_unknown_architecture_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="training.backbone_weights"):
        model.build_model(SIZE, 3, architecture=model.MOBILENET_V3_SMALL,
                          backbone_weights=str(tmp_path / "none.h5"))
    with pytest.raises(ValueError, match="training.architecture 'resnet'"):
        model.build_model(SIZE, 3, architecture="resnet")


def test_the_small_cnn_keeps_its_layer_names():
    """Warm starts match the serving model's weights by name: the default architecture's
    names must not change under models pushed before architectures were a choice."""
    names = {w.name for w in model.build_model(SIZE, 3).weights}
    assert {"block1_conv/kernel:0", "head_conv/kernel:0", "scores/kernel:0"} <= names
