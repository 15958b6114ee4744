"""The alert hook against real SMTP servers and real HTTP webhooks: once per run and channel,
each channel on its own, retried with a short backoff, and no secret in what it says."""
from __future__ import annotations

import json
import logging
import time

import pytest

import emerald_testing as testing
from emerald_alerts.hooks import EmeraldAlertHook
from pipeline_src.decision import alerts

FAST = {"attempts": 3, "backoff": 0.01}     # the defaults are 1 s then 2 s
NOT_LISTENING_SMTP = (f"smtp://127.0.0.1:{testing.free_port()}?disable_ssl=true"
                      "&disable_tls=true&from_email=e%40example.com&timeout=5&retry_limit=1")
SLACK_TOKEN_PATH = "/services/T0DOWN/B0DOWN/not-listening-token"
NOT_LISTENING_SLACK = ("slackwebhook://:" + f"http%3A%2F%2F127.0.0.1%3A{testing.free_port()}"
                       + SLACK_TOKEN_PATH.replace("/", "%2F") + "@")


@pytest.fixture
def flaky_webhook():
    server = testing.FlakyWebhook(failures=1)
    yield server
    server.stop()


@pytest.fixture
def refusing_webhook():
    server = testing.FlakyWebhook(failures=None)
    yield server
    server.stop()


@pytest.fixture
def flaky_smtp():
    server = testing.FlakySmtp(failures=1)
    yield server
    server.stop()


@pytest.fixture
def refusing_smtp():
    server = testing.FlakySmtp(failures=None, reply="554 5.7.1 relay refused")
    yield server
    server.stop()


def _hook(tmp_path, **kwargs):
    return EmeraldAlertHook(marker_dir=tmp_path, emails=("dorothy@example.com",),
                            **{**FAST, **kwargs})


def test_alert_reaches_email_and_slack_once_per_run(tmp_path, monkeypatch, smtp_inbox,
                                                    webhook_inbox):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    hook = EmeraldAlertHook(marker_dir=tmp_path, emails=("dorothy@example.com",))
    subject = "[Emerald] night 2026-01-05: push BLOCKED"
    body = "aspect_ratio: Jensen-Shannon divergence 0.41 > 0.10, toto 2026-01-05 vs training"
    first = hook.send("run-1", subject, body, context={})
    assert first == {"email": "sent", "slack": "sent"}
    assert len(smtp_inbox.messages) == 1
    message = smtp_inbox.messages[0]
    assert message["to"] == ["dorothy@example.com"]
    assert message["subject"] == subject
    assert "aspect_ratio: Jensen-Shannon divergence 0.41 &gt; 0.10" in message["data"]
    assert len(webhook_inbox.posts) == 1
    assert "aspect_ratio" in json.loads(webhook_inbox.posts[0]["body"])["text"]

    retry = hook.send("run-1", subject, body, context={})   # a retried gate task
    assert retry == {"email": "already sent", "slack": "already sent"}
    assert len(smtp_inbox.messages) == 1 and len(webhook_inbox.posts) == 1

    hook.send("run-2", subject, body, context={})            # another night's run alerts again
    assert len(smtp_inbox.messages) == 2 and len(webhook_inbox.posts) == 2


@pytest.mark.parametrize("down", ["smtp not listening", "smtp refusing"])
def test_email_down_does_not_keep_the_alert_from_slack(down, tmp_path, monkeypatch,
                                                       refusing_smtp, webhook_inbox, caplog):
    smtp = NOT_LISTENING_SMTP if down == "smtp not listening" else refusing_smtp.conn_uri()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    outcome = _hook(tmp_path).send("run-1", "subject", "body", context={})
    assert outcome["slack"] == "sent" and len(webhook_inbox.posts) == 1
    assert outcome["email"].startswith("failed: ")
    assert ("ConnectionRefusedError" if down == "smtp not listening" else "554") \
        in outcome["email"]
    if down == "smtp refusing":
        assert refusing_smtp.attempts == FAST["attempts"]     # tried again, then given up
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("email alert for run run-1 failed after 3 attempt(s)" in m for m in errors)


@pytest.mark.parametrize("down", ["webhook not listening", "webhook answers 500"])
def test_slack_down_does_not_keep_the_alert_from_email(down, tmp_path, monkeypatch, smtp_inbox,
                                                       refusing_webhook):
    slack = NOT_LISTENING_SLACK if down == "webhook not listening" else refusing_webhook.conn_uri
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", slack)
    outcome = _hook(tmp_path).send("run-1", "subject", "body", context={})
    assert outcome["email"] == "sent" and len(smtp_inbox.messages) == 1
    assert outcome["slack"].startswith("failed: ")
    if down == "webhook answers 500":
        assert "Status Code: 500" in outcome["slack"]
        assert refusing_webhook.attempts == FAST["attempts"]


def test_a_channel_that_recovers_on_a_later_attempt_is_sent_once(tmp_path, monkeypatch,
                                                                 flaky_smtp, flaky_webhook):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", flaky_smtp.conn_uri())
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", flaky_webhook.conn_uri)
    start = time.monotonic()
    outcome = _hook(tmp_path, backoff=0.2).send("run-1", "subject", "body", context={})
    assert outcome == {"email": "sent", "slack": "sent"}
    assert (flaky_smtp.attempts, len(flaky_smtp.messages)) == (2, 1)       # 451, then 250
    assert (flaky_webhook.attempts, len(flaky_webhook.posts)) == (2, 1)    # 500, then 200
    assert time.monotonic() - start >= 2 * 0.2      # each channel waited its backoff once


def test_a_retry_resends_only_the_channel_that_failed(tmp_path, monkeypatch, smtp_inbox,
                                                      webhook_inbox):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", NOT_LISTENING_SLACK)
    hook = _hook(tmp_path)
    first = hook.send("run-9", "subject", "body", context={})
    assert first["email"] == "sent" and first["slack"].startswith("failed: ")
    assert [p.name.split(".")[1] for p in tmp_path.glob("alert-*.json")] == ["email"]
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    outcome = hook.send("run-9", "subject", "body", context={})
    assert outcome == {"email": "already sent", "slack": "sent"}
    assert len(smtp_inbox.messages) == 1 and len(webhook_inbox.posts) == 1


def test_unconfigured_channels_are_reported_not_crashed(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", raising=False)
    hook = EmeraldAlertHook(marker_dir=tmp_path, smtp_conn_id="nope_smtp",
                            slack_conn_id="nope_slack", emails=("a@b.c",))
    assert hook.send("run-3", "s", "b", context={}) == {"email": "not configured",
                                                         "slack": "not configured"}


@pytest.mark.parametrize("down", ["webhook not listening", "webhook answers 500"])
def test_no_webhook_token_or_smtp_password_in_the_log_or_the_outcome(
        down, tmp_path, monkeypatch, refusing_smtp, refusing_webhook, caplog):
    """A 500's body quotes the request path (the token); slack_sdk's own retry logs the URL."""
    caplog.set_level(logging.DEBUG, logger="airflow.task.hooks")
    caplog.set_level(logging.INFO)
    password = "hunter2-smtp-secret"
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", refusing_smtp.conn_uri("emerald", password))
    if down == "webhook not listening":
        slack, token = NOT_LISTENING_SLACK, SLACK_TOKEN_PATH
    else:
        slack, token = refusing_webhook.conn_uri, "/services/T0FLAKY/B0FLAKY/flaky-webhook-token"
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", slack)
    outcome = _hook(tmp_path).send("run-1", "subject", "body", context={})
    assert all(o.startswith("failed: ") for o in outcome.values()), outcome
    said = caplog.text + json.dumps(outcome)
    for secret in (password, token, token.rsplit("/", 1)[1]):
        assert secret not in said
    assert "slack alert" in caplog.text and "email alert" in caplog.text
    if down == "webhook answers 500":
        assert alerts.REDACTED in outcome["slack"]      # the body's path, blanked


def test_the_defaults_keep_a_dead_channel_to_seconds():
    assert (alerts.ATTEMPTS, alerts.BACKOFF_SECONDS) == (3, 1.0)    # waits 1 s, then 2 s


def test_email_logs_in_to_a_server_that_requires_it(tmp_path, monkeypatch, caplog):
    import logging

    from emerald_testing import SmtpInbox
    inbox = SmtpInbox(login="emerald", password="smtp-Secret-only-here")
    try:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", inbox.conn_uri)
        hook = EmeraldAlertHook(marker_dir=tmp_path, slack_conn_id="nope_slack",
                                emails=("dorothy@example.com",))
        with caplog.at_level(logging.DEBUG):
            outcome = hook.send("run-auth", "subject", "body", context={})
        assert outcome == {"email": "sent", "slack": "not configured"}
        assert inbox.logins == 1 and len(inbox.messages) == 1
        assert "smtp-Secret-only-here" not in caplog.text
    finally:
        inbox.stop()
