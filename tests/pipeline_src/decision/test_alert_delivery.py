"""The gate task's alerts with channels down: the data decides the push, the report shows
the delivery, a retry resends only what failed, and no secret is shown anywhere.

`tasks.run_gate` against a real MLMD store (test_report's), a real SMTP server and a
real HTTP webhook, with a tiny backoff.
"""
from __future__ import annotations

import json
import logging

import pytest

import emerald_testing as testing
from pipeline_src.config import load_config
from pipeline_src.decision import gate, report
from pipeline_src.orchestration import tasks
from test_report import NIGHT, RUN, TONIGHT_COMPARISONS, Store, comparisons, examples

FAST = {"attempts": 3, "backoff": 0.01}
DOWN_SMTP = (f"smtp://127.0.0.1:{testing.free_port()}?disable_ssl=true&disable_tls=true"
             "&from_email=e%40example.com&timeout=5&retry_limit=1")
BLOCKING = TONIGHT_COMPARISONS        # a skew fired (blocks), drift and prediction (warn)
WARN_ONLY = dict(TONIGHT_COMPARISONS, comparisons=[
    c for c in TONIGHT_COMPARISONS["comparisons"] if c["kind"] != "skew"])


@pytest.fixture
def config(emerald_home, monkeypatch):
    monkeypatch.setenv("EMERALD_ALERT_EMAILS", "dorothy@example.com")
    return load_config()


@pytest.fixture
def night(config, tmp_path):
    """Records tonight's run in MLMD with the given comparisons."""
    def record(result):
        store = Store(config, tmp_path)
        store.execute(RUN, "ImageExampleGen", outputs=[("examples", examples(store))])
        store.execute(RUN, "ImageDistributionValidator",
                      outputs=[("comparisons", comparisons(store, result))])
    return record


@pytest.fixture
def refusing_webhook():
    server = testing.FlakyWebhook(failures=None)
    yield server
    server.stop()


def _gate(config):
    return tasks.run_gate(config, RUN, NIGHT, False,
                          tasks.alert_sender(config, RUN, NIGHT, **FAST))


def _written(config):
    folder = config.paths.reports / NIGHT
    return (json.loads((folder / "summary.json").read_text()),
            (folder / "report.html").read_text())


def test_a_warn_only_night_pushes_with_every_channel_down_and_the_report_says_so(
        config, night, monkeypatch, refusing_webhook, caplog):
    caplog.set_level(logging.INFO)
    night(WARN_ONLY)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", DOWN_SMTP)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", refusing_webhook.conn_uri)
    result = _gate(config)                                   # no PushBlocked, nothing raised
    assert not result["blocked"]
    assert result["alerts"]["email"].startswith("failed: ConnectionRefusedError")
    assert result["alerts"]["slack"].startswith("failed: AirflowException")
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert "email alert for run" in errors and "slack alert for run" in errors
    summary, page = _written(config)
    assert summary["alerts"] == result["alerts"]
    assert "<table class='alerts'>" in page and "failed: ConnectionRefusedError" in page
    # The night's teardown task re-writes the report from MLMD: the delivery stays in it.
    tasks.write_night_report(config, RUN, NIGHT, state="success")
    summary, page = _written(config)
    assert summary["state"] == "success" and summary["alerts"] == result["alerts"]
    assert "failed: ConnectionRefusedError" in page


def test_a_blocking_night_blocks_after_every_channel_and_a_retry_resends_only_the_failed_one(
        config, night, monkeypatch, smtp_inbox, webhook_inbox):
    night(BLOCKING)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", DOWN_SMTP)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    with pytest.raises(gate.PushBlocked, match="aspect_ratio"):
        _gate(config)
    assert len(webhook_inbox.posts) == 1                     # Slack was tried, and alerted
    alerts = _written(config)[0]["alerts"]
    assert alerts["slack"] == "sent" and alerts["email"].startswith("failed: ")
    # The gate task cleared and run again, the mail server back.
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    with pytest.raises(gate.PushBlocked):
        _gate(config)
    assert _written(config)[0]["alerts"] == {"email": "sent", "slack": "already sent"}
    assert len(smtp_inbox.messages) == 1 and len(webhook_inbox.posts) == 1


def test_a_sender_that_raises_is_reported_not_raised(config, night, caplog):
    night(WARN_ONLY)

    def broken(subject, body):
        raise RuntimeError("https://hooks.slack.com/services/T0/B0/secret-token")

    result = tasks.run_gate(config, RUN, NIGHT, False, broken)
    assert result["alerts"] == {"alert": "failed: RuntimeError"}
    assert _written(config)[0]["alerts"] == result["alerts"]
    assert "secret-token" not in caplog.text


def test_a_clean_night_records_no_alert(config, night):
    night(dict(TONIGHT_COMPARISONS, comparisons=[]))
    result = _gate(config)
    summary, page = _written(config)
    assert result["alerts"] == summary["alerts"] == {}
    assert "No alert for this run." in page


def test_no_smtp_password_or_webhook_token_in_the_log_or_the_report(
        config, night, monkeypatch, refusing_webhook, caplog):
    """The webhook's 500 quotes the request path, which is the token: it must be blanked."""
    caplog.set_level(logging.INFO)
    night(BLOCKING)
    password = "hunter2-smtp-secret"
    smtp = testing.FlakySmtp(failures=None)
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.conn_uri("emerald", password))
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", refusing_webhook.conn_uri)
        with pytest.raises(gate.PushBlocked) as blocked:
            _gate(config)
    finally:
        smtp.stop()
    folder = config.paths.reports / NIGHT
    shown = [caplog.text, str(blocked.value)] + [
        (folder / name).read_text() for name in ("summary.json", "report.html", report.ALERTS_FILE)]
    token = refusing_webhook.url.split("/services/", 1)[1]
    for secret in (password, token, token.rsplit("/", 1)[1], refusing_webhook.url):
        assert not any(secret in text for text in shown), secret
    assert "no service at ***" in shown[2]                 # the reason is still shown
