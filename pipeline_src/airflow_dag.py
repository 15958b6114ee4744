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
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from emerald_tfx.operators import NIGHT, TFX_RUN_ID

    return KubernetesPodOperator(
        task_id=node_id, name=f"emerald-{node_id.lower()}",
        image=config.dag.kubernetes_image,
        cmds=["emerald"],
        arguments=["node", "--run-id", TFX_RUN_ID, "--night", NIGHT, node_id],
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
        },
        render_template_as_native_obj=False,
    ) as dag:
        tasks = {node_id: _node_task(config, node_id) for node_id in graph}
        for node_id, upstream in graph.items():
            for parent in upstream:
                tasks[parent] >> tasks[node_id]
    return dag
