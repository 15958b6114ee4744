"""Each span's tf.Examples, made once: what ExampleGen reuses from the nights before.

ExampleGen writes the whole history into tonight's Examples artifact (one artifact
with every split; issue 11 plans one artifact per span). Decoding a photo and
measuring its properties is most of that cost, and the corpus and every earlier
night are the same photos night after night. So a span's examples, once made, are
kept under `{pipeline root}/ImageExampleGen/.span_cache/{span}/`:

- `{key}.tfrecord.gz`: the tf.Examples of its accepted images, in listing order;
- `{key}.json`: every image in listing order, with why it was rejected, if it was;
  the records file's size and CRC-32; the summary of its features
  (`validation.summary`), which the training baseline merges span by span, and
  their columns (`validation.columns`), which the skew test's baseline extends.

A night then decodes only the spans whose listing changed: tonight's, a night with
late or re-uploaded photos, a span damaged on disk (a rewritten file has another
generation). The other spans' records file goes whole into each split that holds
the whole span (`copy_records`: checked against the size and CRC-32 the index
keeps, then hard-linked on a local disk or copied in one pass without parsing); a
span the hash split divides is copied record by record (`span_examples`).

The key is a SHA-256 of all that decides a span's records: each object's name,
generation and size, `max_pixels`, the features a record holds, and FORMAT (bumped
whenever `examplegen.to_example_features` changes how a value is computed).
Another key is a miss: the entry is made again and the stale one removed. The
index is written last, so an entry a crash left without one is a miss too. Paths
go through tf.io.gfile: a gs:// pipeline root keeps its cache in the bucket.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zlib
from typing import Callable, Iterator, Optional, Sequence

from pipeline_src import features
from pipeline_src.components.spans import SourceImage
from pipeline_src.validation import columns as property_columns
from pipeline_src.validation import summary as feature_summary

FORMAT = 3                        # 2: the records file checked (size, CRC-32); 3: columns
RECORD_FEATURES = sorted(features.BYTES_FEATURES + features.INT_FEATURES
                         + features.FLOAT_FEATURES)
COPY_CHUNK = 8 << 20
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


@dataclasses.dataclass(frozen=True)
class Entry:
    """A span's complete cache entry: its records file and each image's rejection."""
    span: str
    records: str
    index: str
    reasons: list[Optional[str]]        # per image, in listing order; None: accepted
    size: int                           # of the records file, as written
    crc32: int
    summary: feature_summary.Summary    # of its records
    columns: property_columns.Columns   # of its records, in their order


def span_key(images: Sequence[SourceImage], max_pixels: int) -> str:
    listing = [[image.uri, image.object.generation if image.object else "",
                image.object.size if image.object else -1] for image in images]
    text = json.dumps({"format": FORMAT, "max_pixels": int(max_pixels),
                       "features": RECORD_FEATURES, "images": listing})
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _paths(images: Sequence[SourceImage], span: str, cache_dir: str, max_pixels: int):
    key = span_key(images, max_pixels)
    folder = os.path.join(cache_dir, span)
    return key, folder, os.path.join(folder, f"{key}.tfrecord.gz"), \
        os.path.join(folder, f"{key}.json")


def lookup(images: Sequence[SourceImage], span: str, cache_dir: Optional[str],
           max_pixels: int) -> Optional[Entry]:
    """The span's entry when it matches this listing, else None (a miss)."""
    if cache_dir is None:
        return None
    import tensorflow as tf

    _, _, records, index = _paths(images, span, cache_dir, max_pixels)
    if not tf.io.gfile.exists(index):
        return None
    try:
        with tf.io.gfile.GFile(index) as handle:
            entry = json.load(handle)
        listed, size, crc = entry["images"], int(entry["bytes"]), int(entry["crc32"])
        summary, columns = entry["summary"], entry["columns"]
    except (ValueError, KeyError, TypeError, tf.errors.OpError):
        return None
    if entry.get("format") != FORMAT or [u for u, _ in listed] != [i.uri for i in images]:
        return None
    if not tf.io.gfile.exists(records):
        return None
    return Entry(span, records, index, [reason for _, reason in listed], size, crc, summary,
                 columns)


def copy_records(entry: Entry, destinations: Sequence[str]) -> None:
    """The entry's records file, byte for byte, to each destination, its size and CRC-32
    checked against the index before the task may succeed. A mismatch drops the entry
    and raises CacheDamaged: the retry decodes the span again.

    On a local disk each destination is a hard link to the records file, made after
    the check: a night then writes no byte of its history, and the history's spans take
    their room once, however many nights' artifacts hold them. The file is never
    written again (a changed span gets a new key, hence a new file; the old one is
    unlinked, which leaves the artifacts' links whole). Elsewhere (gs://, or a disk
    that refuses links) the file is read once and written to every destination.
    """
    import tensorflow as tf

    if _linkable(entry.records, destinations):
        try:
            size, crc = _checksum(entry.records)
        except tf.errors.OpError as exc:
            _damaged(entry, f"unreadable ({type(exc).__name__}: {exc})")
        _check(entry, size, crc)
        try:
            for path in destinations:
                os.link(entry.records, path)
            return
        except OSError:          # another file system, or none that links: copy instead
            for path in destinations:
                if os.path.lexists(path):
                    os.remove(path)
    outs = [tf.io.gfile.GFile(path, "wb") for path in destinations]
    size, crc = 0, 0
    try:
        with tf.io.gfile.GFile(entry.records, "rb") as source:
            while chunk := source.read(COPY_CHUNK):
                size, crc = size + len(chunk), zlib.crc32(chunk, crc)
                for out in outs:
                    out.write(chunk)
    except tf.errors.OpError as exc:
        _damaged(entry, f"unreadable ({type(exc).__name__}: {exc})")
    finally:
        for out in outs:
            out.close()
    _check(entry, size, crc)


def _linkable(records: str, destinations: Sequence[str]) -> bool:
    return all("://" not in path for path in (records, *destinations))


def _check(entry: Entry, size: int, crc: int) -> None:
    if (size, crc) != (entry.size, entry.crc32):
        _damaged(entry, f"{size} bytes with CRC-32 {crc:08x}, the index says "
                        f"{entry.size} bytes with {entry.crc32:08x}")


def _damaged(entry: Entry, what: str):
    import tensorflow as tf

    tf.io.gfile.remove(entry.index)              # the retry makes the entry anew
    raise CacheDamaged(
        f"the cached examples of span {entry.span} ({entry.records}) are damaged: {what}; "
        "the entry is dropped and the task's retry decodes the span's images again")


def _checksum(path: str) -> tuple[int, int]:
    import tensorflow as tf

    size, crc = 0, 0
    with tf.io.gfile.GFile(path, "rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            size, crc = size + len(chunk), zlib.crc32(chunk, crc)
    return size, crc


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

    cached = lookup(images, span, cache_dir, max_pixels)
    if cached is not None:
        stored = iter(tf.data.TFRecordDataset(cached.records, compression_type="GZIP"))
        for image, reason in zip(images, cached.reasons):
            if reason:
                yield image, None, reason
                continue
            try:
                serialized = next(stored).numpy()
            except (StopIteration, tf.errors.OpError) as exc:
                _damaged(cached, f"at {image.uri} ({type(exc).__name__}: {exc})")
            yield image, serialized, None
        return
    key, folder, records, index = _paths(images, span, cache_dir, max_pixels)
    tf.io.gfile.makedirs(folder)
    reasons, summary, columns = [], feature_summary.empty(), property_columns.empty()
    with tf.io.TFRecordWriter(records, options="GZIP") as writer:
        for image in images:
            serialized, reason = decode(image)
            if serialized is not None:
                writer.write(serialized)
                values = feature_summary.values_of(serialized)
                feature_summary.add(summary, values)
                property_columns.append(columns, values)
            reasons.append(reason)
            yield image, serialized, reason
    size, crc = _checksum(records)
    with tf.io.gfile.GFile(index, "w") as handle:      # last: the entry is complete
        json.dump({"format": FORMAT, "key": key, "bytes": size, "crc32": crc,
                   "summary": summary, "columns": columns,
                   "images": [[i.uri, r] for i, r in zip(images, reasons)]}, handle)
    for name in tf.io.gfile.listdir(folder):
        if not name.startswith(key):
            tf.io.gfile.remove(os.path.join(folder, name))
