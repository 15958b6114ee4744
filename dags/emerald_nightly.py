"""Emerald's nightly DAG: the compiled TFX pipeline, one Airflow task per node.

Parsing reads include/emerald.yaml and include/compiled/pipeline.json only: no
TensorFlow, no TFX (see BENCHMARKS.md for the parse time).
"""
from emerald_dag.builder import build_nightly_dag
from pipeline_src.config import load_config

dag = build_nightly_dag(load_config())
