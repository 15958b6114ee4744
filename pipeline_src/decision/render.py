"""The detector's part of a night report: every comparison, its picture, and the trend.

Pure functions over the night summaries (`summary.json`), so the night report
(pipeline_src/decision/report.py) and the Emerald reports page (plugins/emerald_reports)
draw the same pictures from the same records. Charts are inline SVG
(`plots`): the report is served sandboxed, with no scripts and no network.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from pipeline_src.decision import accuracy_plots, plots
from pipeline_src.locations import location
from pipeline_src.names import SUMMARY_FILE

TREND_NIGHTS = 14        # how many nights a trend chart shows, tonight included
KIND_TITLES = {"skew": "Skew: tonight against training",
               "drift": "Drift: tonight against last night",
               "prediction": "Prediction drift: the serving model's outputs tonight "
                             "against on its evaluation data"}


def comparisons(summary: dict[str, Any], kind: Optional[str] = None) -> list[dict[str, Any]]:
    validation = summary.get("validation") or {}
    return [c for c in validation.get("comparisons", []) if kind is None or c["kind"] == kind]


def load_history(reports_dir: Path, before_night: str, limit: int = TREND_NIGHTS - 1
                 ) -> list[dict[str, Any]]:
    """Up to `limit` earlier nights' summaries, oldest first (unreadable ones are left out)."""
    reports_dir = location(reports_dir)          # a folder or gs://
    if not reports_dir.is_dir():
        return []
    nights = sorted(p.name for p in reports_dir.iterdir()
                    if p.is_dir() and p.name < before_night and (p / SUMMARY_FILE).is_file())
    out = []
    for night in nights[-limit:] if limit else []:
        try:
            out.append(json.loads((reports_dir / night / SUMMARY_FILE).read_text()))
        except (OSError, ValueError):
            continue
    return out


def series(summaries: Iterable[dict[str, Any]], kind: str, feature: str) -> list[dict[str, Any]]:
    """One point per night: the effect (None when not tested), fired, acknowledged."""
    points = []
    for summary in summaries:
        match = next((c for c in comparisons(summary, kind) if c["feature"] == feature), None)
        points.append({"night": summary.get("date"),
                       "effect": None if match is None else match["effect"],
                       "fired": bool(match and match["fired"]),
                       "acknowledged": bool(match and match.get("acknowledged"))})
    return points


def trend_charts(summaries: Sequence[dict[str, Any]], kind: str) -> list[str]:
    """SVG trend charts, one per property of `kind`, the newest night's threshold drawn."""
    if not summaries:
        return []
    newest = comparisons(summaries[-1], kind)
    return [plots.trend_svg(c["feature"], series(summaries, kind, c["feature"]),
                            c["min_effect"], kind=kind) for c in newest]


def _verdict(c: dict[str, Any]) -> str:
    if c.get("acknowledged"):
        return "finding, acknowledged"
    if c["fired"]:
        return "FINDING (blocks)" if c.get("blocking") else "FINDING (warns)"
    if c["significant"]:
        return "significant, effect below the minimum"
    return "no change detected"


def _table(rows: Sequence[dict[str, Any]]) -> str:
    def cell(value) -> str:
        return f"<td>{html.escape(str(value))}</td>"

    body = "".join(
        f"<tr class='{'finding' if c['fired'] else 'quiet'}'>" + "".join(cell(v) for v in (
            c["kind"], c["feature"], c["baseline"], c["test"], c["effect_name"],
            f"{c['effect']:.3f}", f"{c['min_effect']:.2f}", f"{c['p_value']:.2e}",
            f"{c['alpha']:.1e}", c["n_tonight"], c["n_baseline"], _verdict(c))) + "</tr>"
        for c in rows)
    return ("<table class='comparisons'><tr><th>kind</th><th>property</th><th>baseline</th>"
            "<th>test</th><th>effect</th><th>value</th><th>minimum</th><th>p-value</th>"
            "<th>level</th><th>n tonight</th><th>n baseline</th><th>result</th></tr>"
            f"{body}</table>")


def section_html(summary: dict[str, Any], history: Sequence[dict[str, Any]]) -> str:
    """Every comparison of the night, then per kind the histograms and the trends."""
    validation = summary.get("validation")
    if not validation:
        return "<p>No distribution comparisons for this run (the validator did not complete).</p>"
    parts = [f"<p>{html.escape(str(validation['tests']))} tests tonight, each held to p &lt; "
             f"{validation['alpha']:.1e} (false-alarm rate "
             f"{html.escape(str(validation['false_alarm_rate']))} "
             f"per night, Bonferroni); a finding also needs an effect above the property's "
             f"minimum.</p>", _table(comparisons(summary))]
    for skipped in validation.get("skipped", []):
        parts.append(f"<p class='skipped'>{html.escape(skipped['kind'])} not tested: "
                     f"{html.escape(skipped['reason'])}.</p>")
    nights = list(history) + [summary]
    for kind, title in KIND_TITLES.items():
        rows = comparisons(summary, kind)
        if not rows:
            continue
        parts.append(f"<h3>{html.escape(title)}</h3><div class='charts histograms'>"
                     + "".join(plots.histogram_svg(c) for c in rows) + "</div>")
        parts.append(f"<h4>Trend over the last {len(nights)} night(s): effect per night, "
                     "the minimum dashed</h4><div class='charts trends'>"
                     + "".join(trend_charts(nights, kind)) + "</div>")
    return "\n".join(parts)


def accuracy_series(summaries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per night, as given (oldest first): overall None and no slices when the
    Evaluator did not complete, so the trend shows the night as a gap, not as a zero."""
    points = []
    for summary in summaries:
        accuracy = summary.get("accuracy")
        if not isinstance(accuracy, dict):              # a bare number (an older writer)
            accuracy = {"overall": accuracy, "slices": {}}
        slices = accuracy.get("slices")
        points.append({"night": summary.get("date"), "overall": accuracy.get("overall"),
                       "slices": dict(slices) if isinstance(slices, dict) else {}})
    return points


def accuracy_html(summary: dict[str, Any], history: Sequence[dict[str, Any]]) -> str:
    """Tonight's accuracy per slice, and accuracy over the earlier nights and tonight, both
    against the min_accuracy tonight's model was held to."""
    nights = list(history) + [summary]
    min_accuracy = (summary.get("evaluation") or {}).get("min_accuracy")
    return (f"<h3>Accuracy per slice tonight, and over the last {len(nights)} night(s): "
            "min_accuracy dashed</h3>"
            "<div class='charts accuracy' style='display:flex;flex-wrap:wrap;gap:8px;"
            "align-items:flex-start'>"
            + accuracy_plots.slice_accuracy_svg(summary.get("accuracy"), min_accuracy)
            + accuracy_plots.accuracy_trend_svg(accuracy_series(nights), min_accuracy)
            + "</div>")


def blessing_html(verdict: Optional[dict[str, Any]]) -> str:
    """One line: blessed or not, and against what (the first night has no baseline)."""
    if not verdict or not verdict.get("evaluated"):
        return "<p class='blessing'>The Evaluator did not complete for this run.</p>"
    against = (f"min_accuracy {verdict['min_accuracy']:.3f}" if not verdict["baseline_model"]
               else f"min_accuracy {verdict['min_accuracy']:.3f} and the baseline model "
                    f"{verdict['baseline_model']} (accuracy "
                    + ("unknown" if verdict["baseline_accuracy"] is None
                       else f"{verdict['baseline_accuracy']:.3f}")
                    + f", max_accuracy_drop {verdict['max_accuracy_drop']:.3f})")
    return (f"<p class='blessing'><b>{'Blessed' if verdict['blessed'] else 'NOT blessed'}</b>"
            f": {html.escape(str(verdict['basis']))}; held to {html.escape(against)}.</p>")


def training_text(record: Optional[dict[str, Any]]) -> str:
    """How tonight's model was trained: a warm start from the serving model (on what), or a
    full retrain and why (pipeline_src/model/warm_start.py writes the record)."""
    if not record:
        return "no training record (the Trainer did not complete, or predates warm starts)"
    if record.get("mode") == "warm_start":
        return (f"warm start from {record.get('base_model')}: {record.get('epochs')} epochs on "
                f"{record.get('new_images')} new + {record.get('replayed_images')} replayed "
                f"images ({record.get('reason')})")
    return (f"full retrain: {record.get('epochs')} epochs on {record.get('train_images')} "
            f"images ({record.get('reason')})")


def training_html(record: Optional[dict[str, Any]]) -> str:
    return f"<p class='training'><b>Training</b>: {html.escape(training_text(record))}.</p>"
