"""Emerald: nightly lion / tiger / bear retraining, a TFX pipeline run by Airflow."""
