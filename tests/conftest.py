"""Shared test settings: every test gets its own EMERALD_HOME and AIRFLOW_HOME."""
from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Airflow reads these when it is first imported: point it at this checkout and a
# throwaway home before any test imports it.
_SESSION_HOME = pathlib.Path(os.environ.get("EMERALD_TEST_HOME", "/tmp/emerald-test-home"))
os.environ.setdefault("AIRFLOW_HOME", str(_SESSION_HOME / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")


@pytest.fixture
def emerald_home(tmp_path, monkeypatch) -> pathlib.Path:
    home = tmp_path / "emerald-home"
    monkeypatch.setenv("EMERALD_HOME", str(home))
    return home
