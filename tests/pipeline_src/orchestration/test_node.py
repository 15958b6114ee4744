"""Launch plumbing: every runtime parameter of the IR is filled from the configuration."""
from __future__ import annotations

import json

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
