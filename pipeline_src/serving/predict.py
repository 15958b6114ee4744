"""`emerald predict`: the serving model's label and scores for image files.

The SavedModel's serving_default takes a batch of raw JPEG / PNG bytes, so a
request is exactly what a client would send TF Serving. One bad file must not
cost the others their answer: every file is first read and checked with the
same decoder ingestion uses (pipeline_src.images: JPEG or PNG that fully
decodes); a file that fails gets an `error` (and no label), the rest are
scored in one batch. Should the model still refuse the batch, each image is
scored alone, so the error lands on the image that caused it.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from pipeline_src import images
from pipeline_src.config import Config, UsageError
from pipeline_src.names import CLASSES, SCORES, SERVING_INPUT, SERVING_SIGNATURE
from pipeline_src.serving import history


def _read(path: str) -> bytes:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as handle:    # a local path or gs://
        return handle.read()


def _check(path: str) -> tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) for an image the model can take, else (None, the reason)."""
    import tensorflow as tf

    try:
        data = _read(path)
    except tf.errors.NotFoundError:
        return None, "no such file"
    except tf.errors.OpError as error:
        return None, f"unreadable: {error.message}"
    try:
        images.inspect(data)
    except images.BadImage as bad:
        return None, bad.reason
    return data, None


def load_serving(config: Config, version: Optional[str] = None):
    """(version, the serving_default signature) of the serving model, or of `version`."""
    import tensorflow as tf

    serving = config.paths.serving
    version = str(version) if version else history.serving_version(serving)
    if version is None:
        raise UsageError(f"no model serves yet: nothing pushed to {serving}")
    if not history.has_saved_model(serving, version):
        raise UsageError(f"no SavedModel for version {version} in {serving}")
    loaded = tf.saved_model.load(history.version_path(serving, version))
    return version, loaded.signatures[SERVING_SIGNATURE]


def _score(signature, batch: list[bytes]) -> list[dict[str, Any]]:
    import tensorflow as tf

    out = signature(**{SERVING_INPUT: tf.constant(batch)})
    scores, classes = out[SCORES].numpy(), out[CLASSES].numpy()
    results = []
    for row, names in zip(scores, classes):
        labels = [n.decode() for n in names]
        results.append({"label": labels[int(row.argmax())],
                        "scores": {label: float(s) for label, s in zip(labels, row)}})
    return results


def _score_each(signature, batch: list[bytes]) -> list[dict[str, Any]]:
    import tensorflow as tf

    try:
        return _score(signature, batch)
    except tf.errors.InvalidArgumentError:
        pass
    results = []
    for data in batch:
        try:
            results.extend(_score(signature, [data]))
        except tf.errors.InvalidArgumentError as error:
            results.append({"error": f"the model cannot decode it: {error.message.splitlines()[0]}"})
    return results


def predict(config: Config, paths: Sequence[str], version: Optional[str] = None
            ) -> tuple[str, list[dict[str, Any]]]:
    """(the version used, one {image, label, scores} or {image, label: None, error} per path)."""
    version, signature = load_serving(config, version)
    checked = [(path, *_check(path)) for path in paths]
    good = [(path, data) for path, data, error in checked if error is None]
    scored = dict(zip((p for p, _ in good),
                      _score_each(signature, [d for _, d in good]) if good else []))
    results = []
    for path, _, error in checked:
        answer = scored.get(path) if error is None else {"error": error}
        if "error" in answer:
            results.append({"image": path, "label": None, "scores": None,
                            "error": answer["error"]})
        else:
            results.append({"image": path, **answer})
    return version, results


def format_table(version: str, results: list[dict[str, Any]]) -> str:
    """One row per image: the label and every label's score; an error row says why."""
    labels = next((list(r["scores"]) for r in results if r.get("scores")), [])
    width = max([len("image")] + [len(r["image"]) for r in results])
    lines = [f"model version {version}",
             f"{'image':<{width}}  {'label':<10}" + "".join(f"{l:>9}" for l in labels)]
    for r in results:
        if r.get("error"):
            lines.append(f"{r['image']:<{width}}  error: {r['error']}")
        else:
            lines.append(f"{r['image']:<{width}}  {r['label']:<10}"
                         + "".join(f"{r['scores'].get(l, 0.0):>9.3f}" for l in labels))
    return "\n".join(lines)
