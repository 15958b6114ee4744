"""Compiles the pipeline to TFX's IR, committed in include/compiled/.

The Airflow DAG is built from this file without importing TensorFlow or TFX,
which keeps DAG parsing fast. `emerald compile` rebuilds it; `emerald compile
--check` (and the test suite) fail when the committed IR no longer matches
what the pipeline code and the configuration produce.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline_src.config import REPO_ROOT, Config, load_config

COMPILED_DIR = REPO_ROOT / "include" / "compiled"
IR_FILE = "pipeline.json"
SCHEMA_FILE = "schema.pbtxt"


def build_pipeline(config: Config, **concrete):
    """The pipeline from the configuration; `concrete` pins runtime parameters."""
    from pipeline_src.orchestration import pipeline

    return pipeline.create_pipeline(
        pipeline_name=config.pipeline_name,
        labels=config.data.labels,
        image_size=config.data.image_size,
        eval_split=config.data.eval_split,
        hash_eval_percent=config.data.hash_eval_percent,
        max_pixels=config.ingest.max_pixels,
        epochs=config.training.epochs,
        batch_size=config.training.batch_size,
        learning_rate=config.training.learning_rate,
        warm_start=config.training.warm_start,
        warm_start_epochs=config.training.warm_start_epochs,
        replay_fraction=config.training.replay_fraction,
        replay_max_images=config.training.replay_max_images,
        dropout=config.training.dropout,
        architecture=config.training.architecture,
        backbone_weights=config.training.backbone_weights,
        tuner_trials=config.training.tuner_trials,
        tuner_epochs=config.training.tuner_epochs,
        tflite=config.training.tflite,
        tflite_min_agreement=config.serving.tflite_min_agreement,
        false_alarm_rate=config.validation.false_alarm_rate,
        permutations=config.validation.permutations,
        min_effects=config.validation.min_effects(),
        min_accuracy=config.evaluation.min_accuracy,
        max_accuracy_drop=config.evaluation.max_accuracy_drop,
        slices=config.evaluation.slices,
        beam_pipeline_args=(),   # set at launch from the configuration (profiles differ)
        **concrete,
    )


def render(config: Config) -> dict[str, str]:
    """The compiled files' text, by file name."""
    from google.protobuf import json_format, text_format
    from tfx.dsl.compiler import compiler

    from pipeline_src.orchestration import pipeline

    ir = compiler.Compiler().compile(build_pipeline(config))
    ir_json = json.dumps(json_format.MessageToDict(ir), indent=1, sort_keys=True) + "\n"
    schema_text = text_format.MessageToString(pipeline.schema(config.data.labels))
    return {IR_FILE: ir_json, SCHEMA_FILE: schema_text}


def stale_files(config: Config, compiled_dir: Path = COMPILED_DIR) -> list[str]:
    """Names of compiled files that differ from what the code produces now."""
    stale = []
    for name, text in render(config).items():
        path = compiled_dir / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
    return stale


def write(config: Config, compiled_dir: Path = COMPILED_DIR) -> list[Path]:
    compiled_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(config).items():
        path = compiled_dir / name
        path.write_text(text)
        written.append(path)
    return written


def load_ir_dict(compiled_dir: Path = COMPILED_DIR) -> dict:
    """The IR as plain JSON: cheap enough for DAG parsing (no TFX import)."""
    path = compiled_dir / IR_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `emerald compile`")
    return json.loads(path.read_text())


def task_graph(ir: dict) -> dict[str, list[str]]:
    """Node id -> upstream node ids, in the IR's topological order."""
    graph = {}
    for node in ir["nodes"]:
        pipeline_node = node["pipelineNode"]
        graph[pipeline_node["nodeInfo"]["id"]] = list(pipeline_node.get("upstreamNodes", []))
    return graph


def _run(args: argparse.Namespace) -> int:
    config = load_config()
    if args.check:
        stale = stale_files(config)
        if stale:
            print(f"stale compiled pipeline in {COMPILED_DIR}: {', '.join(stale)}; "
                  "run `make compile`", file=sys.stderr)
            return 1
        print("compiled pipeline is up to date")
        return 0
    for path in write(config):
        print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("compile", help="compile the pipeline to include/compiled/")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed IR is stale instead of writing it")
    parser.set_defaults(func=_run)

