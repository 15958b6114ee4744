"""Orchestration: the pipeline's construction and compilation, launching one node,
the night through Airflow, and the bodies of the gate and report tasks."""
