"""Alerts through Airflow's own notifiers and connections, at most once per run and channel.

A retried gate task must not page Dorothy twice: each channel that delivered
leaves a marker beside the night's report, and a retry skips it (a channel
that failed has no marker, so a retry tries it again).

The channels are independent and sending never raises: a mail server that is
down must neither keep the alert from Slack nor decide tonight's push. Each
channel is tried a few times inside the task with a short backoff (the gate
task itself is not retried), then reported as failed, with a reason cleared of
the connection's secrets: a Slack client error can quote the webhook URL,
whose path is the token.
"""
from __future__ import annotations

import hashlib
import html
import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import quote, urlparse

from airflow.exceptions import AirflowNotFoundException
from airflow.hooks.base import BaseHook

from pipeline_src.locations import location

CHANNELS = ("email", "slack")
ATTEMPTS = 3              # tries per channel, inside the task
BACKOFF_SECONDS = 1.0     # the wait after a failed try, doubled after each: 1 s, then 2 s
SLACK_TIMEOUT_SECONDS = 10
REDACTED = "***"


class EmeraldAlertHook(BaseHook):
    """Sends one alert per (TFX run, channel): email via SMTP, Slack via a webhook."""

    hook_name = "Emerald alerts"

    def __init__(self, *, marker_dir: Path, smtp_conn_id: str = "smtp_default",
                 slack_conn_id: str = "slack_webhook_default",
                 emails: Sequence[str] = (), attempts: int = ATTEMPTS,
                 backoff: float = BACKOFF_SECONDS) -> None:
        super().__init__()
        self.marker_dir = location(marker_dir)       # beside the night's report: a folder or gs://
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id
        self.emails = tuple(emails)
        self.attempts = max(1, int(attempts))
        self.backoff = backoff

    def _marker(self, run_id: str, channel: str) -> Path:
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
        return self.marker_dir / f"alert-{digest}.{channel}.json"

    def already_sent(self, run_id: str, channel: str) -> bool:
        return self._marker(run_id, channel).exists()

    def send(self, run_id: str, subject: str, body: str, context: Any) -> dict[str, str]:
        """Tries every channel not yet delivered for `run_id`, each on its own; never raises.

        Returns channel -> "sent" | "already sent" | "not configured" | "failed: <reason>".
        """
        outcome = {}
        for channel in CHANNELS:
            try:
                outcome[channel] = self._deliver(channel, run_id, subject, body, context)
            except Exception as error:  # noqa: BLE001 - no secret known here: the type only
                self.log.error("%s alert for run %s failed: %s", channel, run_id,
                               type(error).__name__)
                outcome[channel] = f"failed: {type(error).__name__}"
        return outcome

    def _deliver(self, channel: str, run_id: str, subject: str, body: str, context: Any) -> str:
        if self.already_sent(run_id, channel):
            self.log.info("%s alert for run %s already sent: not resending", channel, run_id)
            return "already sent"
        if channel == "email" and not self.emails:
            return "not configured"
        try:
            connection = self.get_connection(
                self.smtp_conn_id if channel == "email" else self.slack_conn_id)
        except AirflowNotFoundException:
            return "not configured"
        send = self._send_email if channel == "email" else self._send_slack
        failure = self._tries(channel, lambda: send(subject, body, context),
                              secrets(connection))
        if failure:
            self.log.error("%s alert for run %s failed after %d attempt(s): %s",
                           channel, run_id, self.attempts, failure)
            return f"failed: {failure}"
        try:
            self.marker_dir.mkdir(parents=True, exist_ok=True)
            self._marker(run_id, channel).write_text(json.dumps({"subject": subject}))
        except OSError as error:     # delivered all the same: say so, not "failed"
            self.log.error("%s alert for run %s sent, but its marker was not written (%s): "
                           "a retry would send it again", channel, run_id, error)
        return "sent"

    def _tries(self, channel: str, send: Callable[[], None], hidden: Sequence[str]) -> str:
        """Up to `attempts` tries, waiting `backoff`, then twice that, ... in between.

        Returns "" once a try delivers, else the last error with `hidden` redacted.
        """
        wait = self.backoff
        for n in range(1, self.attempts + 1):
            try:
                send()
                return ""
            except Exception as error:  # noqa: BLE001 - SMTP, HTTP and Airflow errors alike
                reason = redact(f"{type(error).__name__}: {error}", hidden)
                if n == self.attempts:
                    return reason
                self.log.warning("%s alert attempt %d of %d failed: %s; retrying in %.1f s",
                                 channel, n, self.attempts, reason, wait)
                time.sleep(wait)
                wait *= 2
        return ""

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

        # No slack_sdk retry handlers: this module retries, and theirs log the webhook URL.
        SlackWebhookNotifier(
            slack_webhook_conn_id=self.slack_conn_id, text=f"*{subject}*\n{body}",
            timeout=SLACK_TIMEOUT_SECONDS, retry_handlers=[],
        ).notify(context)


def secrets(connection: Any) -> list[str]:
    """What must not be shown of a connection: its password and, when that is a URL (a
    Slack webhook's), the URL's path, which carries the token; each also URL-quoted."""
    password = (connection.password or "").strip()
    found = {password, urlparse(password).path if "://" in password else ""}
    found |= {quote(s, safe="") for s in found}
    return sorted((s for s in found if s.strip("/")), key=len, reverse=True)


def redact(text: str, hidden: Sequence[str]) -> str:
    for secret in hidden:
        text = text.replace(secret, REDACTED)
    return text
