"""The alert hook: Emerald's alerts through Airflow's notifiers and connections.

The implementation lives in pipeline_src/decision/alerts.py, because the gate runs it in
every node runner (a virtualenv or a pod runs `emerald gate`, with no plugins);
this module is where Airflow users look for the hook.
"""
from pipeline_src.decision.alerts import CHANNELS, EmeraldAlertHook  # noqa: F401

__all__ = ["CHANNELS", "EmeraldAlertHook"]
