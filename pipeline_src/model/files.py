"""Small files beside a model (its predictions, its TFLite report), read and written with
tf.io.gfile because a model's folder may be on gs://."""
from __future__ import annotations

import json
import os
from typing import Any, Optional


def write(path: str, content, mode: str = "w") -> None:
    """Write `content` (str, or bytes with mode "wb") at `path`, its folder made first."""
    import tensorflow as tf

    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, mode) as handle:
        handle.write(content)


def read_json(path: str) -> Optional[Any]:
    """The JSON at `path`, or None when there is none (a model from before the file)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)
