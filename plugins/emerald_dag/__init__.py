"""Builds Emerald's nightly DAG: the Airflow layer that wires the operators together."""
