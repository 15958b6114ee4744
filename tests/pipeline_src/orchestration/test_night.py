"""`emerald run`'s Airflow set-up: works beside a user's own AIRFLOW_HOME."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
