"""Shared test settings and fixtures.

Airflow is configured once for the whole session, before anything imports it: one
AIRFLOW_HOME shared by every test, $EMERALD_TEST_HOME/airflow (default
/tmp/emerald-test-home/airflow, kept from one session to the next) unless the
environment already sets AIRFLOW_HOME, with this checkout's dags/ and plugins/.
EMERALD_HOME is not set here: a test that needs its own asks for `emerald_home`
(a folder under its tmp_path). Also real SMTP and webhook servers for the alert
tests. Helpers shared with bench/ live in emerald_testing.py, next to this file.
"""
from __future__ import annotations

import os
import pathlib

import pytest

from emerald_testing import ALERT_SECRETS, SmtpInbox, WebhookInbox, free_port  # noqa: F401

REPO = pathlib.Path(__file__).resolve().parents[1]

# Airflow reads these when it is first imported: point it at this checkout and a
# throwaway home before any test imports it.
_SESSION_HOME = pathlib.Path(os.environ.get("EMERALD_TEST_HOME", "/tmp/emerald-test-home"))
os.environ.setdefault("AIRFLOW_HOME", str(_SESSION_HOME / "airflow"))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")

import airflow  # noqa: E402,F401 - puts dags/ and plugins/ on sys.path, as a deployment does


@pytest.fixture
def emerald_home(tmp_path, monkeypatch) -> pathlib.Path:
    home = tmp_path / "emerald-home"
    monkeypatch.setenv("EMERALD_HOME", str(home))
    return home


# ---------------------------------------------------------------- real alert servers

@pytest.fixture
def smtp_inbox():
    inbox = SmtpInbox()
    yield inbox
    inbox.stop()


@pytest.fixture
def webhook_inbox():
    inbox = WebhookInbox()
    yield inbox
    inbox.stop()


@pytest.fixture(scope="module")
def alert_servers():
    """A real SMTP server and a real webhook server shared by a module's tests, each with a
    secret (SMTP password, webhook token) that must never show up in what a night writes."""
    smtp = SmtpInbox(login="emerald", password=ALERT_SECRETS["smtp_password"])
    slack = WebhookInbox(token=ALERT_SECRETS["webhook_token"])
    yield smtp, slack
    smtp.stop()
    slack.stop()


@pytest.fixture
def airflow_db(tmp_path, monkeypatch):
    """A migrated Airflow metadata database of this test's own (SQLite under tmp_path).

    The session's AIRFLOW_HOME is shared by every test and, by default, every
    checkout: the ORM is pointed at a fresh file, `airflow db` is initialised
    there, and the ORM is pointed back afterwards."""
    from airflow import settings
    from airflow.utils import db

    url = f"sqlite:///{tmp_path / 'airflow.db'}"
    previous = settings.SQL_ALCHEMY_CONN
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", url)
    settings.SQL_ALCHEMY_CONN = url
    settings.reconfigure_orm()
    try:
        db.initdb(load_connections=False)
        yield url
    finally:
        settings.SQL_ALCHEMY_CONN = previous
        monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        settings.reconfigure_orm()
