"""Ingestion: one night of Toto's uploads (and the curated corpus) into a pipeline span.

Source layout (a local directory or ``gs://BUCKET/PREFIX``)::

    {source}/toto/{YYYY-MM-DD}/{label}/{name}     one night of camera uploads
    {source}/corpus/{label}/{name}                the curated corpus (`emerald synth`)

Span layout (what ExampleGen reads)::

    {spans}/toto/{YYYY-MM-DD}/{label}/{safe_name}
    {spans}/toto/{YYYY-MM-DD}/_manifest.json
    {spans}/corpus/{label}/{safe_name}
    {spans}/corpus/_manifest.json

Bad files go to ``{quarantine}/{YYYY-MM-DD}/`` (``{quarantine}/corpus/``) with a
``.reason.txt`` next to each. Every listed object is accounted for as ingested,
unchanged (same generation and checksum as the span already holds), quarantined
(held unknown labels included) or skipped (the ``_SUCCESS`` marker, folder
placeholders).

A span directory is built in a temporary sibling, synced to disk, and swapped
in with one atomic rename (``renameat2(RENAME_EXCHANGE)`` where the kernel has
it), so a reader sees the old night or the new one, never half of one, and
rerunning a night is idempotent. On gs://, where there is no rename, a span
is a generation folder made current by a pointer object written last with a
precondition (``remote``). Objects are fetched, decoded and written by
this process together with worker processes (``WorkerPool``, one per extra
CPU) when a tree is large enough to repay their start-up. No Airflow import
happens here: the Airflow plugin (``plugins/emerald_gcs``) and the ``emerald
ingest`` command share this code.

The modules, from the bottom up: ``errors``; ``layout`` (fixed names, safe
file names); ``retry``; ``sources`` (local directory, GCS bucket);
``reports``; ``atomic`` (temporary siblings, the lock, the swap);
``manifest``; ``planning`` (each object's fate from its name); ``writer``
(one object); ``parallel`` (fetch threads, WorkerPool); ``worker`` (the
worker process, never imported here); ``remote`` (spans on gs://: generation
folders and a pointer); ``targets`` (where a span is published: a folder or
gs://); ``tree`` (one span);
``night`` (``ingest_night``, ``configured_settings``); ``cli`` (``emerald ingest``). The names below
are this package's interface.
"""
from __future__ import annotations

from .cli import register
from .errors import IngestError, SourceError, TransientError
from .layout import safe_name
from .night import configured_settings, ingest_night
from .parallel import WorkerPool, usable_cpus
from .reports import IngestReport
from .retry import RetryPolicy
from .sources import GCSStorage, LocalStorage, ObjectInfo, parse_source

__all__ = [
    "GCSStorage", "IngestError", "IngestReport", "LocalStorage", "ObjectInfo", "RetryPolicy",
    "SourceError", "TransientError", "WorkerPool", "configured_settings", "ingest_night",
    "parse_source", "register", "safe_name", "usable_cpus",
]
