"""`emerald run --date D`: one night's DAG run through Airflow, on this machine.

Runs the real DAG with `dag.test()` (Airflow's in-process runner) against a
SQLite Airflow database under EMERALD_HOME, so every task is launched exactly
as the scheduler would, and TFX is imported once for the whole night.

A night Airflow would not schedule (before `dag.start_date`) is refused before
Airflow is even imported, and a run in which no task ran is an error, never a
"success" with empty splits.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
from typing import Any

from pipeline_src.arguments import night_arg
from pipeline_src.config import REPO_ROOT, Config, UsageError, load_config
from pipeline_src.names import SUMMARY_FILE


def airflow_environment(config: Config) -> dict[str, str]:
    """Airflow settings for local runs; values already in the environment win."""
    airflow_home = config.paths.home / "airflow"
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # Keras writes ~/.keras/keras.json at import: keep it in EMERALD_HOME.
        "KERAS_HOME": str(config.paths.keras_home),
    }


def _sqlite_file(url: str):
    """The database file of a sqlite:/// URL, None for any other database."""
    prefix = "sqlite:///"
    return url[len(prefix):].split("?", 1)[0] if url.startswith(prefix) else None


def prepare_airflow(config: Config) -> None:
    """Sets the environment before Airflow is imported and migrates its DB once.

    Works whether or not the user has an AIRFLOW_HOME of their own: the SQLite
    database's folder is created wherever the URL points, and the "migrated"
    marker sits beside the database it describes.
    """
    for key, value in airflow_environment(config).items():
        os.environ.setdefault(key, value)
    home = os.environ["AIRFLOW_HOME"]
    os.makedirs(home, exist_ok=True)
    database = _sqlite_file(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    if database:
        os.makedirs(os.path.dirname(database) or ".", exist_ok=True)
    marker = (database + ".emerald-migrated" if database
              else os.path.join(home, ".emerald-db-migrated"))
    if not os.path.exists(marker):
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True,
                       stdout=subprocess.DEVNULL)
        open(marker, "w").close()


def check_schedulable(config: Config, night: dt.date) -> None:
    """Raises UsageError for a night before the DAG's start_date: Airflow creates its run
    but no task instance (a task does not run before its start_date), and the run would
    be "success" with nothing done."""
    if night < config.dag.start_date:
        raise UsageError(
            f"night {night.isoformat()} is before the DAG's start_date "
            f"{config.dag.start_date.isoformat()} (dag.start_date in {config.config_file}): "
            f"Airflow runs no task for it; choose a night from "
            f"{config.dag.start_date.isoformat()} on")


def check_tasks_ran(dag_run, night: dt.date) -> None:
    """Raises UsageError when `dag.test` returned a run in which no task ran: whatever
    Airflow calls its state, nothing was trained, validated or reported."""
    ran = [ti for ti in dag_run.get_task_instances() if ti.state not in (None, "removed")]
    if not ran:
        raise UsageError(
            f"no task ran for night {night.isoformat()} (DAG run {dag_run.run_id}, Airflow "
            f"state {dag_run.state}): check the DAG's start_date, end_date and its tasks")


def run_night(config: Config, night: dt.date, corpus_only: bool = False,
              force_push: bool = False, full_retrain: bool = False) -> dict[str, Any]:
    """Runs the DAG for `night` and returns the night's summary (with the gate's findings)."""
    check_schedulable(config, night)
    prepare_airflow(config)
    from airflow.models import DagBag

    from pipeline_src.orchestration import tasks

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"], include_examples=False)
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag(config.dag.dag_id)
    logical_date = dt.datetime.combine(night, dt.time(2), tzinfo=dt.timezone.utc)
    dag_run = dag.test(execution_date=logical_date, run_conf={"night": night.isoformat(),
                                                                  "corpus_only": corpus_only,
                                                                  "force_push": force_push,
                                                                  "full_retrain": full_retrain})
    check_tasks_ran(dag_run, night)     # before a report could overwrite a real one
    tfx_run_id = f"{dag_run.run_id}.{dag_run.id}"
    written = config.paths.reports / night.isoformat() / SUMMARY_FILE
    summary = json.loads(written.read_text()) if written.exists() else {}
    if summary.get("tfx_run_id") != tfx_run_id:   # the report task did not run: write it now
        summary = tasks.write_night_report(config, tfx_run_id, night.isoformat(),
                                           force_push=force_push)
    summary["state"] = str(dag_run.state)
    summary["failed_tasks"] = sorted(
        ti.task_id for ti in dag_run.get_task_instances() if ti.state in ("failed", "upstream_failed"))
    return summary


def _run(args: argparse.Namespace) -> int:
    config = load_config()
    night = dt.date.fromisoformat(args.date)       # checked by night_arg already
    if args.json:
        # Airflow and TFX log to stdout; with --json, stdout is the one JSON object.
        with _stdout_to_stderr():
            summary = run_night(config, night, args.corpus_only, args.force_push,
                                args.full_retrain)
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        summary = run_night(config, night, args.corpus_only, args.force_push, args.full_retrain)
        from pipeline_src.decision.report import format_table
        print(format_table(summary))
    return 0 if summary["state"] == "success" else 1


@contextlib.contextmanager
def _stdout_to_stderr():
    """File descriptor 1 points at stderr inside: log handlers and subprocesses too."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run one night's DAG run through Airflow")
    parser.add_argument("--date", required=True, type=night_arg,
                        help="the night, YYYY-MM-DD (not before dag.start_date)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--force-push", action="store_true",
                        help="push even when the data gate blocks (alerted)")
    parser.add_argument("--corpus-only", action="store_true",
                        help="the bootstrap night before Toto's first upload")
    parser.add_argument("--full-retrain", action="store_true",
                        help="train from scratch, not from the serving model")
    parser.set_defaults(func=_run)
