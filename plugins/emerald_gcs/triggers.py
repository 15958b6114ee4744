"""NightUploadTrigger: waits for tonight's uploads in Airflow's triggerer, not in a worker slot.

The night's folder may take hours to fill; a poking sensor would hold a worker
slot (and on Cloud Composer, a Celery worker) all that time. Deferred to the
triggerer, the wait costs one coroutine among thousands.

Why not the Google provider's own deferrable sensors: their triggers use
`GCSAsyncHook` (gcloud-aio), which needs service-account credentials and
ignores the storage emulator the tests (and `make airflow`) use. This trigger
runs the same synchronous listing as the poking sensor (`EmeraldGCSHook`, or
the local filesystem) in a thread, so both modes share one rule:
`UploadWatch`.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any, AsyncIterator, Optional

from airflow.triggers.base import BaseTrigger, TriggerEvent

QUIET, MARKER = "quiet", "marker"


class MissingBucket(RuntimeError):
    """The source bucket does not exist (the sensor fails at once, without retries)."""


@dataclasses.dataclass
class UploadWatch:
    """Whether `{night_prefix}` is complete, from one observation to the next.

    ``quiet``: at least `min_objects` objects and no change for `quiet_seconds`
    (the rule of the provider's GCSUploadSessionCompleteSensor). ``marker``:
    the marker object exists. A local folder: it exists (``quiet``) or holds
    the marker (``marker``): local files are written by a finished process.
    """
    night_prefix: str
    completion: str
    quiet_seconds: float
    min_objects: int
    marker_name: str
    gcp_conn_id: str = "google_cloud_default"
    impersonation_chain: Optional[str] = None
    last_names: Optional[list] = None      # the last listing (quiet), serialisable
    last_change: Optional[float] = None    # time.time() of the last change seen

    def _hook(self):
        from emerald_gcs.hooks import EmeraldGCSHook
        return EmeraldGCSHook(gcp_conn_id=self.gcp_conn_id,
                              impersonation_chain=self.impersonation_chain)

    def complete(self, now: Optional[float] = None) -> bool:
        """One observation (blocking I/O: a listing or a stat)."""
        now = time.time() if now is None else now
        if not self.night_prefix.startswith("gs://"):
            folder = self.night_prefix
            if self.completion == MARKER:
                return os.path.exists(os.path.join(folder, self.marker_name))
            return os.path.isdir(folder)
        from emerald_gcs.hooks import split_gs
        bucket, prefix = split_gs(self.night_prefix)
        if self.last_change is None and self._hook().get_conn().lookup_bucket(bucket) is None:
            # A typo in the source, not a night still to come: waiting hours would hide it.
            raise MissingBucket(f"bucket gs://{bucket} does not exist (source of "
                                f"{self.night_prefix})")
        if self.completion == MARKER:
            self.last_change = self.last_change or now
            return self._hook().exists(bucket, prefix + self.marker_name)
        names = sorted(self._hook().list(bucket, prefix=prefix))
        if names != self.last_names:
            self.last_names, self.last_change = names, now
            return False
        return (len(names) >= self.min_objects
                and now - (self.last_change or now) >= self.quiet_seconds)

    def describe(self) -> str:
        if self.completion == QUIET:
            return (f"no new upload for {self.quiet_seconds:g}s with at least "
                    f"{self.min_objects} object(s)")
        return f"marker {self.marker_name} present"


class NightUploadTrigger(BaseTrigger):
    """Fires {"status": "complete"} once the watch says so, or {"status": "timeout"}
    at `deadline` (epoch seconds), so the sensor can fail with a message naming the night."""

    def __init__(self, watch: dict, poke_interval: float, deadline: float) -> None:
        super().__init__()
        self.watch = dict(watch)
        self.poke_interval = float(poke_interval)
        self.deadline = float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"watch": self.watch, "poke_interval": self.poke_interval,
                 "deadline": self.deadline})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch = UploadWatch(**self.watch)
        while True:
            try:
                done = await asyncio.to_thread(watch.complete)
            except Exception as exc:  # noqa: BLE001 - a listing error: report it, the task fails
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if done:
                yield TriggerEvent({"status": "complete", "objects": len(watch.last_names or [])})
                return
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout"})
                return
            await asyncio.sleep(min(self.poke_interval, max(0.0, self.deadline - time.time())))
