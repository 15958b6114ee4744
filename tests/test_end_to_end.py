"""Six nights end to end through Airflow, with real SMTP and Slack-webhook servers.

Runs `emerald run --json` in a fresh EMERALD_HOME (its own SQLite Airflow DB
and MLMD), the way a user does:

1. 2026-01-01, corpus only: clean; blesses and pushes; no alert.
2. 2026-01-02, Toto's portrait, darker photos: aspect_ratio and brightness skew
   are alerted (email + Slack) with effect, p-value and sample sizes, and the
   push is blocked (the data_gate task fails). Then the gate task is run again
   (a retry): no second alert.
3. 2026-01-03, a clean landscape night drawn like the corpus, after the portrait
   night entered training: no skew, so it pushes; drift against the portrait
   night is a warning only (alerted, not blocking).
4. 2026-01-04, landscape photos plus a label folder the schema does not know
   ("wolf"), with force_push: the schema anomaly is alerted, the alert says the
   push was forced, and the model is pushed.
5. 2026-01-05, a dim night (the corpus underexposed): brightness skew blocks;
   last night's unknown label, now in training, is no schema finding tonight.
6. 2026-01-06, the corpus held upright, with the aspect-ratio skew acknowledged
   from that night on (`emerald ack add`): shown as acknowledged, not blocking.
The pushed model then classifies JPEG bytes it has never seen.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_src.tools import synth
from pipeline_src.config import load_config

pytestmark = pytest.mark.slow
NIGHT_1 = dt.date(2026, 1, 1)
NIGHT_2 = NIGHT_1 + dt.timedelta(days=1)
NIGHT_3 = NIGHT_1 + dt.timedelta(days=2)
NIGHT_4 = NIGHT_1 + dt.timedelta(days=3)
NIGHT_5 = NIGHT_1 + dt.timedelta(days=4)
NIGHT_6 = NIGHT_1 + dt.timedelta(days=5)


OUTPUTS: list[str] = []      # every command's stdout and stderr, searched for secrets


def emerald(env: dict, *args: str, expect_ok: bool = True) -> subprocess.CompletedProcess:
    """`emerald ARGS` from an empty working directory (env["PWD"]), as a user would."""
    proc = subprocess.run([sys.executable, "-m", "pipeline_src.tools.cli", *args], env=env,
                          cwd=env["PWD"], capture_output=True, text=True, timeout=1500)
    OUTPUTS.extend((proc.stdout, proc.stderr))
    if expect_ok:
        assert proc.returncode == 0, proc.stderr[-6000:]
    return proc


def run_night(env: dict, night: dt.date, *flags: str) -> dict:
    proc = emerald(env, "run", "--date", night.isoformat(), "--json", *flags, expect_ok=False)
    assert proc.stdout.strip(), proc.stderr[-6000:]
    summary = json.loads(proc.stdout)      # --json: stdout is one JSON object, logs on stderr
    summary["exit_code"] = proc.returncode
    return summary


@pytest.fixture(scope="module")
def nights(tmp_path_factory, alert_servers):
    smtp, slack = alert_servers
    home = tmp_path_factory.mktemp("e2e-home")
    # Where nothing may be written: the user's home, the working directory, the temp folder.
    outside = tmp_path_factory.mktemp("e2e-outside")
    for name in ("user-home", "cwd", "tmp"):
        (outside / name).mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and not k.startswith("EMERALD")}
    env.update(HOME=str(outside / "user-home"), PWD=str(outside / "cwd"),
               TMPDIR=str(outside / "tmp"), EMERALD_HOME=str(home), EMERALD_ALERT_EMAILS="dorothy@example.com,toto@example.com",
               EMERALD_ACKNOWLEDGMENTS=str(home / "acknowledgments.yaml"),
               AIRFLOW_CONN_SMTP_DEFAULT=smtp.conn_uri,
               AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT=slack.conn_uri)
    config = load_config(env=env)
    source = Path(config.paths.source)
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_2)
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_3, toto_style="landscape")
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_4, toto_style="landscape",
                     extra_toto_labels=("wolf",))
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_5, toto_style="dim")
    synth.synthesize(source, nights=1, seed=0, start_date=NIGHT_6, toto_style="upright")
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
        env=airflow_env, cwd=env["PWD"], capture_output=True, text=True, timeout=600)
    OUTPUTS.extend((results["gate_retry"].stdout, results["gate_retry"].stderr))
    results["alerts_after_retry"] = (len(smtp.messages), len(slack.posts))
    results[3] = run_night(env, NIGHT_3)
    results["alerts_after_3"] = (len(smtp.messages), len(slack.posts))
    # A full retrain asked through the DAG param (warm start on the other nights).
    results[4] = run_night(env, NIGHT_4, "--force-push", "--full-retrain")
    results["alerts_after_4"] = (len(smtp.messages), len(slack.posts))
    results[5] = run_night(env, NIGHT_5)
    results["alerts_after_5"] = (len(smtp.messages), len(slack.posts))
    results["ack"] = emerald(env, "ack", "add", "--feature", "aspect_ratio", "--kind", "skew",
                             "--from-night", NIGHT_6.isoformat(), "--by", "dorothy",
                             "--reason", "the model now trains on upright photos")
    # Full retrains on demand on nights 4 and 6, warm starts on 2, 3 and 5.
    results[6] = run_night(env, NIGHT_6, "--full-retrain")
    results["alerts_after_6"] = (len(smtp.messages), len(slack.posts))
    results["outside"] = outside
    results["env"] = env
    return config, results, smtp, slack


def _airflow_env(config) -> dict:
    from pipeline_src.orchestration.night import airflow_environment

    return airflow_environment(config)


def test_json_has_every_promised_field(nights):
    _, results, *_ = nights
    for night in (1, 2, 3, 4, 5, 6):
        assert {"date", "splits", "anomalies", "skew", "drift", "prediction", "validation",
                "accuracy", "blessed", "pushed", "pushed_version", "push_blocked",
                "findings"} <= set(results[night])
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


def _finding(summary: dict, kind: str, feature: str) -> dict:
    matches = [f for f in summary["findings"] if f["kind"] == kind and f["feature"] == feature]
    assert matches, (kind, feature, [(f["kind"], f["feature"]) for f in summary["findings"]])
    return matches[0]


def _kinds_found(summary: dict, kind: str) -> set:
    return {f["feature"] for f in summary["findings"] if f["kind"] == kind}


def test_portrait_night_alerts_aspect_ratio_and_brightness_skew_and_does_not_push(nights):
    _, results, smtp, slack = nights
    second = results[2]
    assert second["eval_mode"] == "newest_night"
    assert second["splits"] == {"train": 120, "eval": 36, "previous": 0}   # no night before
    assert second["push_blocked"] is True and second["pushed"] is False
    assert second["state"] == "failed" and second["exit_code"] == 1
    assert second["failed_tasks"] == ["Pusher", "data_gate"]
    for feature in ("aspect_ratio", "brightness"):
        skew = _finding(second, "skew", feature)
        assert skew["blocking"] and skew["value"] > skew["threshold"]
        assert skew["p_value"] < skew["alpha"] and (skew["n_tonight"], skew["n_baseline"]) == (36, 120)
    assert "label" not in _kinds_found(second, "skew")      # Toto shoots the same animals
    # No earlier Toto night: drift is not tested (not "tonight against itself").
    assert [s["kind"] for s in second["validation"]["skipped"]] == ["drift"]
    assert results["alerts_after_2"] == (1, 1)
    email, post = smtp.messages[0], json.loads(slack.posts[0]["body"])["text"]
    assert sorted(email["to"]) == ["dorothy@example.com", "toto@example.com"]
    assert "push BLOCKED" in email["subject"]
    for text in (email["data"].replace("&gt;", ">").replace("&lt;", "<"), post):
        assert "aspect_ratio: KS distance 1.00 > 0.30, p " in text
        assert "36 tonight vs 120 in the baseline, toto 2026-01-02 vs training" in text
        assert "brightness: KS distance" in text
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


def test_clean_landscape_night_after_a_portrait_night_does_not_block_and_drift_only_warns(nights):
    _, results, smtp, slack = nights
    third = results[3]
    assert third["splits"]["train"] == 156                  # the portrait night is in training
    assert _kinds_found(third, "skew") == set()
    skew = {c["feature"]: c for c in third["validation"]["comparisons"] if c["kind"] == "skew"}
    assert len(skew) == 9 and not any(c["fired"] for c in skew.values())
    assert {"aspect_ratio", "brightness"} <= _kinds_found(third, "drift")
    assert not any(f["blocking"] for f in third["findings"])
    assert third["push_blocked"] is False and third["forced"] is False
    assert third["state"] == "success" and third["exit_code"] == 0
    assert third["blessed"] is True and third["pushed"] is True
    assert results["alerts_after_3"] == (2, 2)              # a warning is still alerted
    assert "warnings only" in smtp.messages[1]["subject"]
    assert "toto 2026-01-03 vs toto 2026-01-02" in json.loads(slack.posts[1]["body"])["text"]


def test_unseen_label_is_a_schema_anomaly_and_force_push_pushes_and_says_so(nights):
    _, results, smtp, slack = nights
    fourth = results[4]
    schema = [f for f in fourth["findings"] if f["kind"] == "schema"]
    assert any(f["feature"] == "label" and "wolf" in f["description"] for f in schema), schema
    assert {f["where"] for f in schema} == {"eval"}          # tonight's split only
    assert fourth["forced"] is True and fourth["push_blocked"] is False
    assert fourth["pushed"] is True and fourth["pushed_version"]
    assert fourth["state"] == "success" and fourth["exit_code"] == 0
    # The DAG param full_retrain reached the Trainer; the other Toto nights warm started.
    assert fourth["training"]["mode"] == "full"
    assert "full retrain requested" in fourth["training"]["reason"]
    assert results[3]["training"]["mode"] == "warm_start"
    assert results[1]["training"]["mode"] == "full"            # no model before the first
    assert results["alerts_after_4"] == (3, 3)
    assert "force_push" in smtp.messages[2]["subject"]
    assert "label:" in json.loads(slack.posts[2]["body"])["text"]


def test_a_dim_night_blocks_on_brightness_and_last_nights_unknown_label_does_not(nights):
    config, results, smtp, _ = nights
    fifth = results[5]
    # summary.json as the teardown report left it: only it knows the run failed.
    written = json.loads((config.paths.reports / NIGHT_5.isoformat() / "summary.json").read_text())
    assert written["state"] == "failed" and written["push_blocked"] is True
    assert _finding(fifth, "skew", "brightness")["blocking"]
    assert "aspect_ratio" not in _kinds_found(fifth, "skew")   # same camera, same sizes
    assert _kinds_found(fifth, "schema") == set()             # "wolf" is in training now
    assert fifth["push_blocked"] is True and fifth["pushed"] is False
    assert fifth["failed_tasks"] == ["Pusher", "data_gate"] and fifth["exit_code"] == 1
    assert results["alerts_after_5"] == (4, 4)
    assert "brightness: KS distance" in smtp.messages[3]["data"]


def test_an_acknowledged_aspect_ratio_skew_stops_blocking_and_is_shown_acknowledged(nights):
    config, results, smtp, _ = nights
    assert "recorded acknowledgment 1" in results["ack"].stdout
    sixth = results[6]
    ack = _finding(sixth, "skew", "aspect_ratio")
    assert ack["acknowledged"] and "dorothy" in ack["acknowledged"] and not ack["blocking"]
    assert "ACKNOWLEDGED #1" in ack["message"]
    assert not any(f["blocking"] for f in sixth["findings"]), sixth["findings"]
    assert sixth["push_blocked"] is False and sixth["state"] == "success"
    assert sixth["exit_code"] == 0
    page = (config.paths.reports / NIGHT_6.isoformat() / "report.html").read_text()
    assert "finding, acknowledged" in page
    # Drift against the dim night is a warning: the alert carries the acknowledged skew too.
    assert results["alerts_after_6"] == (5, 5)
    assert "Acknowledged (accepted shifts, not blocking):" in smtp.messages[4]["data"]


def test_night_report_is_written_next_to_the_run(nights):
    config, results, *_ = nights
    folder = config.paths.reports / NIGHT_2.isoformat()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["push_blocked"] is True
    page = (folder / "report.html").read_text()
    assert "aspect_ratio" in page and "KS distance" in page and "FINDING (blocks)" in page
    assert "class='statistics'" in page      # TFDV statistics, tonight vs training
    assert "aspect_ratio</td><td>mean 0.750" in page   # tonight: every photo is 3:4
    # Training's column, merged span by span by ExampleGen: every corpus photo landscape.
    assert f"training ({summary['splits']['train']} examples)" in page
    training_aspect = re.search(r"aspect_ratio</td><td>[^<]*</td><td>mean ([0-9.]+)", page)
    assert training_aspect and float(training_aspect.group(1)) > 1.2, training_aspect
    # A histogram per comparison, and a trend per property over the nights so far.
    assert page.count('class="emerald-histogram"') == len(summary["validation"]["comparisons"])
    assert page.count('class="emerald-trend"') == len(summary["validation"]["comparisons"])
    # Every statistic is recorded, fired or not, in the summary and in MLMD.
    assert summary["validation"]["tests"] == len(summary["validation"]["comparisons"]) == 11
    from pipeline_src.decision import report

    outputs = report.run_outputs(report.open_store(config), summary["tfx_run_id"])
    ((type_name, artifact),) = outputs["ImageDistributionValidator"]
    assert type_name == "EmeraldDistributionComparisons"
    assert artifact.custom_properties["tests"].int_value == 11
    assert artifact.custom_properties["fired"].int_value == sum(
        c["fired"] for c in summary["validation"]["comparisons"])


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


def test_pushed_models_carry_a_tflite_model_that_agrees_with_them(nights):
    """Each pushed version has model.tflite and tflite.json beside its SavedModel, checked
    against tonight's eval images (TFLite's own converter, run inside the Trainer task)."""
    config, results, *_ = nights
    for night in (1, 3):
        extra = Path(config.paths.serving) / results[night]["pushed_version"] / "assets.extra"
        report_ = json.loads((extra / "tflite.json").read_text())
        assert report_["converted"] is True, report_
        assert report_["images"] == results[night]["splits"]["eval"]
        assert report_["agreement"] >= config.serving.tflite_min_agreement
        assert (extra / "model.tflite").stat().st_size == report_["bytes"]


def test_each_span_is_one_examples_artifact_made_once_and_the_trainer_takes_the_history(
        nights):
    """In MLMD after six nights: one Examples artifact per span (the corpus, made on the
    corpus-only night, and each of Toto's nights on its own night), none made twice; and
    night 6's Trainer took tonight's span as `examples` and, through TFX's all_spans
    resolver, the five spans before it as `history`."""
    from ml_metadata.proto import metadata_store_pb2

    from pipeline_src import names
    from pipeline_src.decision.report import open_store

    config, results, *_ = nights
    store = open_store(config)
    made: dict[str, list] = {}
    for artifact in store.get_artifacts_by_type("Examples"):
        made.setdefault(artifact.custom_properties[names.SPAN_NAME].string_value, []).append(
            artifact)
    nights_ = [n.isoformat() for n in (NIGHT_2, NIGHT_3, NIGHT_4, NIGHT_5, NIGHT_6)]
    assert sorted(made) == sorted(nights_ + ["corpus"])
    assert {name: len(artifacts) for name, artifacts in made.items()} == dict.fromkeys(made, 1)
    assert made["corpus"][0].custom_properties[names.NIGHT_PROPERTY].string_value == \
        NIGHT_1.isoformat()
    run = store.get_context_by_type_and_name("pipeline_run", results[6]["tfx_run_id"])
    node_type = store.get_context_type("node").id
    (trainer,) = [e for e in store.get_executions_by_context(run.id)
                  if any(c.type_id == node_type and c.name.endswith(".Trainer")
                         for c in store.get_contexts_by_execution(e.id))]
    inputs: dict[str, set] = {}
    for event in store.get_events_by_execution_ids([trainer.id]):
        if event.type == metadata_store_pb2.Event.INPUT:      # (key, index) pairs
            for step in event.path.steps[::2]:
                inputs.setdefault(step.key, set()).add(event.artifact_id)
    assert inputs["examples"] == {made[NIGHT_6.isoformat()][0].id}
    assert inputs["history"] >= {made[name][0].id for name in ["corpus"] + nights_[:-1]}
    assert results[6]["splits"]["train"] == 120 + sum(
        results[n]["splits"]["eval"] for n in (2, 3, 4, 5))


def test_lineage_of_pushed_versions_comes_from_mlmd(nights):
    """`emerald lineage VERSION --json` names the TFX and DAG run that pushed the version and,
    from ImageExampleGen's counts in MLMD, the nights and images it learnt from: the corpus
    on night 1; on night 3 (a warm start from night 1's model) the corpus and night 2."""
    config, results, *_ = nights
    env = results["env"]
    first = json.loads(emerald(env, "lineage", results[1]["pushed_version"], "--json").stdout)
    assert first["tfx_run"] == results[1]["tfx_run_id"]
    assert first["dag_run"]["dag_id"] == config.dag.dag_id
    trained = first["trained_on"]
    assert trained["nights_source"] == "mlmd" and trained["spans_source"] == "mlmd"
    assert [n["night"] for n in trained["nights"]] == ["corpus"]
    (corpus,) = trained["nights"]
    assert corpus["images"] == results[1]["splits"]["train"]
    assert corpus["images_source"] == "mlmd" and corpus["manifest"]["exists"]

    third = json.loads(emerald(env, "lineage", results[3]["pushed_version"], "--json").stdout)
    assert third["tfx_run"] == results[3]["tfx_run_id"]
    assert third["base_model"] is not None            # warm-started from the serving model
    by_night = {n["night"]: n for n in third["trained_on"]["nights"]}
    assert set(by_night) == {"corpus", NIGHT_2.isoformat()}
    assert all(n["images_source"] == "mlmd" and n["manifest"]["exists"]
               for n in by_night.values())
    assert by_night[NIGHT_2.isoformat()]["images"] == results[2]["splits"]["eval"]
    assert by_night["corpus"]["images"] == 120    # the whole corpus: night 1 held some out


def test_no_secret_in_any_log_report_xcom_or_output(nights):
    """The SMTP password and the webhook token reach their servers and nothing else: not the
    task logs, reports, summaries, alert markers, Airflow's database (XCom, rendered
    fields) or MLMD under EMERALD_HOME, nor any command's output."""
    from emerald_testing import ALERT_SECRETS

    config, results, smtp, slack = nights
    assert smtp.logins >= 1 and slack.posts            # both secrets were used tonight
    assert all(ALERT_SECRETS["webhook_token"] in p["path"] for p in slack.posts)
    secrets = [s.encode() for s in ALERT_SECRETS.values()]
    files = [p for p in Path(config.paths.home).rglob("*") if p.is_file()]
    assert any(p.name == "airflow.db" for p in files)        # XCom and rendered fields
    assert any("[DAG TEST] end running task" in out or "data_gate" in out
               for out in OUTPUTS)                            # dag.test's task logs
    leaks = [(str(p), s) for p in files for s in secrets if s in p.read_bytes()]
    assert leaks == []
    assert not [s for s in ALERT_SECRETS.values() for out in OUTPUTS if s in out]


def test_nothing_is_written_outside_emerald_home(nights):
    """The nights wrote nothing into the user's home, the working directory or the temp
    folder: Keras, TFX's Beam packaging and Airflow keep to EMERALD_HOME."""
    _, results, *_ = nights
    outside = results["outside"]
    written = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    assert written == ["cwd", "tmp", "user-home"]
