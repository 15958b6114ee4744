"""The night's summary read from a real ML Metadata store (SQLite), recorded as TFX records it.

The store is the one `pipeline_src.metadata` configures under EMERALD_HOME. Each node's
execution is attributed to the pipeline, the run ("pipeline_run", named by the TFX run id)
and the node (a "node" context named as the compiled IR names it, "<pipeline>.<node id>"),
with INPUT / OUTPUT events as TFX's launcher writes them and INTERNAL_OUTPUT events for the
resolver (what TFX's ResolverNodeHandler publishes). No TFX run, no ExampleAnomalies or
ModelEvaluation artifacts (reading those needs TFDV / TFMA).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_src.config import load_config
from pipeline_src.decision import report

REPO = Path(__file__).resolve().parents[3]
RUN = "manual__2026-01-02T02:00:00+00:00.7"           # the TFX run id: "{run_id}.{dag_run.id}"
OTHER_RUN = "scheduled__2026-01-01T02:00:00+00:00.6"  # last night, same pipeline and nodes
NIGHT = "2026-01-02"


def node_context_names() -> dict[str, str]:
    """Node id -> the "node" context name TFX records, read from the compiled IR."""
    ir = json.loads((REPO / "include" / "compiled" / "pipeline.json").read_text())
    names = {}
    for node in ir["nodes"]:
        pipeline_node = node["pipelineNode"]
        (name,) = [c["name"]["fieldValue"]["stringValue"]
                   for c in pipeline_node["contexts"]["contexts"] if c["type"]["name"] == "node"]
        names[pipeline_node["nodeInfo"]["id"]] = name
    return names


def comparison(kind, feature, baseline, effect, min_effect, p_value, alpha, fired,
               test="Kolmogorov-Smirnov, exact", effect_name="KS distance", n=(36, 120)):
    return {"kind": kind, "feature": feature, "type": "numeric", "baseline": baseline,
            "test": test, "effect_name": effect_name, "effect": effect,
            "min_effect": min_effect, "p_value": p_value, "alpha": alpha,
            "n_tonight": n[0], "n_baseline": n[1], "significant": p_value < alpha,
            "fired": fired, "details": {}}


TONIGHT_COMPARISONS = {
    "false_alarm_rate": 0.01, "tests": 5, "alpha": 0.002, "permutations": 9999,
    "night": NIGHT, "previous_night": "2026-01-01", "examples_uri": "/examples/7",
    "skipped": [],
    "comparisons": [
        comparison("skew", "aspect_ratio", "training", 0.75, 0.3, 1e-4, 0.002, True,
                   test="Kolmogorov-Smirnov, permutation (9999)"),
        comparison("skew", "brightness", "training", 0.5, 0.3, 0.01, 0.002, False),  # p too big
        comparison("skew", "sharpness", "training", 0.2, 0.3, 1e-5, 0.002, False),   # effect small
        comparison("drift", "mean_red", "toto 2026-01-01", 0.4, 0.25, 2.5e-6, 0.002, True,
                   n=(36, 36)),
        comparison("prediction", "predicted_class", "the serving model's evaluation data (model 3)",
                   0.6, 0.2, 1e-7, 0.002, True, test="chi-square",
                   effect_name="total variation distance", n=(36, 30)),
    ],
}
LAST_NIGHT_COMPARISONS = dict(TONIGHT_COMPARISONS, night="2026-01-01", comparisons=[
    comparison("skew", "pixel_area", "training", 0.9, 0.3, 1e-4, 0.002, True)])


class Store:
    """A real MLMD store with TFX's context, execution and artifact conventions."""

    def __init__(self, config, tmp_path: Path):
        from ml_metadata.proto import metadata_store_pb2 as pb

        self.pb = pb
        self.tmp = tmp_path
        self.store = report.open_store(config)
        self.node_names = node_context_names()
        self.type_ids = {}
        for name in ("pipeline", "pipeline_run", "node"):
            self.type_ids[name] = self.store.put_context_type(pb.ContextType(name=name))
        (self.pipeline,) = self._contexts("pipeline", [config.pipeline_name])
        self.runs = dict(zip((RUN, OTHER_RUN), self._contexts("pipeline_run", [RUN, OTHER_RUN])))
        self.nodes = dict(zip(self.node_names,
                              self._contexts("node", list(self.node_names.values()))))
        self.artifact_type_ids = {}
        self._uri = 0

    def _contexts(self, type_name, names):
        ids = self.store.put_contexts([self.pb.Context(type_id=self.type_ids[type_name], name=n)
                                       for n in names])
        return self.store.get_contexts_by_id(ids)

    def artifact(self, type_name, *, files=None, **custom):
        """An artifact of `type_name` with custom properties (str / int), and files in its uri."""
        pb = self.pb
        if type_name not in self.artifact_type_ids:
            self.artifact_type_ids[type_name] = self.store.put_artifact_type(
                pb.ArtifactType(name=type_name))
        self._uri += 1
        uri = self.tmp / "pipeline-root" / type_name / str(self._uri)
        uri.mkdir(parents=True)
        for name, text in (files or {}).items():
            (uri / name).write_text(text)
        artifact = pb.Artifact(type_id=self.artifact_type_ids[type_name], uri=str(uri),
                               state=pb.Artifact.LIVE)
        for key, value in custom.items():
            if isinstance(value, int):
                artifact.custom_properties[key].int_value = value
            else:
                artifact.custom_properties[key].string_value = value
        return artifact

    def execute(self, run, node_id, state="COMPLETE", outputs=(), inputs=(),
                internal_outputs=()):
        """One execution of a node in a run; returns {output key: the stored artifact}."""
        pb = self.pb
        execution_type = self.store.put_execution_type(
            pb.ExecutionType(name=f"emerald.test.{node_id}"))
        execution = pb.Execution(type_id=execution_type,
                                 last_known_state=getattr(pb.Execution, state))
        events, output_keys = [], []
        for event_type, items in ((pb.Event.INPUT, inputs), (pb.Event.OUTPUT, outputs),
                                  (pb.Event.INTERNAL_OUTPUT, internal_outputs)):
            for key, artifact in items:
                event = pb.Event(type=event_type)
                event.path.steps.add().key = key
                event.path.steps.add().index = 0
                events.append((artifact, event))
                output_keys.append(key if event_type == pb.Event.OUTPUT else None)
        _, artifact_ids, _ = self.store.put_execution(
            execution, events, [self.pipeline, self.runs[run], self.nodes[node_id]])
        stored = dict(zip(artifact_ids, self.store.get_artifacts_by_id(artifact_ids)))
        return {key: stored[i] for key, i in zip(output_keys, artifact_ids) if key}


def examples(store, **overrides):
    custom = {"split_counts": json.dumps({"train": 120, "eval": 36, "previous": 36}),
              "eval_mode": "newest_night", "previous_night": "2026-01-01", "rejected_count": 2,
              "night": NIGHT}
    custom.update(overrides)
    return store.artifact("Examples", **custom)


def comparisons(store, result):
    return store.artifact("EmeraldDistributionComparisons",
                          files={"comparisons.json": json.dumps(result)},
                          night=result["night"], tests=result["tests"])


def record_last_night(store):
    """Last night's run: blessed and pushed; its artifacts are tonight's resolver's answer."""
    ex = store.execute(OTHER_RUN, "ImageExampleGen", outputs=[("examples", examples(
        store, split_counts=json.dumps({"train": 100, "eval": 20, "previous": 20}),
        previous_night="none", rejected_count=0, night="2026-01-01"))])["examples"]
    store.execute(OTHER_RUN, "ImageDistributionValidator", inputs=[("examples", ex)],
                  outputs=[("comparisons", comparisons(store, LAST_NIGHT_COMPARISONS))])
    model = store.execute(OTHER_RUN, "Trainer", inputs=[("examples", ex)],
                          outputs=[("model", store.artifact("Model"))])["model"]
    blessing = store.execute(OTHER_RUN, "Evaluator", inputs=[("model", model)], outputs=[
        ("blessing", store.artifact("ModelBlessing", blessed=1))])["blessing"]
    store.execute(OTHER_RUN, "Pusher", inputs=[("model", model)], outputs=[
        ("pushed_model", store.artifact("PushedModel", pushed=1, pushed_version="1767232800"))])
    return model, blessing


@pytest.fixture
def config(emerald_home):
    config = load_config()
    assert config.paths.metadata.is_relative_to(emerald_home)   # a throwaway SQLite MLMD
    return config


@pytest.fixture
def store(config, tmp_path):
    return Store(config, tmp_path)


def test_the_summary_reads_this_runs_completed_outputs_only(config, store):
    model, blessing = record_last_night(store)
    # Tonight. The resolver hands on last night's blessed model (INTERNAL_OUTPUT, as TFX does).
    store.execute(RUN, "ServingModelResolver",
                  internal_outputs=[("model", model), ("model_blessing", blessing)])
    ex = store.execute(RUN, "ImageExampleGen", outputs=[("examples", examples(store))])["examples"]
    store.execute(RUN, "ImageDistributionValidator",
                  inputs=[("examples", ex), ("serving_model", model)],
                  outputs=[("comparisons", comparisons(store, TONIGHT_COMPARISONS))])
    new_model = store.execute(RUN, "Trainer", inputs=[("examples", ex)],
                              outputs=[("model", store.artifact("Model"))])["model"]
    store.execute(RUN, "Evaluator", inputs=[("model", new_model), ("baseline_model", model)],
                  outputs=[("blessing", store.artifact("ModelBlessing", blessed=1))])
    store.execute(RUN, "Pusher", inputs=[("model", new_model)], outputs=[
        ("pushed_model", store.artifact("PushedModel", pushed=1, pushed_version="1767319200"))])
    # Attempts that failed after the ones that completed (a cleared task run again): what
    # they wrote must not count.
    store.execute(RUN, "ImageExampleGen", state="FAILED", outputs=[("examples", examples(
        store, split_counts=json.dumps({"train": 1, "eval": 1}), eval_mode="hash",
        rejected_count=99))])
    store.execute(RUN, "ImageDistributionValidator", state="FAILED", outputs=[
        ("comparisons", comparisons(store, LAST_NIGHT_COMPARISONS))])
    store.execute(RUN, "Evaluator", state="FAILED",
                  outputs=[("blessing", store.artifact("ModelBlessing", blessed=0))])
    store.execute(RUN, "Pusher", state="FAILED",
                  outputs=[("pushed_model", store.artifact("PushedModel", pushed=0))])
    # A later execution of another run, on the same node contexts: must not leak in.
    store.execute(OTHER_RUN, "Pusher", outputs=[
        ("pushed_model", store.artifact("PushedModel", pushed=1, pushed_version="999"))])

    outputs = report.run_outputs(store.store, RUN)
    assert {node: [kind for kind, _ in items] for node, items in outputs.items()} == {
        "ImageExampleGen": ["Examples"],
        "ImageDistributionValidator": ["EmeraldDistributionComparisons"],
        "Trainer": ["Model"],
        "Evaluator": ["ModelBlessing"],
        "Pusher": ["PushedModel"],
    }   # no resolver (internal outputs), no inputs, no failed attempt, no other run

    summary = report.night_summary(config, RUN, NIGHT, run_state="failed")
    assert summary["date"] == NIGHT and summary["tfx_run_id"] == RUN
    assert summary["state"] == "failed"
    assert summary["splits"] == {"train": 120, "eval": 36, "previous": 36}
    assert (summary["eval_mode"], summary["previous_night"], summary["rejected"]) == (
        "newest_night", "2026-01-01", 2)
    assert summary["validation"] == TONIGHT_COMPARISONS
    assert summary["skew"] == [{
        "where": "training", "feature": "aspect_ratio",
        "type": "Kolmogorov-Smirnov, permutation (9999)",
        "description": "KS distance 0.750 > 0.300 and p 1.00e-04 < 2.00e-03",
        "value": 0.75, "threshold": 0.3, "effect_name": "KS distance", "p_value": 1e-4,
        "alpha": 0.002, "n_tonight": 36, "n_baseline": 120}]
    assert summary["drift"] == [{
        "where": "toto 2026-01-01", "feature": "mean_red", "type": "Kolmogorov-Smirnov, exact",
        "description": "KS distance 0.400 > 0.250 and p 2.50e-06 < 2.00e-03",
        "value": 0.4, "threshold": 0.25, "effect_name": "KS distance", "p_value": 2.5e-6,
        "alpha": 0.002, "n_tonight": 36, "n_baseline": 36}]
    assert summary["prediction"] == [{
        "where": "the serving model's evaluation data (model 3)", "feature": "predicted_class",
        "type": "chi-square",
        "description": "total variation distance 0.600 > 0.200 and p 1.00e-07 < 2.00e-03",
        "value": 0.6, "threshold": 0.2, "effect_name": "total variation distance",
        "p_value": 1e-7, "alpha": 0.002, "n_tonight": 36, "n_baseline": 30}]
    assert summary["anomalies"] == []
    assert summary["accuracy"] == {"overall": None, "slices": {}}
    assert (summary["blessed"], summary["pushed"], summary["pushed_version"]) == (
        True, True, "1767319200")


def test_a_night_not_blessed_does_not_borrow_the_serving_models_blessing(config, store):
    """The resolver's ModelBlessing (last night's, blessed) is not tonight's verdict."""
    model, blessing = record_last_night(store)
    store.execute(RUN, "ServingModelResolver",
                  internal_outputs=[("model", model), ("model_blessing", blessing)])
    store.execute(RUN, "ImageExampleGen", outputs=[("examples", examples(store))])
    store.execute(RUN, "Evaluator", inputs=[("baseline_model", model)],
                  outputs=[("blessing", store.artifact("ModelBlessing", blessed=0))])
    store.execute(RUN, "Pusher", outputs=[("pushed_model", store.artifact("PushedModel",
                                                                          pushed=0))])
    summary = report.night_summary(config, RUN, NIGHT)
    assert (summary["blessed"], summary["pushed"], summary["pushed_version"]) == (
        False, False, None)
    assert summary["validation"] is None            # the validator did not complete tonight
    assert summary["skew"] == summary["drift"] == summary["prediction"] == []


def test_an_unknown_run_reads_as_nothing(config, store):
    record_last_night(store)
    assert report.run_outputs(store.store, "manual__never.1") == {}
    summary = report.night_summary(config, "manual__never.1", NIGHT)
    assert summary["splits"] == {} and summary["validation"] is None
    assert (summary["blessed"], summary["pushed"], summary["pushed_version"]) == (
        False, False, None)


SCRIPT = "<script>alert(1)</script>"


def test_names_from_the_data_are_escaped_in_report_html(config, store):
    """A label, a property, a split, a baseline and a file name that are HTML stay text."""
    from pipeline_src.decision import gate

    validation = dict(TONIGHT_COMPARISONS, skipped=[
        {"kind": "drift", "reason": f"no readable image in {SCRIPT}.jpg"}], comparisons=[
        dict(comparison("skew", SCRIPT, f"training {SCRIPT}", 0.75, 0.3, 1e-4, 0.002, True),
             details={"histogram": {"categories": [SCRIPT, "lion"], "tonight": [0.6, 0.4],
                                    "baseline": [0.1, 0.9]}})])
    summary = {
        "date": NIGHT, "tfx_run_id": RUN, "state": "running", "eval_mode": SCRIPT,
        "splits": {SCRIPT: 3, "eval": 36}, "rejected": 0, "previous_night": "2026-01-01",
        "anomalies": [{"where": SCRIPT, "feature": SCRIPT, "type": "SCHEMA_NEW_COLUMN",
                       "description": f"values missing from the schema: {SCRIPT}"}],
        "validation": validation, **report.comparison_findings(validation),
        "accuracy": {"overall": 0.9, "slices": {f"label={SCRIPT}": 0.5}},
        "blessed": False, "pushed": False, "pushed_version": None}
    last_night = dict(summary, date="2026-01-01", validation=dict(validation, night="2026-01-01"))
    (config.paths.reports / "2026-01-01").mkdir(parents=True)
    (config.paths.reports / "2026-01-01" / "summary.json").write_text(json.dumps(last_night))
    decision = gate.decide(gate.findings_from_summary(summary), config.gate, force_push=False)
    report.write(config, summary, decision)
    report.record_alerts(config, summary, {"email": f"failed: SMTPDataError: {SCRIPT}"})

    page = (config.paths.reports / NIGHT / "report.html").read_text()
    assert "<script" not in page.lower()
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert page.count(escaped) >= 8, page      # finding, split, slice, table, reason, alerts...
    assert f"label={escaped}" in page and f"no readable image in {escaped}.jpg" in page
    assert f"failed: SMTPDataError: {escaped}" in page
    assert 'data-feature="&lt;script&gt;' in page      # the SVG charts' own attributes
    assert page.count('class="emerald-slice-accuracy"') == page.count(
        'class="emerald-accuracy-trend"') == 1          # tonight per slice, and the two nights
