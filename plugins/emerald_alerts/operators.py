"""The data gate task and the night's report task. Thin: the logic is in pipeline_src.gate."""
from __future__ import annotations

from typing import Any, Sequence

from airflow.models import BaseOperator

from emerald_tfx.operators import NIGHT, TFX_RUN_ID
from pipeline_src.config import is_true

FORCE_PUSH = "{{ params.get('force_push', False) }}"


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

        from pipeline_src import gate
        from pipeline_src.config import load_config

        config = load_config()
        try:
            return gate.run_gate(config, self.tfx_run_id, self.night, is_true(self.force_push),
                                 gate.alert_sender(config, self.tfx_run_id, self.night, context))
        except gate.PushBlocked as blocked:
            raise AirflowFailException(str(blocked)) from None


def gate_in_external_python(tfx_run_id: str, night: str, force_push: str) -> dict:
    """ExternalPythonOperator callable (runs in the TFX virtualenv): the gate's body."""
    from pipeline_src import gate
    from pipeline_src.config import is_true, load_config   # imported here: runs elsewhere

    config = load_config()
    return gate.run_gate(config, tfx_run_id, night, is_true(force_push),
                         gate.alert_sender(config, tfx_run_id, night))


def report_in_external_python(tfx_run_id: str, night: str, force_push: str) -> dict:
    """ExternalPythonOperator callable (runs in the TFX virtualenv): the night's report."""
    from pipeline_src import report
    from pipeline_src.config import is_true, load_config   # imported here: runs elsewhere

    summary = report.write_night_report(load_config(), tfx_run_id, night,
                                        force_push=is_true(force_push))
    return {"report_url": summary["report_url"], "push_blocked": summary["push_blocked"]}


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
                                            state=state, force_push=is_true(self.force_push))
        self.log.info("night %s report: %s", self.night, summary["report_url"])
        return {"report_url": summary["report_url"], "push_blocked": summary["push_blocked"]}
