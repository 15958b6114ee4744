"""One object's fate: linked unchanged from the current span, or fetched, decoded and filed.

ObjectWriter is the one piece of code that reads and writes objects, whether
it runs in this process's threads or in a worker process.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Optional

from .errors import IngestError
from .layout import REASON_SUFFIX, within
from .manifest import STATUS_HELD, STATUS_INGESTED, STATUS_QUARANTINED, STATUS_SKIPPED
from .planning import Plan
from .sources import ObjectInfo


def _entry_base(plan: Plan) -> dict:
    info = plan.info
    return {"object": info.name, "generation": info.generation, "size": info.size,
            "md5": info.md5, "crc32c": info.crc32c, "label": plan.label}


def settle_without_fetching(plan: Plan, prev_entries: dict, target,
                            writer: "ObjectWriter") -> Optional[dict]:
    """The entry of an object decided without reading it (skipped, or unchanged: kept from
    the current span by the target, targets.py), or None when it has to be fetched."""
    if plan.status == STATUS_SKIPPED:
        return {**_entry_base(plan), "status": STATUS_SKIPPED, "reason": plan.reason}
    info = plan.info
    prev = prev_entries.get(info.name)
    if (prev and prev.get("generation") == info.generation
            and (not info.crc32c or prev.get("crc32c") == info.crc32c)
            and prev.get("file") == plan.file
            and target.current_size(prev["file"]) == prev.get("size")):  # not lost or emptied
        target.keep_unchanged(writer, plan.file, prev["file"])
        return {**prev, "status": STATUS_INGESTED, "_unchanged": True}
    return None


class ObjectWriter:
    """Fetches one planned object, decodes it fully and files it: span or quarantine.

    Picklable, storage included (GCSStorage sends its project and credentials,
    never its connections), so the worker processes run exactly the code the
    in-process threads run, writing into the same temporary directories.
    """

    def __init__(self, storage, tmp: Path, qtmp: Path, max_pixels: int):
        self.storage, self.tmp, self.qtmp, self.max_pixels = storage, tmp, qtmp, max_pixels
        self._dirs: dict[str, Path] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dirs": {}}

    def _span_dir(self, parent_rel: str) -> Path:
        """tmp/parent_rel, created and checked (no link on the way) once per directory."""
        parent = self._dirs.get(parent_rel)
        if parent is None:
            parent = within(self.tmp, self.tmp / parent_rel if parent_rel else self.tmp)
            parent.mkdir(parents=True, exist_ok=True)
            self._dirs[parent_rel] = parent = within(self.tmp, parent)
        return parent

    def _span_path(self, rel: str) -> Path:
        parent_rel, _, name = rel.rpartition("/")
        if not name or name in (".", ".."):
            raise IngestError(f"refusing to write {rel!r} in {self.tmp}")
        return self._span_dir(parent_rel) / name

    def link_unchanged(self, rel: str, current: Path) -> None:
        """The current span's file, unchanged at the source, into the new span (no copy)."""
        target = self._span_path(rel)
        try:
            os.link(current, target, follow_symlinks=False)
        except OSError:
            shutil.copy2(current, target, follow_symlinks=False)

    def _write_span_file(self, rel: str, data: bytes) -> None:
        path = self._span_path(rel)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IngestError(f"refusing to write through a link: {path}") from None
            raise
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _quarantine(self, plan: Plan, data: bytes, info: ObjectInfo, reason: str) -> None:
        target = within(self.qtmp, self.qtmp / plan.file)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.with_name(target.name + REASON_SUFFIX).write_text(
            f"object: {info.name}\ngeneration: {info.generation}\n"
            f"source: {self.storage.uri(info.name)}\nreason: {reason}\n")

    def __call__(self, plan: Plan) -> dict:
        from pipeline_src import images
        info, data = self.storage.read(plan.info)
        entry = {**_entry_base(plan), "md5": info.md5, "crc32c": info.crc32c,
                 "generation": info.generation, "size": len(data), "_bytes": len(data)}
        if plan.status in (STATUS_QUARANTINED, STATUS_HELD):
            self._quarantine(plan, data, info, plan.reason)
            return {**entry, "status": plan.status, "reason": plan.reason,
                    "quarantine_file": plan.file}
        try:
            meta = images.inspect(data, self.max_pixels)
        except images.BadImage as bad:
            self._quarantine(plan, data, info, bad.reason)
            return {**entry, "status": STATUS_QUARANTINED, "reason": bad.reason,
                    "quarantine_file": plan.file}
        self._write_span_file(plan.file, data)
        return {**entry, "status": STATUS_INGESTED, "file": plan.file,
                "format": meta.format, "mode": meta.mode,
                "height": meta.height, "width": meta.width,
                "exif_orientation": meta.exif_orientation,
                "capture_time": meta.capture_time.isoformat() if meta.capture_time else None,
                "brightness": None}   # not measured at ingestion (ExampleGen computes it)
