"""A night whose model the Evaluator did not bless pages like a data finding, and once.

The Evaluator's outcome as TFX records it in a real MLMD store (test_report's Store:
a ModelBlessing with `blessed` and, only when there was a baseline, `baseline_model`),
the gate's policy from include/emerald.yaml, and delivery to a real SMTP server and a
real webhook server. Then the data_gate task itself under Airflow (`dag.test()`), with
the nightly DAG's failure callbacks: a gate that blocks alerts its findings and no
failure alert on top; a gate that crashes sends the failure alert.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest

from pipeline_src.config import load_config
from pipeline_src.decision import blessing, gate, report
from pipeline_src.orchestration import tasks
from test_report import NIGHT, RUN, TONIGHT_COMPARISONS, Store, examples

FAST = {"attempts": 3, "backoff": 0.01}
CLEAN = dict(TONIGHT_COMPARISONS, comparisons=[])


@pytest.fixture
def config(emerald_home, monkeypatch):
    monkeypatch.setenv("EMERALD_ALERT_EMAILS", "dorothy@example.com")
    return load_config()


def record(config, tmp_path, run=RUN, blessed=0, baseline=None, comparisons=CLEAN):
    """Tonight's run in MLMD: clean data, and the Evaluator's blessing."""
    from test_report import comparisons as comparisons_artifact

    store = Store(config, tmp_path)
    if run not in store.runs:
        (store.runs[run],) = store._contexts("pipeline_run", [run])
    store.execute(run, "ImageExampleGen", outputs=[("examples", examples(store))])
    store.execute(run, "ImageDistributionValidator",
                  outputs=[("comparisons", comparisons_artifact(store, comparisons))])
    custom = {"blessed": blessed, "current_model": "/pipeline/Trainer/model/9"}
    if baseline:
        custom["baseline_model"] = baseline
    store.execute(run, "Evaluator",
                  outputs=[("blessing", store.artifact("ModelBlessing", **custom))])
    return store


def test_the_policy_blocks_an_unblessed_model():
    assert "model" in load_config().gate.block


def test_an_unblessed_first_night_is_a_blocking_model_finding_and_says_it_had_no_baseline(
        config, tmp_path):
    record(config, tmp_path, blessed=0)
    summary = report.night_summary(config, RUN, NIGHT)
    assert summary["evaluation"]["evaluated"] and not summary["evaluation"]["blessed"]
    assert summary["evaluation"]["baseline_model"] is None
    assert summary["evaluation"]["basis"] == "no baseline model: blessed against min_accuracy only"
    (finding,) = gate.findings_from_summary(summary)
    assert (finding.kind, finding.feature, finding.anomaly) == ("model", "accuracy", "NOT_BLESSED")
    decision = gate.gate_night(config, summary, force_push=False)
    assert decision.blocked and decision.unblessed
    message = finding.message(NIGHT, None)
    assert "no baseline model: blessed against min_accuracy only" in message
    assert "force_push cannot push it: the Pusher checks the Evaluator's blessing" in message
    assert f"Evaluator on the eval split of {NIGHT}" in message


def test_a_blessed_night_has_no_model_finding_and_the_report_says_what_it_was_held_to(
        config, tmp_path):
    record(config, tmp_path, blessed=1, baseline="/pipeline/Trainer/model/3")
    summary = report.night_summary(config, RUN, NIGHT)
    assert blessing.model_findings(summary["evaluation"]) == [] and summary["blessed"] is True
    assert summary["evaluation"]["basis"].startswith(
        "blessed against min_accuracy and the baseline model")
    decision = gate.gate_night(config, summary, force_push=False)
    assert not decision.needs_alert
    report.write(config, summary, decision)
    page = (config.paths.reports / NIGHT / "report.html").read_text()
    assert "<b>Blessed</b>: blessed against min_accuracy and the baseline model" in page
    assert "/pipeline/Trainer/model/3" in page
    assert "evaluation blessed against min_accuracy and the baseline" in report.format_table(
        summary)


def test_an_unblessed_night_alerts_by_email_and_slack_and_blocks(
        config, tmp_path, monkeypatch, smtp_inbox, webhook_inbox):
    record(config, tmp_path, blessed=0)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    with pytest.raises(gate.PushBlocked, match="model not blessed: the Evaluator's validation failed"):
        tasks.run_gate(config, RUN, NIGHT, False, tasks.alert_sender(config, RUN, NIGHT, **FAST))
    (message,) = smtp_inbox.messages
    assert message["subject"] == f"[Emerald] night {NIGHT}: push BLOCKED (model not blessed)"
    assert message["to"] == ["dorothy@example.com"]
    assert "no baseline model: blessed against min_accuracy only" in message["data"]
    (post,) = webhook_inbox.posts
    text = json.loads(post["body"])["text"]
    assert "push BLOCKED (model not blessed)" in text and "model not blessed: the Evaluator's" in text
    summary = json.loads((config.paths.reports / NIGHT / "summary.json").read_text())
    assert summary["push_blocked"] and summary["alerts"] == {"email": "sent", "slack": "sent"}
    (written,) = summary["findings"]
    assert (written["kind"], written["blocking"]) == ("model", True)
    table = report.format_table(summary)             # what `emerald run` and the demo print
    assert "evaluation no baseline model: blessed against min_accuracy only" in table
    assert "model      model not blessed: the Evaluator's validation failed" in table
    page = (config.paths.reports / NIGHT / "report.html").read_text()
    assert "<b>NOT blessed</b>: no baseline model: blessed against min_accuracy only" in page


def test_force_push_does_not_claim_to_push_an_unblessed_model(config, tmp_path):
    record(config, tmp_path, blessed=0)
    summary = report.night_summary(config, RUN, NIGHT)
    decision = gate.gate_night(config, summary, force_push=True)
    assert decision.forced and not decision.blocked
    subject, body = gate.alert_text(decision, NIGHT, None, "http://x/report")
    assert "NOT pushed" in subject and "PUSHED ANYWAY" not in subject


def test_an_unblessed_model_only_warned_about_still_says_it_is_not_pushed():
    finding = gate.Finding(kind="model", feature="accuracy", anomaly="BELOW_MIN_ACCURACY",
                           where="eval", description="accuracy 0.750 < min_accuracy 0.800",
                           value=0.75, threshold=0.8)
    policy = load_config().gate.__class__(block=("schema", "skew"), warn=("model",))
    decision = gate.decide([finding], policy, force_push=False)
    assert not decision.blocked and decision.needs_alert
    subject, _ = gate.alert_text(decision, NIGHT, None, "http://x/report")
    assert subject == f"[Emerald] night {NIGHT}: model NOT blessed: not pushed"


# --------------------------------------------------------------------------- the gate task

# dag.test() makes the run "manual__{logical date}"; the fresh database gives it id 1.
GATE_RUN = f"manual__{NIGHT}T02:00:00+00:00.1"


def _gate_under_airflow(config):
    from emerald_dag.builder import build_nightly_dag

    dag = build_nightly_dag(config).partial_subset(
        ["data_gate"], include_upstream=False, include_downstream=False)
    dag_run = dag.test(execution_date=dt.datetime.fromisoformat(f"{NIGHT}T02:00:00+00:00"),
                       run_conf={"night": NIGHT})
    assert f"{dag_run.run_id}.{dag_run.id}" == GATE_RUN
    (ti,) = dag_run.get_task_instances()
    return ti


def test_a_blocking_gate_alerts_once_its_findings_not_a_failure_on_top(
        airflow_db, config, tmp_path, monkeypatch, smtp_inbox, webhook_inbox):
    record(config, tmp_path, run=GATE_RUN, blessed=0)
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    ti = _gate_under_airflow(config)
    assert (ti.state, ti.try_number) == ("failed", 1)             # red, not retried
    assert [m["subject"] for m in smtp_inbox.messages] == [
        f"[Emerald] night {NIGHT}: push BLOCKED (model not blessed)"]
    assert len(webhook_inbox.posts) == 1


def test_a_gate_that_crashes_sends_the_failure_alert(
        airflow_db, config, tmp_path, monkeypatch, smtp_inbox, webhook_inbox):
    """It decided nothing (a broken acknowledgments file): the failure itself must page."""
    record(config, tmp_path, run=GATE_RUN, blessed=0)
    broken = tmp_path / "acknowledgments.yaml"
    broken.write_text("acknowledgments: [{feature: [unclosed\n")
    monkeypatch.setenv("EMERALD_ACKNOWLEDGMENTS", str(broken))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    ti = _gate_under_airflow(load_config())
    assert ti.state == "failed"
    assert [m["subject"] for m in smtp_inbox.messages] == [
        f"[Emerald] night {NIGHT}: task data_gate FAILED"]
    assert "tab=logs" in smtp_inbox.messages[0]["data"]
    assert len(webhook_inbox.posts) == 1
