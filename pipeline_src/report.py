"""What happened in one night: read from MLMD and the run's artifacts, not guessed paths.

`night_summary()` is what `emerald run --json` prints and what the demo
tabulates.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

from pipeline_src.config import Config

SKEW_NODE = "SkewValidator"
DRIFT_NODE = "DriftValidator"
SCHEMA_NODE = "ExampleValidator"
_VALUE_RE = re.compile(r"is ([0-9.eE+-]+).*?threshold ([0-9.eE+-]+)", re.S)


def _node_of(artifact_uri: str, pipeline_root: str) -> str:
    """TFX writes outputs to {pipeline_root}/{node_id}/{output_key}/{execution_id}."""
    relative = os.path.relpath(artifact_uri, pipeline_root)
    return relative.split(os.sep)[0]


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


def _accuracy(uri: str, slices: tuple[str, ...]) -> dict[str, Any]:
    import tensorflow_model_analysis as tfma

    result: dict[str, Any] = {"overall": None, "slices": {}}
    for metrics in tfma.load_metrics(uri):
        key = tuple((kv.column, kv.bytes_value.decode() if kv.HasField("bytes_value")
                     else kv.int64_value if kv.HasField("int64_value") else kv.float_value)
                    for kv in metrics.slice_key.single_slice_keys)
        for keys_and_values in metrics.metric_keys_and_values:
            if keys_and_values.key.name != "sparse_categorical_accuracy":
                continue
            if keys_and_values.key.is_diff:
                continue
            value = keys_and_values.value.double_value.value
            if not key:
                result["overall"] = value
            else:
                result["slices"][",".join(f"{c}={v}" for c, v in key)] = value
    return result


def night_summary(config: Config, tfx_run_id: str, night: str,
                  run_state: Optional[str] = None) -> dict[str, Any]:
    """The night's outcome, for `emerald run --json`, the demo and alerts."""
    from ml_metadata.metadata_store import metadata_store

    from pipeline_src.node import metadata_connection_config

    store = metadata_store.MetadataStore(metadata_connection_config(config))
    context = store.get_context_by_type_and_name("pipeline_run", tfx_run_id)
    summary: dict[str, Any] = {
        "date": night, "tfx_run_id": tfx_run_id, "state": run_state,
        "splits": {}, "eval_mode": None, "rejected": 0,
        "anomalies": [], "skew": [], "drift": [],
        "accuracy": {"overall": None, "slices": {}},
        "blessed": False, "pushed": False, "pushed_version": None,
    }
    if context is None:
        return summary
    types = {t.id: t.name for t in store.get_artifact_types()}
    for artifact in store.get_artifacts_by_context(context.id):
        kind = types.get(artifact.type_id)
        props = artifact.custom_properties
        node = _node_of(artifact.uri, config.paths.pipeline_root)
        if kind == "Examples":
            summary["splits"] = json.loads(props["split_counts"].string_value)
            summary["eval_mode"] = props["eval_mode"].string_value
            summary["previous_night"] = props["previous_night"].string_value
            summary["rejected"] = props["rejected_count"].int_value
        elif kind == "ExampleAnomalies":
            findings = _anomaly_findings(artifact.uri)
            target = {SKEW_NODE: "skew", DRIFT_NODE: "drift"}.get(node, "anomalies")
            summary[target].extend(findings)
        elif kind == "ModelEvaluation":
            summary["accuracy"] = _accuracy(artifact.uri, config.evaluation.slices)
        elif kind == "ModelBlessing":
            summary["blessed"] = bool(props["blessed"].int_value) if "blessed" in props else False
        elif kind == "PushedModel":
            summary["pushed"] = bool(props["pushed"].int_value) if "pushed" in props else False
            if summary["pushed"]:
                summary["pushed_version"] = props["pushed_version"].string_value
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """A readable block per night for the demo and `emerald run`."""
    def pct(value):
        return "-" if value is None else f"{value:.3f}"

    lines = [f"night {summary['date']}  ({summary.get('state') or 'unknown'})",
             f"  examples   {', '.join(f'{k} {v}' for k, v in summary['splits'].items())}"
             f"  (eval: {summary.get('eval_mode')}, rejected {summary.get('rejected', 0)})"]
    for kind in ("anomalies", "skew", "drift"):
        findings = summary[kind]
        if not findings:
            lines.append(f"  {kind:<10} none")
        for f in findings:
            value = (f" {f['value']:.3f} > {f['threshold']:.3f}" if "value" in f else "")
            lines.append(f"  {kind:<10} {f['feature']} [{f['where']}] {f['type']}{value}")
    accuracy = summary["accuracy"]
    lines.append(f"  accuracy   overall {pct(accuracy['overall'])}")
    for key, value in sorted(accuracy["slices"].items()):
        lines.append(f"             {key:<28} {pct(value)}")
    lines.append(f"  blessed    {summary['blessed']}   pushed {summary['pushed']}"
                 f"   version {summary['pushed_version'] or '-'}")
    return "\n".join(lines)
