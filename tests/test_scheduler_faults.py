"""Faults under the real scheduler: a killed node, a killed scheduler, a night triggered twice.

A real `airflow scheduler` and `airflow triggerer` (SequentialExecutor, SQLite:
every task its own `airflow tasks run` process) run Toto's night 2026-01-02
twice, as two DAG runs of the same night:

* Run A is triggered before Toto's photos exist: its sensor defers to the
  triggerer (no worker slot held). Run B, triggered right after it, waits
  queued (`max_active_runs=1`) the whole time A runs.
* The photos arrive; while A's Trainer is training (its execution RUNNING in
  MLMD), the task's process group is SIGKILLed. Airflow retries it; the retry
  removes the killed attempt's partial outputs and completes. A succeeds.
* While B's Trainer is training, the scheduler itself is SIGKILLed, then
  started again: the Trainer, left running, finishes; a task the dead
  scheduler had queued is reset by the new one's orphan check; B succeeds.
* MLMD then holds, per run and per node, one execution, COMPLETE, whose
  outputs are the only directories under that node's outputs in the pipeline
  root: nothing duplicated, nothing orphaned.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest

import emerald_testing as testing
from emerald_testing import LocalScheduler, airflow_rows, run_state, task_state

pytestmark = pytest.mark.slow

NIGHT = "2026-01-02"
RUN_A, RUN_B = "fault_a", "fault_b"
NIGHT_TIMEOUT = 25 * 60


def states(db: Path, run_id: str) -> str:
    return "\n".join(f"  {t:<28} {s} (try {n})" for t, s, n in airflow_rows(
        db, "SELECT task_id, state, try_number FROM task_instance WHERE run_id=? "
            "ORDER BY start_date", run_id))


def wait_for(what: str, condition, timeout: float, db: Path, run_id: str, poll: float = 2.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}; run {run_id}:\n{states(db, run_id)}")


def running_execution(config, node_id: str, tfx_run_id: str) -> bool:
    """The node's execution of this run is RUNNING in MLMD (the executor is at work)."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline_src.decision.report import open_store
    store = open_store(config)
    context = store.get_context_by_type_and_name("pipeline_run", tfx_run_id)
    if context is None:
        return False
    return any(e.last_known_state == metadata_store_pb2.Execution.RUNNING
               and _node_of(store, e) == node_id
               for e in store.get_executions_by_context(context.id))


def _node_of(store, execution) -> str:
    node_type = store.get_context_type("node").id
    for context in store.get_contexts_by_execution(execution.id):
        if context.type_id == node_type:
            return context.name.rsplit(".", 1)[-1]
    return ""


@pytest.fixture(scope="module")
def faulty_nights(tmp_path_factory):
    from pipeline_src.tools import synth

    root = tmp_path_factory.mktemp("faults")
    home, logs = root / "home", root / "logs"
    logs.mkdir()
    env, config = testing.scheduler_environment(
        home, testing.quick_retry_config(root),
        AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD="60",
        # A task the dead scheduler had queued (not yet started) stays queued until the new
        # scheduler's orphan check marks the dead one failed and resets it: every 300 s by
        # default, every 30 s here (the 30 s health threshold still decides "dead").
        AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="30")
    source = Path(config.paths.source)
    staged = root / "staged"
    synth.synthesize(staged, nights=1, seed=0, start_date=dt.date.fromisoformat(NIGHT),
                     toto_style="landscape")   # the demo's sizes: 40 + 12 photos per label
    # (at 20 + 6, one optimizer step per epoch: too few for a model that blesses)
    source.mkdir(parents=True)
    os.rename(staged / "corpus", source / "corpus")         # the corpus is there; Toto's not yet

    observed: dict = {"b_while_a": set()}
    with LocalScheduler(env, logs) as airflow:
        db = airflow.db
        for run_id, second in ((RUN_A, 0), (RUN_B, 1)):
            airflow.trigger(run_id, NIGHT, second=second)
        wait_for("run A's sensor to defer", lambda: task_state(db, RUN_A, "wait_for_night")["state"]
                 == "deferred", 600, db, RUN_A)
        observed["b_while_a"].add(run_state(db, RUN_B))
        (source / "toto").mkdir()
        os.rename(staged / "toto" / NIGHT, source / "toto" / NIGHT)   # Toto's photos land

        tfx_a = f"{RUN_A}.{airflow_rows(db, 'SELECT id FROM dag_run WHERE run_id=?', RUN_A)[0][0]}"
        wait_for("A's Trainer to train", lambda: running_execution(config, "Trainer", tfx_a),
                 NIGHT_TIMEOUT, db, RUN_A, poll=1.0)
        observed["b_while_a"].add(run_state(db, RUN_B))
        killed = task_state(db, RUN_A, "Trainer")
        os.killpg(killed["pid"], signal.SIGKILL)             # the node's process group
        observed["killed_trainer"] = killed
        wait_for("run A to finish", lambda: run_state(db, RUN_A) in ("success", "failed"),
                 NIGHT_TIMEOUT, db, RUN_A, poll=5)

        # The scheduler dies while B's Trainer is at work (its execution RUNNING in
        # MLMD): a task of tens of seconds, so it is surely still running when the
        # scheduler's state is read (a short one, as Transform, could finish first).
        tfx_b = f"{RUN_B}.{airflow_rows(db, 'SELECT id FROM dag_run WHERE run_id=?', RUN_B)[0][0]}"
        wait_for("B's Trainer to train", lambda: running_execution(config, "Trainer", tfx_b),
                 NIGHT_TIMEOUT, db, RUN_B, poll=1.0)
        airflow.kill("scheduler")
        observed["b_trainer_when_scheduler_died"] = task_state(db, RUN_B, "Trainer")["state"]
        observed["b_when_scheduler_died"] = states(db, RUN_B)
        time.sleep(10)
        airflow.start("scheduler")
        wait_for("run B to finish", lambda: run_state(db, RUN_B) in ("success", "failed"),
                 NIGHT_TIMEOUT, db, RUN_B, poll=5)
        observed.update(
            a=run_state(db, RUN_A), b=run_state(db, RUN_B), tfx_runs=(tfx_a, tfx_b),
            a_states=states(db, RUN_A), b_states=states(db, RUN_B),
            trainer_after=task_state(db, RUN_A, "Trainer"),
            a_end_b_start=airflow_rows(db, "SELECT (SELECT end_date FROM dag_run WHERE run_id=?), "
                                    "(SELECT start_date FROM dag_run WHERE run_id=?)",
                                RUN_A, RUN_B)[0])
    yield config, observed, logs




def test_a_second_trigger_of_the_night_waits_while_the_first_runs(faulty_nights):
    _, observed, _ = faulty_nights
    assert observed["b_while_a"] == {"queued"}       # before A's sensor deferred, mid-Trainer
    a_end, b_start = observed["a_end_b_start"]
    assert a_end and b_start and b_start >= a_end     # B started only once A had ended
    assert observed["b"] == "success", observed["b_states"]


def test_a_killed_node_is_retried_and_the_night_completes(faulty_nights):
    _, observed, _ = faulty_nights
    assert observed["a"] == "success", observed["a_states"]
    assert observed["trainer_after"]["state"] == "success"
    assert observed["trainer_after"]["try_number"] == observed["killed_trainer"]["try_number"] + 1


def test_the_scheduler_restarted_mid_night_picks_the_night_up(faulty_nights):
    _, observed, logs = faulty_nights
    assert observed["b_trainer_when_scheduler_died"] == "running", observed["b_when_scheduler_died"]
    assert observed["b"] == "success", observed["b_states"]
    assert len(list(logs.glob("scheduler.*.log"))) == 2


def test_mlmd_holds_one_complete_execution_per_node_and_no_orphaned_outputs(faulty_nights):
    from ml_metadata.proto import metadata_store_pb2

    from pipeline_src.decision.report import open_store
    config, observed, _ = faulty_nights
    store = open_store(config)
    root = Path(config.paths.pipeline_root)
    for tfx_run_id in observed["tfx_runs"]:
        context = store.get_context_by_type_and_name("pipeline_run", tfx_run_id)
        executions = store.get_executions_by_context(context.id)
        by_node: dict[str, list] = {}
        for execution in executions:
            by_node.setdefault(_node_of(store, execution), []).append(execution)
        assert "Trainer" in by_node and "Pusher" in by_node, sorted(by_node)
        for node, node_executions in by_node.items():
            assert len(node_executions) == 1, (tfx_run_id, node, node_executions)
            assert node_executions[0].last_known_state in (
                metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED), (
                tfx_run_id, node, node_executions[0])
    # Every output directory in the pipeline root is an artifact MLMD knows, or holds
    # only artifacts MLMD knows (an output of several artifacts, as ExampleGen's
    # updated_spans, puts each in a folder under the execution's).
    known = {a.uri.rstrip("/") for a in store.get_artifacts()}
    checked = 0
    for node_dir in root.iterdir():
        if not node_dir.is_dir():
            continue
        for key_dir in (d for d in node_dir.iterdir() if d.is_dir() and not d.name.startswith(".")):
            for execution_dir in key_dir.iterdir():
                uri = str(execution_dir).rstrip("/")
                if uri not in known:
                    parts = sorted(execution_dir.iterdir()) if execution_dir.is_dir() else []
                    assert parts, execution_dir
                    for part in parts:
                        assert str(part).rstrip("/") in known, part
                checked += 1
    assert checked >= 2 * 10, checked      # two nights of every node's outputs were looked at


def test_the_retried_trainer_cleared_the_killed_attempts_outputs(faulty_nights):
    config, observed, _ = faulty_nights
    logs = Path(config.paths.home) / "airflow" / "logs"
    retry_logs = [p for p in logs.rglob("*.log")
                  if f"run_id={RUN_A}" in str(p) and "task_id=Trainer" in str(p)
                  and p.name == f"attempt={observed['killed_trainer']['try_number'] + 1}.log"]
    assert retry_logs, sorted(str(p) for p in logs.rglob("*Trainer*"))
    assert "did not finish (state RUNNING): removing its partial outputs" in retry_logs[0].read_text()
