"""Airflow operators that run nodes of Emerald's compiled TFX pipeline."""
