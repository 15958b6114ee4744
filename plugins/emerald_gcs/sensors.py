"""NightUploadCompleteSensor: waits until tonight's folder is complete, deferred by default.

Two completion rules (`triggers.UploadWatch`, one rule for both modes):
  * ``quiet``  - no new object under the night's prefix for ``quiet_seconds``
    (and at least ``min_objects``), as the provider's
    ``GCSUploadSessionCompleteSensor`` decides;
  * ``marker`` - ``{night}/_SUCCESS`` exists.
Deferrable (the default): one look in the worker, then the wait moves to the
triggerer (`triggers.NightUploadTrigger`) and frees the worker slot for the
hours Toto may take. ``deferrable=False`` pokes in the worker instead. Both go
through ``EmeraldGCSHook``, so they work against the emulator too. For a local
source the folder existing (``quiet``) or the marker file existing
(``marker``) is enough. On timeout the task fails with a message naming the
night's prefix and the rule it waited for.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any, Optional, Sequence

from airflow.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
from airflow.sensors.base import BaseSensorOperator

from emerald_gcs._common import (
    DEFAULT_CORPUS_ONLY, DEFAULT_NIGHT, default_source, is_true, night_uri_template)
from emerald_gcs.triggers import MARKER, QUIET, MissingBucket, NightUploadTrigger, UploadWatch
from pipeline_src.names import UPLOADS_COMPLETE_MARKER as MARKER_NAME

COMPLETION_RULES = (QUIET, MARKER)


class NightUploadCompleteSensor(BaseSensorOperator):
    """Succeeds once ``{source}/toto/{night}/`` is complete.

    :param source: local path or ``gs://bucket/prefix`` (templated; default ``paths.source``).
    :param night: ``YYYY-MM-DD`` (templated; default ``pipeline_src.names.NIGHT``: the param, else ``ds``).
    :param completion: ``quiet`` | ``marker`` (default ``ingest.completion``).
    :param quiet_seconds: inactivity period for ``quiet`` (default ``ingest.quiet_seconds``).
    :param min_objects: objects needed before a quiet period counts (default 1).
    :param marker_name: the marker object for ``marker`` (default ``_SUCCESS``).
    :param corpus_only: templated; true on the bootstrap night: nothing to wait for.
    :param timeout: seconds before failing (default ``ingest.timeout_seconds``).
    :param poke_interval: seconds between listings (default 60).
    :param deferrable: wait in the triggerer (default True); False: poke in the worker.
    :param gcp_conn_id: Airflow connection for GCS (``google_cloud_default``).
    ``quiet`` keeps its state between looks, so without deferral it runs in
    ``poke`` mode only; ``marker`` may also use ``mode="reschedule"``.
    """

    template_fields: Sequence[str] = ("source", "night", "night_prefix", "corpus_only")
    ui_color = "#f0eee4"

    def __init__(self, *, source: Optional[str] = None, night: str = DEFAULT_NIGHT,
                 completion: Optional[str] = None, quiet_seconds: Optional[float] = None,
                 min_objects: int = 1, marker_name: str = MARKER_NAME,
                 gcp_conn_id: str = "google_cloud_default",
                 impersonation_chain: Optional[str] = None,
                 timeout: Optional[float] = None, poke_interval: float = 60,
                 deferrable: bool = True,
                 corpus_only: Any = DEFAULT_CORPUS_ONLY, **kwargs: Any) -> None:
        cfg = None
        if completion is None or quiet_seconds is None or timeout is None:
            from pipeline_src.config import load_config  # PyYAML only
            cfg = load_config().ingest
        completion = completion or cfg.completion
        if completion not in COMPLETION_RULES:
            raise ValueError(f"completion {completion!r} is not one of {COMPLETION_RULES}")
        if completion == QUIET and kwargs.get("mode") == "reschedule":
            raise ValueError("completion='quiet' keeps state between pokes: use mode='poke' "
                             "or deferrable=True")
        super().__init__(timeout=timeout if timeout is not None else cfg.timeout_seconds,
                         poke_interval=poke_interval, **kwargs)
        self.source = source or default_source()
        self.night = night
        self.night_prefix = night_uri_template(self.source, night)   # shown in the UI
        self.completion = completion
        self.quiet_seconds = float(quiet_seconds if quiet_seconds is not None
                                   else cfg.quiet_seconds)
        self.min_objects = min_objects
        self.marker_name = marker_name
        self.gcp_conn_id = gcp_conn_id
        self.impersonation_chain = impersonation_chain
        self.deferrable = deferrable
        self.corpus_only = corpus_only
        self._watch: Optional[UploadWatch] = None

    def watch(self) -> UploadWatch:
        """The completion rule for the rendered night (kept between pokes)."""
        if self._watch is None:
            self._watch = UploadWatch(
                night_prefix=self.night_prefix, completion=self.completion,
                quiet_seconds=self.quiet_seconds, min_objects=self.min_objects,
                marker_name=self.marker_name, gcp_conn_id=self.gcp_conn_id,
                impersonation_chain=self.impersonation_chain)
        return self._watch

    def poke(self, context) -> bool:
        if is_true(self.corpus_only):
            self.log.info("corpus-only night: not waiting for %s", self.night_prefix)
            return True
        self.log.info("looking at %s (%s)", self.night_prefix, self.watch().describe())
        try:
            return self.watch().complete()
        except MissingBucket as exc:      # a typo in the source: retrying cannot help
            raise AirflowFailException(str(exc)) from exc

    def execute(self, context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise self._timeout(str(exc)) from exc
        if self.poke(context):      # already complete (or nothing to wait for): no deferral
            return None
        deadline = time.time() + self.timeout
        self.log.info("deferring: the triggerer waits for %s (%s) until %s", self.night_prefix,
                      self.watch().describe(),
                      dt.datetime.fromtimestamp(deadline, dt.timezone.utc).isoformat())
        self.defer(
            trigger=NightUploadTrigger(dataclasses.asdict(self.watch()), self.poke_interval,
                                       deadline),
            method_name="execute_complete",
            # A backstop: the trigger itself reports the timeout, with the night's name.
            timeout=dt.timedelta(seconds=self.timeout + max(60.0, 2 * self.poke_interval)))

    def execute_complete(self, context, event: Optional[dict] = None) -> None:
        status = (event or {}).get("status")
        if status == "complete":
            self.log.info("night %s complete at %s (%s objects)", self.night, self.night_prefix,
                          event.get("objects"))
            return
        if status == "timeout":
            raise self._timeout("")
        if "MissingBucket" in str((event or {}).get("message", "")):
            raise AirflowFailException(f"waiting for {self.night_prefix} failed: "
                                       f"{event['message']}")
        raise AirflowException(f"waiting for {self.night_prefix} failed: "
                               f"{(event or {}).get('message', event)}")

    def _timeout(self, detail: str) -> AirflowSensorTimeout:
        return AirflowSensorTimeout(
            f"Night {self.night} is not complete at {self.night_prefix} after "
            f"{self.timeout:g}s (waited for: {self.watch().describe()}). {detail}".rstrip())
