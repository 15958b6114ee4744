"""The data gate task and the night's report task. Thin: the logic is in pipeline_src.gate."""
from __future__ import annotations

from typing import Any, Sequence

from airflow.models import BaseOperator

from emerald_tfx.operators import NIGHT, TFX_RUN_ID

FORCE_PUSH = "{{ params.get('force_push', False) }}"


def _is_true(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


class _NightRunOperator(BaseOperator):
    """An operator about one night's TFX run: its run id, night and force_push are templated."""

    template_fields: Sequence[str] = ("tfx_run_id", "night", "force_push")

    def __init__(self, *, tfx_run_id: str = TFX_RUN_ID, night: str = NIGHT,
                 force_push: Any = FORCE_PUSH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tfx_run_id = tfx_run_id
        self.night = night
        self.force_push = force_push


class DataGateOperator(_NightRunOperator):
    """Alerts on this run's schema, skew and drift findings; fails to stop the push.

    A blocking finding fails this task (red in the UI) without retrying, so the
    Pusher downstream is `upstream_failed`. `force_push` lets the push through,
    logged and alerted.
    """

    ui_color = "#f9d71c"

    def execute(self, context) -> dict:
        from airflow.exceptions import AirflowFailException

        from emerald_alerts.hooks import EmeraldAlertHook
        from pipeline_src import gate, report
        from pipeline_src.config import load_config

        config = load_config()
        force = _is_true(self.force_push)
        summary = report.write_night_report(config, self.tfx_run_id, self.night,
                                            state="running", force_push=force)
        decision = gate.gate_night(config, summary, force)
        for finding in summary["findings"]:
            self.log.warning("%s finding: %s", finding["kind"], finding["message"])
        outcome = {}
        if decision.needs_alert:
            previous = summary.get("previous_night")
            subject, body = gate.alert_text(
                decision, self.night, None if previous == "none" else previous,
                summary["report_url"])
            hook = EmeraldAlertHook(
                marker_dir=config.paths.reports / self.night,
                smtp_conn_id=config.alerts.smtp_conn_id,
                slack_conn_id=config.alerts.slack_conn_id, emails=config.alerts.emails)
            outcome = hook.send(self.tfx_run_id, subject, body, context)
            self.log.info("alert %r: %s", subject, outcome)
        if decision.forced:
            self.log.warning("force_push: pushing despite %d blocking finding(s)",
                             len(decision.blocking))
        result = {"blocked": decision.blocked, "forced": decision.forced,
                  "findings": summary["findings"], "alerts": outcome}
        if decision.blocked:
            raise AirflowFailException(
                f"push blocked for night {self.night}: "
                + "; ".join(f["message"] for f in summary["findings"] if f["kind"] in config.gate.block))
        return result


class NightReportOperator(_NightRunOperator):
    """Writes the night's report once everything ran (or failed): summary.json + report.html."""

    ui_color = "#b0e0e6"

    def execute(self, context) -> dict:
        from pipeline_src import report
        from pipeline_src.config import load_config

        dag_run = context["dag_run"]
        failed = [ti.task_id for ti in dag_run.get_task_instances()
                  if ti.state in ("failed", "upstream_failed") and ti.task_id != self.task_id]
        state = "failed" if failed else "success"
        summary = report.write_night_report(load_config(), self.tfx_run_id, self.night,
                                            state=state, force_push=_is_true(self.force_push))
        self.log.info("night %s report: %s", self.night, summary["report_url"])
        return {"report_url": summary["report_url"], "push_blocked": summary["push_blocked"]}
