"""A node's earlier attempt in the same run that never finished: its partial outputs go first.

When Airflow retries a task whose process was killed (SIGKILL, an evicted pod,
a lost worker), TFX's launcher finds the earlier attempt's execution still
RUNNING in MLMD and reuses it: same execution id, so the same output
directories (`{pipeline_root}/{node}/{key}/{execution id}`). The executor
would then write over whatever half-written files the killed attempt left
(a checkpoint, a partial TFRecord shard) and the published artifact could mix
the two. So before a node launches, an unfinished execution of this node in
this pipeline run gets its output directories removed; the retry then
writes them afresh and TFX publishes one execution with one set of outputs.
A successful execution is never touched (TFX skips the node).
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def clear_interrupted_attempt(mlmd_connection, pipeline_node, pipeline_info,
                              pipeline_runtime_spec) -> list[str]:
    """Removes the output directories of this node's unfinished execution; returns their URIs."""
    from ml_metadata.proto import metadata_store_pb2
    from tfx.dsl.io import fileio
    from tfx.orchestration.portable import outputs_utils
    from tfx.orchestration.portable.mlmd import context_lib, execution_lib

    with mlmd_connection as m:
        contexts = context_lib.prepare_contexts(metadata_handle=m,
                                                node_contexts=pipeline_node.contexts)
        executions = execution_lib.get_executions_associated_with_all_contexts(m, contexts)
    # TFX reuses the node's execution in this run whatever its state (RUNNING: the process
    # was killed; FAILED: the executor raised, and TFX removed what it could).
    unfinished = [e for e in executions if not execution_lib.is_execution_successful(e)]
    removed: list[str] = []
    for execution in unfinished:
        outputs = outputs_utils.OutputsResolver(
            pipeline_node=pipeline_node, pipeline_info=pipeline_info,
            pipeline_runtime_spec=pipeline_runtime_spec).generate_output_artifacts(execution.id)
        # Only what is there: a failed attempt's outputs are gone already, a killed one
        # may have died before it created every output directory.
        present = {key: [a for a in artifacts if fileio.exists(a.uri)]
                   for key, artifacts in outputs.items()}
        uris = [a.uri for artifacts in present.values() for a in artifacts]
        log.warning("%s: execution %d of this run did not finish (state %s): removing its "
                    "partial outputs before the retry: %s", pipeline_node.node_info.id,
                    execution.id,
                    metadata_store_pb2.Execution.State.Name(execution.last_known_state), uris)
        outputs_utils.remove_output_dirs(present)
        removed.extend(uris)
    return removed
