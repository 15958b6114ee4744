"""A task that fails for good alerts by email and Slack: the task, the night, a link to its log.

Under Airflow, against a real SMTP server and a real webhook server (emerald_testing):
tasks carrying the nightly DAG's own failure callbacks (`builder.failure_callbacks`)
run with `dag.test()` on an Airflow database of the test's own, and the nightly DAG's
real `wait_for_night` fails under a real `airflow scheduler` (slow).

A retry is not an alert: Airflow calls on_failure_callback only once no retry is left
(while retries are left the attempt ends UP_FOR_RETRY and on_retry_callback is called).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src.config import load_config

NIGHT = "2026-01-05"
BASE_URL = "http://emerald.example:8080"


@pytest.fixture
def config(emerald_home, monkeypatch):
    monkeypatch.setenv("EMERALD_ALERT_EMAILS", "dorothy@example.com")
    monkeypatch.setenv("AIRFLOW__WEBSERVER__BASE_URL", BASE_URL)
    return load_config()


def _run(dag, night=NIGHT):
    return dag.test(execution_date=dt.datetime(2026, 1, 5, 2, tzinfo=dt.timezone.utc),
                    run_conf={"night": night})


def _states(dag_run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}


def _failing_dag(config, inbox, seen_before_each_try: list):
    """A failing task with two retries and a sensor that times out, with the nightly
    DAG's default failure callbacks. The failing task records, as each attempt starts,
    how many alerts were sent so far."""
    from airflow import DAG
    from airflow.operators.python import PythonOperator
    from airflow.sensors.python import PythonSensor

    from emerald_dag.builder import failure_callbacks

    def boom(**_):
        seen_before_each_try.append(
            len([m for m in inbox.messages if "always_fails" in m["subject"]]))
        raise RuntimeError("ingest exploded")

    with DAG("emerald_failure_probe", schedule=None, start_date=dt.datetime(2026, 1, 1),
             default_args={"owner": "dorothy", "retries": 2,
                           "retry_delay": dt.timedelta(seconds=0),
                           "on_failure_callback": failure_callbacks(config)},
             params={"night": None}) as dag:
        PythonOperator(task_id="always_fails", python_callable=boom)
        PythonSensor(task_id="never_ready", python_callable=lambda: False, timeout=1,
                     poke_interval=0.2, mode="poke")
    return dag


def test_a_task_failing_for_good_alerts_once_after_its_retries_and_a_sensor_timeout_alerts(
        airflow_db, config, monkeypatch, smtp_inbox, webhook_inbox):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    seen = []
    dag_run = _run(_failing_dag(config, smtp_inbox, seen))
    states = _states(dag_run)
    assert states == {"always_fails": ("failed", 3), "never_ready": ("failed", 1)}
    # Three attempts; no alert went out while a retry was left (UP_FOR_RETRY).
    assert seen == [0, 0, 0]
    subjects = sorted(m["subject"] for m in smtp_inbox.messages)
    assert subjects == [f"[Emerald] night {NIGHT}: task always_fails FAILED",
                        f"[Emerald] night {NIGHT}: task never_ready timed out"]
    assert len(webhook_inbox.posts) == 2
    (failed,) = [m for m in smtp_inbox.messages if "always_fails" in m["subject"]]
    assert failed["to"] == ["dorothy@example.com"]
    body = failed["data"]
    assert "task always_fails FAILED for good (attempt 3 of 3; no retry left)" in body
    assert "RuntimeError: ingest exploded" in body
    assert f"Log: {BASE_URL}/dags/emerald_failure_probe/grid?" in body
    assert "task_id=always_fails" in body and "tab=logs" in body
    assert f"Night report: {BASE_URL}/emerald-reports/night/{NIGHT}" in body
    slack = [json.loads(p["body"])["text"] for p in webhook_inbox.posts]
    assert any("never_ready timed out" in t and "AirflowSensorTimeout" in t for t in slack)
    assert any("always_fails FAILED" in t and "tab=logs" in t for t in slack)


def test_a_failure_alert_shows_no_secret_and_one_channel_down_keeps_the_other(
        airflow_db, config, monkeypatch, caplog):
    """The webhook answers 500 quoting its path (the token); the mail server needs a login."""
    caplog.set_level(logging.DEBUG)
    password = "hunter2-failure-smtp"
    smtp = testing.SmtpInbox(login="emerald", password=password)
    refusing = testing.FlakyWebhook(failures=None)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.conn_uri)
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", refusing.conn_uri)
        from emerald_alerts import notifiers
        monkeypatch.setattr(notifiers.EmeraldFailureNotifier, "__init__", _fast_init())
        dag = _failing_dag(config, smtp, [])
        dag_run = _run(dag.partial_subset(["always_fails"], include_upstream=False))
        assert _states(dag_run)["always_fails"][0] == "failed"
        assert [m["subject"] for m in smtp.messages] == [
            f"[Emerald] night {NIGHT}: task always_fails FAILED"]      # email got through
        assert refusing.attempts == 3                                # Slack tried, then given up
    finally:
        smtp.stop()
        refusing.stop()
    flaky_token = refusing.url.split("/services/", 1)[1]
    for secret in (password, flaky_token, flaky_token.rsplit("/", 1)[1]):
        assert secret not in caplog.text, secret
    assert "slack alert for run" in caplog.text and "***" in caplog.text


def _fast_init():
    """The notifier as configured, with a tiny backoff (the defaults wait 1 s then 2 s)."""
    from emerald_alerts import notifiers

    original = notifiers.EmeraldFailureNotifier.__init__

    def init(self, **kwargs):
        original(self, **{**kwargs, "attempts": 3, "backoff": 0.01})
    return init


def _short_sensor_config(tmp_path) -> Path:
    """include/emerald.yaml with the sensor giving up after 2 s (and quick retries)."""
    return testing.quick_retry_config(tmp_path, ingest={"timeout_seconds": 2})


def test_the_nightly_sensor_timing_out_alerts(airflow_db, config, monkeypatch, smtp_inbox,
                                              webhook_inbox, tmp_path):
    """The real DAG's wait_for_night, deferred (the trigger runs in line under dag.test),
    times out on a night whose photos never come: it fails without retry, and alerts."""
    from emerald_dag.builder import build_nightly_dag

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    monkeypatch.setenv("EMERALD_CONFIG", str(_short_sensor_config(tmp_path)))
    monkeypatch.setenv("EMERALD_SOURCE", str(tmp_path / "source"))       # no night in it
    nightly = build_nightly_dag(load_config())
    dag_run = _run(nightly.partial_subset(["wait_for_night"], include_downstream=False,
                                          include_upstream=False))
    assert _states(dag_run) == {"wait_for_night": ("failed", 1)}
    (message,) = smtp_inbox.messages
    assert message["subject"] == f"[Emerald] night {NIGHT}: task wait_for_night timed out"
    assert f"AirflowSensorTimeout: Night {NIGHT} is not complete" in message["data"]
    assert f"{BASE_URL}/dags/emerald_nightly/grid?" in message["data"]
    (post,) = webhook_inbox.posts
    assert "wait_for_night timed out" in json.loads(post["body"])["text"]


# --------------------------------------------------------------------------- the real scheduler

@pytest.mark.slow
def test_a_task_failing_under_the_real_scheduler_alerts(tmp_path, smtp_inbox, webhook_inbox):
    """`airflow scheduler` + `airflow triggerer` (SequentialExecutor): the sensor defers,
    the triggerer reports its timeout, the task resumes in its own `airflow tasks run`
    process and fails there, which runs the failure callback; the alert reaches this
    test's servers."""
    home, logs = tmp_path / "home", tmp_path / "logs"
    logs.mkdir()
    env, _ = testing.scheduler_environment(
        home, _short_sensor_config(tmp_path),
        EMERALD_SOURCE=str(tmp_path / "source"), EMERALD_ALERT_EMAILS="dorothy@example.com",
        AIRFLOW__WEBSERVER__BASE_URL=BASE_URL,
        AIRFLOW_CONN_SMTP_DEFAULT=smtp_inbox.conn_uri,
        AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT=webhook_inbox.conn_uri)
    with testing.LocalScheduler(env, logs) as airflow:
        db = airflow.db
        airflow.trigger("no_source", NIGHT)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not (
                smtp_inbox.messages and webhook_inbox.posts
                and testing.task_state(db, "no_source", "wait_for_night")["state"] == "failed"):
            time.sleep(2)
        sensor = testing.task_state(db, "no_source", "wait_for_night")
        state = testing.run_state(db, "no_source")
    scheduler_log = "\n".join(p.read_text(errors="replace")[-3000:] for p in logs.glob("*.log"))
    assert sensor["state"] == "failed", (sensor, state, scheduler_log)
    subjects = [m["subject"] for m in smtp_inbox.messages]
    assert f"[Emerald] night {NIGHT}: task wait_for_night timed out" in subjects, subjects
    body = next(m["data"] for m in smtp_inbox.messages if "wait_for_night" in m["subject"])
    assert "AirflowSensorTimeout" in body and f"{BASE_URL}/dags/emerald_nightly/grid?" in body
    assert "dag_run_id=no_source" in body
    assert any("wait_for_night timed out" in json.loads(p["body"])["text"]
               for p in webhook_inbox.posts)
