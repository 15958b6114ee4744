"""The night's report, its alert markers and late-upload record kept on gs:// (a real GCS
emulator), as under Cloud Composer: written by the gate and report tasks, read back by a
retry, by the teardown's re-write and by the webserver's reports page. Then the gate split
as node_runner=kubernetes runs it: `emerald gate --alert=hand-back` in its own process with
no Airflow connection decides, and the worker's data_gate task sends and blocks.

`tasks.run_gate` against a real MLMD store (test_report's), a real SMTP server and a real
HTTP webhook, with `paths.reports` set to a gs:// prefix in the configuration file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import names
from pipeline_src.config import load_config
from pipeline_src.decision import gate
from pipeline_src.ingest import late
from pipeline_src.orchestration import tasks
from test_report import NIGHT, RUN, TONIGHT_COMPARISONS, Store, comparisons, examples

REPO = Path(__file__).resolve().parents[3]
BUCKET = "emerald-state"
REPORTS = f"gs://{BUCKET}/nightly/reports"
FAST = {"attempts": 2, "backoff": 0.01}


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    with testing.gcs_emulator(tmp_path / "emulator.log") as url:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        client = testing.anonymous_client()
        client.create_bucket(BUCKET)
        yield client


@pytest.fixture
def config(gcs, emerald_home, tmp_path, monkeypatch):
    config_file = testing.quick_retry_config(tmp_path, paths={"reports": REPORTS})
    monkeypatch.setenv("EMERALD_CONFIG", str(config_file))
    monkeypatch.setenv("EMERALD_ALERT_EMAILS", "dorothy@example.com")
    config = load_config()
    assert str(config.paths.reports) == REPORTS          # not a folder named "gs:"
    store = Store(config, tmp_path)
    store.execute(RUN, "ImageExampleGen", outputs=[("examples", examples(store))])
    store.execute(RUN, "ImageDistributionValidator",
                  outputs=[("comparisons", comparisons(store, TONIGHT_COMPARISONS))])
    return config


def objects(client) -> dict[str, bytes]:
    prefix = "nightly/reports/"
    return {b.name[len(prefix):]: b.download_as_bytes()
            for b in client.list_blobs(BUCKET, prefix=prefix)}


def test_the_gate_report_and_markers_live_in_the_bucket_and_a_retry_reads_them_back(
        config, gcs, emerald_home, monkeypatch, smtp_inbox, webhook_inbox):
    from emerald_reports import reports

    late.write_record(config.paths.reports, NIGHT, [late.LateNight(
        night="2026-01-01", kind="late", objects=["toto/2026-01-01/lion/x.jpg"], count=1,
        ingested=1)])                                   # what tonight's ingest task caught up
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)

    def run_gate():
        with pytest.raises(gate.PushBlocked, match="aspect_ratio"):   # the skew blocks
            tasks.run_gate(config, RUN, NIGHT, False,
                           tasks.alert_sender(config, RUN, NIGHT, **FAST))

    run_gate()
    stored = objects(gcs)
    summary = json.loads(stored[f"{NIGHT}/summary.json"])
    assert summary["push_blocked"] is True and summary["alerts"] == {
        "email": "sent", "slack": "sent"}
    assert [f["type"] for f in summary["late_uploads"]] == ["LATE_UPLOADS"]
    assert b"aspect_ratio" in stored[f"{NIGHT}/report.html"]
    markers = sorted(n for n in stored if n.startswith(f"{NIGHT}/alert-"))
    assert [m.rsplit(".", 2)[1] for m in markers] == ["email", "slack"]

    run_gate()                         # the task retried: the markers on gs:// say "sent"
    assert json.loads(objects(gcs)[f"{NIGHT}/summary.json"])["alerts"] == {
        "email": "already sent", "slack": "already sent"}
    assert len(smtp_inbox.messages) == len(webhook_inbox.posts) == 1

    tasks.write_night_report(config, RUN, NIGHT, state="failed")   # the teardown's re-write
    again = json.loads(objects(gcs)[f"{NIGHT}/summary.json"])
    assert again["state"] == "failed" and again["alerts"] == {
        "email": "already sent", "slack": "already sent"}

    page = reports.load_summary(REPORTS, NIGHT)          # what the webserver shows
    assert page["push_blocked"] is True and page["has_report"]
    assert reports.report_html(REPORTS, NIGHT) == objects(gcs)[f"{NIGHT}/report.html"]
    assert not (emerald_home / "reports").exists()       # nothing kept on local disk


def test_the_report_draws_earlier_nights_from_the_bucket(config, gcs):
    earlier = {"date": "2026-01-01", "tfx_run_id": "earlier",
               "accuracy": {"overall": 0.5, "slices": {}}}
    (config.paths.reports / "2026-01-01").mkdir(parents=True, exist_ok=True)
    (config.paths.reports / "2026-01-01" / "summary.json").write_text(json.dumps(earlier))
    tasks.write_night_report(config, RUN, NIGHT, state="success")
    page = objects(gcs)[f"{NIGHT}/report.html"].decode()
    assert "over the last 2 night(s)" in page           # tonight and the one in the bucket
    assert "2026-01-01, overall: 0.500" in page         # last night's point on the trend


# --------------------------------------------------------------------------- a gate pod

def run_gate_pod(tmp_path, force_push=False) -> tuple[subprocess.CompletedProcess, dict]:
    """`emerald gate --alert=hand-back` as the gate's pod runs it: its own process with no
    Airflow connection in its environment, handing back through the XCom file."""
    xcom = tmp_path / "xcom" / "return.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["EMERALD_XCOM_FILE"] = str(xcom)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline_src.tools.cli", "gate", "--run-id", RUN, "--night",
         NIGHT, f"--force-push={force_push}", "--alert=hand-back"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]       # blocked or not: the worker decides
    return proc, json.loads(xcom.read_text())


class _GatePodXCom:
    """What Airflow's XCom gives the worker's task: the pod's return.json, read by the sidecar."""

    def __init__(self, value):
        self.value = value

    def xcom_pull(self, task_ids):
        assert task_ids == names.DATA_GATE_DECISION
        return self.value


@pytest.mark.slow          # a pod's `emerald gate` process (~20 s)
def test_a_gate_pod_decides_and_the_worker_sends_the_alert_and_blocks(
        config, gcs, tmp_path, monkeypatch, smtp_inbox, webhook_inbox):
    from airflow.exceptions import AirflowFailException

    from emerald_alerts.operators import GateDeliveryOperator

    proc, decided = run_gate_pod(tmp_path)
    assert decided["blocked"] is True and "aspect_ratio" in decided["reason"]
    assert decided["alert"]["subject"].startswith("[Emerald]")
    assert proc.stdout.strip().splitlines()[-1] == json.dumps(decided, default=str)
    assert json.loads(objects(gcs)[f"{NIGHT}/summary.json"])["push_blocked"] is True
    assert not smtp_inbox.messages and not webhook_inbox.posts     # the pod sent nothing

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    task = GateDeliveryOperator(task_id=names.DATA_GATE, tfx_run_id=RUN, night=NIGHT)
    for attempt in (1, 2):                                  # cleared and run again: sent once
        with pytest.raises(AirflowFailException, match="push blocked.*aspect_ratio"):
            task.execute({"ti": _GatePodXCom(decided)})
    assert len(smtp_inbox.messages) == len(webhook_inbox.posts) == 1
    assert smtp_inbox.messages[0]["subject"] == decided["alert"]["subject"]

    summary = tasks.write_night_report(config, RUN, NIGHT, state="failed")   # the teardown
    assert summary["alerts"] == {"email": "already sent", "slack": "already sent"}
    assert "already sent" in objects(gcs)[f"{NIGHT}/report.html"].decode()


@pytest.mark.slow
def test_a_forced_push_passes_the_worker_half_and_still_alerts(
        config, gcs, tmp_path, monkeypatch, smtp_inbox, webhook_inbox):
    from emerald_alerts.operators import GateDeliveryOperator

    _, decided = run_gate_pod(tmp_path, force_push=True)
    assert decided["blocked"] is False and decided["forced"] is True
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    result = GateDeliveryOperator(task_id=names.DATA_GATE, tfx_run_id=RUN, night=NIGHT
                                  ).execute({"ti": _GatePodXCom(decided)})
    assert result["alerts"] == {"email": "sent", "slack": "sent"} and result["forced"]


def test_the_worker_half_refuses_a_decision_from_another_run(config):
    from airflow.exceptions import AirflowException

    from emerald_alerts.operators import GateDeliveryOperator

    task = GateDeliveryOperator(task_id=names.DATA_GATE, tfx_run_id=RUN, night=NIGHT)
    for handed_back in (None, {"tfx_run_id": "another", "blocked": False}):
        with pytest.raises(AirflowException, match="handed back no decision"):
            task.execute({"ti": _GatePodXCom(handed_back)})
