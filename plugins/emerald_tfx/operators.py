"""One Airflow task per TFX node.

The operator is thin: the launch itself is `pipeline_src.orchestration.node.launch_node`,
imported when the task runs, never when the DAG is parsed.
"""
from __future__ import annotations

from typing import Any, Sequence

from airflow.models import BaseOperator

from pipeline_src.names import NIGHT, TFX_RUN_ID


class TfxNodeOperator(BaseOperator):
    """Launches one node of the compiled pipeline in the worker's process."""

    template_fields: Sequence[str] = ("tfx_run_id", "night", "full_retrain")
    ui_color = "#ff7f50"

    def __init__(self, *, node_id: str, tfx_run_id: str = TFX_RUN_ID,
                 night: str = NIGHT, full_retrain: str = "False", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tfx_node_id = node_id
        self.tfx_run_id = tfx_run_id
        self.night = night
        self.full_retrain = full_retrain      # the Trainer's: the DAG param, rendered

    def execute(self, context) -> dict:
        from pipeline_src.config import is_true, load_config
        from pipeline_src.orchestration.node import launch_node

        launch_node(load_config(), self.tfx_node_id, run_id=self.tfx_run_id, night=self.night,
                    full_retrain=is_true(self.full_retrain))
        return {"node_id": self.tfx_node_id, "tfx_run_id": self.tfx_run_id, "night": self.night}
