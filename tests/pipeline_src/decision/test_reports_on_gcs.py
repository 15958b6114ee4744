"""The night's report, its alert markers and late-upload record kept on gs:// (a real GCS
emulator), as under Cloud Composer: written by the gate and report tasks, read back by a
retry, by the teardown's re-write and by the webserver's reports page.

`tasks.run_gate` against a real MLMD store (test_report's), a real SMTP server and a real
HTTP webhook, with `paths.reports` set to a gs:// prefix in the configuration file.
"""
from __future__ import annotations

import json

import pytest

import emerald_testing as testing
from pipeline_src.config import load_config
from pipeline_src.decision import gate
from pipeline_src.ingest import late
from pipeline_src.orchestration import tasks
from test_report import NIGHT, RUN, TONIGHT_COMPARISONS, Store, comparisons, examples

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
