"""Fixtures: a real gcp-storage-emulator per session, a fresh bucket per test, Airflow env.

Airflow's own settings (AIRFLOW_HOME, examples off) come from tests/conftest.py,
which runs first and is shared by the whole session.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]

import emerald_testing as testing

PROJECT = "emerald-test"
CONN = json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": PROJECT}})


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory):
    with testing.gcs_emulator(tmp_path_factory.mktemp("emulator") / "emulator.log") as url:
        yield url


@pytest.fixture
def gcs(emulator_url, monkeypatch, tmp_path):
    """A new bucket on the emulator; STORAGE_EMULATOR_HOST and the Airflow connection set."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_url)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", CONN)
    monkeypatch.setenv("EMERALD_HOME", str(tmp_path / "home"))
    client = testing.anonymous_client(PROJECT)
    bucket = f"toto-{uuid.uuid4().hex[:10]}"
    client.create_bucket(bucket)

    def upload(night: str, files: dict, prefix: str = "cam"):
        return testing.upload_tree(client, bucket, f"{prefix}/toto/{night}", files)

    return SimpleNamespace(
        url=emulator_url, client=client, bucket=bucket, source=f"gs://{bucket}/cam",
        upload=upload, spans=tmp_path / "home" / "spans",
        quarantine=tmp_path / "home" / "quarantine", tmp=tmp_path)
