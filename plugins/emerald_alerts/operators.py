"""The data gate task (and its worker half beside a gate pod) and the night's report task.
Thin: the bodies are pipeline_src.orchestration.tasks."""
from __future__ import annotations

from typing import Any, Sequence

from airflow.models import BaseOperator

from pipeline_src.config import is_true
from pipeline_src.names import DATA_GATE_DECISION, FORCE_PUSH, NIGHT, RUN_STATE, TFX_RUN_ID


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
    """Alerts on this run's findings; fails, without retrying, to stop the push.

    A blocking finding fails this task (red in the UI), so the Pusher
    downstream is `upstream_failed`. `force_push` lets the push through, logged
    and alerted. An alert channel that is down is retried inside the task, then
    shown in the task log and the night's report: it fails nothing, and the
    other channel still alerts.
    """

    ui_color = "#f9d71c"

    def execute(self, context) -> dict:
        from airflow.exceptions import AirflowFailException

        from pipeline_src.decision import gate
        from pipeline_src.orchestration import tasks
        from pipeline_src.config import load_config

        config = load_config()
        try:
            return tasks.run_gate(config, self.tfx_run_id, self.night, is_true(self.force_push),
                                  tasks.alert_sender(config, self.tfx_run_id, self.night, context))
        except gate.PushBlocked as blocked:
            raise AirflowFailException(str(blocked)) from None


class GateDeliveryOperator(_NightRunOperator):
    """The data gate's worker half, when the gate decided in a pod (node_runner=kubernetes).

    A pod cannot read Airflow's connections: the gate pod hands back its decision
    and the alert it calls for through XCom, and this task, in the worker, sends
    the alert with the connections, keeps the delivery beside the report, and
    fails without retrying to stop the push when the decision blocks.
    """

    template_fields: Sequence[str] = (*_NightRunOperator.template_fields, "decision_task_id")
    ui_color = "#f9d71c"

    def __init__(self, *, decision_task_id: str = DATA_GATE_DECISION, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decision_task_id = decision_task_id

    def execute(self, context) -> dict:
        from airflow.exceptions import AirflowException, AirflowFailException

        from pipeline_src.decision import gate
        from pipeline_src.orchestration import tasks
        from pipeline_src.config import load_config

        decided = context["ti"].xcom_pull(task_ids=self.decision_task_id)
        if not isinstance(decided, dict) or decided.get("tfx_run_id") != self.tfx_run_id:
            raise AirflowException(f"{self.decision_task_id} handed back no decision for run "
                                   f"{self.tfx_run_id}: {decided!r:.200}")
        config = load_config()
        try:
            return tasks.deliver_decided(
                config, decided, tasks.alert_sender(config, self.tfx_run_id, self.night, context))
        except gate.PushBlocked as blocked:
            raise AirflowFailException(str(blocked)) from None


class NightReportOperator(_NightRunOperator):
    """Writes the night's report once everything ran (or failed): summary.json + report.html."""

    template_fields: Sequence[str] = (*_NightRunOperator.template_fields, "state")
    ui_color = "#b0e0e6"

    def __init__(self, *, state: str = RUN_STATE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state = state

    def execute(self, context) -> dict:
        from pipeline_src.orchestration import tasks
        from pipeline_src.config import load_config

        summary = tasks.write_night_report(load_config(), self.tfx_run_id, self.night,
                                           state=self.state, force_push=is_true(self.force_push))
        self.log.info("night %s report (%s): %s", self.night, self.state, summary["report_url"])
        return {"report_url": summary["report_url"], "push_blocked": summary["push_blocked"]}
