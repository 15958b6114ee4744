"""The same pipeline made into a DAG by TFX's own AirflowDagRunner: the baseline
that bench/bench_parse.py compares Emerald's DAG file against. Not deployed."""
import datetime as dt

from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig

from pipeline_src.orchestration.compile import COMPILED_DIR, SCHEMA_FILE, build_pipeline
from pipeline_src.config import load_config

config = load_config()
DAG = AirflowDagRunner(AirflowPipelineConfig({
    "schedule_interval": config.dag.schedule,
    "start_date": dt.datetime.combine(config.dag.start_date, dt.time()),
})).run(build_pipeline(
    config,
    pipeline_root=config.paths.pipeline_root,
    input_base=str(config.paths.spans),
    night="2026-01-01",
    schema_file=str(COMPILED_DIR / SCHEMA_FILE),
    serving_dir=config.paths.serving,
    metadata_path=str(config.paths.metadata),
))
