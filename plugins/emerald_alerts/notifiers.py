"""A task that fails for good alerts like a data finding: email and Slack, with a link to its log.

Set as every task's `on_failure_callback` (plugins/emerald_dag/builder.py).
Airflow calls it only when a task instance ends FAILED: while retries are left
a failure is UP_FOR_RETRY and Airflow calls `on_retry_callback` instead
(airflow/models/taskinstance.py, `fetch_handle_failure_context`); a sensor's
timeout (AirflowSensorTimeout) and AirflowFailException fail at once and alert.

Delivery is the gate's (pipeline_src/decision/alerts.py): the providers'
SmtpNotifier and SlackWebhookNotifier behind EmeraldAlertHook, each channel on
its own, retried with a short backoff, the connections' password and webhook
token kept out of every log line, and a marker per (run, task, try) so a
callback Airflow runs twice for one failure does not page twice. It never
raises: BaseNotifier logs an exception with its message, which for a Slack
client error can quote the webhook URL.

The data gate is the one task whose failure is a decision: when it blocks the
push it has already alerted, finding by finding. Its failure alerts here only
when the gate did not decide (it crashed before writing a blocked summary for
this run), so a blocked night pages once.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from airflow.notifications.basenotifier import BaseNotifier

from pipeline_src.locations import location
from pipeline_src.names import DATA_GATE, NIGHT, SUMMARY_FILE, TFX_RUN_ID

ERROR_CHARS = 500       # of the error's first line, in the alert


class EmeraldFailureNotifier(BaseNotifier):
    """Email + Slack when a task of the nightly DAG has failed for good."""

    template_fields = ()

    def __init__(self, *, reports_dir: str, smtp_conn_id: str = "smtp_default",
                 slack_conn_id: str = "slack_webhook_default", emails: Sequence[str] = (),
                 attempts: Optional[int] = None, backoff: Optional[float] = None) -> None:
        super().__init__()
        self.reports_dir = str(reports_dir)
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id
        self.emails = tuple(emails)
        self.attempts = attempts
        self.backoff = backoff

    def notify(self, context: Any) -> None:
        try:
            self._notify(context)
        except Exception as error:  # noqa: BLE001 - never raise: see the module's docstring
            self.log.error("failure alert not sent: %s", type(error).__name__)

    def _notify(self, context: Any) -> dict[str, str]:
        from pipeline_src.decision.alerts import EmeraldAlertHook

        ti = context["ti"]
        night, tfx_run_id = _rendered(context, NIGHT), _rendered(context, TFX_RUN_ID)
        if ti.task_id == DATA_GATE and gate_blocked(location(self.reports_dir), night, tfx_run_id):
            self.log.info("data_gate blocked the push for run %s and alerted its findings: "
                          "no failure alert on top", tfx_run_id)
            return {}
        subject, body = failure_text(context, night)
        delivery = {k: v for k, v in (("attempts", self.attempts), ("backoff", self.backoff))
                    if v is not None}
        hook = EmeraldAlertHook(marker_dir=location(self.reports_dir) / night,
                                smtp_conn_id=self.smtp_conn_id,
                                slack_conn_id=self.slack_conn_id, emails=self.emails,
                                **delivery)
        key = f"{tfx_run_id} failed {ti.task_id}[{ti.map_index}] try {ti.try_number}"
        outcome = hook.send(key, subject, body, context)
        self.log.info("failure alert %r: %s", subject, outcome)
        return outcome


def _rendered(context: Any, template: str) -> str:
    """A project template (names.NIGHT, names.TFX_RUN_ID) rendered as the task renders it."""
    try:
        return str(context["task"].render_template(template, context))
    except Exception:  # noqa: BLE001 - a task without its DAG: the run's own values
        if template == NIGHT:
            return str((context.get("params") or {}).get("night") or context.get("ds"))
        return f"{context.get('run_id')}.{getattr(context.get('dag_run'), 'id', '')}"


def gate_blocked(reports_dir: Path, night: str, tfx_run_id: str) -> bool:
    """The gate wrote a blocked decision for this very run (its summary.json says so)."""
    try:
        summary = json.loads((reports_dir / night / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return False
    return summary.get("tfx_run_id") == tfx_run_id and summary.get("push_blocked") is True


def failure_text(context: Any, night: str) -> tuple[str, str]:
    """(subject, body): the task, the night, the attempt, the error, the log and the report."""
    from airflow.exceptions import AirflowSensorTimeout
    from airflow.utils.log.secrets_masker import redact

    from pipeline_src.decision.report import report_url

    ti = context["ti"]
    error = context.get("exception")
    what = "timed out" if isinstance(error, AirflowSensorTimeout) else "FAILED"
    subject = f"[Emerald] night {night}: task {ti.task_id} {what}"
    # Masked as Airflow masks the task's log: an error may quote a connection's secret.
    first_line = (redact(str(error)).strip().splitlines() or [""])[0][:ERROR_CHARS] \
        if error else ""
    tries = getattr(ti, "max_tries", 0) + 1
    lines = [
        f"Emerald night {night}: task {ti.task_id} {what} for good "
        f"(attempt {ti.try_number} of {tries}; no retry left).", "",
        f"Error: {type(error).__name__}: {first_line}" if error else "Error: see the log",
        f"DAG run: {ti.dag_id} / {ti.run_id}",
        f"Log: {ti.log_url}",
        f"Night report: {report_url(night)}",
    ]
    return subject, "\n".join(lines)
