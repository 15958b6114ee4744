"""`emerald ingest`: the same code as the Airflow IngestNightOperator, without Airflow.

pipeline_src.tools.cli finds `register` on the package (re-exported there) and
prints an IngestError as one line (exit 2). One difference from the operator:
a source without a corpus is an error here unless `--no-corpus` says so, since
by hand it is most often a mistyped source.
"""
from __future__ import annotations

import datetime as dt

from pipeline_src.arguments import night_arg

from .night import configured_settings, ingest_night
from .parallel import PROCESS_MIN_OBJECTS
from .planning import UNKNOWN_LABEL_POLICIES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="bring one of Toto's nights (and the corpus) into the spans directory",
        description="Runs the same code as the Airflow IngestNightOperator, without Airflow.")
    p.add_argument("--source", help="local path or gs://bucket/prefix (default: paths.source)")
    p.add_argument("--date", required=True, type=night_arg, help="the night, YYYY-MM-DD")
    p.add_argument("--spans", help="spans directory (default: paths.spans)")
    p.add_argument("--quarantine", help="quarantine directory (default: paths.quarantine)")
    p.add_argument("--no-corpus", action="store_true",
                   help="skip the corpus/ tree (without it, a source with no corpus is an error)")
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
    from pipeline_src.config import load_config

    cfg = load_config()
    settings = configured_settings(cfg, max_pixels=args.max_pixels,
                                   unknown_labels=args.unknown_labels, processes=args.processes)
    report = ingest_night(
        args.source or cfg.paths.source, dt.date.fromisoformat(args.date),
        args.spans or cfg.paths.spans, args.quarantine or cfg.paths.quarantine,
        include_corpus=not args.no_corpus, require_corpus=not args.no_corpus,
        threads=args.threads, **settings)
    if args.json:
        print(report.to_json())
        return 0
    print(f"night {report.date}: {report.ingested} ingested, {report.unchanged} unchanged, "
          f"{len(report.quarantined)} quarantined, {report.span_examples} examples "
          f"in {report.span_dir}")
    for q in report.quarantined:
        print(f"  quarantined {q['object']}: {q['reason']}")
    for label, count in sorted(report.unknown_labels.items()):
        print(f"  unknown label {label!r} (not in data.labels): {count} ingested "
              f"(ingest.unknown_labels: {settings['unknown_labels']}; "
              "the schema check will flag it)")
    return 0
