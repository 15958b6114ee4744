"""`emerald run`'s Airflow set-up (beside a user's own AIRFLOW_HOME), and the nights it refuses."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline_src.config import UsageError, load_config
from pipeline_src.orchestration import night as night_module

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import os
from pipeline_src.config import load_config
from pipeline_src.orchestration.night import prepare_airflow
prepare_airflow(load_config())
print(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
"""


def test_a_users_own_airflow_home_does_not_break_the_local_database(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "EMERALD"))}
    env.update(AIRFLOW_HOME=str(tmp_path / "my-airflow"), EMERALD_HOME=str(tmp_path / "emerald"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    database = tmp_path / "emerald" / "airflow" / "airflow.db"
    assert proc.stdout.strip().splitlines()[-1] == f"sqlite:///{database}"
    assert database.is_file() and database.stat().st_size > 0          # migrated
    assert Path(f"{database}.emerald-migrated").is_file()
    assert (tmp_path / "my-airflow").is_dir()


# --------------------------------------------------------------------------- nights that cannot run

def test_a_night_before_start_date_is_refused_before_airflow_is_set_up(tmp_path, monkeypatch):
    config = load_config(env={"EMERALD_HOME": str(tmp_path)})
    start = config.dag.start_date
    monkeypatch.setattr(night_module, "prepare_airflow",
                        lambda cfg: pytest.fail("Airflow was set up for a night it cannot run"))
    with pytest.raises(UsageError, match=f"night {start - dt.timedelta(days=1)} is before the "
                                         f"DAG's start_date {start}"):
        night_module.run_night(config, start - dt.timedelta(days=1))
    night_module.check_schedulable(config, start)            # the first night itself runs


def _run_with(*states):
    tis = [SimpleNamespace(task_id=f"t{i}", state=s) for i, s in enumerate(states)]
    return SimpleNamespace(run_id="manual__x", state="success", get_task_instances=lambda: tis)


@pytest.mark.parametrize("states", [(), (None,), (None, "removed")])
def test_a_run_in_which_no_task_ran_is_never_a_success(states):
    """What `dag.test` returns for a night Airflow does not schedule: state "success",
    no task instance. It is an error, before any report is written over a real one."""
    with pytest.raises(UsageError, match=r"no task ran for night 2026-01-02 \(DAG run "
                                         r"manual__x, Airflow state success\)"):
        night_module.check_tasks_ran(_run_with(*states), dt.date(2026, 1, 2))


def test_a_run_in_which_a_task_ran_passes():
    night_module.check_tasks_ran(_run_with(None, "skipped"), dt.date(2026, 1, 2))
    night_module.check_tasks_ran(_run_with("failed", "upstream_failed"), dt.date(2026, 1, 2))


NO_TASK_PROBE = """
import datetime as dt
from pipeline_src.config import UsageError, load_config
from pipeline_src.orchestration import night
night.check_schedulable = lambda config, n: None     # straight to dag.test, as before the check
try:
    night.run_night(load_config(), dt.date(2025, 12, 31))
except UsageError as exc:
    print("UsageError:", exc)
"""


def test_airflow_runs_no_task_before_start_date_and_run_night_says_so(tmp_path):
    """The real `dag.test` for a night before start_date: a "success" run without a task
    instance. Without the start_date check, run_night still refuses it, and writes no report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EMERALD"))}
    env.update(EMERALD_HOME=str(tmp_path / "emerald"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run([sys.executable, "-c", NO_TASK_PROBE], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith(
        "UsageError: no task ran for night 2025-12-31 (DAG run manual__2025-12-31T02:00:00+00:00, "
        "Airflow state success)")
    assert not (tmp_path / "emerald" / "reports" / "2025-12-31").exists()
