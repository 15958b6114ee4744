"""`emerald ingest`: the same code as the Airflow IngestNightOperator, without Airflow.

pipeline_src.tools.cli finds `register` on the package (re-exported there).
"""
from __future__ import annotations

import datetime as dt

from .errors import IngestError
from .night import ingest_night
from .parallel import PROCESS_MIN_OBJECTS
from .planning import UNKNOWN_LABEL_POLICIES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="bring one of Toto's nights (and the corpus) into the spans directory",
        description="Runs the same code as the Airflow IngestNightOperator, without Airflow.")
    p.add_argument("--source", help="local path or gs://bucket/prefix (default: paths.source)")
    p.add_argument("--date", required=True, help="the night, YYYY-MM-DD")
    p.add_argument("--spans", help="spans directory (default: paths.spans)")
    p.add_argument("--quarantine", help="quarantine directory (default: paths.quarantine)")
    p.add_argument("--no-corpus", action="store_true", help="skip the corpus/ tree")
    p.add_argument("--max-pixels", type=int, help="default: ingest.max_pixels")
    p.add_argument("--unknown-labels", choices=UNKNOWN_LABEL_POLICIES,
                   help="default: ingest.unknown_labels")
    p.add_argument("--processes", type=int,
                   help="processes doing the work, this one included (default: one per CPU "
                        f"for trees of {PROCESS_MIN_OBJECTS}+ objects to fetch; 1: this one)")
    p.add_argument("--threads", type=int, help="fetch threads per process")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    import sys
    from pipeline_src.config import load_config

    cfg = load_config()
    try:
        night = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"emerald ingest: --date {args.date!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        report = ingest_night(
            args.source or cfg.paths.source, night,
            args.spans or cfg.paths.spans, args.quarantine or cfg.paths.quarantine,
            include_corpus=not args.no_corpus,
            max_pixels=args.max_pixels or cfg.ingest.max_pixels,
            unknown_labels=args.unknown_labels or cfg.ingest.unknown_labels,
            known_labels=cfg.data.labels, threads=args.threads,
            processes=args.processes if args.processes is not None else cfg.ingest.processes)
    except IngestError as exc:
        print(f"emerald ingest: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(report.to_json())
    else:
        print(f"night {report.date}: {report.ingested} ingested, {report.unchanged} unchanged, "
              f"{len(report.quarantined)} quarantined, {report.span_examples} examples "
              f"in {report.span_dir}")
        for q in report.quarantined:
            print(f"  quarantined {q['object']}: {q['reason']}")
    return 0
