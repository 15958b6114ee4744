"""Which errors are worth retrying, and the backoff that retries them.

Every storage call goes through RetryPolicy.call, so that a permanent error
and an exhausted retry both surface as an IngestError naming the object.
"""
from __future__ import annotations

import dataclasses
import logging
import random
import time
from typing import Callable

from .errors import IngestError, TransientError

log = logging.getLogger(__package__)     # "pipeline_src.ingest": one logger for the package

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TransientError, TimeoutError, ConnectionError)):
        return True
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code in _TRANSIENT_STATUS:
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and status in _TRANSIENT_STATUS:
        return True
    mod = type(exc).__module__
    name = type(exc).__name__
    if mod.startswith(("requests", "urllib3")) and name in {
            "ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout",
            "ChunkedEncodingError", "ProtocolError", "ReadTimeoutError",
            "NewConnectionError", "RemoteDisconnected", "IncompleteRead"}:
        return True
    if mod.startswith("google.auth") and name == "TransportError":
        return True
    if mod.startswith("http.client") and name in {"RemoteDisconnected", "IncompleteRead"}:
        return True
    return False


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 7
    initial_seconds: float = 0.2
    max_seconds: float = 10.0
    multiplier: float = 2.0

    def call(self, fn: Callable, what: str, sleep: Callable[[float], None] = time.sleep):
        delay = self.initial_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except IngestError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                if not is_transient(exc):
                    raise IngestError(f"{what}: permanent error: {type(exc).__name__}: {exc}") from exc
                if attempt == self.attempts:
                    raise IngestError(
                        f"{what}: still failing after {attempt} attempts: "
                        f"{type(exc).__name__}: {exc}") from exc
                wait = min(self.max_seconds, delay) * (0.5 + random.random() / 2)
                log.warning("%s: transient %s (%s); retry %d/%d in %.2fs",
                            what, type(exc).__name__, exc, attempt, self.attempts - 1, wait)
                sleep(wait)
                delay *= self.multiplier
