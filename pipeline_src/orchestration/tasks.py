"""The bodies of the night's own tasks, the data gate and the report, wherever they run.

One implementation each: the in-process operators call these functions, and
every other runner (a virtualenv, a pod) runs the same code as `emerald gate`
/ `emerald report`. `gate` decides, `report` gathers and renders; this module
composes them (so neither imports the other).
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Optional

from pipeline_src.decision import gate
from pipeline_src.decision import report
from pipeline_src.arguments import night_arg
from pipeline_src.config import Config, is_true, load_config
from pipeline_src.serving import lifecycle

log = logging.getLogger(__name__)
BLOCKED_EXIT_CODE = 3      # `emerald gate`: the push is blocked (the task fails, no retry)


def write_night_report(config: Config, tfx_run_id: str, night: str,
                       state: Optional[str] = None, force_push: bool = False) -> dict[str, Any]:
    """Writes {reports}/{night}/summary.json and report.html; returns the summary.

    A pushed night is then recorded in the serving history, once, and made to
    serve (pipeline_src.serving): this task runs after Pusher whatever happened.
    """
    summary = _decide_and_write(config, tfx_run_id, night, state, force_push)[0]
    lifecycle.record_push(config, summary)
    return summary


def _decide_and_write(config: Config, tfx_run_id: str, night: str, state: Optional[str],
                      force_push: bool) -> tuple[dict[str, Any], gate.Decision]:
    """The night's summary with the gate's decision (acknowledgments read once), written."""
    summary = report.night_summary(config, tfx_run_id, night, state)
    decision = gate.gate_night(config, summary, force_push)
    return report.write(config, summary, decision), decision


def run_gate(config: Config, tfx_run_id: str, night: str, force_push: bool,
             send_alert: Callable[[str, str], dict]) -> dict[str, Any]:
    """The gate: report, alert once, record the delivery in the report, then block or pass.

    `send_alert(subject, body)` delivers the night's one alert and returns the
    outcome per channel. Raises gate.PushBlocked when blocking findings stand and
    no override, after every channel was tried; a failed delivery never raises
    (the data decides the push, not the mail server): it is logged and reported.
    """
    summary, decided = _decide(config, tfx_run_id, night, force_push)
    alerts = _send(decided, send_alert)
    if alerts:
        report.record_alerts(config, summary, alerts)
    return _block_or_pass(decided, alerts)


def decide_gate(config: Config, tfx_run_id: str, night: str, force_push: bool
                ) -> dict[str, Any]:
    """The gate's decision and the alert it calls for, written into the report, not sent.

    What a pod hands back (`emerald gate --alert=hand-back`): a pod cannot read
    Airflow's connections, so the worker's task sends the alert (deliver_decided).
    """
    return _decide(config, tfx_run_id, night, force_push)[1]


def deliver_decided(config: Config, decided: dict[str, Any],
                    send_alert: Callable[[str, str], dict]) -> dict[str, Any]:
    """In the worker: sends the alert a pod's gate decided, keeps its delivery beside the
    report (the teardown's report task renders it), then blocks or passes the push."""
    alerts = _send(decided, send_alert)
    if alerts:
        report.keep_alerts(config, decided["night"], decided["tfx_run_id"], alerts)
    return _block_or_pass(decided, alerts)


def _decide(config: Config, tfx_run_id: str, night: str, force_push: bool
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary, decided): the report written, and the decision as plain JSON."""
    summary, decision = _decide_and_write(config, tfx_run_id, night, "running", force_push)
    for finding in summary["findings"]:
        log.warning("%s finding: %s", finding["kind"], finding["message"])
    previous = report.previous_night(summary)
    alert = None
    if decision.needs_alert:
        subject, body = gate.alert_text(decision, night, previous, summary["report_url"])
        alert = {"subject": subject, "body": body}
    if decision.forced:
        log.warning("force_push: pushing despite %d blocking finding(s)", len(decision.blocking))
    reason = (f"push blocked for night {night}: " + "; ".join(
        f.message(night, previous) for f in decision.blocking)) if decision.blocked else None
    return summary, {"tfx_run_id": tfx_run_id, "night": night, "blocked": decision.blocked,
                     "forced": decision.forced, "findings": summary["findings"],
                     "alert": alert, "reason": reason}


def _send(decided: dict[str, Any], send_alert: Callable[[str, str], dict]) -> dict:
    alert = decided.get("alert")
    return _deliver(send_alert, alert["subject"], alert["body"]) if alert else {}


def _block_or_pass(decided: dict[str, Any], alerts: dict) -> dict[str, Any]:
    if decided["blocked"]:
        raise gate.PushBlocked(decided["reason"])
    return {"blocked": False, "forced": decided["forced"], "findings": decided["findings"],
            "alerts": alerts}


def _deliver(send_alert: Callable[[str, str], dict], subject: str, body: str) -> dict:
    """The delivery per channel; whatever goes wrong is an outcome, not an exception."""
    try:
        alerts = dict(send_alert(subject, body))
    except Exception as error:  # noqa: BLE001 - its message may hold a secret: the type only
        log.error("alert %r not delivered: %s", subject, type(error).__name__)
        return {"alert": f"failed: {type(error).__name__}"}
    failed = sorted(channel for channel, outcome in alerts.items()
                    if str(outcome).startswith("failed"))
    if failed:    # each failure's reason is logged by the hook, and kept in the report
        log.warning("alert %r not delivered on %s", subject, ", ".join(failed))
    log.info("alert %r: %s", subject, alerts)
    return alerts


def alert_sender(config: Config, tfx_run_id: str, night: str, context: Any = None,
                 **delivery: Any):
    """Delivery through Airflow's notifiers, at most once per run and channel.

    `delivery`: the hook's `attempts` and `backoff` (its defaults in alerts.py).
    """
    from pipeline_src.decision.alerts import EmeraldAlertHook

    hook = EmeraldAlertHook(
        marker_dir=config.paths.reports / night, smtp_conn_id=config.alerts.smtp_conn_id,
        slack_conn_id=config.alerts.slack_conn_id, emails=config.alerts.emails, **delivery)
    return lambda subject, body: hook.send(tfx_run_id, subject, body, context or {})


ALERT_SEND, ALERT_HAND_BACK = "send", "hand-back"     # `emerald gate --alert=`
XCOM_FILE_ENV = "EMERALD_XCOM_FILE"    # set in the gate's and report's pods (emerald_dag.pods)


def hand_back(result: dict[str, Any]) -> None:
    """The task's result on stdout, and where the pod's XCom sidecar reads it, when asked.

    A pod cannot push an XCom itself: KubernetesPodOperator(do_xcom_push=True) reads
    /airflow/xcom/return.json from the pod, which EMERALD_XCOM_FILE names.
    """
    text = json.dumps(result, default=str)
    print(text)
    path = os.environ.get(XCOM_FILE_ENV)
    if path:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as handle:
            handle.write(text)


def _run(args) -> int:
    """`emerald gate` / `emerald report`."""
    logging.basicConfig(level=logging.INFO)
    config = load_config()
    if args.command == "report":
        summary = write_night_report(config, args.run_id, args.night, state=args.state,
                                     force_push=args.force_push)
        hand_back({"report_url": summary["report_url"],
                   "push_blocked": summary["push_blocked"], "state": summary["state"]})
        return 0
    if args.alert == ALERT_HAND_BACK:        # a pod: the worker's task sends, and blocks
        hand_back(decide_gate(config, args.run_id, args.night, args.force_push))
        return 0
    try:
        result = run_gate(config, args.run_id, args.night, args.force_push,
                          alert_sender(config, args.run_id, args.night))
    except gate.PushBlocked as blocked:
        print(str(blocked))
        return BLOCKED_EXIT_CODE
    hand_back(result)
    return 0


def register(subparsers) -> None:
    for name, text in (("gate", f"the data gate: alert, and exit {BLOCKED_EXIT_CODE} when "
                                "the push is blocked"),
                       ("report", "write the night's report (summary.json, report.html)")):
        parser = subparsers.add_parser(name, help=text)
        parser.add_argument("--run-id", required=True, help="the TFX pipeline run id")
        parser.add_argument("--night", required=True, type=night_arg, help="YYYY-MM-DD")
        parser.add_argument("--force-push", nargs="?", const="true", default="false",
                            type=is_true,
                            help="push despite blocking findings (alerted); =true/false")
        if name == "report":
            parser.add_argument("--state", default=None,
                                help="the DAG run's outcome so far: success | failed")
        else:
            parser.add_argument(
                "--alert", choices=(ALERT_SEND, ALERT_HAND_BACK), default=ALERT_SEND,
                help=f"{ALERT_SEND}: send the alert and exit {BLOCKED_EXIT_CODE} when "
                     f"blocked; {ALERT_HAND_BACK}: print the decision and its alert as JSON "
                     f"and exit 0 (a pod: an Airflow task in the worker sends and blocks)")
        parser.set_defaults(func=_run)
