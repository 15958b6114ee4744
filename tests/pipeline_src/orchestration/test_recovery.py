"""A node killed mid-run and retried: one execution in MLMD, no partial file of the killed one.

The killed attempt is reproduced exactly up to the point where the executor
starts: TFX's own Launcher registers the execution (RUNNING) and its output
directory is created and half written. Then the node is launched as a retry
would be (`launch_node`, same run id).
"""
from __future__ import annotations

import os
from pathlib import Path

from pipeline_src.config import load_config
from pipeline_src.orchestration import node

RUN_ID, NIGHT, NODE = "manual__2026-01-02.7", "2026-01-02", "ImportSchemaGen"


def _node_executions(config, run_id: str, node_id: str):
    from pipeline_src.decision.report import open_store
    store = open_store(config)
    run = store.get_context_by_type_and_name("pipeline_run", run_id)
    node_type = store.get_context_type("node").id
    return [e for e in store.get_executions_by_context(run.id)
            if any(c.type_id == node_type and c.name.endswith("." + node_id)
                   for c in store.get_contexts_by_execution(e.id))]


def test_a_retry_after_a_kill_replaces_the_partial_outputs_and_publishes_one_execution(tmp_path,
                                                                                      caplog):
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration.portable import launcher, outputs_utils

    config = load_config(env={"EMERALD_HOME": str(tmp_path)})
    Path(config.paths.pipeline_root).mkdir(parents=True)
    killed = launcher.Launcher(**node.launcher_arguments(config, NODE, run_id=RUN_ID,
                                                         night=NIGHT))
    prepared = killed._prepare_execution()        # what the killed attempt had done
    outputs_utils.make_output_dirs(prepared.execution_info.output_dict)
    (schema_uri,) = [a.uri for arts in prepared.execution_info.output_dict.values() for a in arts]
    partial = Path(schema_uri) / "half-written.tmp"
    partial.write_text("the killed attempt's partial output")
    [interrupted] = _node_executions(config, RUN_ID, NODE)
    assert interrupted.last_known_state == metadata_store_pb2.Execution.RUNNING

    with caplog.at_level("WARNING", logger="pipeline_src.orchestration.recovery"):
        node.launch_node(config, NODE, run_id=RUN_ID, night=NIGHT)  # the retry
    assert (f"ImportSchemaGen: execution {interrupted.id} of this run did not finish (state "
            "RUNNING): removing its partial outputs") in caplog.text

    [execution] = _node_executions(config, RUN_ID, NODE)
    assert execution.id == interrupted.id                              # TFX reused it
    assert execution.last_known_state == metadata_store_pb2.Execution.COMPLETE
    assert not partial.exists()
    assert sorted(os.listdir(schema_uri)) == ["schema.pbtxt"]


def test_a_finished_node_launched_again_is_left_as_it_was(tmp_path):
    from ml_metadata.proto import metadata_store_pb2

    config = load_config(env={"EMERALD_HOME": str(tmp_path)})
    node.launch_node(config, NODE, run_id=RUN_ID, night=NIGHT)
    [first] = _node_executions(config, RUN_ID, NODE)
    node.launch_node(config, NODE, run_id=RUN_ID, night=NIGHT)      # e.g. a cleared task
    [again] = _node_executions(config, RUN_ID, NODE)
    assert (again.id, again.last_known_state) == (first.id, metadata_store_pb2.Execution.COMPLETE)


def test_local_beam_builds_no_tfx_package_and_a_remote_runner_keeps_it(tmp_path, monkeypatch):
    from tfx.dsl.components.base import base_beam_executor

    monkeypatch.setattr(base_beam_executor.dependency_utils, "make_beam_dependency_flags",
                        base_beam_executor.dependency_utils.make_beam_dependency_flags)
    remote = ["--runner=DataflowRunner", "--project=p"]
    assert node.skip_tfx_package_for_local_beam(remote) is False
    local = list(load_config(env={"EMERALD_HOME": str(tmp_path)}).beam_args)
    assert node.skip_tfx_package_for_local_beam(local) is True
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    flags = base_beam_executor.dependency_utils.make_beam_dependency_flags(local)
    assert flags == local                                   # no --extra_package added
    assert list((tmp_path / "tmp").iterdir()) == []          # and no sdist built
