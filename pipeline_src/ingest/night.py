"""A night: the corpus tree, then Toto's night, with one worker pool for both.

This is the entry point the Airflow operator and `emerald ingest` call.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

from pipeline_src.locations import location

from .errors import IngestError, SourceError
from .layout import CORPUS, TOTO, join_prefix, night_prefix
from .parallel import WorkerPool
from .planning import UNKNOWN_LABEL_POLICIES
from .reports import IngestReport
from .sources import open_storage, parse_source
from .tree import ingest_tree

log = logging.getLogger(__package__)     # "pipeline_src.ingest": one logger for the package


def _as_date(night) -> dt.date:
    if isinstance(night, dt.datetime):
        return night.date()
    if isinstance(night, dt.date):
        return night
    try:
        return dt.date.fromisoformat(str(night)[:10])
    except ValueError:
        raise IngestError(f"night {night!r} is not a YYYY-MM-DD date") from None


def configured_settings(config, **overrides) -> dict:
    """`ingest_night`'s settings that come from the configuration: `max_pixels`,
    `unknown_labels` (ingest.*), `known_labels` (data.labels) and `processes`
    (ingest.processes), each replaced by an override that is not None.

    The one place where the configuration meets ingest_night's keywords: the
    Airflow operator, `emerald ingest` and the benchmarks all call it, so a new
    ingest setting is wired once.
    """
    settings = dict(max_pixels=config.ingest.max_pixels,
                    unknown_labels=config.ingest.unknown_labels,
                    known_labels=tuple(config.data.labels),
                    processes=config.ingest.processes)
    unexpected = sorted(set(overrides) - set(settings))
    if unexpected:
        raise TypeError(f"configured_settings() got unexpected settings {unexpected}")
    settings.update({key: value for key, value in overrides.items() if value is not None})
    return settings


def ingest_night(source_uri: str, night, spans_dir, quarantine_dir, *,
                 include_corpus: bool = True, include_night: bool = True,
                 require_corpus: bool = False,
                 max_pixels: Optional[int] = None,
                 unknown_labels: str = "ingest", known_labels: Sequence[str] = (),
                 storage=None, processes: Optional[int] = None,
                 threads: Optional[int] = None) -> IngestReport:
    """Brings one of Toto's nights (and the corpus) into `spans_dir`; see the package doc.

    `storage` overrides the one `source_uri` implies (the Airflow hook passes a
    GCSStorage built on its own authenticated client); `source_uri` still
    gives the prefix. `include_night=False` ingests the corpus alone: the
    bootstrap night before Toto's first upload.

    A corpus that yields no example is a SourceError on that bootstrap night
    (there would be nothing to train on) and with `require_corpus`; otherwise
    a warning, and the night trains on Toto's nights alone.

    `processes`: processes that fetch, decode and write, this one included
    (None or 0: one per usable CPU, for trees with at least
    PROCESS_MIN_OBJECTS objects to fetch; 1: this one alone; N >= 2: N
    whatever the size). `threads`: fetch threads per process (default: the
    storage's `threads_per_process`), or 2 x CPUs when this process works alone.
    """
    from pipeline_src import images

    started = time.monotonic()
    night = _as_date(night)
    if unknown_labels not in UNKNOWN_LABEL_POLICIES:
        raise IngestError(f"unknown_labels {unknown_labels!r} is not one of {UNKNOWN_LABEL_POLICIES}")
    max_pixels = int(max_pixels or images.DEFAULT_MAX_PIXELS)
    if storage is None:
        storage, base = open_storage(source_uri)
    else:
        base = parse_source(source_uri)[2]
    spans_dir, quarantine_dir = location(spans_dir), location(quarantine_dir)   # or gs://
    with WorkerPool.for_processes(processes) as pool:
        report = _ingest_trees(storage, base, night, spans_dir, quarantine_dir,
                               include_corpus=include_corpus, include_night=include_night,
                               require_corpus=require_corpus, max_pixels=max_pixels,
                               known_labels=tuple(known_labels or ()),
                               unknown_labels=unknown_labels, threads=threads, pool=pool)
    report.worker_processes = len(pool.stats)
    report.worker_peak_mb = [round(s["peak_rss_kb"] / 1024, 1) for s in pool.stats]
    report.worker_objects = [s["objects"] for s in pool.stats]
    report.seconds = round(time.monotonic() - started, 3)
    log.info("ingested night %s: %d new, %d unchanged, %d quarantined, %d examples in %s "
             "(%.1f s, %s)", report.date, report.ingested, report.unchanged,
             len(report.quarantined), report.span_examples, report.span_dir, report.seconds,
             f"with {report.worker_processes} worker processes, peak {report.worker_peak_mb} MiB"
             if report.worker_processes else "in this process alone")
    return report


def _ingest_trees(storage, base: str, night: dt.date, spans_dir: Path, quarantine_dir: Path,
                  *, include_corpus: bool, include_night: bool, require_corpus: bool,
                  **common) -> IngestReport:
    """The corpus tree, then the night's."""
    corpus_report = None
    if include_corpus:
        corpus = ingest_tree(storage, join_prefix(base, CORPUS), spans_dir / CORPUS,
                             quarantine_dir / CORPUS, allow_empty=True,
                             context={"source": CORPUS, "night": CORPUS}, **common)
        if not corpus.span_examples:
            _no_corpus(corpus, quarantine_dir / CORPUS,
                       required=require_corpus or not include_night, bootstrap=not include_night)
        corpus_report = dataclasses.asdict(corpus)
    if not include_night:
        return IngestReport(
            date=night.isoformat(), source=join_prefix(base, CORPUS),
            span_dir=str(spans_dir / CORPUS), ingested=0, unchanged=0, quarantined=[],
            span_examples=0, corpus=corpus_report)
    tree = ingest_tree(storage, night_prefix(base, night), spans_dir / TOTO / night.isoformat(),
                       quarantine_dir / night.isoformat(), release_pool=True,
                       context={"source": TOTO, "night": night.isoformat()}, **common)
    report = IngestReport(
        date=night.isoformat(), source=tree.source_uri, span_dir=tree.span_dir,
        ingested=tree.ingested, unchanged=tree.unchanged, quarantined=tree.quarantined,
        span_examples=tree.span_examples, held=tree.held, skipped=tree.skipped,
        unknown_labels=tree.unknown_labels, labels=tree.labels, listed=tree.listed,
        bytes_read=tree.bytes_read, corpus=corpus_report)
    return report


def _no_corpus(corpus, quarantine: Path, *, required: bool, bootstrap: bool) -> None:
    """A corpus with no example: an IngestError when required, else a warning. Nothing is
    lost either way: an empty listing leaves the corpus span as it was."""
    uri = corpus.source_uri
    what = (f"no image of the corpus under {uri} could be ingested ({corpus.listed} objects: "
            f"{len(corpus.quarantined)} quarantined into {quarantine}, "
            f"{len(corpus.skipped)} skipped)") if corpus.listed else f"no corpus under {uri}"
    if not required:
        log.warning("%s: tonight trains on Toto's nights alone", what)
        return
    why = ("the corpus-only night trains on the corpus alone" if bootstrap
           else "training starts from the curated corpus")
    alone = "" if bootstrap else "; --no-corpus ingests the night alone"
    where = uri.rstrip("/") + "/{label}/{name}"
    raise SourceError(f"{what}: {why}; put it at {where} or check the source "
                      f"(paths.source, EMERALD_SOURCE, --source){alone}")
