"""Alerts through Airflow's own notifiers and connections, at most once per run and channel.

A retried gate task must not page Dorothy twice: each channel that delivered
leaves a marker beside the night's report, and a retry skips it.
"""
from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path
from typing import Any, Optional, Sequence

from airflow.hooks.base import BaseHook

CHANNELS = ("email", "slack")


class EmeraldAlertHook(BaseHook):
    """Sends one alert per (TFX run, channel): email via SMTP, Slack via a webhook."""

    hook_name = "Emerald alerts"

    def __init__(self, *, marker_dir: Path, smtp_conn_id: str = "smtp_default",
                 slack_conn_id: str = "slack_webhook_default",
                 emails: Sequence[str] = ()) -> None:
        super().__init__()
        self.marker_dir = Path(marker_dir)
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id
        self.emails = tuple(emails)

    def _marker(self, run_id: str, channel: str) -> Path:
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
        return self.marker_dir / f"alert-{digest}.{channel}.json"

    def already_sent(self, run_id: str, channel: str) -> bool:
        return self._marker(run_id, channel).exists()

    def _connection_exists(self, conn_id: str) -> bool:
        try:
            self.get_connection(conn_id)
            return True
        except Exception:  # noqa: BLE001 - AirflowNotFoundException and friends
            return False

    def send(self, run_id: str, subject: str, body: str, context: Any) -> dict[str, str]:
        """Delivers on every configured channel not yet used for `run_id`."""
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        outcome = {}
        for channel in CHANNELS:
            if self.already_sent(run_id, channel):
                outcome[channel] = "already sent"
                self.log.info("%s alert for run %s already sent: not resending", channel, run_id)
                continue
            if channel == "email":
                if not self.emails or not self._connection_exists(self.smtp_conn_id):
                    outcome[channel] = "not configured"
                    continue
                self._send_email(subject, body, context)
            else:
                if not self._connection_exists(self.slack_conn_id):
                    outcome[channel] = "not configured"
                    continue
                self._send_slack(subject, body, context)
            self._marker(run_id, channel).write_text(json.dumps({"subject": subject}))
            outcome[channel] = "sent"
        return outcome

    def _send_email(self, subject: str, body: str, context: Any) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            from_email=None,   # the connection's from_email extra
            to=list(self.emails), subject=subject,
            html_content=f"<pre>{html.escape(body)}</pre>",
            smtp_conn_id=self.smtp_conn_id,
        ).notify(context)

    def _send_slack(self, subject: str, body: str, context: Any) -> None:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        SlackWebhookNotifier(
            slack_webhook_conn_id=self.slack_conn_id, text=f"*{subject}*\n{body}",
        ).notify(context)
