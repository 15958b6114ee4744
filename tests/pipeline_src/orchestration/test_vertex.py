"""training.vertex: the Trainer's launch hands the training to a Vertex AI custom job.

Vertex AI itself cannot run here; what can is everything up to the submit: the
launch's executor and custom_config, and the CustomJob that TFX's own Vertex
client builds from them (its command, image and the exec properties it carries).
"""
import dataclasses
import json
import shutil

import pytest

from pipeline_src import names
from pipeline_src.config import ConfigError, DEFAULT_CONFIG_FILE, load_config
from pipeline_src.orchestration import node, vertex

NIGHT = "2026-01-02"
# The Trainer's executor: TFX's GenericExecutor, training on the span history too.
TRAINER_EXECUTOR = "pipeline_src.components.trainer.Executor"


def _gcp_config(tmp_path, enabled: bool = True, **edits):
    """The gcp profile with training.vertex switched on (a copy of include/)."""
    include = tmp_path / "include"
    shutil.copytree(DEFAULT_CONFIG_FILE.parent, include, ignore=shutil.ignore_patterns("compiled"))
    profile = include / "profiles" / "gcp.yaml"
    text = profile.read_text().replace("    enabled: false", f"    enabled: {str(enabled).lower()}")
    for key, value in edits.items():
        text = "\n".join(f"    {key}: {value}" if line.startswith(f"    {key}:") else line
                         for line in text.splitlines())
    profile.write_text(text)
    return load_config(include / DEFAULT_CONFIG_FILE.name,
                       env={"EMERALD_PROFILE": "gcp", "EMERALD_MLMD_PASSWORD": "x"})


def test_the_extension_names_are_tfxs_own():
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer import executor

    assert vertex.ENABLE_VERTEX_KEY == constants.ENABLE_VERTEX_KEY
    assert vertex.VERTEX_REGION_KEY == constants.VERTEX_REGION_KEY
    assert vertex.TRAINING_ARGS_KEY == executor.TRAINING_ARGS_KEY
    # The switch's executor is TFX's extension executor, running the Trainer's own.
    from pipeline_src.components import trainer, vertex_trainer

    assert vertex.VERTEX_TRAINER_EXECUTOR == \
        f"{vertex_trainer.Executor.__module__}.{vertex_trainer.Executor.__name__}"
    assert issubclass(vertex_trainer.Executor, executor.GenericExecutor)
    assert vertex_trainer.Executor()._GetExecutorClass() is trainer.Executor


def test_the_switch_is_off_by_default_and_checked_when_on(tmp_path):
    assert not load_config(env={"EMERALD_HOME": str(tmp_path)}).training.vertex.enabled
    assert not load_config(env={"EMERALD_PROFILE": "gcp", "EMERALD_MLMD_PASSWORD": "x"}
                           ).training.vertex.enabled
    assert _gcp_config(tmp_path / "on").training.vertex.enabled
    with pytest.raises(ConfigError, match="training.vertex.project is not set"):
        _gcp_config(tmp_path / "no-project", project='""')
    edited = tmp_path / "local.yaml"
    edited.write_text(DEFAULT_CONFIG_FILE.read_text().replace(
        "    enabled: false                 # true: the Trainer as a Vertex AI",
        "    enabled: true\n    project: p\n    region: r\n    image: i\n    # "))
    with pytest.raises(ConfigError, match="paths.pipeline_root is local"):
        load_config(edited, env={"EMERALD_HOME": str(tmp_path / "home")})


def test_a_vertex_launch_swaps_the_trainers_executor_and_adds_the_job(tmp_path):
    config = _gcp_config(tmp_path)
    arguments = node.launcher_arguments(config, names.TRAINER, run_id="r.1", night=NIGHT)
    assert arguments["executor_spec"].class_path == vertex.VERTEX_TRAINER_EXECUTOR
    custom = json.loads(arguments["pipeline_node"].parameters.parameters["custom_config"]
                        .field_value.string_value)
    assert custom[vertex.ENABLE_VERTEX_KEY] is True
    assert custom[vertex.VERTEX_REGION_KEY] == "europe-west1"
    job = custom[vertex.TRAINING_ARGS_KEY]
    assert job["project"] == "emerald-project"
    (pool,) = job["job_spec"]["worker_pool_specs"]
    assert pool["container_spec"]["image_uri"] == config.training.vertex.image
    assert pool["machine_spec"]["machine_type"] == "n1-standard-8"
    assert job["job_spec"]["service_account"] == config.training.vertex.service_account
    assert custom["labels"] == list(config.data.labels)           # the rest as compiled
    # Only the Trainer moves; the same configuration leaves another node as compiled.
    pusher = node.launcher_arguments(config, "Pusher", run_id="r.1", night=NIGHT)
    assert pusher["executor_spec"].class_path == "tfx.components.pusher.executor.Executor"
    off = dataclasses.replace(config, training=dataclasses.replace(
        config.training, vertex=dataclasses.replace(config.training.vertex, enabled=False)))
    local = node.launcher_arguments(off, names.TRAINER, run_id="r.1", night=NIGHT)
    assert local["executor_spec"].class_path == TRAINER_EXECUTOR


def test_the_custom_job_tfx_builds_runs_the_trainers_executor_in_the_image(tmp_path):
    """TFX's Vertex client, given this launch's settings: the job that would be submitted."""
    from tfx.extensions.google_cloud_ai_platform import training_clients
    from tfx.types import standard_artifacts

    config = _gcp_config(tmp_path)
    arguments = node.launcher_arguments(config, names.TRAINER, run_id="r.1", night=NIGHT)
    parameters = arguments["pipeline_node"].parameters.parameters
    exec_properties = {key: value.field_value.string_value or value.field_value.int_value
                       for key, value in parameters.items()}
    custom = json.loads(exec_properties["custom_config"])
    examples = standard_artifacts.Examples()
    examples.uri = "gs://emerald-pipeline/root/ImageExampleGen/examples/1"
    corpus = standard_artifacts.Examples()
    corpus.uri = "gs://emerald-pipeline/root/ImageExampleGen/updated_spans/1/corpus"
    model = standard_artifacts.Model()
    model.uri = "gs://emerald-pipeline/root/Trainer/model/2"
    # The client's constructor opens a gRPC client to {region}-aiplatform (credentials
    # needed); building the job does not use it.
    client = object.__new__(training_clients.VertexJobClient)
    client._region = custom[vertex.VERTEX_REGION_KEY]
    job = client.create_training_job(
        {"examples": [examples], "history": [corpus]}, {"model": [model]}, exec_properties,
        TRAINER_EXECUTOR,
        {k: v for k, v in custom[vertex.TRAINING_ARGS_KEY].items() if k != "project"},
        None, None)
    (pool,) = job["job_spec"]["worker_pool_specs"]
    command = pool["container_spec"]["command"]
    assert command[:5] == ["python", "-m", "tfx.scripts.run_executor", "--executor_class_path",
                           TRAINER_EXECUTOR]
    assert pool["container_spec"]["image_uri"] == config.training.vertex.image
    carried = json.loads(command[command.index("--exec-properties") + 1])
    assert carried["run_fn"] == "pipeline_src.model.trainer.run_fn"
    inputs = json.loads(command[command.index("--inputs") + 1])
    assert inputs["history"][0]["artifact"]["uri"] == corpus.uri     # the span history too
    outputs = json.loads(command[command.index("--outputs") + 1])
    assert outputs["model"][0]["artifact"]["uri"] == model.uri
