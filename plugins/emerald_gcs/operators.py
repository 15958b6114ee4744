"""IngestNightOperator: a thin wrapper over EmeraldGCSHook.ingest_night."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from airflow.models import BaseOperator

from emerald_gcs._common import (
    DEFAULT_CORPUS_ONLY, DEFAULT_NIGHT, default_source, is_true, night_uri_template)


class IngestNightOperator(BaseOperator):
    """Brings one of Toto's nights (and the corpus) into the pipeline's span directory.

    Lists the night's objects under ``{source}/toto/{night}/``, streams them one
    by one, decodes each fully, writes the span atomically with its manifest
    and quarantines bad files (see ``pipeline_src.ingest``). Returns the
    report dict (XCom): ``date``, ``ingested``, ``unchanged``, ``quarantined``
    (``[{"object", "reason"}]``), ``span_examples``, ...

    :param source: local path or ``gs://bucket/prefix`` (templated; default
        ``paths.source`` of the Emerald config).
    :param night: ``YYYY-MM-DD`` (templated; default ``pipeline_src.names.NIGHT``: the param, else ``ds``).
    :param spans_dir: default ``paths.spans``. :param quarantine_dir: default ``paths.quarantine``.
    :param corpus_only: templated; true on the bootstrap night before Toto's first upload.
    :param include_corpus: also mirror ``{source}/corpus/`` (idempotent, a listing when unchanged).
    :param max_pixels: default ``ingest.max_pixels``.
    :param unknown_labels: ``ingest`` | ``hold``; default ``ingest.unknown_labels``.
    :param known_labels: default ``data.labels``.
    :param processes: processes that fetch and decode, the task's own included
        (default ``ingest.processes``; 0: one per CPU for nights worth it).
    :param threads: fetch threads per process (default: 1 for a local source,
        4 for GCS; 2 x CPUs when the task's process works alone).
    :param late_lookback_nights: earlier nights whose folders are listed again for
        late uploads (``pipeline_src.ingest.late``); 0 turns the look-back off.
    :param reports_dir: where the night's ``late_uploads.json`` goes (default ``paths.reports``).
    :param gcp_conn_id: Airflow connection for GCS (``google_cloud_default``).
    """

    template_fields: Sequence[str] = ("source", "night", "night_prefix", "spans_dir",
                                      "quarantine_dir", "reports_dir", "corpus_only")
    ui_color = "#e8f4ea"

    def __init__(self, *, source: Optional[str] = None, night: str = DEFAULT_NIGHT,
                 spans_dir: Optional[str] = None, quarantine_dir: Optional[str] = None,
                 include_corpus: bool = True, corpus_only: Any = DEFAULT_CORPUS_ONLY,
                 max_pixels: Optional[int] = None,
                 unknown_labels: Optional[str] = None,
                 known_labels: Optional[Sequence[str]] = None,
                 processes: Optional[int] = None, threads: Optional[int] = None,
                 late_lookback_nights: int = 7, reports_dir: Optional[str] = None,
                 gcp_conn_id: str = "google_cloud_default",
                 impersonation_chain: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source = source or default_source()
        self.night = night
        self.night_prefix = night_uri_template(self.source, night)   # shown in the UI
        self.spans_dir = None if spans_dir is None else str(spans_dir)
        self.quarantine_dir = None if quarantine_dir is None else str(quarantine_dir)
        self.include_corpus = include_corpus
        self.corpus_only = corpus_only
        self.max_pixels = max_pixels
        self.unknown_labels = unknown_labels
        self.known_labels = tuple(known_labels) if known_labels is not None else None
        self.processes = processes
        self.threads = threads
        self.late_lookback_nights = late_lookback_nights
        self.reports_dir = None if reports_dir is None else str(reports_dir)
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain

    def execute(self, context) -> dict:
        from airflow.exceptions import AirflowException, AirflowFailException
        from pipeline_src import ingest
        from pipeline_src.config import load_config

        cfg = load_config()
        kwargs = dict(
            include_corpus=self.include_corpus,
            include_night=not is_true(self.corpus_only),
            threads=self.threads,
            **ingest.configured_settings(cfg, max_pixels=self.max_pixels,
                                         unknown_labels=self.unknown_labels,
                                         known_labels=self.known_labels,
                                         processes=self.processes))
        spans = self.spans_dir or str(cfg.paths.spans)
        quarantine = self.quarantine_dir or str(cfg.paths.quarantine)
        self.log.info("ingesting %s into %s", self.night_prefix, spans)
        hook = None
        if self.source.startswith("gs://"):
            from emerald_gcs.hooks import EmeraldGCSHook
            hook = EmeraldGCSHook(gcp_conn_id=self.gcp_conn_id,
                                  impersonation_chain=self.impersonation_chain)
        # A local directory (the demo) needs no GCS and no provider import.
        ingest_fn = hook.ingest_night if hook else ingest.ingest_night
        try:
            report = ingest_fn(self.source, self.night, spans, quarantine, **kwargs)
        except ingest.SourceError as exc:        # the source is wrong: retrying cannot help
            raise AirflowFailException(f"ingesting {self.night_prefix} failed: {exc}") from exc
        except ingest.IngestError as exc:
            raise AirflowException(f"ingesting {self.night_prefix} failed: {exc}") from exc
        late_nights = []
        if kwargs["include_night"] and self.late_lookback_nights > 0:
            late_nights = self._catch_up(hook, spans, quarantine,
                                         self.reports_dir or str(cfg.paths.reports),
                                         cfg.dag.start_date, kwargs)
        for q in report.quarantined:
            self.log.warning("quarantined %s: %s", q["object"], q["reason"])
        self.log.info("night %s: %d ingested, %d unchanged, %d quarantined, %d examples",
                      report.date, report.ingested, report.unchanged, len(report.quarantined),
                      report.span_examples)
        return {**report.to_dict(), "late_uploads": [n.to_dict() for n in late_nights]}

    def _catch_up(self, hook, spans: str, quarantine: str, reports: str, first_night,
                  kwargs: dict) -> list:
        """Earlier nights that gained uploads since they were ingested, ingested again."""
        from airflow.exceptions import AirflowException
        from pipeline_src import ingest
        from pipeline_src.ingest import late

        catch_up = hook.catch_up_late_uploads if hook else late.catch_up
        args = {k: v for k, v in kwargs.items() if k not in ("include_corpus", "include_night")}
        try:
            caught = catch_up(self.source, self.night, spans, quarantine,
                              lookback=self.late_lookback_nights, first_night=first_night,
                              **args)
        except ingest.IngestError as exc:
            raise AirflowException(f"catching up late uploads before {self.night} failed: "
                                   f"{exc}") from exc
        late.write_record(reports, self.night, caught)
        for n in caught:
            self.log.warning("%s night %s: %d upload(s) arrived after it was ingested; now "
                             "ingested (%d, %d quarantined): %s", n.kind, n.night, n.count,
                             n.ingested, n.quarantined, ", ".join(n.objects[:5]))
        return caught
