"""The two non-default runners, for real: ExternalPythonOperator and the pods' command lines.

`dag.node_runner` has three values; in_process is what `emerald run` and the
end-to-end test use. The other two run the same `emerald node|gate|report`
command line somewhere else. Here they run for real, in one fresh EMERALD_HOME
whose source is a bucket on a real gcp-storage-emulator (the corpus and Toto's
nights uploaded with google-cloud-storage; nothing is read from a local folder).
The nights are the end-to-end test's first three (same dates, same seed, so
the same photos):

1. 2026-01-01, corpus only (the bootstrap), through the default in-process runner.
2. 2026-01-02, Toto's portrait, darker night, as Kubernetes pods run it: each
   `emerald ...` command a fresh process, judged by its exit code. `emerald
   ingest`, then every node the gate waits for (the validators and their
   upstream, in the IR's order) exits 0, the gate exits 3 with a one-line
   reason, the report exits 0 with its JSON. The same gate through
   ExternalPythonOperator fails the task.
3. 2026-01-03, a clean landscape night, one DAG run through Airflow with
   `node_runner=external_python`: every TFX node, the gate and the report run
   in another interpreter (ExternalPythonOperator calling `run_emerald`). The
   night is read from the emulator, and the model is pushed. Then a gate pod
   on that run (the task cleared and run again in a pod) exits 0.

The kubernetes runner itself needs a cluster: its pods are rendered offline,
and each rendered command line is parsed by the `emerald` entry point.
Mind the cost: every fresh process imports TensorFlow and TFX (~17 s of CPU).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import emerald_testing as testing
from pipeline_src import names
from pipeline_src.config import DEFAULT_CONFIG_FILE, load_config
from pipeline_src.orchestration import compile as compiled

NIGHT_1 = dt.date(2026, 1, 1)              # corpus only
NIGHT_2 = NIGHT_1 + dt.timedelta(days=1)   # portrait, darker: skewed
NIGHT_3 = NIGHT_1 + dt.timedelta(days=2)   # landscape: clean
BUCKET, PREFIX = "toto-uploads", "cam"
BLOCKED_EXIT_CODE = 3       # pipeline_src.orchestration.tasks.BLOCKED_EXIT_CODE, as a pod sees it
EMERALD = Path(sys.executable).with_name("emerald")   # the console script: the pods' `cmds`


# --------------------------------------------------------------------------- kubernetes, offline

class _RenderedDagRun:
    """What the templates read of a DAG run: its id and the failed tasks so far."""

    def __init__(self, run_id: str, id_: int, failed: bool):
        self.run_id, self.id, self.failed = run_id, id_, failed

    def get_task_instances(self, state=None):
        assert state == ["failed", "upstream_failed"], state
        return ["a failed task"] if self.failed else []


@pytest.mark.parametrize("param_night, failed", [(None, False), ("2026-03-01", True)])
def test_every_pod_renders_an_emerald_command_with_the_run_id_and_the_night(
        monkeypatch, param_night, failed):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from emerald_dag.builder import build_nightly_dag
    from pipeline_src.tools import cli

    monkeypatch.setenv("EMERALD_NODE_RUNNER", "kubernetes")
    config = load_config()
    dag = build_nightly_dag(config)
    graph = compiled.task_graph(compiled.load_ir_dict())
    run_id = "scheduled__2026-03-04T02:00:00+00:00"
    context = {"run_id": run_id, "ds": "2026-03-04", "dag_run": _RenderedDagRun(run_id, 41, failed),
               "params": {"night": param_night, "force_push": False, "corpus_only": False,
                          "full_retrain": False}}
    tfx_run_id, night = f"{run_id}.41", param_night or "2026-03-04"
    pods = {t.task_id: t for t in dag.tasks if isinstance(t, KubernetesPodOperator)}
    assert set(pods) == set(graph) | {names.DATA_GATE_DECISION, names.NIGHT_REPORT}
    expected = {node_id: ["node", "--run-id", tfx_run_id, "--night", night, node_id]
                for node_id in graph}
    expected[names.TRAINER][-1:-1] = ["--full-retrain=False"]
    expected[names.DATA_GATE_DECISION] = ["gate", "--run-id", tfx_run_id, "--night", night,
                                          "--force-push=False", "--alert=hand-back"]
    expected[names.NIGHT_REPORT] = ["report", "--run-id", tfx_run_id, "--night", night,
                                    "--force-push=False",
                                    f"--state={'failed' if failed else 'success'}"]
    for task_id, pod in pods.items():
        pod.render_template_fields(dict(context))
        assert pod.image == config.dag.kubernetes_image
        assert pod.cmds == ["emerald"]
        assert pod.arguments == expected[task_id], task_id
        # The image's entry point accepts the rendered line, with the values the task needs.
        args = cli.build_parser().parse_args(pod.arguments)
        assert (args.command, args.run_id, args.night) == (pod.arguments[0], tfx_run_id, night)
        if args.command != "node":
            assert args.force_push is False
        if args.command == "report":
            assert args.state == ("failed" if failed else "success")
    assert {e.name: e.value for e in pods["Trainer"].env_vars}["EMERALD_SOURCE"] == \
        config.paths.source


# --------------------------------------------------------------------------- the three nights

def _emerald(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`emerald ARGS` in a fresh process, as a pod runs it (the console script if installed).

    Its stderr (the logs) also goes to {EMERALD_HOME}/../logs/, to follow a long run.
    """
    command = [str(EMERALD)] if EMERALD.exists() else [sys.executable, "-m",
                                                        "pipeline_src.tools.cli"]
    return _logged(env, command + list(args), "-".join(args[:3]), timeout)


def _logged(env: dict, command: list, name: str, timeout: float) -> subprocess.CompletedProcess:
    logs = Path(env["EMERALD_HOME"]).parent / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{len(list(logs.iterdir())):02d}-{name.replace('/', '_')}.log"
    with open(log, "w+") as err:
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                              timeout=timeout)
        err.seek(0)
        proc.stderr = err.read()
    return proc


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (proc.args, proc.stdout[-3000:], proc.stderr[-6000:])
    return proc


def _run_night(env: dict, night: dt.date, *flags: str) -> dict:
    """`emerald run --date NIGHT --json`: one DAG run through Airflow's dag.test()."""
    proc = _emerald(env, "run", "--date", night.isoformat(), "--json", *flags, timeout=1500)
    assert proc.stdout.strip(), proc.stderr[-6000:]
    summary = json.loads(proc.stdout)
    summary["exit_code"], summary["stderr"] = proc.returncode, proc.stderr
    return summary


def _upload(client, local: Path, *subtrees: str, marker_for: str = "") -> None:
    """Uploads local subtrees to gs://BUCKET/PREFIX/ with google-cloud-storage, as Toto's app."""
    files = {p.relative_to(local).as_posix(): p.read_bytes()
             for tree in subtrees for p in sorted((local / tree).rglob("*")) if p.is_file()}
    if marker_for:      # the night is complete (ingest.completion: marker)
        files[f"toto/{marker_for}/{names.UPLOADS_COMPLETE_MARKER}"] = b""
    testing.upload_tree(client, BUCKET, PREFIX, files)


def _test_config(path: Path) -> Path:
    """include/emerald.yaml with a marker-completed night, no task retries, and this
    interpreter as the TFX one.

    The shipped `quiet` rule waits 5 minutes of silence; the marker is there at once.
    A failing task fails the run at once instead of retrying for 15 minutes. Nothing
    the compiled IR depends on changes.
    """
    raw = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    raw["ingest"]["completion"] = "marker"
    raw["dag"]["retries"] = 0
    raw["dag"]["external_python"] = sys.executable
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _gate_upstream(graph: dict[str, list[str]]) -> list[str]:
    """The nodes the data gate waits for (the validators and their upstream), in IR order."""
    wanted, todo = set(), list(names.VALIDATORS)
    while todo:
        node = todo.pop()
        if node not in wanted:
            wanted.add(node)
            todo.extend(graph[node])
    return [node for node in graph if node in wanted]


# The DAG's data_gate task, built with node_runner=external_python, executed for one run.
_EXTERNAL_GATE = r"""
import json, sys
import airflow  # noqa: F401 - puts plugins/ on sys.path, as for a DAG file
from airflow.utils.context import Context
from emerald_dag.builder import build_nightly_dag
from pipeline_src.config import load_config


class DagRun:
    id = int(sys.argv[2])


run_id, night = sys.argv[1], sys.argv[3]
gate = build_nightly_dag(load_config()).get_task("data_gate")
context = Context({"run_id": run_id, "ds": night, "dag_run": DagRun(),
                   "params": {"night": night, "force_push": False}})
gate.render_template_fields(context)
try:
    gate.execute(context)
    raised = None
except Exception as error:  # noqa: BLE001 - reported to the test
    raised = {"type": type(error).__name__, "message": str(error)}
print("RESULT" + json.dumps({"operator": type(gate).__name__, "op_args": gate.op_args,
                             "raised": raised}))
"""


@pytest.fixture(scope="module")
def nights(tmp_path_factory, alert_servers):
    from pipeline_src.orchestration.night import airflow_environment
    from pipeline_src.tools import synth

    smtp, _ = alert_servers
    root = tmp_path_factory.mktemp("runners")
    timings: dict[str, float] = {}
    with testing.gcs_emulator(root / "emulator.log") as emulator, \
            pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", emulator)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW", "EMERALD"))}
        env.update(EMERALD_HOME=str(root / "home"), EMERALD_SOURCE=f"gs://{BUCKET}/{PREFIX}",
                   EMERALD_CONFIG=str(_test_config(root / "emerald.yaml")),
                   EMERALD_ACKNOWLEDGMENTS=str(root / "home" / "acknowledgments.yaml"),
                   EMERALD_ALERT_EMAILS="dorothy@example.com",
                   STORAGE_EMULATOR_HOST=emulator, GOOGLE_CLOUD_PROJECT="emerald-test",
                   AIRFLOW_CONN_SMTP_DEFAULT=smtp.conn_uri,
                   # The Google provider's hooks need their connection, emulator or not.
                   AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT=json.dumps(
                       {"conn_type": "google_cloud_platform",
                        "extra": {"project": "emerald-test"}}))
        config = load_config(env=env)
        env.update(airflow_environment(config))   # the home's own Airflow DB, for every process

        started = time.monotonic()
        local = root / "synth"
        synth.synthesize(local, nights=1, seed=0, start_date=NIGHT_2)    # corpus + portrait
        synth.synthesize(local, nights=1, seed=0, start_date=NIGHT_3, corpus_per_label=0,
                         toto_style="landscape")
        client = testing.anonymous_client("emerald-test")
        client.create_bucket(BUCKET)
        _upload(client, local, "corpus", f"toto/{NIGHT_2}", marker_for=str(NIGHT_2))
        timings["synthesise and upload"] = time.monotonic() - started
        results: dict = {"config": config, "timings": timings, "smtp": smtp}

        started = time.monotonic()
        results[1] = _run_night(env, NIGHT_1, "--corpus-only")
        timings["night 1: in_process"] = time.monotonic() - started

        # Night 2 as pods run it: one fresh process per command, in the DAG's order.
        started = time.monotonic()
        run_id = f"scheduled__{NIGHT_2}T02:00:00+00:00.2"
        pods: dict = {"run_id": run_id, "order": [], "nodes": {}}
        pods["ingest"] = _emerald(env, "ingest", "--date", str(NIGHT_2), "--json")
        for node_id in _gate_upstream(compiled.task_graph(compiled.load_ir_dict())):
            pods["order"].append(node_id)
            pods["nodes"][node_id] = _emerald(env, "node", "--run-id", run_id,
                                              "--night", str(NIGHT_2), node_id)
            if pods["nodes"][node_id].returncode:
                break
        pods["emails_before_gate"] = len(smtp.messages)
        pods["gate"] = _emerald(env, "gate", "--run-id", run_id, "--night", str(NIGHT_2),
                                "--force-push=false")
        pods["emails_after_gate"] = len(smtp.messages)
        # As the report's pod: its result handed back where the XCom sidecar reads it.
        pods["xcom_file"] = Path(env["EMERALD_HOME"]).parent / "xcom" / "return.json"
        pods["report"] = _emerald({**env, "EMERALD_XCOM_FILE": str(pods["xcom_file"])},
                                  "report", "--run-id", run_id, "--night", str(NIGHT_2),
                                  "--force-push=false", "--state=failed")
        results["pods"] = pods
        timings["night 2: pods"] = time.monotonic() - started

        # The same blocked gate as the external_python runner's task.
        started = time.monotonic()
        airflow_run_id, dag_run_id = run_id.rsplit(".", 1)
        probe = _logged({**env, "EMERALD_NODE_RUNNER": "external_python"},
                        [sys.executable, "-c", _EXTERNAL_GATE, airflow_run_id, dag_run_id,
                         str(NIGHT_2)], "external-gate", 600)
        assert "RESULT" in probe.stdout, probe.stderr[-6000:]
        results["external_gate"] = json.loads(probe.stdout.split("RESULT", 1)[1])
        results["external_gate"]["log"] = probe.stdout + probe.stderr
        timings["night 2: external_python gate"] = time.monotonic() - started

        started = time.monotonic()
        _upload(client, local, f"toto/{NIGHT_3}", marker_for=str(NIGHT_3))
        results[3] = _run_night({**env, "EMERALD_NODE_RUNNER": "external_python"}, NIGHT_3)
        summary_file = config.paths.reports / NIGHT_3.isoformat() / "summary.json"
        results["summary_3"] = json.loads(summary_file.read_text())
        timings["night 3: external_python"] = time.monotonic() - started

        # A gate pod on the clean night: night 3's run, cleared and run again in a pod.
        started = time.monotonic()
        results["clean_gate"] = _emerald(env, "gate", "--run-id", results[3]["tfx_run_id"],
                                         "--night", str(NIGHT_3), "--force-push=false")
        timings["night 3: gate pod"] = time.monotonic() - started
        yield results
    print("\nrunner timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def _task_instances(config, run_id: str) -> dict[str, tuple[str, str]]:
    """task_id -> (state, operator) of one DAG run, from the home's Airflow database."""
    database = config.paths.home / "airflow" / "airflow.db"
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT task_id, state, operator FROM task_instance WHERE run_id = ?",
                          (run_id,)).fetchall()
    return {task_id: (state, operator) for task_id, state, operator in rows}


@pytest.mark.slow
def test_external_python_runs_every_node_the_gate_and_the_report_in_the_other_interpreter(nights):
    config, third = nights["config"], nights[3]
    assert third["exit_code"] == 0 and third["state"] == "success", third["stderr"][-6000:]
    assert third["failed_tasks"] == []
    run_id = third["tfx_run_id"].rsplit(".", 1)[0]          # "{run_id}.{dag_run.id}"
    tasks = _task_instances(config, run_id)
    graph = compiled.task_graph(compiled.load_ir_dict())
    external = set(graph) | {names.DATA_GATE, names.NIGHT_REPORT}
    assert set(tasks) == external | {names.WAIT_FOR_NIGHT, names.INGEST_NIGHT}
    assert {t: tasks[t] for t in external} == {t: ("success", "ExternalPythonOperator")
                                               for t in external}
    # Each of them started the configured interpreter on Airflow's generated script.
    launches = [line for line in third["stderr"].splitlines()
                if "Executing cmd: " + sys.executable in line and "script.py" in line]
    assert len(launches) == len(external), launches
    # The report task wrote summary.json for this run, with the run's outcome.
    written = nights["summary_3"]
    assert written["tfx_run_id"] == third["tfx_run_id"]
    assert written["state"] == "success"            # --state, rendered by the report task
    assert written["push_blocked"] is False
    assert not any(f["blocking"] for f in written["findings"])
    # Blessed and pushed: the model is in the serving directory.
    assert third["blessed"] is True and third["pushed"] is True
    assert third["accuracy"]["overall"] >= config.evaluation.min_accuracy
    assert (Path(config.paths.serving) / third["pushed_version"] / "saved_model.pb").exists()


@pytest.mark.slow
def test_the_external_python_night_read_totos_night_from_the_gcs_emulator(nights):
    config, first, third = nights["config"], nights[1], nights[3]
    assert first["state"] == "success" and first["eval_mode"] == "hash"
    assert first["splits"]["train"] + first["splits"]["eval"] == 120    # the corpus alone
    # Tonight's 36 photos, from the bucket, are the evaluation split ExampleGen wrote;
    # last night's (ingested by the pod) are in training.
    assert third["eval_mode"] == "newest_night" and third["previous_night"] == str(NIGHT_2)
    assert third["splits"] == {"train": 156, "eval": 36, "previous": 36}
    for night in (NIGHT_2, NIGHT_3):
        manifest = json.loads((config.paths.spans / "toto" / str(night) / "_manifest.json")
                              .read_text())
        assert manifest["source_uri"] == f"gs://{BUCKET}/{PREFIX}/toto/{night}/"
        assert manifest["counts"]["ingested"] == manifest["example_count"] == 36
        assert manifest["counts"]["skipped"] == 1                      # the _SUCCESS marker
        ingested = [e["object"] for e in manifest["objects"] if e["status"] == "ingested"]
        assert len(ingested) == 36 and all(f"toto/{night}/" in name for name in ingested)
    corpus = json.loads((config.paths.spans / "corpus" / "_manifest.json").read_text())
    assert corpus["source_uri"] == f"gs://{BUCKET}/{PREFIX}/corpus/"
    assert not Path(config.paths.home, "source").exists()             # nothing local to read


@pytest.mark.slow
def test_every_pod_command_exits_0_and_the_gate_pod_exits_3_on_a_skewed_night(nights):
    pods = nights["pods"]
    assert json.loads(_ok(pods["ingest"]).stdout)["ingested"] == 36
    graph = compiled.task_graph(compiled.load_ir_dict())
    # What the gate waits for: the two validators and their upstream, each after its parents.
    assert set(pods["order"]) == {names.EXAMPLE_GEN, "ImportSchemaGen", names.RESOLVER,
                                  names.STATISTICS_GEN, *names.VALIDATORS}
    for i, node_id in enumerate(pods["order"]):
        assert set(graph[node_id]) <= set(pods["order"][:i]), node_id
    for node_id in pods["order"]:
        _ok(pods["nodes"][node_id])
    gate = pods["gate"]
    assert gate.returncode == BLOCKED_EXIT_CODE, (gate.stdout[-3000:], gate.stderr[-6000:])
    # The reason is one line, the last on stdout (Airflow's log handler writes there too).
    reason = gate.stdout.strip().splitlines()[-1]
    assert [line for line in gate.stdout.splitlines() if "push blocked" in line] == [reason]
    assert reason.startswith(f"push blocked for night {NIGHT_2}: ")
    assert "aspect_ratio: KS distance" in reason and "brightness: KS distance" in reason
    assert f"toto {NIGHT_2} vs training" in reason
    # The gate pod alerted once, before exiting.
    smtp = nights["smtp"]
    assert pods["emails_after_gate"] == pods["emails_before_gate"] + 1
    assert "push BLOCKED" in smtp.messages[pods["emails_before_gate"]]["subject"]


@pytest.mark.slow
def test_the_report_pod_exits_0_with_push_blocked(nights):
    config, pods = nights["config"], nights["pods"]
    report = _ok(pods["report"])
    printed = json.loads(report.stdout.strip().splitlines()[-1])
    assert printed["push_blocked"] is True and printed["state"] == "failed"
    assert json.loads(pods["xcom_file"].read_text()) == printed      # the pod's XCom
    assert printed["report_url"].endswith(f"/night/{NIGHT_2}")
    written = json.loads((config.paths.reports / str(NIGHT_2) / "summary.json").read_text())
    assert written["tfx_run_id"] == pods["run_id"] and written["push_blocked"] is True
    assert written["splits"] == {"train": 120, "eval": 36, "previous": 0}   # no night before
    assert written["pushed"] is False


@pytest.mark.slow
def test_the_external_python_gate_task_fails_on_the_blocked_night(nights):
    gate = nights["external_gate"]
    assert gate["operator"] == "ExternalPythonOperator"
    assert gate["op_args"] == [["gate", "--run-id", nights["pods"]["run_id"], "--night",
                                str(NIGHT_2), "--force-push=False"]]
    assert gate["raised"] is not None, gate["log"][-6000:]
    assert gate["raised"]["type"] in ("AirflowException", "AirflowFailException")
    # The task's error carries the gate's one-line reason, printed in the other interpreter.
    assert f"emerald gate: push blocked for night {NIGHT_2}: aspect_ratio: KS distance" in \
        gate["raised"]["message"]


@pytest.mark.slow
def test_the_gate_pod_exits_0_on_a_clean_night(nights):
    gate = _ok(nights["clean_gate"])
    result = json.loads(gate.stdout.strip().splitlines()[-1])
    assert result["blocked"] is False and result["forced"] is False
    assert not any(f["blocking"] for f in result["findings"])
