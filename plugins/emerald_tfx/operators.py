"""One Airflow task per TFX node.

The operator is thin: the launch itself is `pipeline_src.node.launch_node`,
imported when the task runs, never when the DAG is parsed.
"""
from __future__ import annotations

from typing import Any, Sequence

from airflow.models import BaseOperator

# The TFX pipeline run id: one per DAG run, stable across task retries and
# clears, distinct when the same night is run again as a new DAG run.
TFX_RUN_ID = "{{ run_id }}.{{ dag_run.id }}"
NIGHT = "{{ params.night or ds }}"


class TfxNodeOperator(BaseOperator):
    """Launches one node of the compiled pipeline in the worker's process."""

    template_fields: Sequence[str] = ("tfx_run_id", "night")
    ui_color = "#ff7f50"

    def __init__(self, *, node_id: str, tfx_run_id: str = TFX_RUN_ID,
                 night: str = NIGHT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tfx_node_id = node_id
        self.tfx_run_id = tfx_run_id
        self.night = night

    def execute(self, context) -> dict:
        from pipeline_src.config import load_config
        from pipeline_src.node import launch_node

        launch_node(load_config(), self.tfx_node_id, run_id=self.tfx_run_id, night=self.night)
        return {"node_id": self.tfx_node_id, "tfx_run_id": self.tfx_run_id, "night": self.night}


def launch_in_external_python(node_id: str, tfx_run_id: str, night: str) -> dict:
    """ExternalPythonOperator callable: runs in the TFX virtualenv, so it is self-contained."""
    from pipeline_src.config import load_config
    from pipeline_src.node import launch_node

    launch_node(load_config(), node_id, run_id=tfx_run_id, night=night)
    return {"node_id": node_id, "tfx_run_id": tfx_run_id, "night": night}
