"""Astronomer-style integrity tests for every DAG, plus Emerald's own promises."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from airflow.models import DagBag

from pipeline_src import names
from pipeline_src.orchestration import compile as compiled
from pipeline_src.config import REPO_ROOT, load_config

DAGS = REPO_ROOT / "dags"


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS), include_examples=False)


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG found"


def test_every_dag_has_owner_retries_tags_doc_and_schedule(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        assert dag.schedule_interval is not None, dag_id
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", (dag_id, task.task_id)
            if task.task_id == names.DATA_GATE:
                # A push blocked by the data: retrying does not change the data.
                assert task.retries == 0, (dag_id, task.task_id)
            else:
                assert task.retries >= 2, (dag_id, task.task_id)


def test_nightly_dag_follows_the_config(dagbag):
    config = load_config()
    dag = dagbag.dags[config.dag.dag_id]
    assert dag.schedule_interval == config.dag.schedule == "0 2 * * *"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert set(dag.tags) == set(config.dag.tags)
    assert all(t.retry_exponential_backoff for t in dag.tasks)
    assert "night" in dag.params


def test_one_task_per_pipeline_node_with_the_pipelines_dependencies(dagbag):
    dag = dagbag.dags[load_config().dag.dag_id]
    graph = compiled.task_graph(compiled.load_ir_dict())
    node_tasks = {t.task_id: t for t in dag.tasks if t.task_id in graph}
    assert set(node_tasks) == set(graph)
    for node_id, upstream in graph.items():
        task_upstream = {u for u in node_tasks[node_id].upstream_task_ids if u in graph}
        assert task_upstream == set(upstream), node_id
    assert {"ImageExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
            "ImageDistributionValidator", "Transform", "Trainer",
            "ServingModelResolver", "Evaluator", "Pusher"} <= set(graph)


# The DAG's edges, written down by hand (not derived from task_graph(), which builds them).
# What README.md's "How it fits together" diagram draws:
README_DIAGRAM_EDGES = {
    ("wait_for_night", "ingest_night"),
    ("ingest_night", "ImageExampleGen"),
    ("ImageExampleGen", "StatisticsGen"),
    ("StatisticsGen", "ExampleValidator"),
    ("ImageExampleGen", "ImageDistributionValidator"),
    ("ServingModelResolver", "ImageDistributionValidator"),
    ("ImageExampleGen", "Transform"),
    ("ImportSchemaGen", "Transform"),
    ("Transform", "Trainer"),
    ("Trainer", "Evaluator"),
    ("ServingModelResolver", "Evaluator"),
    ("Evaluator", "Pusher"),
    ("data_gate", "Pusher"),
}
# The data gate, as the README's text places it: after both validators and the Evaluator
# (an unblessed model is a "model" finding), before Pusher.
GATE_EDGES = {("ExampleValidator", "data_gate"), ("ImageDistributionValidator", "data_gate"),
              ("Evaluator", "data_gate")}
# The inputs the diagram leaves out, read off include/compiled/pipeline.json's upstreamNodes:
# the schema feeds StatisticsGen, ExampleValidator and Trainer, the examples Trainer and
# Evaluator, the model Pusher, the serving model Trainer.
IR_ONLY_EDGES = {
    # The schema's image_domain keeps the encoded images out of TFDV's top-k counts.
    ("ImportSchemaGen", "StatisticsGen"),
    ("ImportSchemaGen", "ExampleValidator"),
    ("ImportSchemaGen", "Trainer"),
    ("ImageExampleGen", "Trainer"),
    ("ImageExampleGen", "Evaluator"),
    ("Trainer", "Pusher"),
    # The serving model warm-starts the Trainer (its base_model input, the Resolver's model).
    ("ServingModelResolver", "Trainer"),
}
DAG_ONLY = {"wait_for_night", "ingest_night", "data_gate", "night_report"}


def _edges(dag) -> set[tuple[str, str]]:
    return {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}


def test_the_pipelines_edges_are_those_of_the_compiled_ir():
    """The hand-written node edges against the IR's own JSON (not task_graph())."""
    ir = json.loads((REPO_ROOT / "include" / "compiled" / "pipeline.json").read_text())
    ir_edges = {(up, node["pipelineNode"]["nodeInfo"]["id"])
                for node in ir["nodes"] for up in node["pipelineNode"].get("upstreamNodes", [])}
    expected = {(a, b) for a, b in README_DIAGRAM_EDGES | IR_ONLY_EDGES
                if not {a, b} & DAG_ONLY}
    assert ir_edges == expected
    # Each upstream also lists the node downstream of it.
    down_edges = {(node["pipelineNode"]["nodeInfo"]["id"], down) for node in ir["nodes"]
                  for down in node["pipelineNode"].get("downstreamNodes", [])}
    assert down_edges == expected


def test_the_dag_has_exactly_the_documented_edges(dagbag):
    dag = dagbag.dags[load_config().dag.dag_id]
    edges = _edges(dag)
    assert README_DIAGRAM_EDGES <= edges, sorted(README_DIAGRAM_EDGES - edges)
    assert GATE_EDGES <= edges, sorted(GATE_EDGES - edges)
    # Nothing else but the teardown report's edges (every task feeds it; checked below).
    others = {e for e in edges if e[1] != "night_report"}
    assert others == README_DIAGRAM_EDGES | GATE_EDGES | IR_ONLY_EDGES
    assert not [e for e in edges if e[0] == "night_report"]


def test_parsing_the_dag_imports_neither_tensorflow_nor_tfx():
    probe = (
        "import json, sys\n"
        "from airflow.models import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS)!r}, include_examples=False)\n"
        "assert not bag.import_errors, bag.import_errors\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tfx', 'tensorflow_transform', 'tensorflow_data_validation', "
        "'tensorflow_model_analysis', 'apache_beam', 'keras'))\n"
        "print(json.dumps({'dags': sorted(bag.dag_ids), 'heavy': heavy}))\n")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True, env=os.environ.copy()).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["dags"] == [load_config().dag.dag_id]
    assert result["heavy"] == []


def test_external_python_runner_is_a_configuration_switch(monkeypatch):
    from airflow.operators.python import ExternalPythonOperator

    from emerald_dag.builder import build_nightly_dag

    monkeypatch.setenv("EMERALD_NODE_RUNNER", "external_python")
    config = load_config()
    dag = build_nightly_dag(config)
    trainer = dag.get_task("Trainer")
    assert isinstance(trainer, ExternalPythonOperator)
    assert trainer.python == config.dag.external_python
    assert trainer.op_args == [["node", "--run-id", names.TFX_RUN_ID, "--night", names.NIGHT,
                                f"--full-retrain={names.FULL_RETRAIN}", "Trainer"]]


def test_in_process_tasks_template_the_run_id_and_night(dagbag):
    dag = dagbag.dags[load_config().dag.dag_id]
    trainer = dag.get_task("Trainer")
    assert "night" in trainer.template_fields and "tfx_run_id" in trainer.template_fields
    assert (trainer.tfx_run_id, trainer.night) == (names.TFX_RUN_ID, names.NIGHT)
    # The DAG param full_retrain reaches the Trainer's launch (node.ask_full_retrain).
    assert "full_retrain" in trainer.template_fields
    assert trainer.full_retrain == names.FULL_RETRAIN
    assert dag.params["full_retrain"] is False


def test_committed_ir_is_not_stale():
    """Fails when pipeline code or config changed without `make compile`."""
    assert compiled.stale_files(load_config()) == [], "run `make compile` and commit"


def test_ingestion_heads_the_dag_and_the_gate_guards_the_push(dagbag):
    dag = dagbag.dags[load_config().dag.dag_id]
    assert dag.get_task("wait_for_night").downstream_task_ids == {"ingest_night", "night_report"}
    assert "ingest_night" in dag.get_task("ImageExampleGen").upstream_task_ids
    gate = dag.get_task("data_gate")
    assert gate.upstream_task_ids == {"ExampleValidator", "ImageDistributionValidator",
                                      "Evaluator"}
    assert "data_gate" in dag.get_task("Pusher").upstream_task_ids
    assert {"night", "corpus_only", "force_push"} <= set(dag.params)


def test_the_report_runs_whatever_happened_without_hiding_a_failure(dagbag):
    dag = dagbag.dags[load_config().dag.dag_id]
    report = dag.get_task("night_report")
    assert report.is_teardown            # ignored for the run's state: a blocked night stays red
    assert report.upstream_task_ids == {t.task_id for t in dag.tasks} - {"night_report"}


def test_kubernetes_runner_is_a_configuration_switch(monkeypatch):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from emerald_dag.builder import build_nightly_dag

    monkeypatch.setenv("EMERALD_NODE_RUNNER", "kubernetes")
    config = load_config()
    trainer = build_nightly_dag(config).get_task("Trainer")
    assert isinstance(trainer, KubernetesPodOperator)
    assert trainer.image == config.dag.kubernetes_image
    assert trainer.cmds == ["emerald"]
    assert trainer.arguments[:1] == ["node"] and trainer.arguments[-1] == "Trainer"
    assert "--run-id" in trainer.arguments and "--night" in trainer.arguments


@pytest.mark.parametrize("runner", ["external_python", "kubernetes"])
def test_gate_and_report_run_where_the_nodes_run(monkeypatch, runner):
    from emerald_alerts.operators import GateDeliveryOperator
    from emerald_dag.builder import build_nightly_dag

    monkeypatch.setenv("EMERALD_NODE_RUNNER", runner)
    dag = build_nightly_dag(load_config())
    gate, report, trainer = (dag.get_task(t) for t in ("data_gate", "night_report", "Trainer"))
    assert report.is_teardown
    if runner == "kubernetes":
        # The pod decides and hands back; data_gate, in the worker (Airflow's connections),
        # sends the alert and blocks the push.
        decision = dag.get_task(names.DATA_GATE_DECISION)
        assert type(decision) is type(trainer) is type(report)
        assert isinstance(gate, GateDeliveryOperator)
        assert decision.arguments[0] == "gate" and report.arguments[0] == "report"
        assert "--alert=hand-back" in decision.arguments and decision.do_xcom_push
        assert any(a.startswith("--force-push=") for a in decision.arguments)
        assert gate.upstream_task_ids == {names.DATA_GATE_DECISION}
        assert decision.upstream_task_ids == set(names.GATE_UPSTREAM)
        assert decision.retries == trainer.retries > 0     # exits 0 when blocked: retried
        assert f"--state={names.RUN_STATE}" in report.arguments
    else:
        assert type(gate) is type(trainer) is type(report)
        assert gate.python_callable.__name__ == report.python_callable.__name__ == "run_emerald"
        assert gate.op_args[0][0] == "gate" and report.op_args[0][0] == "report"
        assert gate.retries == 0                       # blocked by the data: no retry
        assert f"--state={names.RUN_STATE}" in report.op_args[0]
    assert "data_gate" in dag.get_task("Pusher").upstream_task_ids


def test_every_task_alerts_when_it_fails_for_good_through_the_configured_channels(dagbag):
    """on_failure_callback (not on_retry_callback): Airflow calls it once no retry is left."""
    from emerald_alerts.notifiers import EmeraldFailureNotifier

    config = load_config()
    dag = dagbag.dags[config.dag.dag_id]
    for task in dag.tasks:
        callbacks = task.on_failure_callback
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        (notifier,) = callbacks
        assert isinstance(notifier, EmeraldFailureNotifier), task.task_id
        assert (notifier.smtp_conn_id, notifier.slack_conn_id, notifier.emails,
                notifier.reports_dir) == (config.alerts.smtp_conn_id, config.alerts.slack_conn_id,
                                          config.alerts.emails, str(config.paths.reports))
        assert not task.on_retry_callback, task.task_id      # a retry is not an alert


@pytest.mark.parametrize("runner", ["external_python", "kubernetes"])
def test_every_runner_alerts_failures(monkeypatch, runner):
    from emerald_alerts.notifiers import EmeraldFailureNotifier

    from emerald_dag.builder import build_nightly_dag

    monkeypatch.setenv("EMERALD_NODE_RUNNER", runner)
    dag = build_nightly_dag(load_config())
    for task in dag.tasks:
        assert [type(n) for n in task.on_failure_callback] == [EmeraldFailureNotifier]
