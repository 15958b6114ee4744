"""What Cloud Composer's pods see, end to end (issue 10, "Must show"): two nights of the `gcp`
DAG, every task its own process that shares nothing with the others but a GCS emulator and
a PostgreSQL server.

The DAG is the `gcp` profile's (node_runner kubernetes). Each KubernetesPodOperator task is
rendered offline as tests/plugins/test_pod_render.py does (`build_pod_request_obj()`), and
its container is run here: its command and args, its env (the MLMD password resolved from
the Kubernetes secret it names), the image's own settings, and its XCom volume. The tasks
that are no pods run as the worker runs them (pods_testing.run_worker_task: the DAG's own
operator, templates rendered, `execute`), each in a fresh process too: the sensor (the
night's `_SUCCESS` marker is there), ingestion into the spans on gs://, and `data_gate`,
which sends the gate pod's alert with the worker's connections (a real SMTP server) and
fails to block the push. A task runs once its upstream tasks are done, two at a time
(PARALLEL_TASKS); a task whose upstream failed is not run (`upstream_failed`), the report
(a teardown) always is.

Every process starts in an empty working directory, HOME and TMPDIR of its own inside a
sandbox (pods_testing.Sandbox): a private overlay of the whole filesystem catches anything
it writes elsewhere, so the test can say exactly what a pod would have left on local disk.

The configuration is the shipped `gcp` profile plus what must change on this machine
(machine_overlay), merged by the test into a profile of the same name beside a copy of
include/emerald.yaml (EMERALD_CONFIG names the base file; profiles are read beside it):
Beam on the DirectRunner instead of Dataflow, the test's PostgreSQL (host, port, no SSL;
user, database and the password's variable as shipped, the database made beforehand as
on Cloud SQL), and the `marker` completion rule (the shipped `quiet` rule waits 5 minutes
of silence). Every gs:// path and bucket is the profile's; the buckets are created in
fake-gcs-server, which TF's own gs:// client reaches through tests/gcs_testing.py's proxy.

Night 1 (2026-01-01) is the corpus-only bootstrap: it must push. Night 2 (2026-01-02) brings
Toto's portrait, darker photos (`emerald synth`, as `make demo`): the gate must block it.
About 7.5 minutes on 2 cores: 29 processes, most of them importing TF and TFX.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
from pathlib import Path

import pytest
import yaml

import emerald_testing as testing
import gcs_testing
import pods_testing
from pipeline_src import names
from pipeline_src.config import DEFAULT_CONFIG_FILE, _merge, load_config
from pipeline_src.ingest.sources import parse_source

NIGHTS = ((dt.date(2026, 1, 1), True), (dt.date(2026, 1, 2), False))   # (night, corpus_only)
SHIPPED_PROFILE = DEFAULT_CONFIG_FILE.parent / "profiles" / "gcp.yaml"
# Composer runs independent pods side by side; two at a time here (2 cores), which also
# has MLMD on PostgreSQL serve concurrent nodes, as it does there.
PARALLEL_TASKS = 2
XCOM_DIR = "/airflow/xcom"             # the XCom sidecar's volume in a pod that hands back


def machine_overlay(server: dict) -> dict:
    """What must change on this machine, and nothing else (test_only_what_must_change...)."""
    return {
        "beam": {"args": ["--runner=DirectRunner", "--direct_running_mode=in_memory",
                          "--direct_num_workers=1", "--project=emerald-project",
                          "--temp_location=gs://emerald-pipeline/beam-tmp"]},
        "metadata": {"postgresql": {"host": server["host"], "port": server["port"],
                                    "sslmode": "disable"}},
        "ingest": {"completion": "marker"},
    }


def write_configuration(folder: Path, server: dict) -> Path:
    """include/emerald.yaml copied into `folder`, the gcp profile beside it with the overlay."""
    (folder / "profiles").mkdir(parents=True)
    config_file = folder / "emerald.yaml"
    config_file.write_text(DEFAULT_CONFIG_FILE.read_text())
    profile = _merge(yaml.safe_load(SHIPPED_PROFILE.read_text()), machine_overlay(server))
    (folder / "profiles" / "gcp.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return config_file


class Night:
    """One DAG run, task by task, as the scheduler and the cluster would run it here."""

    def __init__(self, world: dict, night: dt.date, corpus_only: bool, dag_run_id: int):
        self.world, self.night = world, night.isoformat()
        self.run_id = f"manual__{self.night}T02:00:00+00:00"
        self.dag_run = pods_testing.DagRunStub(self.run_id, dag_run_id)
        self.tfx_run_id = f"{self.run_id}.{dag_run_id}"
        self.params = {"night": self.night, "corpus_only": corpus_only, "force_push": False,
                       "full_retrain": False}
        self.states: dict[str, str] = {}
        self.xcom: dict[str, object] = {}
        self.runs: dict[str, pods_testing.Finished] = {}
        self.results: dict[str, dict] = {}         # worker tasks: RESULT{...}
        self.pod_envs: dict[str, dict] = {}        # what each pod's spec set

    def run(self, dag, width: int = PARALLEL_TASKS) -> "Night":
        """Every task once its upstream tasks are done, up to `width` at a time."""
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        pending, running = pods_testing.topological(dag), {}
        with ThreadPoolExecutor(width) as pool:
            while pending or running:
                for task_id in list(pending):
                    task = dag.get_task(task_id)
                    if len(running) == width or not task.upstream_task_ids <= set(self.states):
                        continue
                    pending.remove(task_id)
                    broken = {self.states[t] for t in task.upstream_task_ids} & {
                        "failed", "upstream_failed"}
                    if broken and not task.is_teardown:
                        self.states[task_id] = "upstream_failed"
                        continue
                    self.dag_run.failed = [t for t, s in self.states.items()
                                           if s in ("failed", "upstream_failed")]
                    run = self._pod if pods_testing.is_pod(task) else self._worker
                    running[pool.submit(run, task)] = task_id
                if running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        self.states[running.pop(future)] = ("success" if future.result()
                                                            else "failed")
        return self

    def _context(self) -> dict:
        return pods_testing.template_context(self.dag_run, self.night, self.params)

    def _pod(self, task) -> bool:
        argv, env, volumes = pods_testing.pod_process(pods_testing.render(task, self._context()),
                                                      self.world["secrets"])
        self.pod_envs[task.task_id] = env
        finished = self.world["sandbox"].run(
            task.task_id, argv, {**pods_testing.image_env(), **env, **self.world["machine_env"]},
            volumes=tuple(volumes))
        self.runs[task.task_id] = finished
        if task.do_xcom_push and finished.returncode == 0:
            returned = self.world["sandbox"].volume(finished, XCOM_DIR) / "return.json"
            self.xcom[task.task_id] = json.loads(returned.read_text())
        return finished.returncode == 0

    def _worker(self, task) -> bool:
        spec = self.world["root"] / f"spec-{self.night}-{task.task_id}.json"
        spec.write_text(json.dumps({"run_id": self.run_id, "dag_run_id": self.dag_run.id,
                                    "ds": self.night, "params": self.params,
                                    "failed": self.dag_run.failed, "xcom": self.xcom}))
        finished = self.world["sandbox"].run(
            task.task_id, pods_testing.worker_command(task.task_id, spec),
            {**pods_testing.image_env(), **self.world["worker_env"]})
        self.runs[task.task_id] = finished
        printed = [line for line in finished.stdout.splitlines() if line.startswith("RESULT")]
        assert finished.returncode == 0 and printed, finished.tail()
        self.results[task.task_id] = json.loads(printed[-1].removeprefix("RESULT"))
        return self.results[task.task_id]["state"] == "success"


@pytest.fixture(scope="module")
def pods_nights(tmp_path_factory):
    pods_testing.require_sandbox()
    from emerald_dag.builder import build_nightly_dag
    from pipeline_src.tools import synth

    root = tmp_path_factory.mktemp("pods-e2e")
    timings: dict[str, float] = {}
    started = time.monotonic()
    with smtp_server() as smtp, \
            testing.postgres_server(password="mlmd-Secret-Beryl9") as server, \
            gcs_testing.gcs_for_tf(root / "gcs") as proxy, \
            pods_testing.offline_kubernetes(root), pytest.MonkeyPatch.context() as patch:
        testing.create_database(server, "mlmd")          # skip_db_creation: as on Cloud SQL
        config_file = write_configuration(root / "config", server)
        gcs_env = gcs_testing.gcs_environment(proxy)
        machine_env = {"EMERALD_CONFIG": str(config_file), "PYTHONDONTWRITEBYTECODE": "1",
                       **gcs_env}
        # What Composer gives the worker: the profile, and Airflow's connections.
        worker_env = {"EMERALD_PROFILE": "gcp", **machine_env,
                      "AIRFLOW_CONN_SMTP_DEFAULT": smtp.conn_uri,
                      "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(
                          {"conn_type": "google_cloud_platform",
                           "extra": {"project": "emerald-project"}})}
        patch.setenv("EMERALD_PROFILE", "gcp")
        patch.setenv("EMERALD_CONFIG", str(config_file))
        for name, value in gcs_env.items():
            patch.setenv(name, value)
        config = load_config()
        postgresql = config.metadata.postgresql
        secrets = {(postgresql["secret_name"], postgresql["secret_key"]): server["password"]}

        client = testing.anonymous_client("emerald-project")
        _, source_bucket, source_prefix = parse_source(config.paths.source)
        for bucket in {source_bucket, parse_source(config.paths.pipeline_root)[1]}:
            client.create_bucket(bucket)
        local = root / "synth"
        synth.synthesize(local, nights=1, seed=0, start_date=NIGHTS[1][0])

        def upload(tree: str, marker: bool = False) -> None:
            files = {p.relative_to(local).as_posix(): p.read_bytes()
                     for p in sorted((local / tree).rglob("*")) if p.is_file()}
            if marker:
                files[f"{tree}/{names.UPLOADS_COMPLETE_MARKER}"] = b""
            testing.upload_tree(client, source_bucket, source_prefix, files)

        upload(names.CORPUS_DIR)
        timings["set-up"] = time.monotonic() - started
        world = {"root": root, "secrets": secrets, "machine_env": machine_env,
                 "worker_env": worker_env, "sandbox": pods_testing.Sandbox(root / "runs")}
        dag = build_nightly_dag(config)
        nights = []
        for i, (night, corpus_only) in enumerate(NIGHTS, 1):
            if not corpus_only:            # Toto's photos of the night, then her app's marker
                upload(f"{names.TOTO_DIR}/{night}", marker=True)
            started = time.monotonic()
            nights.append(Night(world, night, corpus_only, dag_run_id=i).run(dag))
            timings[f"night {night}"] = time.monotonic() - started

        objects = {f"gs://{bucket.name}/{blob.name}": blob for bucket in client.list_buckets()
                   for blob in client.list_blobs(bucket)
                   if not blob.name.endswith("/")}             # not TF's folder markers
        yield {"config": config, "nights": nights, "sandbox": world["sandbox"],
               "smtp": smtp, "proxy": proxy, "client": client, "server": server,
               "objects": objects,
               "artifacts": _artifact_uris(config, server), "timings": timings}
    print("\npods e2e timings: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print("per process: " + ", ".join(f"{run.log.parent.name} {run.seconds:.0f} s"
                                      for run in world["sandbox"].finished))


@contextlib.contextmanager
def smtp_server():
    """A real SMTP server: the worker's smtp_default connection (the gate's alert)."""
    inbox = testing.SmtpInbox()
    try:
        yield inbox
    finally:
        inbox.stop()


def _artifact_uris(config, server: dict) -> dict[str, list[str]]:
    """Artifact type -> URIs, read back from the PostgreSQL MLMD by this process."""
    from ml_metadata import metadata_store

    from pipeline_src.metadata import postgresql_connection_config

    store = metadata_store.MetadataStore(postgresql_connection_config(
        config.metadata.postgresql, {config.metadata.postgresql["password_env"]:
                                     server["password"]}))
    types = {t.id: t.name for t in store.get_artifact_types()}
    uris: dict[str, list[str]] = {}
    for artifact in store.get_artifacts():
        uris.setdefault(types[artifact.type_id], []).append(artifact.uri)
    return uris



# --------------------------------------------------------------------------- the tests

def test_only_what_must_change_on_this_machine_differs_from_the_shipped_profile(tmp_path):
    """Quick: the test's configuration is the shipped gcp profile but for MACHINE's keys."""
    from pipeline_src.tools.show_config import plain

    server = {"host": "127.0.0.1", "port": 54321}
    config_file = write_configuration(tmp_path, server)
    ours = plain(load_config(env={"EMERALD_PROFILE": "gcp", "EMERALD_CONFIG": str(config_file)}))
    shipped = plain(load_config(env={"EMERALD_PROFILE": "gcp"}))

    def leaves(tree, prefix=""):
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    ours, shipped = dict(leaves(ours)), dict(leaves(shipped))
    assert ours.keys() == shipped.keys()
    changed = {key for key in ours if ours[key] != shipped[key]}
    assert changed == {"config_file", "beam_args", "metadata.postgresql.host",
                       "metadata.postgresql.port", "metadata.postgresql.sslmode",
                       "ingest.completion"}
    assert all(str(ours[f"paths.{p}"]).startswith("gs://") for p in (
        "source", "pipeline_root", "serving", "reports", "spans", "quarantine"))


@pytest.mark.slow
def test_every_task_ran_as_its_own_process_as_the_dag_says(pods_nights):
    corpus, toto = pods_nights["nights"]
    assert set(corpus.states.values()) == {"success"}, corpus.states
    assert {t: s for t, s in toto.states.items() if s != "success"} == {
        names.DATA_GATE: "failed", names.PUSHER: "upstream_failed"}, toto.states
    for night in (corpus, toto):
        for task_id, run in night.runs.items():
            assert run.returncode == 0, run.tail()
        pods = {t for t in night.runs if t not in (names.WAIT_FOR_NIGHT, names.INGEST_NIGHT,
                                                   names.DATA_GATE)}
        assert {names.EXAMPLE_GEN, "Trainer", "Evaluator", names.DATA_GATE_DECISION,
                names.NIGHT_REPORT} <= pods
        # A pod knows the profile, the source and its secret; nothing of the worker's.
        password = pods_nights["config"].metadata.postgresql["password_env"]
        for task_id in pods:
            assert night.runs[task_id].log.parent.name.endswith(task_id)
            xcom = {"EMERALD_XCOM_FILE"} if task_id in night.xcom else set()
            assert set(night.pod_envs[task_id]) == {"EMERALD_PROFILE", "EMERALD_SOURCE",
                                                    password} | xcom, task_id
            assert night.pod_envs[task_id]["EMERALD_PROFILE"] == "gcp"
    # One process per task run, each with its own scratch folder.
    folders = [run.log.parent for run in pods_nights["sandbox"].finished]
    assert len(folders) == len(corpus.runs) + len(toto.runs) == len(set(folders)) == 29


@pytest.mark.slow
def test_nothing_was_written_outside_each_processs_scratch_folder(pods_nights):
    leaks = {run.log.parent.name: run.outside_writes
             for run in pods_nights["sandbox"].finished if run.outside_writes}
    assert not leaks, leaks


@pytest.mark.slow
def test_the_corpus_night_pushed_its_model_into_the_bucket(pods_nights):
    config, objects = pods_nights["config"], pods_nights["objects"]
    corpus = pods_nights["nights"][0]
    assert corpus.xcom[names.DATA_GATE_DECISION]["blocked"] is False
    assert corpus.xcom[names.NIGHT_REPORT] == {
        "report_url": corpus.xcom[names.NIGHT_REPORT]["report_url"], "push_blocked": False,
        "state": "success"}
    serving = config.paths.serving.rstrip("/")
    current = json.loads(objects[f"{serving}/CURRENT"].download_as_bytes())
    version = current["version"]
    assert f"{serving}/{version}/saved_model.pb" in objects
    assert any(name.startswith(f"{serving}/{version}/variables/variables.data") for name in objects)
    history = sorted(name for name in objects if name.startswith(f"{serving}/history/"))
    assert history == [f"{serving}/history/000001-{version}.json"]
    entry = json.loads(objects[history[0]].download_as_bytes())
    assert (entry["night"], entry["method"]) == (corpus.night, "nightly")
    assert version in objects[f"{serving}/models.config"].download_as_text()
    summary = json.loads(objects[f"{config.paths.reports}/{corpus.night}/summary.json"]
                         .download_as_bytes())
    assert (summary["pushed"], summary["pushed_version"]) == (True, version)
    assert summary["tfx_run_id"] == corpus.tfx_run_id


@pytest.mark.slow
def test_the_toto_night_was_blocked_by_the_gate_and_pushed_nothing(pods_nights):
    config, objects, smtp = pods_nights["config"], pods_nights["objects"], pods_nights["smtp"]
    toto = pods_nights["nights"][1]
    decided = toto.xcom[names.DATA_GATE_DECISION]      # the gate's pod: decided, sent nothing
    assert decided["blocked"] is True and decided["tfx_run_id"] == toto.tfx_run_id
    assert decided["reason"].startswith(f"push blocked for night {toto.night}: ")
    assert "aspect_ratio: KS distance" in decided["reason"]
    assert decided["alert"]["subject"]
    # The worker's data_gate sent that alert with its connections, then failed the task.
    delivered = toto.results[names.DATA_GATE]
    assert delivered["error"] == "AirflowFailException"
    assert delivered["message"] == decided["reason"]
    assert [m["subject"] for m in smtp.messages] == [decided["alert"]["subject"]]
    assert "push BLOCKED" in smtp.messages[0]["subject"]
    assert names.PUSHER not in toto.runs
    assert toto.xcom[names.NIGHT_REPORT]["push_blocked"] is True
    assert toto.xcom[names.NIGHT_REPORT]["state"] == "failed"
    reports = f"{config.paths.reports}/{toto.night}"
    summary = json.loads(objects[f"{reports}/summary.json"].download_as_bytes())
    assert summary["push_blocked"] is True and summary["pushed"] is False
    # The worker kept the delivery beside the report; the report's pod read it back.
    kept = json.loads(objects[f"{reports}/alerts.json"].download_as_bytes())
    assert kept["tfx_run_id"] == toto.tfx_run_id and kept["channels"]["email"] == "sent"
    assert summary["alerts"]["email"] == "sent"
    # The serving model is still the corpus night's, and the history says nothing more.
    serving = config.paths.serving.rstrip("/")
    assert len([n for n in objects if n.startswith(f"{serving}/history/")]) == 1


@pytest.mark.slow
def test_the_reports_and_the_spans_are_in_the_bucket(pods_nights):
    config, objects = pods_nights["config"], pods_nights["objects"]
    for night in pods_nights["nights"]:
        for name in ("summary.json", "report.html"):
            assert f"{config.paths.reports}/{night.night}/{name}" in objects, name
    spans = str(config.paths.spans).rstrip("/")
    for span, count in ((names.CORPUS_DIR, 120), (f"{names.TOTO_DIR}/2026-01-02", 36)):
        pointer = json.loads(objects[f"{spans}/{span}/_current.json"].download_as_bytes())
        generation = f"{spans}/{span}/{pointer['generation']}"
        photos = [n for n in objects if n.startswith(generation + "/") and n.endswith(".jpg")]
        assert len(photos) == count, (span, len(photos))
        manifest = json.loads(objects[f"{generation}/{pointer['manifest']}"].download_as_bytes())
        assert manifest["example_count"] == count


@pytest.mark.slow
def test_every_artifact_is_in_the_bucket_and_tf_used_its_own_gs_client(pods_nights):
    config, artifacts, proxy = pods_nights["config"], pods_nights["artifacts"], pods_nights["proxy"]
    assert {"Examples", "ExampleStatistics", "Schema", "TransformGraph", "Model",
            "ModelBlessing", "PushedModel"} <= set(artifacts)
    for kind, uris in artifacts.items():
        for uri in uris:
            assert uri.startswith(config.paths.pipeline_root + "/"), (kind, uri)
    assert proxy.tunnelled > 0 and proxy.batch_parts > 0      # TF's own client, Beam's batches
    assert not proxy.errors and not proxy.refused



@pytest.mark.slow
def test_the_mlmd_password_is_in_no_output_and_no_object(pods_nights):
    """The pods get it from the secret; it must not come back out (issue 14)."""
    secret = pods_nights["server"]["password"]
    for run in pods_nights["sandbox"].finished:
        assert secret not in run.stdout + run.stderr, run.log
    for name, blob in pods_nights["objects"].items():
        assert secret.encode() not in blob.download_as_bytes(), name
