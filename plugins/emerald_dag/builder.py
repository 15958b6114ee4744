"""Builds the nightly Airflow DAG from the compiled IR and the configuration.

Imported by dags/emerald_nightly.py at every parse, so it imports Airflow,
PyYAML and the IR's JSON only; the TFX work happens inside the tasks. It lives
with the operators (the Airflow layer), not in pipeline_src, which never
imports plugins.

Where a task runs is one switch (`_task`): in the worker's process (the
operators), in the TFX virtualenv (`ExternalPythonOperator` running the same
`emerald ...` command line), or in a pod (`KubernetesPodOperator` running it).
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable, Sequence

from airflow import DAG
from airflow.models import BaseOperator
from airflow.models.param import Param

from pipeline_src.orchestration.compile import COMPILED_DIR, load_ir_dict, task_graph
from pipeline_src.config import EXTERNAL_PYTHON, IN_PROCESS, KUBERNETES, Config
from pipeline_src.names import (DATA_GATE, DATA_GATE_DECISION, EXAMPLE_GEN, FORCE_PUSH, FULL_RETRAIN,
                                GATE_UPSTREAM, INGEST_NIGHT, NIGHT, NIGHT_REPORT, PUSHER,
                                RUN_STATE, TFX_RUN_ID, TRAINER, WAIT_FOR_NIGHT)

DOC_MD = """
### Emerald nightly retraining

Retrains the lion / tiger / bear classifier on the curated corpus plus every
night of Toto's photos, and refuses to push a model when the data went wrong.

* **Tasks** are the nodes of the compiled TFX pipeline
  (`include/compiled/pipeline.json`), each launched through TFX's portable
  launcher with this DAG run's id as the TFX run id: retry or clear any one.
* **Night**: the run's logical date (`ds`), or the `night` param when you
  trigger a run by hand (*Trigger DAG w/ config*).
* **data_gate** fails (no retry) when tonight's data is skewed or breaks the
  schema, or the Evaluator did not bless the model, so Pusher does not run;
  trigger with `force_push` to push despite data findings (an unblessed model
  is never pushed: the Pusher checks the blessing itself).
* **Evaluation** uses tonight's Toto photos; the model is pushed only when
  blessed (accuracy >= the configured floor, no regression; the first night,
  with no baseline model, against the floor only).
* **Alerts**: the gate's findings, and any task that fails for good (after its
  retries; a sensor's timeout too), go by email and Slack with a link to the log.
* Configuration: `include/emerald.yaml` (+ `EMERALD_*` environment overrides).
"""


def run_emerald(argv: Sequence[str]) -> None:
    """ExternalPythonOperator callable: `emerald ARGV` in the TFX virtualenv.

    Self-contained (Airflow ships its source to the other interpreter). A
    blocked push fails the task, whose error names the reason the gate printed:
    Airflow re-raises any failure of the other interpreter as AirflowException
    (what does not retry the gate is its `retries=0`).
    """
    import contextlib
    import io
    import sys

    from pipeline_src.tools.cli import main
    from pipeline_src.orchestration.tasks import BLOCKED_EXIT_CODE

    class Tail(io.TextIOBase):
        """Writes through to stdout (the task's log, live), keeping the last few KiB."""

        def __init__(self, out):
            self.out, self.text = out, ""

        def write(self, text):
            self.out.write(text)
            self.text = (self.text + text)[-4096:]
            return len(text)

        def flush(self):
            self.out.flush()

    printed = Tail(sys.stdout)
    with contextlib.redirect_stdout(printed):
        code = main(list(argv))
    if code == BLOCKED_EXIT_CODE:
        from airflow.exceptions import AirflowFailException   # Airflow's import, only here

        lines = printed.text.strip().splitlines()     # the gate prints its reason last
        raise AirflowFailException(f"emerald {argv[0]}: {lines[-1] if lines else 'push blocked'}")
    if code:
        raise RuntimeError(f"emerald {' '.join(argv)} exited {code}")


def _task(config: Config, task_id: str, argv: list[str],
          in_process: Callable[..., BaseOperator], xcom: bool = False,
          **task_args) -> BaseOperator:
    """The task that runs `emerald ARGV`, where `dag.node_runner` says."""
    runner = config.dag.node_runner
    if runner == IN_PROCESS:
        return in_process(task_id=task_id, **task_args)
    if runner == EXTERNAL_PYTHON:
        from airflow.operators.python import ExternalPythonOperator

        # expect_airflow=False: the arguments arrive rendered, so the other interpreter needs
        # no Airflow macros, and skips loading Airflow's plugins (~2 s a task) to run a node.
        return ExternalPythonOperator(
            task_id=task_id, python=config.dag.external_python, python_callable=run_emerald,
            op_args=[argv], expect_airflow=False, **task_args)
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from emerald_dag.pods import pod_arguments

    # Google's advice for TFX on Cloud Composer: the project's image, its own Python.
    return KubernetesPodOperator(task_id=task_id, cmds=["emerald"], arguments=argv,
                                 **pod_arguments(config, task_id, xcom=xcom), **task_args)


def _node_task(config: Config, node_id: str) -> BaseOperator:
    from emerald_tfx.operators import TfxNodeOperator

    argv = ["node", "--run-id", TFX_RUN_ID, "--night", NIGHT, node_id]
    if node_id == TRAINER:          # the DAG param: train from scratch, not warm
        argv[-1:-1] = [f"--full-retrain={FULL_RETRAIN}"]
        return _task(config, node_id, argv, lambda **kw: TfxNodeOperator(
            node_id=node_id, full_retrain=FULL_RETRAIN, **kw))
    return _task(config, node_id, argv, lambda **kw: TfxNodeOperator(node_id=node_id, **kw))


def _gate_tasks(config: Config) -> tuple[BaseOperator, BaseOperator]:
    """(first, last): the data gate, or under kubernetes the gate's pod and its worker half.

    No retry where a blocked push fails the task: the data decided, and retrying
    does not change it. A pod cannot read Airflow's connections, so under
    kubernetes the pod (`--alert=hand-back`) decides and writes the report, and
    `data_gate`, in the worker, sends the alert and blocks (GateDeliveryOperator).
    """
    from emerald_alerts.operators import DataGateOperator, GateDeliveryOperator

    argv = ["gate", "--run-id", TFX_RUN_ID, "--night", NIGHT, f"--force-push={FORCE_PUSH}"]
    if config.dag.node_runner != KUBERNETES:
        gate = _task(config, DATA_GATE, argv, DataGateOperator, xcom=True, retries=0)
        return gate, gate
    decide = _task(config, DATA_GATE_DECISION, argv + ["--alert=hand-back"], DataGateOperator,
                   xcom=True)                   # exits 0 when blocked: retried like a node
    deliver = GateDeliveryOperator(task_id=DATA_GATE, decision_task_id=DATA_GATE_DECISION)
    decide >> deliver
    return decide, deliver


def _report_task(config: Config) -> BaseOperator:
    from emerald_alerts.operators import NightReportOperator

    return _task(config, NIGHT_REPORT, ["report", "--run-id", TFX_RUN_ID, "--night", NIGHT,
                                        f"--force-push={FORCE_PUSH}", f"--state={RUN_STATE}"],
                 NightReportOperator, xcom=True)


def failure_callbacks(config: Config) -> list:
    """The tasks' on_failure_callback: email + Slack, through config.alerts' connections.

    One notifier (plugins/emerald_alerts/notifiers.py) delivers both channels through
    the providers' SmtpNotifier and SlackWebhookNotifier, each on its own, retried,
    with the connections' secrets kept out of what it logs.
    """
    from emerald_alerts.notifiers import EmeraldFailureNotifier

    return [EmeraldFailureNotifier(
        reports_dir=str(config.paths.reports), smtp_conn_id=config.alerts.smtp_conn_id,
        slack_conn_id=config.alerts.slack_conn_id, emails=config.alerts.emails)]


def build_nightly_dag(config: Config, compiled_dir: Path = COMPILED_DIR) -> DAG:
    graph = task_graph(load_ir_dict(compiled_dir))
    default_args = {
        "owner": config.dag.owner,
        "retries": config.dag.retries,
        "retry_delay": dt.timedelta(minutes=config.dag.retry_delay_minutes),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=config.dag.max_retry_delay_minutes),
        # Called once a task fails for good (Airflow calls on_retry_callback instead while
        # retries are left); the gate's own block is alerted by the gate, not again here.
        "on_failure_callback": failure_callbacks(config),
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
            "full_retrain": Param(False, type="boolean",
                                  description="Train from scratch tonight instead of "
                                              "warm starting from the serving model"),
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
        # The gate sits between the validators (and the Evaluator, whose blessing it
        # alerts on) and Pusher; the report is a teardown: it runs whatever happened and
        # does not decide the run's state.
        gate, deliver = _gate_tasks(config)
        [tasks[node] for node in GATE_UPSTREAM] >> gate
        deliver >> tasks[PUSHER]
        report = _report_task(config).as_teardown()
        [wait, ingest] + list(tasks.values()) + ([gate] if gate is deliver else [gate, deliver]) >> report
    from emerald_reports.links import attach_night_report_links

    attach_night_report_links(dag)   # "Night report" on the validation, gate and eval tasks
    return dag


def _ingestion_tasks(config: Config):
    """Wait for tonight's uploads, then bring them into the span ExampleGen reads."""
    from emerald_gcs.operators import IngestNightOperator
    from emerald_gcs.sensors import NightUploadCompleteSensor

    wait = NightUploadCompleteSensor(
        task_id=WAIT_FOR_NIGHT, source=config.paths.source,
        completion=config.ingest.completion, quiet_seconds=config.ingest.quiet_seconds,
        timeout=config.ingest.timeout_seconds, poke_interval=60, deferrable=True)
    ingest = IngestNightOperator(
        task_id=INGEST_NIGHT, source=config.paths.source,
        spans_dir=str(config.paths.spans), quarantine_dir=str(config.paths.quarantine),
        max_pixels=config.ingest.max_pixels, unknown_labels=config.ingest.unknown_labels,
        known_labels=config.data.labels)
    return wait, ingest
