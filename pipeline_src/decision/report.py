"""What happened in one night: read from MLMD and the run's artifacts, not guessed paths.

`night_summary()` is what `emerald run --json` prints and what the demo
tabulates.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Optional, Sequence

from pipeline_src import features
from pipeline_src.config import Config
from pipeline_src.decision import blessing as blessing_lib
from pipeline_src.names import (ALERTS_FILE, EXAMPLE_GEN, EXAMPLE_VALIDATOR,
                                FEATURE_SUMMARY_FILE, NIGHT_REPORT_ROUTE, REPORT_FILE,
                                SPLIT_COUNTS,
                                STATISTICS_GEN, SUMMARY_FILE, TRAINER)
from pipeline_src.validation import summary as feature_summary

COMPARISONS_TYPE = "EmeraldDistributionComparisons"   # the detector's artifact type
_VALUE_RE = re.compile(r"is ([0-9.eE+-]+).*?threshold ([0-9.eE+-]+)", re.S)


def run_outputs(store, tfx_run_id: str) -> dict[str, list[tuple[str, Any]]]:
    """Node id -> [(artifact type name, artifact)] output by this run's completed executions."""
    from ml_metadata.proto import metadata_store_pb2

    context = store.get_context_by_type_and_name("pipeline_run", tfx_run_id)
    if context is None:
        return {}
    node_type = store.get_context_type("node").id
    types = {t.id: t.name for t in store.get_artifact_types()}
    complete = {metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED}
    outputs: dict[str, list[tuple[str, Any]]] = {}
    for execution in store.get_executions_by_context(context.id):
        if execution.last_known_state not in complete:
            continue
        node_id = next(c.name.split(".", 1)[1] for c in store.get_contexts_by_execution(execution.id)
                       if c.type_id == node_type)
        artifact_ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
                        if e.type == metadata_store_pb2.Event.OUTPUT]
        for artifact in store.get_artifacts_by_id(artifact_ids):
            outputs.setdefault(node_id, []).append((types[artifact.type_id], artifact))
    return outputs


def open_store(config: Config):
    from ml_metadata.metadata_store import metadata_store

    from pipeline_src.metadata import metadata_connection_config

    return metadata_store.MetadataStore(metadata_connection_config(config))


def _anomaly_findings(uri: str) -> list[dict[str, Any]]:
    """One finding per (split or split pair, feature, reason) in an ExampleAnomalies artifact."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    findings = []
    for entry in sorted(tf.io.gfile.listdir(uri)):
        name = entry.rstrip("/")
        path = os.path.join(uri, name, "SchemaDiff.pb")
        if not tf.io.gfile.exists(path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
        where = name.split("-", 1)[1]
        measured = {}
        for info in anomalies.drift_skew_info:
            feature = ".".join(info.path.step)
            for m in list(info.drift_measurements) + list(info.skew_measurements):
                measured[feature] = (m.value, m.threshold)
        for feature, info in sorted(anomalies.anomaly_info.items()):
            for reason in info.reason:
                finding = {
                    "where": where, "feature": feature,
                    "type": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                    "description": reason.description or reason.short_description,
                }
                value = measured.get(feature)
                match = _VALUE_RE.search(reason.description or "")
                if value is None and match:
                    value = (float(match.group(1)), float(match.group(2)))
                if value is not None:
                    finding["value"], finding["threshold"] = float(value[0]), float(value[1])
                findings.append(finding)
        if anomalies.HasField("dataset_anomaly_info"):
            for reason in anomalies.dataset_anomaly_info.reason:
                findings.append({"where": where, "feature": "(dataset)",
                                 "type": anomalies_pb2.AnomalyInfo.Type.Name(reason.type),
                                 "description": reason.description or reason.short_description})
    return findings


def _accuracy(uri: str) -> dict[str, Any]:
    import tensorflow_model_analysis as tfma

    result: dict[str, Any] = {"overall": None, "slices": {}}
    for metrics in tfma.load_metrics(uri):
        key = tuple((kv.column, kv.bytes_value.decode() if kv.HasField("bytes_value")
                     else kv.int64_value if kv.HasField("int64_value") else kv.float_value)
                    for kv in metrics.slice_key.single_slice_keys)
        for keys_and_values in metrics.metric_keys_and_values:
            if keys_and_values.key.name != "sparse_categorical_accuracy":
                continue
            if keys_and_values.key.is_diff or keys_and_values.key.model_name not in (
                    "", "candidate"):
                continue   # the baseline model's numbers, or candidate - baseline
            value = keys_and_values.value.double_value.value
            if not key:
                result["overall"] = value
            else:
                result["slices"][",".join(f"{c}={v}" for c, v in key)] = value
    return result


def night_summary(config: Config, tfx_run_id: str, night: str,
                  run_state: Optional[str] = None) -> dict[str, Any]:
    """The night's outcome, for `emerald run --json`, the demo and alerts.

    `evaluation` is the Evaluator's verdict; the gate turns an unblessed one into
    "model" findings (gate.model_findings), as it sorts the other lists into findings.
    """
    outputs = run_outputs(open_store(config), tfx_run_id)
    summary: dict[str, Any] = {
        "date": night, "tfx_run_id": tfx_run_id, "state": run_state,
        "splits": {}, "eval_mode": None, "rejected": 0,
        "anomalies": [], "skew": [], "drift": [], "prediction": [],
        "late_uploads": late_upload_findings(config.paths.reports, night),
        "validation": None,
        "accuracy": {"overall": None, "slices": {}},
        "blessed": False, "pushed": False, "pushed_version": None,
        "evaluation": None, "model_findings": [], "training": None,
    }
    blessing, evaluation_uri = None, None
    for node, kind, artifact in ((n, k, a) for n, items in outputs.items() for k, a in items):
        props = artifact.custom_properties
        if kind == "Examples" and SPLIT_COUNTS in props:   # tonight's span: the night's plan
            summary["splits"] = json.loads(props[SPLIT_COUNTS].string_value)
            summary["eval_mode"] = props["eval_mode"].string_value
            summary["previous_night"] = props["previous_night"].string_value
            summary["rejected"] = props["rejected_count"].int_value
        elif kind == "ExampleAnomalies" and node == EXAMPLE_VALIDATOR:
            summary["anomalies"].extend(_anomaly_findings(artifact.uri))
        elif kind == COMPARISONS_TYPE:
            from pipeline_src.components.distribution_validator import load_comparisons

            summary["validation"] = load_comparisons(artifact.uri)
            for kind_name, items in comparison_findings(summary["validation"]).items():
                summary[kind_name].extend(items)
        elif kind == "Model" and node == TRAINER:   # warm start or full retrain, and why
            from pipeline_src.model.warm_start import read_training_record

            summary["training"] = read_training_record(artifact.uri)
        elif kind == "ModelEvaluation":
            summary["accuracy"] = _accuracy(artifact.uri)
            evaluation_uri = artifact.uri
        elif kind == "ModelBlessing":
            summary["blessed"] = bool(props["blessed"].int_value) if "blessed" in props else False
            blessing = artifact
        elif kind == "PushedModel":
            summary["pushed"] = bool(props["pushed"].int_value) if "pushed" in props else False
            if summary["pushed"]:
                summary["pushed_version"] = props["pushed_version"].string_value
    summary["evaluation"] = blessing_lib.evaluation_verdict(config, blessing, evaluation_uri)
    summary["model_findings"] = blessing_lib.model_findings(summary["evaluation"])
    return summary


def late_upload_findings(reports_dir, night: str) -> list[dict[str, Any]]:
    """Earlier nights the ingest task caught up tonight, as findings (pipeline_src.ingest.late)."""
    from pipeline_src.ingest import late

    out = []
    for n in late.read_record(reports_dir, night):
        what = ("arrived after that night was ingested" if n["kind"] == "late"
                else "were never ingested (no DAG run that night)")
        out.append({
            "where": n["night"], "feature": f"toto/{n['night']}",
            "type": "LATE_UPLOADS" if n["kind"] == "late" else "MISSED_NIGHT",
            "description": (f"{n['count']} upload(s) {what}; ingested tonight "
                            f"({n['ingested']} accepted, {n['quarantined']} quarantined)"),
            "n_tonight": n["count"]})
    return out


def comparison_findings(validation: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The detector's fired comparisons, as the summary's skew / drift / prediction lists."""
    out: dict[str, list[dict[str, Any]]] = {"skew": [], "drift": [], "prediction": []}
    for c in validation.get("comparisons", []):
        if not c["fired"]:
            continue
        out[c["kind"]].append({
            "where": c["baseline"], "feature": c["feature"], "type": c["test"],
            "description": (f"{c['effect_name']} {c['effect']:.3f} > {c['min_effect']:.3f} "
                            f"and p {c['p_value']:.2e} < {c['alpha']:.2e}"),
            "value": c["effect"], "threshold": c["min_effect"], "effect_name": c["effect_name"],
            "p_value": c["p_value"], "alpha": c["alpha"], "n_tonight": c["n_tonight"],
            "n_baseline": c["n_baseline"]})
    return out


def format_table(summary: dict[str, Any]) -> str:
    """A readable block per night for the demo and `emerald run`."""
    def pct(value):
        return "-" if value is None else f"{value:.3f}"

    lines = [f"night {summary['date']}  ({summary.get('state') or 'unknown'})",
             f"  examples   {', '.join(f'{k} {v}' for k, v in summary['splits'].items())}"
             f"  (eval: {summary.get('eval_mode')}, rejected {summary.get('rejected', 0)})"]
    for kind in ("anomalies", "skew", "drift", "prediction", "late_uploads"):
        findings = summary.get(kind, [])
        if not findings:
            lines.append(f"  {kind:<10} none")
        for f in findings:
            value = (f" {f['value']:.3f} > {f['threshold']:.3f}" if "value" in f else "")
            p_value = f", p {f['p_value']:.1e}" if f.get("p_value") is not None else ""
            lines.append(f"  {kind:<10} {f['feature']} [{f['where']}] {f['type']}{value}{p_value}")
    accuracy = summary["accuracy"]
    lines.append(f"  accuracy   overall {pct(accuracy['overall'])}")
    for key, value in sorted(accuracy["slices"].items()):
        lines.append(f"             {key:<28} {pct(value)}")
    lines.append(f"  blessed    {summary['blessed']}   pushed {summary['pushed']}"
                 f"   version {summary['pushed_version'] or '-'}"
                 + ("   PUSH BLOCKED by the data gate" if summary.get("push_blocked") else "")
                 + ("   (force_push)" if summary.get("forced") else ""))
    if summary.get("training"):
        from pipeline_src.decision import render   # standard library only

        lines.append(f"  training   {render.training_text(summary['training'])}")
    basis = (summary.get("evaluation") or {}).get("basis")
    if basis:
        lines.append(f"  evaluation {basis}")
    for finding in summary.get("findings", []):     # the gate's, once report.write() ran
        if finding["kind"] == "model":
            lines.append(f"  model      {finding['message']}")
    if summary.get("report_url"):
        lines.append(f"  report     {summary['report_url']}")
    return "\n".join(lines)


def report_url(night: str, base_url: Optional[str] = None) -> str:
    if base_url is None:
        try:
            from airflow.configuration import conf
            base_url = conf.get("webserver", "base_url", fallback="http://localhost:8080")
        except Exception:  # noqa: BLE001 - outside Airflow: the local default
            base_url = "http://localhost:8080"
    return base_url.rstrip("/") + NIGHT_REPORT_ROUTE.format(night=night)


IMAGE_ROW = "encoded images (bytes)"


def _numeric_row(mean: float, sd: float, low: float, high: float) -> str:
    return f"mean {mean:.3f}, sd {sd:.3f}, min {low:.3f}, max {high:.3f}"


def _categorical_row(unique: int, top: Sequence[tuple[str, float]]) -> str:
    return f"{unique} unique; top: " + ", ".join(f"{v} {c:.0f}" for v, c in top[:4])


def _feature_rows(stats) -> dict[str, str]:
    """Feature -> a one-line description of its distribution in one split (TFDV's)."""
    rows = {}
    for feature in stats.features:
        name = ".".join(feature.path.step) or feature.name
        if feature.HasField("num_stats"):
            n = feature.num_stats
            rows[name] = _numeric_row(n.mean, n.std_dev, n.min, n.max)
        elif feature.HasField("bytes_stats") or (
                feature.HasField("string_stats") and feature.string_stats.top_values
                and feature.string_stats.top_values[0].value == "__BYTES_VALUE__"):
            rows[name] = IMAGE_ROW
        elif feature.HasField("string_stats"):
            rows[name] = _categorical_row(feature.string_stats.unique, [
                (v.value, v.frequency) for v in feature.string_stats.top_values])
    return rows


def _summary_rows(summary: feature_summary.Summary) -> dict[str, str]:
    """The same rows from a merged feature summary (ExampleGen's, span by span)."""
    rows = {features.IMAGE: IMAGE_ROW} if summary["count"] else {}
    for name in summary["numeric"]:
        n = feature_summary.numeric(summary, name)
        rows[name] = _numeric_row(n["mean"], n["std_dev"], n["min"], n["max"])
    for name in summary["categorical"]:
        top = feature_summary.top_values(summary, name)
        rows[name] = _categorical_row(len(top), top)
    return rows


def _training_summary(outputs: dict) -> Optional[feature_summary.Summary]:
    """The train split's summary that tonight's ExampleGen merged, None if it made none."""
    import tensorflow as tf

    for _, artifact in outputs.get(EXAMPLE_GEN, []):   # tonight's span holds the night's
        path = os.path.join(artifact.uri, FEATURE_SUMMARY_FILE)
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as handle:
                return json.load(handle).get(features.TRAIN)
    return None


def _statistics_html(config: Config, tfx_run_id: str) -> str:
    """Tonight (eval, TFDV's statistics) against training, as a plain table.

    Training's column is ExampleGen's summary, merged span by span, not TFDV's:
    StatisticsGen leaves the train split out, so its cost is tonight's (issue 11).
    TFDV's own Facets view needs scripts from the internet; a table reads anywhere.
    """
    import html

    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types.standard_artifacts import ExampleStatistics

    outputs = run_outputs(open_store(config), tfx_run_id)
    for _, artifact in outputs.get(STATISTICS_GEN, []):
        stats = ExampleStatistics()
        stats.set_mlmd_artifact(artifact)
        tonight = stats_artifact_utils.load_statistics(stats, features.EVAL).proto().datasets[0]
        training = _training_summary(outputs) or feature_summary.empty()
        left, right = _feature_rows(tonight), _summary_rows(training)
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(left.get(name, '-'))}</td>"
            f"<td>{html.escape(right.get(name, '-'))}</td></tr>"
            for name in sorted(set(left) | set(right)))
        return (f"<table class='statistics'><tr><th>feature</th><th>tonight (eval, "
                f"{tonight.num_examples} examples)</th><th>training ({training['count']} "
                f"examples)</th></tr>{body}</table>")
    return "<p>No statistics for this run (StatisticsGen did not complete).</p>"


def render_html(summary: dict[str, Any], statistics_html: str, comparisons_html: str = "",
                history: Sequence[dict[str, Any]] = ()) -> str:
    """The night's report; `history` (earlier nights' summaries, oldest first) feeds the
    accuracy trend, as it feeds the comparisons' trends in `comparisons_html`."""
    import html

    from pipeline_src.decision import render

    def row(*cells):
        return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"

    findings = summary.get("findings", [])
    finding_rows = "".join(row(f["kind"], f["feature"], f["statistic"],
                               "" if f.get("value") is None else f"{f['value']:.3f}",
                               "" if f.get("threshold") is None else f"{f['threshold']:.3f}",
                               f["where"], f["message"]) for f in findings)
    accuracy = summary["accuracy"]
    slice_rows = row("overall", "-" if accuracy["overall"] is None
                     else f"{accuracy['overall']:.3f}") + "".join(
        row(k, f"{v:.3f}") for k, v in sorted(accuracy["slices"].items()))
    alerts = summary.get("alerts") or {}
    alert_rows = "".join(row(channel, outcome) for channel, outcome in sorted(alerts.items()))
    verdict = ("push blocked" if summary.get("push_blocked") else
               f"pushed {summary['pushed_version']}" if summary["pushed"] else "not pushed")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Emerald night {html.escape(summary['date'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}} tr.finding td{{background:#fdecea}}
.charts{{display:flex;flex-wrap:wrap;gap:8px}}</style></head><body>
<h1>Emerald night {html.escape(summary['date'])}</h1>
<p>Run <code>{html.escape(str(summary.get('tfx_run_id')))}</code>, state
<b>{html.escape(str(summary.get('state')))}</b>; blessed <b>{summary['blessed']}</b>;
<b>{html.escape(verdict)}</b>{' (force_push)' if summary.get('forced') else ''}.</p>
<p>Examples: {html.escape(', '.join(f'{k} {v}' for k, v in summary['splits'].items()))}
(evaluation: {html.escape(str(summary.get('eval_mode')))}; rejected images
{html.escape(str(summary.get('rejected', 0)))}).</p>
<h2>Alerts</h2>
{f"<table class='alerts'><tr><th>channel</th><th>delivery</th></tr>{alert_rows}</table>"
 if alerts else "<p class='alerts'>No alert for this run.</p>"}
<h2>Data findings</h2>
<table><tr><th>kind</th><th>feature</th><th>statistic</th><th>value</th><th>threshold</th>
<th>where</th><th>finding</th></tr>{finding_rows or row('none', '', '', '', '', '', '')}</table>
<h2>Skew, drift and prediction drift: every comparison</h2>
{comparisons_html}
<h2>Evaluation (accuracy per slice)</h2>
{render.training_html(summary.get("training"))}
{render.blessing_html(summary.get("evaluation"))}
<table><tr><th>slice</th><th>accuracy</th></tr>{slice_rows}</table>
{render.accuracy_html(summary, history)}
<h2>Statistics: tonight against training</h2>
{statistics_html}
</body></html>
"""


def previous_night(summary: dict[str, Any]) -> Optional[str]:
    """Last night's date, or None: ExampleGen records "none" when there was no earlier night."""
    previous = summary.get("previous_night")
    return None if previous in (None, "none") else previous


def write(config: Config, summary: dict[str, Any], decision) -> dict[str, Any]:
    """Adds the gate's decision to the summary, writes summary.json and report.html.

    The alert's delivery is the one record_alerts() kept for this run, if any.
    """
    from pipeline_src.decision import render

    night = summary["date"]
    previous = previous_night(summary)
    blocking = {(f.kind, f.feature) for f in decision.blocking}
    summary["findings"] = []
    for finding in decision.findings():
        item = finding.as_dict(night, previous)
        item["blocking"] = (finding.kind, finding.feature) in blocking
        summary["findings"].append(item)
    acknowledged = {(f.kind, f.feature): f.acknowledged for f in decision.acknowledged}
    for c in render.comparisons(summary):    # what the trend charts mark
        c["acknowledged"] = acknowledged.get((c["kind"], c["feature"]))
        c["blocking"] = (c["kind"], c["feature"]) in blocking
    summary["push_blocked"] = decision.blocked
    summary["forced"] = decision.forced
    summary["report_url"] = report_url(night)
    summary["alerts"] = _recorded_alerts(config, summary) if decision.needs_alert else {}
    return _save(config, summary)


def record_alerts(config: Config, summary: dict[str, Any], alerts: dict[str, str]
                  ) -> dict[str, Any]:
    """Keeps the alert's delivery per channel beside the report, and re-writes the report.

    The gate writes the report before it sends; the night's teardown task
    re-writes it from MLMD later: both read the outcome back from this file.
    """
    keep_alerts(config, summary["date"], summary["tfx_run_id"], alerts)
    summary["alerts"] = dict(alerts)
    return _save(config, summary)


def keep_alerts(config: Config, night: str, tfx_run_id: str, alerts: dict[str, str]) -> None:
    """The delivery per channel beside the night's report, for the report to show: what
    the worker's gate task writes when a pod decided (it has no MLMD to re-render from)."""
    folder = config.paths.reports / night
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ALERTS_FILE).write_text(json.dumps(
        {"tfx_run_id": tfx_run_id, "channels": alerts}, indent=1, sort_keys=True))


def _recorded_alerts(config: Config, summary: dict[str, Any]) -> dict[str, str]:
    """Channel -> delivery of this run's alert, as record_alerts() kept it; {} when none."""
    try:
        record = json.loads((config.paths.reports / summary["date"] / ALERTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return dict(record.get("channels") or {}) if record.get(
        "tfx_run_id") == summary["tfx_run_id"] else {}


def _save(config: Config, summary: dict[str, Any]) -> dict[str, Any]:
    """Writes summary.json and report.html."""
    from pipeline_src.decision import render

    night = summary["date"]
    folder = config.paths.reports / night
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True))
    history = render.load_history(config.paths.reports, night)
    (folder / REPORT_FILE).write_text(render_html(
        summary, _statistics_html(config, summary["tfx_run_id"]),
        render.section_html(summary, history), history))
    return summary
