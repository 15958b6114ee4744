"""Late uploads: objects that reached an earlier night's folder after that night was ingested.

Toto's camera uploads over a flaky connection; a photo of Monday may land on
Tuesday, after Monday's span was made. Without a look back it would never be
trained on and nobody would know. Each night therefore lists the folders of
the `lookback` nights before it and compares each listing with that night's
span manifest (object name and generation): a night with new or changed
objects is ingested again (the same idempotent `ingest_night`, unchanged
objects linked, not fetched), and the catch-up is reported so the night's
report and alert can say so. A night whose folder has objects but no span at
all (the DAG did not run that night) is caught up the same way, as "missed".

Cost: one listing per looked-back night; nothing is fetched unless something
arrived.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path
from typing import Optional

from pipeline_src.locations import location, write_text_atomically

from .layout import TOTO, night_prefix
from .manifest import load_manifest
from .sources import open_storage, parse_source

log = logging.getLogger(__package__)

DEFAULT_LOOKBACK_NIGHTS = 7


@dataclasses.dataclass
class LateNight:
    """One earlier night caught up tonight."""
    night: str
    kind: str              # "late": its span missed objects; "missed": it had no span
    objects: list[str]     # the new or changed objects (names, at most 20 kept)
    count: int             # how many there were
    ingested: int = 0      # what the catch-up ingested (quarantined ones are in its manifest)
    quarantined: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def unseen_objects(storage, base: str, night: dt.date, spans_dir) -> tuple[str, list[str]]:
    """("late" | "missed" | "", objects at the source the night's span has not seen)."""
    listed = storage.list(night_prefix(base, night))
    if not listed:
        return "", []
    manifest = load_manifest(location(spans_dir) / TOTO / night.isoformat())
    if manifest is None:
        return "missed", sorted(o.name for o in listed)
    seen = {(e["object"], str(e.get("generation"))) for e in manifest.get("objects", [])}
    return "late", sorted(o.name for o in listed if (o.name, str(o.generation)) not in seen)


def write_record(reports_dir, night, caught: list[LateNight]) -> Path:
    """{reports}/{night}/late_uploads.json: what the night's report and alert say.

    Cumulative over reruns of the night: a retried ingest task that finds
    nothing late any more does not erase what its first attempt caught up.
    """
    import json

    from pipeline_src.names import LATE_UPLOADS_FILE
    folder = location(reports_dir) / str(night)        # a folder or gs://
    folder.mkdir(parents=True, exist_ok=True)
    merged = {n["night"]: n for n in read_record(reports_dir, night)}
    merged.update({n.night: n.to_dict() for n in caught})
    path = folder / LATE_UPLOADS_FILE
    write_text_atomically(path, json.dumps([merged[k] for k in sorted(merged)], indent=1))
    return path


def read_record(reports_dir, night) -> list[dict]:
    """The late uploads caught up on `night` ([] when none, or before the ingest task ran)."""
    import json

    from pipeline_src.names import LATE_UPLOADS_FILE
    try:
        return json.loads((location(reports_dir) / str(night) / LATE_UPLOADS_FILE).read_text())
    except FileNotFoundError:
        return []


def catch_up(source_uri: str, night, spans_dir, quarantine_dir, *,
             lookback: int = DEFAULT_LOOKBACK_NIGHTS, first_night: Optional[dt.date] = None,
             storage=None, **ingest_args) -> list[LateNight]:
    """Re-ingests the earlier nights (up to `lookback`) whose folders gained objects.

    `first_night`: nothing before it is looked at (the DAG's start date: the
    photos Toto took before Emerald ran are not late, they are history).
    `ingest_args` go to `ingest_night` (labels, max_pixels, processes...).
    """
    from .night import _as_date, ingest_night

    tonight = _as_date(night)
    if storage is None:
        storage, base = open_storage(source_uri)
    else:
        base = parse_source(source_uri)[2]
    caught: list[LateNight] = []
    for back in range(lookback, 0, -1):
        earlier = tonight - dt.timedelta(days=back)
        if first_night is not None and earlier < first_night:
            continue
        kind, objects = unseen_objects(storage, base, earlier, spans_dir)
        if not objects:
            continue
        log.warning("%s night %s: %d object(s) arrived after it was ingested; ingesting it "
                    "again tonight (%s)", kind, earlier, len(objects), ", ".join(objects[:5]))
        report = ingest_night(source_uri, earlier, spans_dir, quarantine_dir,
                              include_corpus=False, storage=storage, **ingest_args)
        caught.append(LateNight(night=earlier.isoformat(), kind=kind, objects=objects[:20],
                                count=len(objects), ingested=report.ingested,
                                quarantined=len(report.quarantined)))
    return caught
