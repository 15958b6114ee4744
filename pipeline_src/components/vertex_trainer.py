"""The Trainer on Vertex AI: TFX's google_cloud_ai_platform executor, running ours.

TFX's extension submits a CustomJob whose container runs `python -m
tfx.scripts.run_executor` with the executor class `_GetExecutorClass` names; the
stock one names TFX's GenericExecutor, which would train on tonight's span alone.
This one names components.trainer.Executor, which trains on the span history too
(its `history` input travels in the job's arguments with the others). A module of
its own: the extension imports the Google API client, which no other launch needs.
"""
from __future__ import annotations

from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from pipeline_src.components import trainer


class Executor(vertex_executor.GenericExecutor):
    """Submits the Vertex AI job that runs components.trainer.Executor."""

    def _GetExecutorClass(self):  # noqa: N802 - TFX API
        return trainer.Executor
