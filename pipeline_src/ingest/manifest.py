"""The span's manifest (`_manifest.json`): its format, and how the next run reuses it.

The manifest lists every object with the status it got; a rerun links an
object unchanged at the source from the current span instead of fetching it
again, but only when the span was made with the same settings.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .reports import TreeReport

log = logging.getLogger(__package__)     # "pipeline_src.ingest": one logger for the package

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
DECODER_VERSION = 1           # bump when images.decode/inspect change what they accept

STATUS_INGESTED = "ingested"
STATUS_QUARANTINED = "quarantined"
STATUS_HELD = "held"
STATUS_SKIPPED = "skipped"


def write_json(path: Path, obj, sync: bool = True) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)     # no indent: the C encoder, 3x faster on a big night
        if sync:
            f.flush()
            os.fsync(f.fileno())


def load_manifest(span_dir: os.PathLike | str) -> Optional[dict]:
    """The span's manifest, or None when there is none or it is damaged (truncated,
    garbage, not a JSON object): then it is only a warning, since the next run fetches
    every object again and writes a new one. A span on gs:// is read through its
    pointer (remote.py)."""
    if "://" in str(span_dir):
        from .remote import load_remote_manifest
        return load_remote_manifest(str(span_dir))
    path = Path(span_dir) / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:                  # UnicodeDecodeError included
        manifest = None
    if not isinstance(manifest, dict):
        log.warning("unreadable manifest %s: everything will be fetched again", path)
        return None
    return manifest


def manifest_settings(max_pixels: int) -> dict:
    """What decides whether an object is accepted: a span made otherwise is not reused."""
    return {"max_pixels": int(max_pixels), "decoder_version": DECODER_VERSION}


def reusable_entries(previous: dict, settings: dict) -> dict:
    """The previous manifest's ingested entries by object name, if made with `settings`."""
    objects = previous.get("objects")
    if previous.get("settings") != settings or not isinstance(objects, list):
        return {}
    return {e["object"]: e for e in objects       # a damaged entry is fetched again
            if isinstance(e, dict) and e.get("status") == STATUS_INGESTED
            and isinstance(e.get("object"), str) and isinstance(e.get("file"), str)}


def build_manifest(report: "TreeReport", entries: list, settings: dict,
                   context: Optional[dict]) -> dict:
    return {
        "version": MANIFEST_VERSION,
        **(context or {}),
        "source_uri": report.source_uri,
        "settings": settings,
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "example_count": report.span_examples,
        "counts": {"listed": report.listed, "ingested": report.ingested,
                   "unchanged": report.unchanged,
                   "quarantined": len(report.quarantined) - report.held,
                   "held": report.held, "skipped": len(report.skipped)},
        "labels": report.labels,
        "unknown_labels": report.unknown_labels,
        "objects": entries,
    }
