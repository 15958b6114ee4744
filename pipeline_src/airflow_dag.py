"""Builds the nightly Airflow DAG from the compiled IR and the configuration.

Imported by dags/emerald_nightly.py at every parse, so it imports Airflow and
PyYAML only; the TFX work happens inside the tasks.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from airflow import DAG
from airflow.models.param import Param

from pipeline_src.compile import COMPILED_DIR, load_ir_dict, task_graph
from pipeline_src.config import Config
from pipeline_src.node_ids import (DATA_GATE, EXAMPLE_GEN, INGEST_NIGHT, NIGHT_REPORT, PUSHER,
                                   VALIDATORS, WAIT_FOR_NIGHT)

DOC_MD = """
### Emerald nightly retraining

Retrains the lion / tiger / bear classifier on the curated corpus plus every
night of Toto's photos, and refuses to push a model when the data went wrong.

* **Tasks** are the nodes of the compiled TFX pipeline
  (`include/compiled/pipeline.json`), each launched through TFX's portable
  launcher with this DAG run's id as the TFX run id: retry or clear any one.
* **Night**: the run's logical date (`ds`), or the `night` param when you
  trigger a run by hand (*Trigger DAG w/ config*).
* **Evaluation** uses tonight's Toto photos; the model is pushed only when
  blessed (accuracy >= the configured floor, no regression).
* Configuration: `include/emerald.yaml` (+ `EMERALD_*` environment overrides).
"""


def _node_task(config: Config, node_id: str):
    if config.dag.node_runner == "in_process":
        from emerald_tfx.operators import TfxNodeOperator

        return TfxNodeOperator(task_id=node_id, node_id=node_id)
    if config.dag.node_runner == "external_python":
        from airflow.operators.python import ExternalPythonOperator
        from emerald_tfx.operators import NIGHT, TFX_RUN_ID, launch_in_external_python

        return ExternalPythonOperator(
            task_id=node_id, python=config.dag.external_python,
            python_callable=launch_in_external_python,
            op_kwargs={"node_id": node_id, "tfx_run_id": TFX_RUN_ID, "night": NIGHT},
            expect_airflow=False)
    from emerald_tfx.operators import NIGHT, TFX_RUN_ID

    return _pod(config, node_id, ["node", "--run-id", TFX_RUN_ID, "--night", NIGHT, node_id])


def _pod(config: Config, task_id: str, arguments: list):
    """`emerald ...` in the project's image: Google's advice for TFX on Cloud Composer."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.secret import Secret

    return KubernetesPodOperator(
        task_id=task_id, name=f"emerald-{task_id.lower().replace('_', '-')}",
        image=config.dag.kubernetes_image, cmds=["emerald"], arguments=arguments,
        env_vars={"EMERALD_PROFILE": config.profile or "", "EMERALD_SOURCE": config.paths.source},
        secrets=[Secret("env", "EMERALD_MLMD_PASSWORD", "emerald-mlmd", "password")],
        get_logs=True)


def build_nightly_dag(config: Config, compiled_dir: Path = COMPILED_DIR) -> DAG:
    graph = task_graph(load_ir_dict(compiled_dir))
    default_args = {
        "owner": config.dag.owner,
        "retries": config.dag.retries,
        "retry_delay": dt.timedelta(minutes=config.dag.retry_delay_minutes),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=config.dag.max_retry_delay_minutes),
    }
    start = dt.datetime.combine(config.dag.start_date, dt.time(), tzinfo=dt.timezone.utc)
    with DAG(
        dag_id=config.dag.dag_id,
        schedule=config.dag.schedule,
        start_date=start,
        catchup=False,
        max_active_runs=1,
        default_args=default_args,
        tags=list(config.dag.tags),
        doc_md=DOC_MD,
        params={
            "night": Param(None, type=["null", "string"], format="date",
                           description="Night to process (YYYY-MM-DD); empty: the run's date"),
            "force_push": Param(False, type="boolean",
                                description="Push even when the data gate blocks "
                                            "(logged and alerted)"),
            "corpus_only": Param(False, type="boolean",
                                 description="Bootstrap night before Toto's first upload: "
                                             "train on the corpus alone, wait for nothing"),
        },
        render_template_as_native_obj=False,
    ) as dag:
        wait, ingest = _ingestion_tasks(config)
        tasks = {node_id: _node_task(config, node_id) for node_id in graph}
        for node_id, upstream in graph.items():
            for parent in upstream:
                tasks[parent] >> tasks[node_id]
            if not upstream and node_id == EXAMPLE_GEN:
                wait >> ingest >> tasks[node_id]
        _gate_and_report(config, tasks, [wait, ingest])
    from emerald_reports.links import attach_night_report_links

    attach_night_report_links(dag)   # "Night report" on the validation, gate and eval tasks
    return dag


def _gate_and_report(config: Config, tasks: dict, ingestion: list) -> None:
    """The data gate sits between the validators and Pusher; the report closes the night.

    The report is a teardown task: it runs whatever happened (all done) and does
    not decide the run's state, so a blocked or failed night still shows red.
    Both need TFX and MLMD, so they run where the nodes run.
    """
    gate = _night_task(config, DATA_GATE, "gate")
    [tasks[node] for node in VALIDATORS] >> gate >> tasks[PUSHER]
    report = _night_task(config, NIGHT_REPORT, "report").as_teardown()
    ingestion + list(tasks.values()) + [gate] >> report


def _night_task(config: Config, task_id: str, command: str):
    from emerald_alerts import operators as alerts
    from emerald_tfx.operators import NIGHT, TFX_RUN_ID

    if config.dag.node_runner == "in_process":
        cls = alerts.DataGateOperator if command == "gate" else alerts.NightReportOperator
        return cls(task_id=task_id)
    if config.dag.node_runner == "external_python":
        from airflow.operators.python import ExternalPythonOperator

        return ExternalPythonOperator(
            task_id=task_id, python=config.dag.external_python, expect_airflow=True,
            python_callable=(alerts.gate_in_external_python if command == "gate"
                             else alerts.report_in_external_python),
            op_kwargs={"tfx_run_id": TFX_RUN_ID, "night": NIGHT,
                       "force_push": alerts.FORCE_PUSH})
    return _pod(config, task_id, [command, "--run-id", TFX_RUN_ID, "--night", NIGHT,
                                   f"--force-push={alerts.FORCE_PUSH}"])


def _ingestion_tasks(config: Config):
    """Wait for tonight's uploads, then bring them into the span ExampleGen reads."""
    from emerald_gcs.operators import IngestNightOperator
    from emerald_gcs.sensors import NightUploadCompleteSensor

    wait = NightUploadCompleteSensor(
        task_id=WAIT_FOR_NIGHT, source=config.paths.source,
        completion=config.ingest.completion, quiet_seconds=config.ingest.quiet_seconds,
        timeout=config.ingest.timeout_seconds, poke_interval=60, mode="poke")
    ingest = IngestNightOperator(
        task_id=INGEST_NIGHT, source=config.paths.source,
        spans_dir=str(config.paths.spans), quarantine_dir=str(config.paths.quarantine),
        max_pixels=config.ingest.max_pixels, unknown_labels=config.ingest.unknown_labels,
        known_labels=config.data.labels)
    return wait, ingest
