"""Launch plumbing: every runtime parameter of the IR is filled from the configuration."""
from __future__ import annotations

import json

import pytest

from pipeline_src import names
from pipeline_src.config import UsageError
from pipeline_src.orchestration import compile as compiled
from pipeline_src.orchestration import node
from pipeline_src import metadata
from pipeline_src.config import load_config


def _runtime_parameter_names(value, found=None):
    found = set() if found is None else found
    if isinstance(value, dict):
        if "runtimeParameter" in value and "name" in value["runtimeParameter"]:
            found.add(value["runtimeParameter"]["name"])
        for child in value.values():
            _runtime_parameter_names(child, found)
    elif isinstance(value, list):
        for child in value:
            _runtime_parameter_names(child, found)
    return found


def test_the_launcher_fills_every_runtime_parameter_of_the_ir(tmp_path):
    config = load_config(env={"EMERALD_HOME": str(tmp_path)})
    params = node.runtime_parameters(config, "run-1", "2026-01-02")
    wanted = _runtime_parameter_names(compiled.load_ir_dict())
    assert wanted and wanted <= set(params)
    assert params["night"] == "2026-01-02"
    assert params["pipeline-root"] == config.paths.pipeline_root
    assert params["input-base"] == str(config.paths.spans)
    destination = json.loads(params["push-destination"])
    assert destination["filesystem"]["baseDirectory"] == config.paths.serving


def test_the_compiled_ir_names_no_machine_path():
    text = (compiled.COMPILED_DIR / compiled.IR_FILE).read_text()
    assert str(compiled.REPO_ROOT) not in text and "/tmp/" not in text


def test_beam_arguments_come_from_the_configuration_at_launch():
    from tfx.proto.orchestration import executable_spec_pb2

    spec = executable_spec_pb2.BeamExecutableSpec()
    spec.beam_pipeline_args.append("--runner=Old")
    node.with_beam_args(spec, ("--runner=DataflowRunner", "--project=p"))
    assert list(spec.beam_pipeline_args) == ["--runner=DataflowRunner", "--project=p"]
    assert [p.value.string_value for p in spec.beam_pipeline_args_placeholders] == [
        "--runner=DataflowRunner", "--project=p"]


def test_metadata_store_follows_the_configured_backend(tmp_path, monkeypatch):
    sqlite = metadata.metadata_connection_config(load_config(env={"EMERALD_HOME": str(tmp_path)}))
    assert sqlite.sqlite.filename_uri == str(tmp_path / "metadata.sqlite")
    monkeypatch.setenv("EMERALD_MLMD_PASSWORD", "s3cret")
    docker = load_config(env={"EMERALD_PROFILE": "docker", "EMERALD_MLMD_PASSWORD": "s3cret"})
    postgres = metadata.metadata_connection_config(docker)
    assert postgres.postgresql.host == "postgres" and postgres.postgresql.dbname == "mlmd"
    assert postgres.postgresql.password == "s3cret"


def test_the_runtime_parameters_named_in_names_py_are_the_irs_own():
    """node.py names them without importing the pipeline definition: the IR is the judge."""
    declared = _runtime_parameter_names(compiled.load_ir_dict())
    assert set(names.RUNTIME_PARAMETERS) < declared


def test_a_full_retrain_is_asked_of_the_trainer_alone(tmp_path):
    config = load_config(env={"EMERALD_HOME": str(tmp_path)})
    arguments = node.launcher_arguments(config, names.TRAINER, run_id="r.1", night="2026-01-02")
    custom_config = arguments["pipeline_node"].parameters.parameters["custom_config"]
    assert json.loads(custom_config.field_value.string_value)[names.FULL_RETRAIN_KEY] is False
    node.ask_full_retrain(arguments["pipeline_node"])
    settings = json.loads(custom_config.field_value.string_value)
    assert settings[names.FULL_RETRAIN_KEY] is True
    assert settings["labels"] == list(config.data.labels)      # the rest as compiled
    with pytest.raises(UsageError, match="--full-retrain is for the Trainer"):
        node.launch_node(config, "Pusher", run_id="r.1", night="2026-01-02", full_retrain=True)


def test_a_retry_after_a_failed_attempt_runs_the_node_afresh(tmp_path):
    """TFX reuses the failed attempt's execution, whose outputs it removed: nothing to clear."""
    import shutil

    import pytest
    from ml_metadata.proto import metadata_store_pb2

    from pipeline_src.decision.report import open_store

    config = load_config(env={"EMERALD_HOME": str(tmp_path / "home")})
    compiled_dir = tmp_path / "compiled"
    shutil.copytree(compiled.COMPILED_DIR, compiled_dir)
    schema = compiled_dir / compiled.SCHEMA_FILE
    saved = schema.read_text()
    schema.unlink()                                   # the first attempt fails in its executor
    with pytest.raises(Exception):
        node.launch_node(config, "ImportSchemaGen", run_id="retry.1", night="2026-01-02",
                         compiled_dir=compiled_dir)
    schema.write_text(saved)
    node.launch_node(config, "ImportSchemaGen", run_id="retry.1", night="2026-01-02",
                     compiled_dir=compiled_dir)      # Airflow's retry
    store = open_store(config)
    run = store.get_context_by_type_and_name("pipeline_run", "retry.1")
    [execution] = store.get_executions_by_context(run.id)
    assert execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
