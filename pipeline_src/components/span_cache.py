"""Each span's tf.Examples, made once: what ExampleGen reuses from the nights before.

ExampleGen writes the whole history into tonight's Examples artifact (one artifact
with every split; issue 11 plans one artifact per span). Decoding a photo and
measuring its properties is most of that cost, and the corpus and every earlier
night are the same photos night after night. So a span's examples, once made, are
kept under `{pipeline root}/ImageExampleGen/.span_cache/{span}/`:

- `{key}.tfrecord.gz`: the tf.Examples of its accepted images, in listing order;
- `{key}.json`: every image in listing order, with why it was rejected, if it was.

A night then decodes only the spans whose listing changed: tonight's, a night with
late or re-uploaded photos, a span damaged on disk (a rewritten file has another
generation); the other spans' records are copied.

The key is a SHA-256 of all that decides a span's records: each object's name,
generation and size, `max_pixels`, and FORMAT (bumped whenever
`examplegen.to_example_features` changes what a record holds). Another key is a
miss: the entry is made again and the stale one removed. The index is written
last, so an entry a crash left without one is a miss too. Paths go through
tf.io.gfile: a gs:// pipeline root keeps its cache in the bucket.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Iterator, Optional, Sequence

from pipeline_src.components.spans import SourceImage

FORMAT = 1
CACHE_DIR_NAME = ".span_cache"    # hidden, like TFX's own .system: not an output key

Decoded = tuple[Optional[bytes], Optional[str]]     # (the serialized example, why rejected)


class CacheDamaged(RuntimeError):
    """A cache entry whose records do not match its index: dropped, the task fails, and
    its retry decodes the span again."""


def cache_dir_for(examples_uri: str, output_key: str = "examples") -> Optional[str]:
    """`{pipeline root}/{node}/.span_cache` beside the output `{pipeline root}/{node}/
    {output_key}/{execution id}` TFX gave; None (no cache) for a uri laid out otherwise
    (an executor called by hand), whose parent folders are nobody's to write in."""
    outputs = os.path.dirname(examples_uri.rstrip("/"))
    if os.path.basename(outputs) != output_key:
        return None
    return os.path.join(os.path.dirname(outputs), CACHE_DIR_NAME)


def span_key(images: Sequence[SourceImage], max_pixels: int) -> str:
    listing = [[image.uri, image.object.generation if image.object else "",
                image.object.size if image.object else -1] for image in images]
    text = json.dumps({"format": FORMAT, "max_pixels": int(max_pixels), "images": listing})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def span_examples(images: Sequence[SourceImage], span: str, cache_dir: Optional[str],
                  max_pixels: int, decode: Callable[[SourceImage], Decoded],
                  ) -> Iterator[tuple[SourceImage, Optional[bytes], Optional[str]]]:
    """(image, serialized example or None, rejection reason or None) for each image of
    one span, in order: from the cache when its entry matches, else decoded (and kept).

    `cache_dir` None: always decoded, nothing kept. An exception from `decode` (a GCS
    read that outlasts its retries) stops the span before its entry is complete.
    """
    if cache_dir is None:
        for image in images:
            yield (image, *decode(image))
        return
    import tensorflow as tf

    key = span_key(images, max_pixels)
    folder = os.path.join(cache_dir, span)
    records, index = (os.path.join(folder, f"{key}{ext}") for ext in (".tfrecord.gz", ".json"))
    cached = _read_index(index, images)
    if cached is not None and tf.io.gfile.exists(records):
        stored = iter(tf.data.TFRecordDataset(records, compression_type="GZIP"))
        for image, reason in zip(images, cached):
            if reason:
                yield image, None, reason
                continue
            try:
                serialized = next(stored).numpy()
            except (StopIteration, tf.errors.OpError) as exc:
                tf.io.gfile.remove(index)           # the retry makes the entry anew
                raise CacheDamaged(
                    f"the cached examples of span {span} ({records}) are damaged at "
                    f"{image.uri} ({type(exc).__name__}: {exc}); the entry is dropped "
                    "and the task's retry decodes the span's images again") from None
            yield image, serialized, None
        return
    tf.io.gfile.makedirs(folder)
    reasons = []
    with tf.io.TFRecordWriter(records, options="GZIP") as writer:
        for image in images:
            serialized, reason = decode(image)
            if serialized is not None:
                writer.write(serialized)
            reasons.append(reason)
            yield image, serialized, reason
    with tf.io.gfile.GFile(index, "w") as handle:      # last: the entry is complete
        json.dump({"format": FORMAT, "key": key,
                   "images": [[i.uri, r] for i, r in zip(images, reasons)]}, handle)
    for name in tf.io.gfile.listdir(folder):
        if not name.startswith(key):
            tf.io.gfile.remove(os.path.join(folder, name))


def _read_index(index: str, images: Sequence[SourceImage]) -> Optional[list[Optional[str]]]:
    """The cached rejection reasons, image by image, or None for a miss (no entry, an
    unreadable one, or one that lists other images)."""
    import tensorflow as tf

    if not tf.io.gfile.exists(index):
        return None
    try:
        with tf.io.gfile.GFile(index) as handle:
            entry = json.load(handle)
        listed = entry["images"]
    except (ValueError, KeyError, TypeError, tf.errors.OpError):
        return None
    if entry.get("format") != FORMAT or [u for u, _ in listed] != [i.uri for i in images]:
        return None
    return [reason for _, reason in listed]
