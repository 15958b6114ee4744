"""Where a tree is published: a local span directory, or a span under gs://.

`ingest_tree` builds the next version of a span the same way for both: new
files are fetched into local scratch by the ObjectWriter (here and in worker
processes), unchanged ones are kept without reading them, and the result is
published whole. Only keeping and publishing differ, and they live here:

- `LocalTarget`: one writer per span by flock; unchanged files hard-linked from
  the current span; the scratch directory synced and swapped in (atomic.py).
- `RemoteTarget`: unchanged files copied inside GCS; a new generation folder and
  a pointer written last with a precondition (remote.py); nothing written when
  nothing changed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Optional

from pipeline_src.locations import is_remote

from .atomic import locked, remove_temporaries, swap_in, sync_filesystem, temporary_sibling
from .errors import IngestError
from .manifest import MANIFEST_NAME, load_manifest, write_json

QUARANTINE_INDEX = "_quarantine.json"


def _size_of(path: Path) -> Optional[int]:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _quarantine_index(report, context: Optional[dict]) -> dict:
    return {**(context or {}), "source_uri": report.source_uri, "objects": report.quarantined}


class LocalTarget:
    """A span directory and its quarantine directory on a local (or mounted) filesystem."""

    def __init__(self, dest: Path, quarantine: Path):
        self.dest, self.quarantine = Path(dest), Path(quarantine)
        self.uri = str(self.dest)

    @contextlib.contextmanager
    def session(self):
        with locked(self.dest):
            remove_temporaries(self.quarantine)
            yield

    def previous_manifest(self) -> Optional[dict]:
        return load_manifest(self.dest)

    def current_size(self, rel: str) -> Optional[int]:
        return _size_of(self.dest / rel)

    def keep_unchanged(self, writer, rel: str, current_rel: str) -> None:
        writer.link_unchanged(rel, self.dest / current_rel)

    def scratch(self) -> tuple[Path, Path]:
        tmp, qtmp = temporary_sibling(self.dest), temporary_sibling(self.quarantine)
        tmp.mkdir(parents=True)
        self.quarantine.parent.mkdir(parents=True, exist_ok=True)
        return tmp, qtmp

    def discard(self, tmp: Path, qtmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(qtmp, ignore_errors=True)

    def publish(self, report, manifest: dict, context: Optional[dict],
                tmp: Path, qtmp: Path) -> None:
        """The manifest into `tmp`, everything synced, then the quarantine and the span
        swapped in: quarantine first, since the span's manifest is the commit point."""
        write_json(tmp / MANIFEST_NAME, manifest, sync=False)
        sync_filesystem(tmp)                           # the images and the manifest
        if report.quarantined:
            write_json(qtmp / QUARANTINE_INDEX, _quarantine_index(report, context))
            swap_in(qtmp, self.quarantine)
        elif self.quarantine.exists():
            shutil.rmtree(self.quarantine)
        swap_in(tmp, self.dest)


def _comparable(manifest: Optional[dict]) -> Optional[dict]:
    """The manifest without what says when and how a run made it (new or kept objects)."""
    return None if manifest is None else {k: v for k, v in manifest.items()
                                          if k not in ("written_at", "counts")}


class RemoteTarget:
    """A span and its quarantine under gs:// (remote.py has the layout and the publish)."""

    def __init__(self, dest: str, quarantine: str, client=None):
        from .remote import RemoteQuarantine, RemoteSpan
        self.span = RemoteSpan(dest, client)
        self.quarantine = RemoteQuarantine(quarantine, self.span.storage.client)
        self.uri = self.span.uri()
        self._copies: dict[str, str] = {}
        self._scratch: Optional[Path] = None

    @contextlib.contextmanager
    def session(self):
        """No lock: the pointer's precondition decides between racing writers."""
        self.pointer = self.span.read_pointer()
        self.current = self.span.files(self.pointer)
        self._copies = {}
        yield

    def previous_manifest(self) -> Optional[dict]:
        return self.span.manifest(self.pointer)

    def current_size(self, rel: str) -> Optional[int]:
        info = self.current.get(rel)
        return None if info is None else info.size

    def keep_unchanged(self, writer, rel: str, current_rel: str) -> None:
        self._copies[rel] = self.current[current_rel].name

    def scratch(self) -> tuple[Path, Path]:
        self._scratch = Path(tempfile.mkdtemp(prefix="emerald-span-"))
        tmp = self._scratch / "span"
        tmp.mkdir()
        return tmp, self._scratch / "quarantine"

    def discard(self, tmp: Path, qtmp: Path) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def publish(self, report, manifest: dict, context: Optional[dict],
                tmp: Path, qtmp: Path) -> None:
        """Nothing when nothing changed; else the quarantine, then the span's generation."""
        if (report.ingested == 0 and len(self._copies) == report.unchanged
                and _comparable(manifest) == _comparable(self.previous_manifest())):
            report.published = False
            return
        if report.quarantined:
            self.quarantine.replace(qtmp, _quarantine_index(report, context))
        else:
            self.quarantine.replace(None, None)
        report.generation = self.span.publish(tmp, self._copies, manifest, self.pointer)


def target_for(dest, quarantine, storage=None):
    """The target for a span location (a folder or gs://) and its quarantine; a gs:// span
    is written with the source's client when the source is in GCS too (its credentials)."""
    if is_remote(dest) != is_remote(quarantine):
        raise IngestError(f"spans {dest} and quarantine {quarantine}: put both in the bucket "
                          f"or both on disk (paths.spans, paths.quarantine)")
    if is_remote(dest):
        return RemoteTarget(str(dest), str(quarantine), getattr(storage, "client", None))
    return LocalTarget(Path(dest), Path(quarantine))
