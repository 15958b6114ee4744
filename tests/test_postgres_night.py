"""A night whose ML Metadata lives in a real PostgreSQL, as on Cloud Composer with Cloud SQL.

One corpus-only night through `emerald run` (every TFX node, the gate and the
report), with `metadata.backend: postgresql` and the password only in the
environment variable the configuration names (in a pod: the Kubernetes secret).
Then:

- the night's artifacts are in PostgreSQL (read back over a second connection),
  and there is no SQLite MLMD under EMERALD_HOME;
- the password appears nowhere: not in any file under EMERALD_HOME (reports,
  summaries, Airflow's database with its XCom and rendered fields), nor in the
  command's output, where `emerald run` writes the task logs (issue 14: "No secret ... MLMD password ... appears in
  any log, report, XCom or summary").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src.config import load_config
from pipeline_src.tools import synth

pytestmark = pytest.mark.slow        # a PostgreSQL server and one night: ~3 minutes
NIGHT = "2026-01-01"
PASSWORD_ENV = "EMERALD_MLMD_PASSWORD"


@pytest.fixture(scope="module")
def postgres_night(tmp_path_factory):
    home = tmp_path_factory.mktemp("pg-home")
    cwd = tmp_path_factory.mktemp("pg-cwd")
    with testing.postgres_server(password="mlmd-Secret-Garnet42") as server:
        config_file = testing.quick_retry_config(home, metadata={
            "backend": "postgresql",
            "postgresql": {"host": server["host"], "port": server["port"], "dbname": "mlmd",
                           "user": server["user"], "password_env": PASSWORD_ENV}})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EMERALD"))}
        env.update(EMERALD_HOME=str(home), EMERALD_CONFIG=str(config_file),
                   **{PASSWORD_ENV: server["password"]})
        config = load_config(env=env)
        synth.synthesize(Path(config.paths.source), nights=0, seed=0)
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline_src.tools.cli", "run", "--date", NIGHT,
             "--corpus-only", "--json"], env=env, cwd=cwd, capture_output=True, text=True,
            timeout=1500)
        assert proc.stdout.strip(), proc.stderr[-6000:]
        from ml_metadata import metadata_store

        from pipeline_src.metadata import postgresql_connection_config

        store = metadata_store.MetadataStore(
            postgresql_connection_config(config.metadata.postgresql, env))
        yield {"config": config, "proc": proc, "summary": json.loads(proc.stdout),
               "password": server["password"],
               "types": {store.get_artifact_types_by_id([a.type_id])[0].name
                         for a in store.get_artifacts()}}


def test_the_night_runs_with_its_metadata_in_postgresql(postgres_night):
    summary, config = postgres_night["summary"], postgres_night["config"]
    assert postgres_night["proc"].returncode == 0, postgres_night["proc"].stderr[-6000:]
    assert summary["state"] == "success", summary
    assert summary["pushed"], summary
    # What the night's nodes wrote, as read back from PostgreSQL by another connection.
    assert {"Examples", "ExampleStatistics", "Schema", "Model", "ModelBlessing",
            "PushedModel"} <= postgres_night["types"]
    assert not Path(config.paths.metadata).exists()       # no SQLite MLMD on the side


def test_the_mlmd_password_is_in_no_file_and_no_output(postgres_night):
    config, proc = postgres_night["config"], postgres_night["proc"]
    secret = postgres_night["password"].encode()
    files = [p for p in Path(config.paths.home).rglob("*") if p.is_file()]
    assert any(p.name == "airflow.db" for p in files)          # XCom and rendered fields
    assert "data_gate" in proc.stderr        # `emerald run` prints the task logs there
    assert [str(p) for p in files if secret in p.read_bytes()] == []
    assert secret.decode() not in proc.stdout + proc.stderr
