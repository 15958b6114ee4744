"""Reading the nightly reports: `{paths.reports}/{night}/summary.json` and `report.html`,
from a folder or a gs:// prefix.

The night summary is written by the DAG's final `report` task
(`pipeline_src.decision.report.write_night_report`). Nothing here imports Flask or
Airflow, so the page logic is testable on its own. A night is only ever looked
up by a name that matches YYYY-MM-DD *and* was listed in the reports location:
no user-supplied path reaches the filesystem or the bucket.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Any, Optional

from pipeline_src.decision.accuracy_plots import natural_key   # standard library only
from pipeline_src.names import (  # noqa: E402 - plain strings
    NIGHT_NAME_PATTERN, REPORT_FILE, SUMMARY_FILE)

NIGHT_RE = re.compile(NIGHT_NAME_PATTERN)
LEGACY_FINDING_KEYS = ("anomalies", "skew", "drift")   # summaries written before `findings`
TREND_KINDS = ("skew", "drift", "prediction")


def reports_dir() -> str:
    """`paths.reports` of the configuration (EMERALD_HOME / EMERALD_CONFIG honoured)."""
    from pipeline_src.config import load_config  # PyYAML only

    return str(load_config().paths.reports)


def valid_night(night: Any) -> bool:
    """YYYY-MM-DD and a real date: the only shape a night name may have."""
    if not isinstance(night, str) or not NIGHT_RE.match(night):
        return False
    try:
        dt.date.fromisoformat(night)
    except ValueError:
        return False
    return True


class ReportsFolder:
    """The reports location, a folder or a gs:// prefix, listed once.

    Read through the ingestion's storage layer (google-cloud-storage for gs://,
    with its retries; no TensorFlow in the webserver). Only the files a listing
    found are ever read: a night or file name from a request is compared with
    the listing, never joined onto a path, and a local listing follows no link.
    """

    def __init__(self, root: "os.PathLike | str | ReportsFolder"):
        from pipeline_src.ingest.errors import SourceError
        from pipeline_src.ingest.sources import open_storage

        self.root = str(root)
        self.storage, base = open_storage(self.root)
        prefix = f"{base.strip('/')}/" if base.strip("/") else ""
        self.files: dict[str, dict[str, Any]] = {}
        try:
            listed = self.storage.list(prefix)
        except SourceError:          # no such folder or bucket (yet): no nights
            listed = []
        for info in listed:
            parts = info.name[len(prefix):].split("/")
            if len(parts) == 2 and valid_night(parts[0]):
                self.files.setdefault(parts[0], {})[parts[1]] = info

    def nights(self) -> list[str]:
        """Newest first."""
        return sorted(self.files, reverse=True)

    def has(self, night: Any, name: str) -> bool:
        return valid_night(night) and name in self.files.get(night, {})

    def read(self, night: Any, name: str) -> Optional[bytes]:
        """The file's bytes, or None (not listed, or gone since the listing)."""
        if not self.has(night, name):
            return None
        try:
            return self.storage.read(self.files[night][name])[1]
        except OSError:
            return None


def folder_of(root: "os.PathLike | str | ReportsFolder") -> ReportsFolder:
    return root if isinstance(root, ReportsFolder) else ReportsFolder(root)


def known_nights(root) -> list[str]:
    """Nights with at least one file in the reports location, newest first."""
    return folder_of(root).nights()


def load_summary(root, night: Any) -> Optional[dict[str, Any]]:
    """The night's summary.json (normalised for display), or None."""
    folder = folder_of(root)
    raw = folder.read(night, SUMMARY_FILE)
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:       # a torn write
        return None
    if not isinstance(data, dict):
        return None
    return normalise(data, night, has_report=folder.has(night, REPORT_FILE))


def report_html(root, night: Any) -> Optional[bytes]:
    """The night's report.html, or None (unknown night, bad name, no report)."""
    return folder_of(root).read(night, REPORT_FILE)


def normalise(data: dict[str, Any], night: str, has_report: bool = False) -> dict[str, Any]:
    """Fills the keys the page shows, whatever version of the writer made the file."""
    accuracy = data.get("accuracy") or {}
    if not isinstance(accuracy, dict):
        accuracy = {"overall": accuracy, "slices": {}}
    slices = accuracy.get("slices") or {}
    out = dict(data)
    out.update({
        "night": night,
        "date": data.get("date") or night,
        "state": data.get("state"),
        "accuracy": {"overall": accuracy.get("overall"),
                     "slices": (dict(sorted(slices.items(), key=lambda kv: natural_key(kv[0])))
                                if isinstance(slices, dict) else {})},
        "blessed": bool(data.get("blessed")),
        "pushed": bool(data.get("pushed")),
        "pushed_version": data.get("pushed_version"),
        "push_blocked": data.get("push_blocked"),
        "has_report": has_report,
    })
    written = data.get("findings")
    if isinstance(written, list):
        # As the gate decided them (blocking, acknowledged): shown, never re-derived.
        out["findings"] = [dict(f, type=f.get("anomaly")) for f in written if isinstance(f, dict)]
        return out
    findings = []
    for kind in LEGACY_FINDING_KEYS:
        items = data.get(kind) or []
        out[kind] = list(items) if isinstance(items, list) else []
        for item in out[kind]:
            if isinstance(item, dict):
                findings.append(dict(item, kind=kind, blocking=kind == "anomalies"))
    out["findings"] = findings
    return out


def trend_charts(summaries_newest_first: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Kind -> one inline SVG trend chart per property, over the listed nights."""
    from pipeline_src.decision import render   # standard library only

    nights = list(reversed(summaries_newest_first))[-render.TREND_NIGHTS:]
    return {kind: charts for kind in TREND_KINDS
            if (charts := render.trend_charts(nights, kind))}


def accuracy_charts(root, summary: dict[str, Any]) -> str:
    """The night page's accuracy per slice and accuracy trend (render.accuracy_html), over the
    nights up to this one: the same pictures as its report.html, drawn from the summaries."""
    from pipeline_src.decision import render   # standard library only

    folder = folder_of(root)
    earlier = [n for n in folder.nights() if n < summary["night"]][:render.TREND_NIGHTS - 1]
    history = [s for s in (load_summary(folder, n) for n in reversed(earlier)) if s is not None]
    return render.accuracy_html(summary, history)


def list_summaries(root) -> list[dict[str, Any]]:
    """Every night with a readable summary.json, newest first."""
    folder, out = folder_of(root), []
    for night in folder.nights():
        summary = load_summary(folder, night)
        if summary is not None:
            out.append(summary)
    return out


def fmt_metric(value: Any) -> str:
    """Accuracy for display: three decimals, '-' when missing."""
    if value is None:
        return "-"
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)
