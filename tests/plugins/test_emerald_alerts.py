"""The alert hook against a real SMTP server and a real HTTP webhook: once per run and channel."""
from __future__ import annotations

import json

from emerald_alerts.hooks import EmeraldAlertHook


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


def test_a_channel_that_failed_is_retried_while_the_one_that_worked_is_not(
        tmp_path, monkeypatch, smtp_inbox, webhook_inbox):
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT",
                       "slackwebhook://:" + "http%3A%2F%2F127.0.0.1%3A9%2Fdown" + "@")
    hook = EmeraldAlertHook(marker_dir=tmp_path, emails=("dorothy@example.com",))
    try:
        hook.send("run-9", "subject", "body", context={})
        raise AssertionError("the Slack failure should fail the send")
    except AssertionError:
        raise
    except Exception:  # noqa: BLE001 - whatever the Slack client raised
        pass
    assert len(smtp_inbox.messages) == 1
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
