"""The Trainer as a Vertex AI custom job: the launch's switch (training.vertex.enabled).

TFX's google_cloud_ai_platform extension trains on Vertex AI with an executor
of its own in the Trainer's place: it submits a CustomJob whose container runs
`python -m tfx.scripts.run_executor` with the Trainer's usual executor and this
launch's inputs, outputs and exec properties, and waits for the job. Swapping
the executor and adding the job's settings to custom_config at launch, as the
Beam arguments are set at launch (node.with_beam_args), keeps one committed IR
for every profile; the job reads and writes the same gs:// artifacts the task
would have.
"""
from __future__ import annotations

from pipeline_src.config import VertexTrainingConfig

# tfx.extensions.google_cloud_ai_platform: its executor and custom_config keys
# (constants.ENABLE_VERTEX_KEY, constants.VERTEX_REGION_KEY, trainer.executor.
# TRAINING_ARGS_KEY), spelled out so that a launch imports the extension only when
# it trains there (tests/pipeline_src/orchestration/test_vertex.py checks them).
# TFX's extension executor, running the Trainer's own (with the span history) in the job.
VERTEX_TRAINER_EXECUTOR = "pipeline_src.components.vertex_trainer.Executor"
ENABLE_VERTEX_KEY = "ai_platform_enable_vertex"
VERTEX_REGION_KEY = "ai_platform_vertex_region"
TRAINING_ARGS_KEY = "ai_platform_training_args"


def training_args(vertex: VertexTrainingConfig) -> dict:
    """The CustomJob TFX submits (its `job_spec`), and the project it goes to."""
    pool = {"machine_spec": {"machine_type": vertex.machine_type}, "replica_count": 1,
            "container_spec": {"image_uri": vertex.image}}
    job_spec: dict = {"worker_pool_specs": [pool]}
    if vertex.service_account:
        job_spec["service_account"] = vertex.service_account
    return {"project": vertex.project, "job_spec": job_spec}


def vertex_custom_config(vertex: VertexTrainingConfig) -> dict:
    """What the extension's executor reads from the Trainer's custom_config."""
    return {ENABLE_VERTEX_KEY: True, VERTEX_REGION_KEY: vertex.region,
            TRAINING_ARGS_KEY: training_args(vertex)}


def train_on_vertex(executor_spec):
    """The Trainer's executor spec with the extension's executor in its place."""
    executor_spec.class_path = VERTEX_TRAINER_EXECUTOR
    return executor_spec
