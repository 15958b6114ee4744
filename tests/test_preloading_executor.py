"""A night under the real scheduler with the PreloadingLocalExecutor, on PostgreSQL.

Airflow's database and ML Metadata in a real PostgreSQL server (the
LocalExecutor needs a server database; nodes that run in parallel need MLMD on
one), a real `airflow scheduler` + `airflow triggerer` with
AIRFLOW__CORE__EXECUTOR=emerald_tfx.executor.PreloadingLocalExecutor and two
task slots. One corpus-only night. Then:

- the night succeeds and pushes: every TFX node, the Beam ones and the Trainer
  included, ran in a process forked from the preloaded scheduler;
- the scheduler's log names the executors it preloaded, every node's among them;
- every TFX task's log says TensorFlow was already imported when the launch began,
  so no task paid for TensorFlow's import itself (bench/bench_runners.py measures
  what that saves).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src.orchestration.compile import load_ir_dict, task_graph
from pipeline_src.orchestration.node import PRELOADED
from pipeline_src.tools import synth

pytestmark = pytest.mark.slow       # PostgreSQL, a scheduler and one night: ~4 minutes
DAG_ID, NIGHT, RUN_ID = testing.DAG_ID, "2026-01-01", "preloaded_night"
EXECUTOR = "emerald_tfx.executor.PreloadingLocalExecutor"
PASSWORD_ENV = "EMERALD_MLMD_PASSWORD"


@pytest.fixture(scope="module")
def preloaded_night(tmp_path_factory):
    root = tmp_path_factory.mktemp("preloaded")
    home, logs = root / "home", root / "logs"
    logs.mkdir()
    with testing.postgres_server() as server:
        testing.create_database(server, "airflow")
        config_file = testing.quick_retry_config(root, metadata={
            "backend": "postgresql",
            "postgresql": {"host": server["host"], "port": server["port"], "dbname": "mlmd",
                           "user": server["user"], "password_env": PASSWORD_ENV}})
        db = testing.database_url(server, "airflow")
        env, config = testing.scheduler_environment(
            home, config_file, **{PASSWORD_ENV: server["password"]},
            AIRFLOW__CORE__EXECUTOR=EXECUTOR, AIRFLOW__CORE__PARALLELISM="2",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db)
        synth.synthesize(Path(config.paths.source), nights=0, seed=0)    # the demo corpus
        with testing.LocalScheduler(env, logs) as scheduler:
            scheduler.trigger(RUN_ID, NIGHT, corpus_only=True)
            state = scheduler.wait_for_run(RUN_ID, 25 * 60, poll_s=3)
            tasks = {row[0]: row[1] for row in testing.airflow_rows(
                db, "SELECT task_id, state FROM task_instance WHERE dag_id=? AND run_id=?",
                DAG_ID, RUN_ID)}
            yield {"state": state, "tasks": tasks, "config": config, "env": env, "logs": logs}


def _task_log(night: dict, task: str) -> str:
    folder = (Path(night["env"]["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}"
              / f"run_id={RUN_ID}" / f"task_id={task}")
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("attempt=*.log")))


def test_the_night_succeeds_with_every_node_in_a_forked_process(preloaded_night):
    nodes = task_graph(load_ir_dict())
    assert preloaded_night["state"] == "success", preloaded_night["tasks"]
    assert all(preloaded_night["tasks"][n] == "success" for n in nodes), \
        preloaded_night["tasks"]
    summary = json.loads((Path(preloaded_night["config"].paths.reports) / NIGHT
                          / "summary.json").read_text())
    assert summary["pushed"], summary["findings"]


def test_the_scheduler_preloaded_every_nodes_executor(preloaded_night):
    scheduler_log = "\n".join(p.read_text(errors="replace")
                              for p in preloaded_night["logs"].glob("scheduler.*.log"))
    line = next((line for line in scheduler_log.splitlines() if "preloaded TensorFlow" in line),
                None)
    assert line, scheduler_log[-4000:]
    ir = load_ir_dict()
    specs = ir["deploymentConfig"]["executorSpecs"]
    assert len(specs) == len(task_graph(ir)) - 1        # the resolver has no executor
    for spec in specs.values():
        class_path = spec.get("classPath") or spec["pythonExecutorSpec"]["classPath"]
        assert class_path in line, (class_path, line)


def test_no_tfx_task_imported_tensorflow_itself(preloaded_night):
    for node_id in task_graph(load_ir_dict()):
        log = _task_log(preloaded_night, node_id)
        launches = [line for line in log.splitlines() if f"launching {node_id} for run" in line]
        assert launches, (node_id, log[-3000:])
        assert all(line.endswith(f"TensorFlow {PRELOADED}") for line in launches), launches
