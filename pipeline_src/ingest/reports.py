"""What an ingestion returns: counts per tree (TreeReport) and for the night (IngestReport).

IngestReport is the contract of `emerald ingest --json` and of the Airflow
operator's return value (its keys must not change).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Optional


@dataclasses.dataclass
class TreeReport:
    """One span directory (a night or the corpus)."""
    span_dir: str
    source_uri: str
    listed: int = 0
    ingested: int = 0
    unchanged: int = 0
    quarantined: list = dataclasses.field(default_factory=list)   # [{"object", "reason"}]
    held: int = 0
    skipped: list = dataclasses.field(default_factory=list)       # [{"object", "reason"}]
    span_examples: int = 0
    unknown_labels: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)
    bytes_read: int = 0
    published: bool = True            # False: nothing had changed, nothing was written
    generation: Optional[str] = None  # the generation folder published (a span on gs://)

    def accounted(self) -> int:
        return self.ingested + self.unchanged + len(self.quarantined) + len(self.skipped)


@dataclasses.dataclass
class IngestReport:
    date: str
    source: str
    span_dir: str
    ingested: int
    unchanged: int
    quarantined: list
    span_examples: int
    held: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    unknown_labels: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)
    listed: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    corpus: Optional[dict] = None
    worker_processes: int = 0           # started besides this one (0: this one alone)
    worker_peak_mb: list = dataclasses.field(default_factory=list)
    worker_objects: list = dataclasses.field(default_factory=list)   # fetched by each worker

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)
