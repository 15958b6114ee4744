"""Three nights end to end through Airflow, with real SMTP and Slack-webhook servers.

Runs `emerald run --json` in a fresh EMERALD_HOME (its own SQLite Airflow DB
and MLMD), the way a user does:

1. 2026-01-01, corpus only: clean; blesses and pushes; no alert.
2. 2026-01-02, Toto's portrait, darker photos: the skew on aspect_ratio is
   alerted (email + Slack) and the push is blocked (the data_gate task fails).
   Then the gate task is run again (a retry): no second alert.
3. 2026-01-03, landscape photos plus a label folder the schema does not know
   ("wolf"), with force_push: the schema anomaly is alerted, the alert says the
   push was forced, and the model is pushed.
The pushed model then classifies JPEG bytes it has never seen.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_src import synth
from pipeline_src.config import load_config

pytestmark = pytest.mark.slow
NIGHT_1 = dt.date(2026, 1, 1)
NIGHT_2 = NIGHT_1 + dt.timedelta(days=1)
NIGHT_3 = NIGHT_1 + dt.timedelta(days=2)


def emerald(env: dict, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pipeline_src.cli", *args], env=env,
                          capture_output=True, text=True, timeout=1500)
    if expect_ok:
        assert proc.returncode == 0, proc.stderr[-6000:]
    return proc


def run_night(env: dict, night: dt.date, *flags: str) -> dict:
    proc = emerald(env, "run", "--date", night.isoformat(), "--json", *flags, expect_ok=False)
    assert proc.stdout.strip(), proc.stderr[-6000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["exit_code"] = proc.returncode
    return summary


@pytest.fixture(scope="module")
def nights(tmp_path_factory, alert_servers):
    smtp, slack = alert_servers
    home = tmp_path_factory.mktemp("e2e-home")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and not k.startswith("EMERALD")}
    env.update(EMERALD_HOME=str(home), EMERALD_ALERT_EMAILS="dorothy@example.com,toto@example.com",
               AIRFLOW_CONN_SMTP_DEFAULT=smtp.conn_uri,
               AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT=slack.conn_uri)
    config = load_config(env=env)
    source = Path(config.paths.source)
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_2)
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_3, toto_style="landscape",
                     extra_toto_labels=("wolf",))
    results = {}
    results[1] = run_night(env, NIGHT_1, "--corpus-only")
    results["alerts_after_1"] = (len(smtp.messages), len(slack.posts))
    results[2] = run_night(env, NIGHT_2)
    results["alerts_after_2"] = (len(smtp.messages), len(slack.posts))
    # A retry of the gate task (same DAG run, same TFX run id): `airflow tasks test`.
    airflow_env = {**env, **_airflow_env(config)}
    results["gate_retry"] = subprocess.run(
        [sys.executable, "-m", "airflow", "tasks", "test", config.dag.dag_id, "data_gate",
         f"{NIGHT_2.isoformat()}T02:00:00+00:00"],
        env=airflow_env, capture_output=True, text=True, timeout=600)
    results["alerts_after_retry"] = (len(smtp.messages), len(slack.posts))
    results[3] = run_night(env, NIGHT_3, "--force-push")
    results["alerts_after_3"] = (len(smtp.messages), len(slack.posts))
    return config, results, smtp, slack


def _airflow_env(config) -> dict:
    from pipeline_src.night import airflow_environment

    return airflow_environment(config)


def test_json_has_every_promised_field(nights):
    _, results, *_ = nights
    for night in (1, 2, 3):
        assert {"date", "splits", "anomalies", "skew", "drift", "accuracy", "blessed",
                "pushed", "pushed_version", "push_blocked", "findings"} <= set(results[night])
        assert {"overall", "slices"} <= set(results[night]["accuracy"])


def test_clean_corpus_night_hash_splits_blesses_pushes_and_sends_no_alert(nights):
    config, results, *_ = nights
    first = results[1]
    assert first["exit_code"] == 0 and first["state"] == "success"
    assert first["date"] == NIGHT_1.isoformat()
    assert first["eval_mode"] == "hash"
    assert first["splits"]["train"] + first["splits"]["eval"] == 120
    assert first["accuracy"]["overall"] >= config.evaluation.min_accuracy
    assert first["blessed"] is True and first["pushed"] is True
    assert first["findings"] == [] and first["push_blocked"] is False
    assert (Path(config.paths.serving) / first["pushed_version"] / "saved_model.pb").exists()
    assert results["alerts_after_1"] == (0, 0)


def test_portrait_night_alerts_aspect_ratio_skew_and_does_not_push(nights):
    _, results, smtp, slack = nights
    second = results[2]
    assert second["eval_mode"] == "newest_night"
    assert second["splits"] == {"train": 120, "eval": 36, "previous": 36}
    assert second["push_blocked"] is True and second["pushed"] is False
    assert second["state"] == "failed" and second["exit_code"] == 1
    assert second["failed_tasks"] == ["Pusher", "data_gate"]
    skew = next(f for f in second["findings"] if f["feature"] == "aspect_ratio")
    assert skew["kind"] == "skew" and skew["value"] > skew["threshold"]
    assert results["alerts_after_2"] == (1, 1)
    email, post = smtp.messages[0], json.loads(slack.posts[0]["body"])["text"]
    assert sorted(email["to"]) == ["dorothy@example.com", "toto@example.com"]
    assert "push BLOCKED" in email["subject"]
    for text in (email["data"].replace("&gt;", ">"), post):
        assert "aspect_ratio: Jensen-Shannon divergence" in text
        assert "toto 2026-01-02 vs training" in text
        assert "/emerald-reports/night/2026-01-02" in text
    slices = second["accuracy"]["slices"]
    assert "source=toto" in slices and "orientation=portrait" in slices
    assert any(key.startswith("capture_hour=") for key in slices)


def test_a_retried_gate_does_not_alert_again(nights):
    _, results, *_ = nights
    retry = results["gate_retry"]
    assert "push blocked for night 2026-01-02" in retry.stdout + retry.stderr
    assert "already sent" in retry.stdout + retry.stderr
    assert results["alerts_after_retry"] == results["alerts_after_2"] == (1, 1)


def test_unseen_label_is_a_schema_anomaly_and_force_push_pushes_and_says_so(nights):
    _, results, smtp, slack = nights
    third = results[3]
    schema = [f for f in third["findings"] if f["kind"] == "schema"]
    assert any(f["feature"] == "label" and "wolf" in f["description"] for f in schema), schema
    assert third["forced"] is True and third["push_blocked"] is False
    assert third["pushed"] is True and third["pushed_version"]
    assert third["state"] == "success" and third["exit_code"] == 0
    assert results["alerts_after_3"] == (2, 2)
    assert "force_push" in smtp.messages[1]["subject"]
    assert "label:" in json.loads(slack.posts[1]["body"])["text"]


def test_night_report_is_written_next_to_the_run(nights):
    config, results, *_ = nights
    folder = config.paths.reports / NIGHT_2.isoformat()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["push_blocked"] is True
    page = (folder / "report.html").read_text()
    assert "aspect_ratio" in page and "Jensen-Shannon" in page
    assert "class='statistics'" in page      # TFDV statistics, tonight vs training
    assert "aspect_ratio</td><td>mean 0.750" in page   # tonight: every photo is 3:4


def test_pushed_model_classifies_jpeg_bytes_from_a_fresh_seed(nights, tmp_path):
    import tensorflow as tf

    config, results, *_ = nights
    fresh = tmp_path / "fresh"
    synth.synthesize(fresh, nights=0, seed=12345, corpus_per_label=10)
    model = tf.saved_model.load(str(Path(config.paths.serving) / results[1]["pushed_version"]))
    serve = model.signatures["serving_default"]
    correct = total = 0
    for label_dir in sorted((fresh / "corpus").iterdir()):
        blobs = [p.read_bytes() for p in sorted(label_dir.iterdir())]
        out = serve(image_bytes=tf.constant(blobs))
        classes = [c.decode() for c in out["classes"][0].numpy()]
        assert classes == list(config.data.labels)
        scores = out["scores"].numpy()
        assert scores.shape == (len(blobs), len(classes))
        assert abs(scores.sum(axis=1) - 1).max() < 1e-4
        predicted = [classes[i] for i in scores.argmax(axis=1)]
        correct += sum(p == label_dir.name for p in predicted)
        total += len(blobs)
    assert correct / total >= 0.8, f"{correct}/{total}"
