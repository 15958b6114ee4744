"""Spans on gs://: each publish is a new generation folder, made current by one pointer object.

GCS has no rename, no directory and no lock, so the local swap (atomic.py)
cannot work there. A span under gs:// is laid out as::

    {spans}/{span}/_current.json                      {"generation": "g-...", ...}
    {spans}/{span}/g-{UTC time}-{random}/{label}/{file}
    {spans}/{span}/g-{UTC time}-{random}/_manifest.json

and published in this order:

1. tonight's new files are uploaded from local scratch into a new generation
   folder, the unchanged ones are copied there inside GCS (nothing is
   downloaded again), and the manifest is written last;
2. the pointer is read again: if another ingestion published the span since
   this one read it, this one stops, removes its folder, and the night's task
   fails (its retry starts from what the other published);
3. the pointer is written with a generation precondition (`ifGenerationMatch`:
   the pointer's generation this run read, or 0 when there was none), so of two
   racing writers one wins and the other gets 412 and stops as in 2;
4. it is read once more and must name this generation (the re-read guard: it
   also catches what a server that ignores preconditions let through);
5. generation folders other than the new one and the one it replaced are
   deleted: a reader that read the old pointer a moment ago can still finish.

A reader reads the pointer, then lists or reads under the generation it names:
it sees the old span or the new one, never half of one. A run that crashed
before the pointer leaves a folder nobody points at, which the next publish
deletes. When nothing changed (every object kept, the same manifest) nothing
is written at all.

Quarantine on gs:// (`RemoteQuarantine`) holds tonight's rejected objects and
their reasons, written before the span's pointer; objects no longer rejected
are removed from it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Optional

from pipeline_src import names

from .errors import IngestError
from .layout import join_prefix
from .manifest import MANIFEST_NAME
from .parallel import bounded_map
from .sources import GCSStorage, ObjectInfo, default_gcs_client, parse_source

log = logging.getLogger(__package__)

GENERATION = re.compile(names.SPAN_GENERATION_PATTERN)
TRANSFER_THREADS = 8      # uploads, copies and deletes mostly wait on the network


def new_generation() -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"g-{stamp}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass(frozen=True)
class Pointer:
    """The span's pointer as read: its object generation (0: none) and what it names."""
    object_generation: int
    generation: Optional[str]


class RemotePrefix:
    """A gs://bucket/prefix with the few calls publishing needs, each retried."""

    def __init__(self, uri: str, client=None):
        kind, bucket, prefix = parse_source(str(uri))
        if kind != "gs":
            raise IngestError(f"{uri}: not a gs:// location")
        self.storage = GCSStorage(bucket, client=client if client is not None
                                  else default_gcs_client())
        self.bucket = self.storage.bucket
        self.prefix = prefix.strip("/")

    def uri(self, rel: str = "") -> str:
        return self.storage.uri(self.name(rel))

    def name(self, rel: str = "") -> str:
        return "/".join(p for p in (self.prefix, rel.strip("/")) if p)

    def _call(self, fn, what: str):
        return self.storage.retry.call(fn, what)

    def list(self, rel: str = "") -> list[ObjectInfo]:
        return self.storage.list(join_prefix(self.name(rel)))

    def read_text(self, rel: str) -> Optional[str]:
        """The object's text, or None when there is none."""
        def read():
            blob = self.bucket.get_blob(self.name(rel), retry=None,
                                        timeout=self.storage.timeout)
            return None if blob is None else blob.download_as_text(
                retry=None, timeout=self.storage.timeout)
        return self._call(read, f"reading {self.uri(rel)}")

    def upload_file(self, rel: str, path: Path) -> None:
        self._call(lambda: self.bucket.blob(self.name(rel)).upload_from_filename(
            str(path), retry=None, timeout=self.storage.timeout), f"uploading {self.uri(rel)}")

    def upload_text(self, rel: str, text: str, **preconditions) -> None:
        blob = self.bucket.blob(self.name(rel))
        blob.cache_control = "no-store"          # a pointer or index is read fresh
        self._call(lambda: blob.upload_from_string(
            text, content_type="application/json", retry=None,
            timeout=self.storage.timeout, **preconditions), f"writing {self.uri(rel)}")

    def copy(self, source_name: str, rel: str) -> None:
        self._call(lambda: self.bucket.copy_blob(
            self.bucket.blob(source_name), self.bucket, self.name(rel), retry=None,
            timeout=self.storage.timeout), f"copying {self.storage.uri(source_name)}")

    def delete_names(self, object_names: list[str]) -> None:
        from google.api_core.exceptions import NotFound

        def delete(name: str) -> None:
            def once():
                try:
                    self.bucket.blob(name).delete(retry=None, timeout=self.storage.timeout)
                except NotFound:
                    pass                  # gone already (an earlier attempt): what we wanted
            self._call(once, f"deleting {self.storage.uri(name)}")
        list(bounded_map(delete, object_names, TRANSFER_THREADS))


def generation_named(pointer_text: str, where: str) -> str:
    """The generation a pointer's text names; an IngestError naming it if it names none."""
    try:
        generation = json.loads(pointer_text).get("generation")
    except (ValueError, AttributeError):
        generation = None
    if not (isinstance(generation, str) and GENERATION.match(generation)):
        raise IngestError(f"{where}: not a span pointer (no generation in it): "
                          f"move it away or restore it")
    return generation


def _pointer_of(blob) -> Pointer:
    if blob is None:
        return Pointer(0, None)
    return Pointer(int(blob.generation), generation_named(
        blob.download_as_text(retry=None), f"gs://{blob.bucket.name}/{blob.name}"))


class RemoteSpan(RemotePrefix):
    """One span (the corpus, or a night) under gs://."""

    def read_pointer(self) -> Pointer:
        name = self.name(names.SPAN_POINTER)
        return self._call(lambda: _pointer_of(self.bucket.get_blob(
            name, retry=None, timeout=self.storage.timeout)), f"reading {self.uri(name)}")

    def root(self, pointer: Pointer) -> str:
        """Where the current span's files are (relative to the span): its generation, or
        the span itself for files put there by hand (no pointer)."""
        return pointer.generation or ""

    def manifest(self, pointer: Pointer) -> Optional[dict]:
        text = self.read_text(join_prefix(self.root(pointer)) + MANIFEST_NAME)
        try:
            manifest = json.loads(text) if text is not None else None
        except ValueError:
            manifest = None
        if text is not None and not isinstance(manifest, dict):
            log.warning("unreadable manifest under %s: everything will be fetched again",
                        self.uri(self.root(pointer)))
        return manifest if isinstance(manifest, dict) else None

    def files(self, pointer: Pointer) -> dict[str, ObjectInfo]:
        """The current span's files by their path in the span (label/file)."""
        base = join_prefix(self.name(self.root(pointer)))
        return {o.name[len(base):]: o for o in self.storage.list(base)}

    def publish(self, scratch: Path, copies: dict[str, str], manifest: dict,
                read: Pointer) -> str:
        """Makes `scratch`'s files plus `copies` (path in the span -> object to copy) and
        `manifest` the span's new generation; returns its name (steps in the module doc)."""
        generation = new_generation()
        try:
            uploads = [(p.relative_to(scratch).as_posix(), p)
                       for p in sorted(scratch.rglob("*")) if p.is_file()]
            list(bounded_map(lambda item: self.upload_file(f"{generation}/{item[0]}", item[1]),
                             uploads, TRANSFER_THREADS))
            list(bounded_map(lambda item: self.copy(item[1], f"{generation}/{item[0]}"),
                             sorted(copies.items()), TRANSFER_THREADS))
            self.upload_text(f"{generation}/{MANIFEST_NAME}", json.dumps(manifest))
            self._point_at(generation, manifest, read)
        except BaseException:
            self._remove_generations({generation})
            raise
        self._remove_generations(self._generations() - {generation, read.generation})
        return generation

    def _point_at(self, generation: str, manifest: dict, read: Pointer) -> None:
        from google.api_core.exceptions import PreconditionFailed

        raced = IngestError(
            f"{self.uri()}: another ingestion published this span while this one ran; "
            f"this run's generation {generation} is removed and nothing of it is current "
            f"(a retry starts from what the other one published)")
        if self.read_pointer().object_generation != read.object_generation:
            raise raced
        text = json.dumps({"generation": generation, "manifest": MANIFEST_NAME,
                           "example_count": manifest.get("example_count"),
                           "written_at": manifest.get("written_at")})
        try:
            self.upload_text(names.SPAN_POINTER, text,
                             if_generation_match=read.object_generation)
        except IngestError as exc:
            if not isinstance(exc.__cause__, PreconditionFailed):
                raise
            if self.read_pointer().generation != generation:   # not an earlier attempt's own
                raise raced from None
        if self.read_pointer().generation != generation:
            raise raced

    def _generations(self) -> set[str]:
        base = join_prefix(self.name())
        return {o.name[len(base):].split("/", 1)[0] for o in self.storage.list(base)
                if GENERATION.match(o.name[len(base):].split("/", 1)[0])}

    def _remove_generations(self, generations: set) -> None:
        """Best effort: a folder left behind is unreferenced and the next publish retries."""
        generations = {g for g in generations if g}
        if not generations:
            return
        try:
            base = join_prefix(self.name())
            doomed = [o.name for o in self.storage.list(base)
                      if o.name[len(base):].split("/", 1)[0] in generations]
            self.delete_names(doomed)
        except IngestError as exc:
            log.warning("%s: could not remove generations %s (%s); the next publish will",
                        self.uri(), sorted(generations), exc)


class RemoteQuarantine(RemotePrefix):
    """A night's (or the corpus's) quarantine folder under gs://."""

    INDEX = "_quarantine.json"

    def replace(self, scratch: Optional[Path], index: Optional[dict]) -> None:
        """Uploads scratch's files and then `index`; removes what is no longer quarantined.
        No scratch: nothing is quarantined any more, the folder is emptied."""
        kept: set[str] = set()
        if scratch is not None and index is not None:
            uploads = [(p.relative_to(scratch).as_posix(), p)
                       for p in sorted(scratch.rglob("*")) if p.is_file()]
            list(bounded_map(lambda item: self.upload_file(*item), uploads, TRANSFER_THREADS))
            self.upload_text(self.INDEX, json.dumps(index))
            kept = {self.name(rel) for rel, _ in uploads} | {self.name(self.INDEX)}
        self.delete_names([o.name for o in self.list() if o.name not in kept])


def load_remote_manifest(span_uri: str, client=None) -> Optional[dict]:
    """The current manifest of a span under gs:// (None: never published, or damaged)."""
    span = RemoteSpan(span_uri, client)
    return span.manifest(span.read_pointer())
