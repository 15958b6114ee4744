"""Launches one node of the compiled pipeline: the body of one Airflow task.

This is the loop body of TFX's LocalDagRunner, for a single node, so each
node is an Airflow task that can be retried or cleared on its own. The same
entry point (`emerald node --run-id R --night D NODE_ID`) runs in the Airflow
worker's process, in a separate virtualenv or in a container.

A launch imports what TFX's launcher and this node's executor need, and no
more (every Airflow task is a fresh process that pays for its imports before
its executor starts; see BENCHMARKS.md, "Fixed cost per task"): not the
pipeline definition (TFMA, the components' code), not TFX's `tfx.components`
package init (every component: TFMA, Transform, TFDV, Beam), not Beam for a
node whose executor is not a Beam executor. TFX itself still imports
TensorFlow (its file I/O goes through `tf.io.gfile`).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import sys
import types
from pathlib import Path

from pipeline_src.orchestration.compile import COMPILED_DIR, IR_FILE, SCHEMA_FILE
from pipeline_src.arguments import night_arg
from pipeline_src.config import Config, UsageError, is_true, load_config
from pipeline_src.names import (FULL_RETRAIN_KEY, INPUT_BASE, NIGHT_PARAMETER, PUSH_DESTINATION,
                                SCHEMA_FILE_PARAMETER, TRAINER)
from pipeline_src.metadata import metadata_connection_config
from pipeline_src.orchestration import vertex
from pipeline_src.orchestration.recovery import clear_interrupted_attempt

log = logging.getLogger(__name__)
PRELOADED = "already imported (preloaded)"       # what a launch logs when it was forked


def runtime_parameters(config: Config, run_id: str, night: str,
                       compiled_dir: Path = COMPILED_DIR) -> dict[str, str]:
    """Every runtime parameter of the IR, from the configuration."""
    from tfx.dsl.compiler import constants

    push_destination = {"filesystem": {"baseDirectory": config.paths.serving}}
    return {
        constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id,
        constants.PIPELINE_ROOT_PARAMETER_NAME: config.paths.pipeline_root,
        NIGHT_PARAMETER: night,
        INPUT_BASE: str(config.paths.spans),
        SCHEMA_FILE_PARAMETER: str(compiled_dir / SCHEMA_FILE),
        PUSH_DESTINATION: json.dumps(push_destination),
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
    # The module TFX's BaseBeamExecutor calls it from (`base_beam_executor.dependency_utils`),
    # without importing Beam for a node that is not a Beam node.
    from tfx.utils import dependency_utils

    dependency_utils.make_beam_dependency_flags = lambda flags: list(flags)
    return True


# Packages whose __init__ imports far more than a launch needs: `tfx.components` imports
# every TFX component (TFMA, Transform, TFDV, Beam: ~10 s), and Pusher's or ImportSchemaGen's
# executor, or the resolver's strategy (for one constant), is a module inside it. TFX's
# component specs import TFDV's and TFMA's protos (`tensorflow_model_analysis.sdk`), whose
# packages' __init__ import their whole library (Beam, tfx_bsl, pyarrow); SchemaGen's
# executor, which ImportSchemaGen's imports for a file name, calls TFDV only in its Do.
DEFERRED_PACKAGE_INITS = ("tfx.components", "tensorflow_data_validation",
                          "tensorflow_model_analysis")
# Modules TFX's launcher imports for its table of executor operators: the Beam operator
# imports Apache Beam (~5 s), the container operator the docker client. Each is imported
# when a node of that kind is launched.
DEFERRED_OPERATORS = {
    "tfx.orchestration.portable.beam_executor_operator": "BeamExecutorOperator",
    "tfx.orchestration.portable.docker_executor_operator": "DockerExecutorOperator",
}


def defer_package_init(name: str) -> None:
    """Makes package `name` importable without running its __init__ until it is needed.

    Its submodules import as usual (the package has its real __path__ and spec; `from
    tensorflow_model_analysis import sdk` imports the submodule); the first other
    attribute the package does not have yet (`from tfx.components import Pusher`, `tfdv.
    infer_schema`) runs the real __init__, so nothing that uses the package notices.
    Does nothing when the package was imported already. (None of the deferred packages'
    __init__ binds a submodule's name to anything but that submodule: test_node_imports.)
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(attribute):
        if not attribute.startswith("__") and importlib.util.find_spec(f"{name}.{attribute}"):
            return importlib.import_module(f"{name}.{attribute}")
        if package.__dict__.pop("__getattr__", None) is not None:
            spec.loader.exec_module(package)         # the real __init__, once
        try:
            return package.__dict__[attribute]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}") from None

    package.__getattr__ = __getattr__
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


def _deferred_operator(module_name: str, class_name: str):
    def make(*args, **kwargs):
        return getattr(importlib.import_module(module_name), class_name)(*args, **kwargs)

    make.__name__ = make.__qualname__ = class_name
    return make


def import_launcher():
    """TFX's portable launcher module, without the executor operators no node needs yet."""
    name = "tfx.orchestration.portable.launcher"
    if name in sys.modules:
        return sys.modules[name]
    import tfx.orchestration.portable as portable

    stand_ins = {}
    for module_name, class_name in DEFERRED_OPERATORS.items():
        if module_name in sys.modules:
            continue
        stand_in = types.ModuleType(module_name, "stand-in while TFX's launcher is imported")
        setattr(stand_in, class_name, _deferred_operator(module_name, class_name))
        stand_ins[module_name] = sys.modules[module_name] = stand_in
        setattr(portable, module_name.rpartition(".")[2], stand_in)
    try:
        return importlib.import_module(name)
    finally:   # the real modules import as usual from now on
        for module_name, stand_in in stand_ins.items():
            if sys.modules.get(module_name) is stand_in:
                del sys.modules[module_name]
            child = module_name.rpartition(".")[2]
            if getattr(portable, child, None) is stand_in:
                delattr(portable, child)


def preload(compiled_dir: Path = COMPILED_DIR) -> list[str]:
    """Imports, in this process, what launching any node of the compiled pipeline imports.

    For a process that forks the task processes (emerald_tfx.executor): each launch
    then starts with TensorFlow, TFX's launcher, Beam's executor operator and every
    node's executor class imported, instead of paying 20-25 s of imports per task
    (BENCHMARKS.md, "Fixed cost per task"). Returns the executor classes imported.
    """
    from tfx.orchestration.local import runner_utils
    from tfx.utils import import_utils

    for package in DEFERRED_PACKAGE_INITS:
        defer_package_init(package)
    import_launcher()
    for module_name in DEFERRED_OPERATORS:
        importlib.import_module(module_name)
    deployment = runner_utils.extract_local_deployment_config(load_ir(compiled_dir))
    classes = []
    for spec in deployment.executor_specs.values():
        kind = spec.WhichOneof("spec")
        if kind == "beam_executable_spec":
            class_path = spec.beam_executable_spec.python_executor_spec.class_path
        elif kind == "python_class_executable_spec":
            class_path = spec.python_class_executable_spec.class_path
        else:                                       # a container: nothing to import here
            continue
        if class_path:
            import_utils.import_class_by_path(class_path)
            classes.append(class_path)
    return sorted(set(classes))


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
    executor_spec = with_beam_args(
        runner_utils.extract_executor_spec(deployment_config, node_id), config.beam_args)
    if node_id == TRAINER and config.training.vertex.enabled:
        executor_spec = vertex.train_on_vertex(executor_spec)
        update_custom_config(nodes[node_id], vertex.vertex_custom_config(config.training.vertex))
    return dict(
        pipeline_node=nodes[node_id],
        mlmd_connection=metadata.Metadata(metadata_connection_config(config)),
        pipeline_info=ir.pipeline_info,
        pipeline_runtime_spec=ir.runtime_spec,
        executor_spec=executor_spec,
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id))


def update_custom_config(pipeline_node, updates: dict) -> None:
    """Sets keys of a node's custom_config in this launch's copy of the IR.

    custom_config is no runtime parameter, so what a launch decides (a full retrain,
    the Vertex AI job) the launch itself writes, in the one place the executor reads.
    """
    value = pipeline_node.parameters.parameters["custom_config"].field_value
    custom_config = json.loads(value.string_value or "{}")
    custom_config.update(updates)
    value.string_value = json.dumps(custom_config, sort_keys=True)


def ask_full_retrain(pipeline_node) -> None:
    """The Trainer's FULL_RETRAIN_KEY: the compiled pipeline says false (warm start when
    the serving model fits); a DAG run triggered with full_retrain asks for a fresh model."""
    update_custom_config(pipeline_node, {FULL_RETRAIN_KEY: True})


def launch_node(config: Config, node_id: str, *, run_id: str, night: str,
                compiled_dir: Path = COMPILED_DIR, full_retrain: bool = False) -> None:
    """Runs one node for the pipeline run `run_id`; raises if it fails.

    An earlier attempt of this node in this run that was killed leaves its
    execution RUNNING; TFX reuses it, so its partial outputs are removed first.
    `full_retrain` (the Trainer only): train from scratch, not from the serving model.
    """
    for package in DEFERRED_PACKAGE_INITS:
        defer_package_init(package)
    preloaded = "tensorflow" in sys.modules        # a fork of a preloaded process (preload)
    launcher = import_launcher()

    log.info("launching %s for run %s (night %s); TensorFlow %s", node_id, run_id, night,
             PRELOADED if preloaded else "imported by this launch")
    if "://" not in config.paths.pipeline_root:
        Path(config.paths.pipeline_root).mkdir(parents=True, exist_ok=True)
    arguments = launcher_arguments(config, node_id, run_id=run_id, night=night,
                                   compiled_dir=compiled_dir)
    if full_retrain:
        if node_id != TRAINER:
            raise UsageError(f"--full-retrain is for the {TRAINER} node, not {node_id}")
        ask_full_retrain(arguments["pipeline_node"])
    clear_interrupted_attempt(arguments["mlmd_connection"], arguments["pipeline_node"],
                              arguments["pipeline_info"], arguments["pipeline_runtime_spec"])
    skip_tfx_package_for_local_beam(config.beam_args)
    launcher.Launcher(**arguments).launch()


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO)
    launch_node(load_config(), args.node_id, run_id=args.run_id, night=args.night,
                full_retrain=args.full_retrain)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("node", help="launch one node of the compiled pipeline")
    parser.add_argument("--run-id", required=True, help="the pipeline run id (Airflow's run id)")
    parser.add_argument("--night", required=True, type=night_arg, help="YYYY-MM-DD")
    parser.add_argument("--full-retrain", nargs="?", const="true", default="false",
                        type=is_true, help=f"the {TRAINER} only: train from scratch, not from "
                                           "the serving model; =true/false")
    parser.add_argument("node_id")
    parser.set_defaults(func=_run)
