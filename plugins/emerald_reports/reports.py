"""Reading the nightly reports: `{paths.reports}/{night}/summary.json` and `report.html`.

The night summary is written by the DAG's final `report` task
(`pipeline_src.decision.report.write_night_report`). Nothing here imports Flask or
Airflow, so the page logic is testable on its own. A night is only ever looked
up by a name that matches YYYY-MM-DD *and* is a directory in the reports
folder: no user-supplied path reaches the filesystem.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any, Optional

from pipeline_src.decision.accuracy_plots import natural_key   # standard library only
from pipeline_src.names import (  # noqa: E402 - plain strings
    NIGHT_NAME_PATTERN, REPORT_FILE, SUMMARY_FILE)

NIGHT_RE = re.compile(NIGHT_NAME_PATTERN)
LEGACY_FINDING_KEYS = ("anomalies", "skew", "drift")   # summaries written before `findings`
TREND_KINDS = ("skew", "drift", "prediction")


def reports_dir() -> Path:
    """`paths.reports` of the configuration (EMERALD_HOME / EMERALD_CONFIG honoured)."""
    from pipeline_src.config import load_config  # PyYAML only

    return Path(load_config().paths.reports)


def valid_night(night: Any) -> bool:
    """YYYY-MM-DD and a real date: the only shape a night name may have."""
    if not isinstance(night, str) or not NIGHT_RE.match(night):
        return False
    try:
        dt.date.fromisoformat(night)
    except ValueError:
        return False
    return True


def known_nights(root: os.PathLike) -> list[str]:
    """Night directories under the reports folder, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir()
                   if p.is_dir() and not p.is_symlink() and valid_night(p.name)), reverse=True)


def night_dir(root: os.PathLike, night: Any) -> Optional[Path]:
    """The night's directory, or None unless `night` is a valid name listed in the folder."""
    if not valid_night(night):
        return None
    # Compare against the listing rather than joining user input onto a path.
    for name in known_nights(root):
        if name == night:
            return Path(root) / name
    return None


def _read_json(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_summary(root: os.PathLike, night: Any) -> Optional[dict[str, Any]]:
    """The night's summary.json (normalised for display), or None."""
    directory = night_dir(root, night)
    if directory is None:
        return None
    data = _read_json(directory / SUMMARY_FILE)
    if data is None:
        return None
    return normalise(data, night, has_report=(directory / REPORT_FILE).is_file())


def report_file(root: os.PathLike, night: Any) -> Optional[Path]:
    """The night's report.html, or None (unknown night, bad name, no report)."""
    directory = night_dir(root, night)
    if directory is None:
        return None
    path = directory / REPORT_FILE
    if not path.is_file():
        return None
    # Belt and braces: the resolved file must stay inside the reports folder.
    resolved, base = path.resolve(), Path(root).resolve()
    if base not in resolved.parents:
        return None
    return path


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


def accuracy_charts(root: os.PathLike, summary: dict[str, Any]) -> str:
    """The night page's accuracy per slice and accuracy trend (render.accuracy_html), over the
    nights up to this one: the same pictures as its report.html, drawn from the summaries."""
    from pipeline_src.decision import render   # standard library only

    earlier = [n for n in known_nights(root) if n < summary["night"]][:render.TREND_NIGHTS - 1]
    history = [s for s in (load_summary(root, n) for n in reversed(earlier)) if s is not None]
    return render.accuracy_html(summary, history)


def list_summaries(root: os.PathLike) -> list[dict[str, Any]]:
    """Every night with a readable summary.json, newest first."""
    out = []
    for night in known_nights(root):
        summary = load_summary(root, night)
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
