"""The spans and their images: what ExampleGen makes one Examples artifact of, each.

Spans live in a local directory or under a gs:// prefix, read through the
ingestion's storage layer (`ingest.sources`), which lists a prefix in one call
and retries GCS 5xx, throttling and timeouts with backoff. Listing the corpus
and Toto's folders once each gives every span and image a night needs.

A night's plan (`plan_night`) names tonight's span (the night's own Toto folder;
the corpus on the bootstrap night, or any night without Toto's photos), the spans
before it that the model trains on, and the last Toto night before it (drift's
baseline; `previous_night` None when there is none). `span_splits` says how a
span's images are split into train and eval when its artifact is made.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
from typing import Optional

from pipeline_src import features, names
from pipeline_src.ingest.errors import SourceError
from pipeline_src.ingest.layout import join_prefix
from pipeline_src.ingest.parallel import bounded_map
from pipeline_src.ingest.remote import generation_named
from pipeline_src.ingest.sources import LocalStorage, ObjectInfo, open_storage

NIGHT_DIR = re.compile(names.NIGHT_NAME_PATTERN)
EPOCH = dt.date(1970, 1, 1)
CORPUS = "corpus"             # the corpus span's name (a night's is its date)
CORPUS_SPAN = 0               # its TFX span: before every night's (days since EPOCH)
POINTER_THREADS = 8           # a span's pointer is one small read; 180 nights, 180 reads


@dataclasses.dataclass(frozen=True)
class SourceImage:
    uri: str                # a path or gs:// URI: what messages and rejected.json name
    label: str
    source: str             # corpus | toto
    night: str              # YYYY-MM-DD or "corpus"
    object: Optional[ObjectInfo] = None     # its listing, which the storage reads it by

    @property
    def filename(self) -> str:
        return self.uri.rsplit("/", 1)[-1]


def span_of(night: dt.date) -> int:
    return (night - EPOCH).days


@dataclasses.dataclass
class SpanListing:
    """Every image under a spans location, listed once: the corpus, and Toto's nights."""
    storage: object                          # LocalStorage | GCSStorage
    uri: str
    corpus: list[SourceImage]
    nights: dict[dt.date, list[SourceImage]]  # a night folder with no image maps to []

    def toto_nights(self, until: dt.date) -> list[dt.date]:
        """Toto's night folders up to and including `until`, oldest first."""
        return sorted(n for n in self.nights if n <= until)

    def night_images(self, night: dt.date) -> list[SourceImage]:
        return self.nights.get(night, [])


def list_spans(input_base: str | os.PathLike) -> SpanListing:
    """Lists the spans at a path or gs:// URI.

    A missing or empty location is a FileNotFoundError saying to ingest first.
    A GCS error that outlasts the retries is an IngestError naming the prefix:
    the night fails (and Airflow retries it) rather than running on part of
    its images.
    """
    storage, base = open_storage(str(input_base))
    where = storage.uri(base) if base else storage.uri()
    missing = FileNotFoundError(
        f"no spans at {where}: run `emerald ingest` (or the DAG's ingest task) first")
    if isinstance(storage, LocalStorage) and not storage.root.is_dir():
        raise missing
    try:
        corpus_objects = storage.list(join_prefix(base, names.CORPUS_DIR))
        toto_objects = storage.list(join_prefix(base, names.TOTO_DIR))
    except SourceError:                   # no such bucket
        raise FileNotFoundError(f"no spans at {where}: the bucket does not exist; check "
                                f"paths.spans in the configuration") from None
    if not corpus_objects and not toto_objects:
        raise missing
    corpus_prefix = join_prefix(base, names.CORPUS_DIR)
    toto_prefix = join_prefix(base, names.TOTO_DIR)
    by_folder: dict[str, list[ObjectInfo]] = {}
    for o in toto_objects:
        folder = o.name[len(toto_prefix):].split("/", 1)[0]
        if NIGHT_DIR.match(folder):
            by_folder.setdefault(folder, []).append(o)
    spans = {"": (corpus_prefix, corpus_objects),
             **{folder: (f"{toto_prefix}{folder}/", objects)
                for folder, objects in by_folder.items()}}
    roots = dict(zip(spans, bounded_map(lambda item: _current_root(storage, *item),
                                        list(spans.values()),
                                        1 if isinstance(storage, LocalStorage) else POINTER_THREADS)))
    corpus = [SourceImage(storage.uri(o.name), label, "corpus", "corpus", o)
              for label, o in _images(corpus_objects, roots[""])]
    nights: dict[dt.date, list[SourceImage]] = {}
    for folder, objects in by_folder.items():
        night = _night_of(folder, storage.uri(toto_prefix + folder))
        nights[night] = [
            SourceImage(storage.uri(o.name), label, "toto", folder, o)
            for label, o in _images(objects, roots[folder])]
    return SpanListing(storage, where, corpus, nights)


def _current_root(storage, span_prefix: str, objects: list[ObjectInfo]) -> str:
    """Where a span's current images are: under the generation its pointer names (a span
    ingestion published on gs://, ingest/remote.py), else the span folder itself."""
    pointer = span_prefix + names.SPAN_POINTER
    found = [o for o in objects if o.name == pointer]
    if not found:
        return span_prefix
    _, text = storage.read(found[0])
    return f"{span_prefix}{generation_named(text.decode(), storage.uri(pointer))}/"


def _images(objects: list[ObjectInfo], prefix: str):
    """(label, object) for each LABEL/FILE under prefix, by label then file name.

    Files beside the label folders (the night's _manifest.json) and hidden or
    `_`-prefixed files are not images ingestion wrote."""
    found = []
    for o in objects:
        if not o.name.startswith(prefix):         # another generation's (ingest/remote.py)
            continue
        parts = o.name[len(prefix):].split("/")
        if len(parts) == 2 and not parts[-1].startswith(("_", ".")):
            found.append((parts[0], parts[1], o))
    return [(label, o) for label, _, o in sorted(found, key=lambda t: (t[0], t[1]))]


def _night_of(folder: str, uri: str) -> dt.date:
    """The night a span folder holds; a YYYY-MM-DD name that is no date (2026-13-45) was
    not made by ingestion, and its images would be dropped unseen: an error naming it."""
    try:
        return dt.date.fromisoformat(folder)
    except ValueError as exc:
        raise ValueError(f"span folder {uri} is not a night ({exc}): ingestion never "
                         f"writes it; move it out of the spans directory") from None


def in_hash_eval(image: SourceImage, eval_percent: int) -> bool:
    """Stable across nights, machines and storages: the relative name decides."""
    key = f"{image.source}/{image.night}/{image.label}/{image.filename}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 100
    return bucket < eval_percent


@dataclasses.dataclass(frozen=True)
class Span:
    """One span: the corpus, or one of Toto's nights, with its images in listing order."""
    name: str                    # CORPUS or YYYY-MM-DD
    images: tuple[SourceImage, ...]

    @property
    def number(self) -> int:
        """TFX's span of the span's Examples artifact: days since 1970-01-01, the corpus 0."""
        return CORPUS_SPAN if self.name == CORPUS else span_of(dt.date.fromisoformat(self.name))

    @property
    def is_corpus(self) -> bool:
        return self.name == CORPUS


def span_splits(span: Span, eval_split: str, hash_eval_percent: int) -> dict[str, list[SourceImage]]:
    """How a span's images are split, once, when its Examples artifact is made.

    A Toto night under `newest_night` is all `eval`: the night it is made, it is what
    the model is evaluated on, so evaluation looks like tomorrow. The corpus, and every
    span under `hash`, is split by a stable hash of each image's name. A span in the
    training history of a later night trains whole, whatever its splits
    (components/span_history.py), so the split only matters the night it is made.
    """
    if eval_split == "newest_night" and not span.is_corpus:
        return {features.TRAIN: [], features.EVAL: list(span.images)}
    return {features.TRAIN: [i for i in span.images if not in_hash_eval(i, hash_eval_percent)],
            features.EVAL: [i for i in span.images if in_hash_eval(i, hash_eval_percent)]}


@dataclasses.dataclass
class NightPlan:
    """What one night's ExampleGen works from: every span up to the night, and which is
    tonight's (the night's own Toto span, or the corpus on a night without one)."""
    night: dt.date
    spans: dict[str, Span]        # CORPUS, then each of Toto's nights up to `night`, in order
    tonight: Span
    eval_mode: str                # newest_night | hash
    previous_night: Optional[str]  # the last Toto night before `night`: drift's baseline
    storage: object = None        # what reads the images (LocalStorage | GCSStorage)

    def training_spans(self) -> list[Span]:
        """The spans the night trains on whole: every span up to the night but tonight's."""
        return [span for span in self.spans.values() if span is not self.tonight]


def plan_night(input_base: str | os.PathLike, night: dt.date, eval_split: str) -> NightPlan:
    listing = list_spans(input_base)
    nights = listing.toto_nights(night)
    spans = {CORPUS: Span(CORPUS, tuple(listing.corpus)),
             **{n.isoformat(): Span(n.isoformat(), tuple(listing.night_images(n)))
                for n in nights}}
    own = spans.get(night.isoformat())
    tonight = own if own is not None and own.images else spans[CORPUS]
    earlier = [n for n in nights if n < night]
    mode = "newest_night" if eval_split == "newest_night" and not tonight.is_corpus else "hash"
    return NightPlan(night=night, spans=spans, tonight=tonight, eval_mode=mode,
                     previous_night=earlier[-1].isoformat() if earlier else None,
                     storage=listing.storage)
