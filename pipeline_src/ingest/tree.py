"""One tree (the corpus, or a night) mirrored into its span, atomically.

In the target's session (a local span's lock; a gs:// span's pointer read):
list, plan, settle every object (kept unchanged, or fetched by threads here
and worker processes), count, and publish the quarantine and then the span
with its manifest (targets.py: swapped in on disk, a new generation on gs://).
"""
from __future__ import annotations

from typing import Optional, Sequence

from .errors import IngestError
from .manifest import (STATUS_HELD, STATUS_INGESTED, STATUS_SKIPPED, build_manifest,
                       manifest_settings, reusable_entries)
from .parallel import WorkerPool, bounded_map, default_threads
from .planning import Plan, plan_objects
from .reports import TreeReport
from .targets import target_for
from .writer import ObjectWriter, settle_without_fetching


def ingest_tree(storage, prefix: str, dest, quarantine, *,
                max_pixels: int, known_labels: Sequence[str], unknown_labels: str,
                threads: Optional[int] = None, pool: Optional[WorkerPool] = None,
                release_pool: bool = False, allow_empty: bool = False,
                context: Optional[dict] = None) -> TreeReport:
    """Mirrors storage[prefix] into the span `dest` (a folder or gs://, atomically),
    quarantining bad files into `quarantine` (the same kind of location).

    Objects to fetch are shared between this process and `pool`'s workers when
    there is a pool and at least PROCESS_MIN_OBJECTS of them (a pool of
    explicitly chosen size: any number), else fetched by `threads` threads
    here. Unchanged objects are kept from the current span (linked, or copied inside
    GCS), not read.
    """
    target = target_for(dest, quarantine, storage)
    report = TreeReport(span_dir=target.uri, source_uri=storage.uri(prefix))
    settings = manifest_settings(max_pixels)

    with target.session():
        objects = storage.list(prefix)
        report.listed = len(objects)
        previous = target.previous_manifest() or {}
        if not objects:
            _check_empty_listing(report, target.uri, previous, allow_empty)
            return report

        plans = plan_objects(objects, prefix, known_labels, unknown_labels)
        tmp, qtmp = target.scratch()
        try:
            writer = ObjectWriter(storage, tmp, qtmp, max_pixels)
            entries = _settle_all(plans, writer, reusable_entries(previous, settings), target,
                                  threads=threads, pool=pool, release_pool=release_pool)
            _count(report, entries, known_labels)
            if report.accounted() != report.listed:
                raise IngestError(
                    f"{report.source_uri}: {report.listed} objects listed but "
                    f"{report.accounted()} accounted for (a bug): {target.uri} is left as it was")
            target.publish(report, build_manifest(report, entries, settings, context), context,
                           tmp, qtmp)
        finally:
            target.discard(tmp, qtmp)
    return report


def _check_empty_listing(report: TreeReport, dest: str, previous: dict,
                         allow_empty: bool) -> None:
    """An empty listing never empties a span that holds examples, and fails unless allowed."""
    if previous.get("example_count"):
        raise IngestError(
            f"{report.source_uri} lists no objects but {dest} holds "
            f"{previous['example_count']} examples: refusing to empty the span")
    if not allow_empty:
        raise IngestError(f"no objects under {report.source_uri}")


def _settle_all(plans: Sequence[Plan], writer: ObjectWriter, reusable: dict, target, *,
                threads: Optional[int], pool: Optional[WorkerPool],
                release_pool: bool) -> list[dict]:
    """Every plan's manifest entry, in order: decided without reading, or fetched."""
    entries: list = [settle_without_fetching(p, reusable, target, writer) for p in plans]
    unsettled = [i for i, e in enumerate(entries) if e is None]
    fetched = _fetch(writer, [plans[i] for i in unsettled],
                     threads=threads, pool=pool, release_pool=release_pool)
    for i, entry in zip(unsettled, fetched):
        entries[i] = entry
    return entries


def _fetch(writer: ObjectWriter, plans: list[Plan], *, threads: Optional[int],
           pool: Optional[WorkerPool], release_pool: bool) -> list[dict]:
    """writer(plan) for every plan: shared with the pool's workers if it takes them (then
    released at once if asked: the workers exit while this process publishes), else
    by threads here."""
    if pool is not None and pool.shares(writer, len(plans)):
        fetched = pool.run(writer, plans,
                           threads=threads or getattr(writer.storage, "threads_per_process", 1))
        if release_pool:
            pool.release()
        return fetched
    return list(bounded_map(writer, plans, threads or default_threads()))


def _count(report: TreeReport, entries: list[dict], known_labels: Sequence[str]) -> None:
    """Adds the entries up into `report`, taking off the notes the manifest does not keep
    (`_bytes`, `_unchanged`)."""
    for entry in entries:
        report.bytes_read += entry.pop("_bytes", 0)
        unchanged = entry.pop("_unchanged", False)
        status = entry["status"]
        if status == STATUS_INGESTED:
            if unchanged:
                report.unchanged += 1
            else:
                report.ingested += 1
            report.labels[entry["label"]] = report.labels.get(entry["label"], 0) + 1
            if known_labels and entry["label"] not in known_labels:
                report.unknown_labels[entry["label"]] = \
                    report.unknown_labels.get(entry["label"], 0) + 1
        elif status == STATUS_SKIPPED:
            report.skipped.append({"object": entry["object"], "reason": entry["reason"]})
        else:
            if status == STATUS_HELD:
                report.held += 1
            report.quarantined.append({"object": entry["object"], "reason": entry["reason"]})
    report.span_examples = report.ingested + report.unchanged
