"""The failures of ingestion, in a module of their own so that every other module of
the package can raise them without importing one another."""
from __future__ import annotations


class IngestError(RuntimeError):
    """A permanent failure: the night cannot be ingested. The message names the object."""


class TransientError(RuntimeError):
    """A failure worth retrying (checksum mismatch, throttling, 5xx, timeouts)."""


class SourceError(IngestError):
    """The source itself is wrong (no such bucket or directory, no corpus): retrying the
    same night will not help until someone fixes the source or the configuration."""
