"""Launches one node of the compiled pipeline: the body of one Airflow task.

This is the loop body of TFX's LocalDagRunner, for a single node, so each
node is an Airflow task that can be retried or cleared on its own. The same
entry point (`emerald node --run-id R --night D NODE_ID`) runs in the Airflow
worker's process, in a separate virtualenv or in a container.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Optional

from pipeline_src.orchestration.compile import COMPILED_DIR, IR_FILE, SCHEMA_FILE
from pipeline_src.config import Config, load_config, night_arg
from pipeline_src.metadata import metadata_connection_config
from pipeline_src.orchestration.recovery import clear_interrupted_attempt

log = logging.getLogger(__name__)


def runtime_parameters(config: Config, run_id: str, night: str,
                       compiled_dir: Path = COMPILED_DIR) -> dict[str, str]:
    """Every runtime parameter of the IR, from the configuration."""
    from tfx.dsl.compiler import constants

    from pipeline_src.orchestration import pipeline

    push_destination = {"filesystem": {"baseDirectory": config.paths.serving}}
    return {
        constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id,
        constants.PIPELINE_ROOT_PARAMETER_NAME: config.paths.pipeline_root,
        pipeline.NIGHT_PARAMETER: night,
        pipeline.INPUT_BASE: str(config.paths.spans),
        pipeline.SCHEMA_FILE: str(compiled_dir / SCHEMA_FILE),
        pipeline.PUSH_DESTINATION: json.dumps(push_destination),
    }


def load_ir(compiled_dir: Path = COMPILED_DIR):
    from google.protobuf import json_format
    from tfx.proto.orchestration import pipeline_pb2

    ir = pipeline_pb2.Pipeline()
    json_format.Parse((compiled_dir / IR_FILE).read_text(), ir)
    return ir


def with_beam_args(executor_spec, beam_args):
    """Beam arguments come from the configuration at launch, so one IR serves every profile."""
    from tfx.proto.orchestration import executable_spec_pb2

    if isinstance(executor_spec, executable_spec_pb2.BeamExecutableSpec):
        del executor_spec.beam_pipeline_args[:]
        executor_spec.beam_pipeline_args.extend(beam_args)
        del executor_spec.beam_pipeline_args_placeholders[:]
        for arg in beam_args:
            executor_spec.beam_pipeline_args_placeholders.add().value.string_value = arg
    return executor_spec


REMOTE_BEAM_RUNNERS = ("dataflowrunner", "flinkrunner", "sparkrunner", "portablerunner",
                       "prismrunner")


def skip_tfx_package_for_local_beam(beam_args) -> bool:
    """No sdist of TFX for a Beam pipeline that runs in this process.

    TFX's Beam executors build `tfx_ephemeral-*.tar.gz` (an sdist of all of
    TFX: ~1.4 s and 42 MB left in the temp folder, per Beam node per night)
    so that remote workers can import TFX, unless the args name a package or
    container. The DirectRunner imports nothing remotely: skip it. A remote
    runner keeps TFX's behaviour (the gcp profile names its worker image).
    """
    args = " ".join(beam_args).lower()
    if any(runner in args for runner in REMOTE_BEAM_RUNNERS):
        return False
    from tfx.dsl.components.base import base_beam_executor

    base_beam_executor.dependency_utils.make_beam_dependency_flags = lambda flags: list(flags)
    return True


def launcher_arguments(config: Config, node_id: str, *, run_id: str, night: str,
                       compiled_dir: Path = COMPILED_DIR) -> dict:
    """The keyword arguments of TFX's portable Launcher for one node of the run `run_id`."""
    from tfx.orchestration import metadata
    from tfx.orchestration.local import runner_utils
    from tfx.orchestration.portable import runtime_parameter_utils

    ir = load_ir(compiled_dir)
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, runtime_parameters(config, run_id, night, compiled_dir))
    deployment_config = runner_utils.extract_local_deployment_config(ir)
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    if node_id not in nodes:
        raise KeyError(f"no node {node_id!r} in the compiled pipeline; nodes: {sorted(nodes)}")
    return dict(
        pipeline_node=nodes[node_id],
        mlmd_connection=metadata.Metadata(metadata_connection_config(config)),
        pipeline_info=ir.pipeline_info,
        pipeline_runtime_spec=ir.runtime_spec,
        executor_spec=with_beam_args(
            runner_utils.extract_executor_spec(deployment_config, node_id), config.beam_args),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id))


def launch_node(config: Config, node_id: str, *, run_id: str, night: str,
                compiled_dir: Path = COMPILED_DIR) -> None:
    """Runs one node for the pipeline run `run_id`; raises if it fails.

    An earlier attempt of this node in this run that was killed leaves its
    execution RUNNING; TFX reuses it, so its partial outputs are removed first.
    """
    from tfx.orchestration.portable import launcher

    log.info("launching %s for run %s (night %s)", node_id, run_id, night)
    if "://" not in config.paths.pipeline_root:
        Path(config.paths.pipeline_root).mkdir(parents=True, exist_ok=True)
    arguments = launcher_arguments(config, node_id, run_id=run_id, night=night,
                                   compiled_dir=compiled_dir)
    clear_interrupted_attempt(arguments["mlmd_connection"], arguments["pipeline_node"],
                              arguments["pipeline_info"], arguments["pipeline_runtime_spec"])
    skip_tfx_package_for_local_beam(config.beam_args)
    launcher.Launcher(**arguments).launch()


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO)
    launch_node(load_config(), args.node_id, run_id=args.run_id, night=args.night)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("node", help="launch one node of the compiled pipeline")
    parser.add_argument("--run-id", required=True, help="the pipeline run id (Airflow's run id)")
    parser.add_argument("--night", required=True, type=night_arg, help="YYYY-MM-DD")
    parser.add_argument("node_id")
    parser.set_defaults(func=_run)
