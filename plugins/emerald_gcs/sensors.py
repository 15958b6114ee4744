"""NightUploadCompleteSensor: waits until tonight's folder is complete.

Two completion rules, reusing the Google provider's sensors:
  * ``quiet``  - ``GCSUploadSessionCompleteSensor``: no new object under the
    night's prefix for ``quiet_seconds`` (and at least ``min_objects``);
  * ``marker`` - ``GCSObjectExistenceSensor`` on ``{night}/_SUCCESS``.
Both go through ``EmeraldGCSHook`` so they also work against the emulator.
For a local source the folder existing (``quiet``) or the marker file
existing (``marker``) is enough. On timeout the task fails with a message
naming the night's prefix.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Optional, Sequence

from airflow.exceptions import AirflowSensorTimeout
from airflow.sensors.base import BaseSensorOperator

from emerald_gcs._common import (
    DEFAULT_CORPUS_ONLY, DEFAULT_NIGHT, default_source, is_true, night_uri_template)
from pipeline_src.names import UPLOADS_COMPLETE_MARKER as MARKER_NAME

COMPLETION_RULES = ("quiet", "marker")


@functools.lru_cache(maxsize=None)
def _provider_sensor_classes():
    """The provider's sensors with their hook swapped for EmeraldGCSHook (imported lazily)."""
    from airflow.providers.google.cloud.sensors.gcs import (
        GCSObjectExistenceSensor, GCSUploadSessionCompleteSensor)

    from emerald_gcs.hooks import EmeraldGCSHook

    class QuietSensor(GCSUploadSessionCompleteSensor):
        def _get_gcs_hook(self):
            if not self.hook:
                self.hook = EmeraldGCSHook(gcp_conn_id=self.google_cloud_conn_id,
                                           impersonation_chain=self.impersonation_chain)
            return self.hook

    class MarkerSensor(GCSObjectExistenceSensor):
        def poke(self, context) -> bool:
            self.log.info("checking for %s in %s", self.object, self.bucket)
            hook = EmeraldGCSHook(gcp_conn_id=self.google_cloud_conn_id,
                                  impersonation_chain=self.impersonation_chain)
            return hook.exists(self.bucket, self.object, self.retry)

    return QuietSensor, MarkerSensor


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
    :param gcp_conn_id: Airflow connection for GCS (``google_cloud_default``).
    ``quiet`` keeps its state between pokes, so it runs in ``poke`` mode only
    (as the provider's sensor does); ``marker`` may use ``mode="reschedule"``.
    """

    template_fields: Sequence[str] = ("source", "night", "night_prefix", "corpus_only")
    ui_color = "#f0eee4"

    def __init__(self, *, source: Optional[str] = None, night: str = DEFAULT_NIGHT,
                 completion: Optional[str] = None, quiet_seconds: Optional[float] = None,
                 min_objects: int = 1, marker_name: str = MARKER_NAME,
                 gcp_conn_id: str = "google_cloud_default",
                 impersonation_chain: Optional[str] = None,
                 timeout: Optional[float] = None, poke_interval: float = 60,
                 corpus_only: Any = DEFAULT_CORPUS_ONLY, **kwargs: Any) -> None:
        cfg = None
        if completion is None or quiet_seconds is None or timeout is None:
            from pipeline_src.config import load_config  # PyYAML only
            cfg = load_config().ingest
        completion = completion or cfg.completion
        if completion not in COMPLETION_RULES:
            raise ValueError(f"completion {completion!r} is not one of {COMPLETION_RULES}")
        if completion == "quiet" and kwargs.get("mode") == "reschedule":
            raise ValueError("completion='quiet' keeps state between pokes: use mode='poke'")
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
        self.corpus_only = corpus_only
        self._inner = None

    # -- poking ---------------------------------------------------------------------------

    def _provider_sensor(self):
        if self._inner is None:
            from emerald_gcs.hooks import split_gs
            bucket, prefix = split_gs(self.night_prefix)
            quiet_cls, marker_cls = _provider_sensor_classes()
            common = dict(task_id=f"{self.task_id}__{self.completion}",
                          google_cloud_conn_id=self.gcp_conn_id,
                          impersonation_chain=self.impersonation_chain, deferrable=False)
            if self.completion == "quiet":
                self._inner = quiet_cls(bucket=bucket, prefix=prefix,
                                        inactivity_period=self.quiet_seconds,
                                        min_objects=self.min_objects, allow_delete=True, **common)
            else:
                self._inner = marker_cls(bucket=bucket, object=prefix + self.marker_name,
                                         **common)
        return self._inner

    def poke(self, context) -> bool:
        if is_true(self.corpus_only):
            self.log.info("corpus-only night: not waiting for %s", self.night_prefix)
            return True
        if not self.night_prefix.startswith("gs://"):
            folder = self.night_prefix
            if self.completion == "marker":
                return os.path.exists(os.path.join(folder, self.marker_name))
            return os.path.isdir(folder)
        return bool(self._provider_sensor().poke(context))

    def execute(self, context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as exc:
            rule = (f"no new upload for {self.quiet_seconds:g}s with at least "
                    f"{self.min_objects} object(s)" if self.completion == "quiet"
                    else f"marker {self.marker_name} present")
            raise AirflowSensorTimeout(
                f"Night {self.night} is not complete at {self.night_prefix} after "
                f"{self.timeout:g}s (waited for: {rule}). {exc}") from exc
