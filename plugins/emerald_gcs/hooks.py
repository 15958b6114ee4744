"""EmeraldGCSHook: the provider's GCSHook, plus the emulator and Emerald's ingestion logic.

This module imports the Google provider (slow, ~1.4 s): operators and sensors
import it inside `execute`/`poke`, never at DAG parse time.
"""
from __future__ import annotations

import os

from airflow.providers.google.cloud.hooks.gcs import GCSHook

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
EMULATOR_DEFAULT_PROJECT = "emerald-emulator"


def using_emulator() -> bool:
    return bool(os.environ.get(EMULATOR_ENV))


class EmeraldGCSHook(GCSHook):
    """GCSHook that talks to STORAGE_EMULATOR_HOST with anonymous credentials when it is set.

    The provider's `GCSHook.get_conn` always passes `get_credentials()`, which
    wants real credentials (a key or ADC) and so never reaches an emulator;
    here, with the variable set, the client is built with
    `AnonymousCredentials` and the connection's `project` extra (or
    GOOGLE_CLOUD_PROJECT). Without the variable it is exactly GCSHook.
    """

    hook_name = "Emerald Google Cloud Storage"

    def get_conn(self):
        if not using_emulator():
            return super().get_conn()
        if not self._conn:
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage
            from airflow.providers.google.common.consts import CLIENT_INFO

            self._conn = storage.Client(project=self._emulator_project(),
                                        credentials=AnonymousCredentials(),
                                        client_info=CLIENT_INFO)
        return self._conn

    def _emulator_project(self) -> str:
        try:
            project = self._get_field("project")
        except Exception:  # noqa: BLE001 - no connection defined: fine for the emulator
            project = None
        return project or os.environ.get("GOOGLE_CLOUD_PROJECT") or EMULATOR_DEFAULT_PROJECT

    # -- Emerald logic ---------------------------------------------------------------------

    def storage(self, bucket: str):
        """pipeline_src.ingest.GCSStorage over this hook's authenticated client."""
        from pipeline_src.ingest import GCSStorage
        return GCSStorage(bucket, client=self.get_conn())

    def ingest_night(self, source_uri: str, night, spans_dir, quarantine_dir, **kwargs):
        """pipeline_src.ingest.ingest_night with this hook's client for a gs:// source."""
        from pipeline_src import ingest
        kind, where, _ = ingest.parse_source(source_uri)
        storage = self.storage(where) if kind == "gs" else None
        return ingest.ingest_night(source_uri, night, spans_dir, quarantine_dir,
                                   storage=storage, **kwargs)

    def catch_up_late_uploads(self, source_uri: str, night, spans_dir, quarantine_dir,
                              **kwargs):
        """pipeline_src.ingest.late.catch_up with this hook's client for a gs:// source."""
        from pipeline_src import ingest
        from pipeline_src.ingest import late
        kind, where, _ = ingest.parse_source(source_uri)
        storage = self.storage(where) if kind == "gs" else None
        return late.catch_up(source_uri, night, spans_dir, quarantine_dir,
                             storage=storage, **kwargs)


def split_gs(uri: str) -> tuple[str, str]:
    """gs://bucket/some/prefix/ -> ("bucket", "some/prefix/")."""
    if not uri.startswith("gs://"):
        raise ValueError(f"not a gs:// URI: {uri!r}")
    bucket, _, prefix = uri[len("gs://"):].partition("/")
    return bucket, prefix
