"""The optional Tuner node, run through its executor (TFX's own, given the span history).

Two random-search trials of hyperparameters.SEARCH_SPACE, one epoch each: the
executor writes the best values and the trials' scores, as the Tuner component
does; the best is the trial that scored highest, and the Trainer's settings take
those values over the configuration's.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import model_testing as mt

pytest.importorskip("keras_tuner")

from pipeline_src.model import hyperparameters  # noqa: E402

pytestmark = pytest.mark.slow       # two short trainings: ~30 s


def test_the_tuner_node_searches_and_the_trainer_takes_its_best(trained, transform_graph,
                                                                tmp_path):
    from tfx.dsl.components.base import base_executor
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    examples = standard_artifacts.Examples()
    examples.uri, examples.split_names = trained.examples_dir, '["train", "eval"]'
    graph = standard_artifacts.TransformGraph()
    graph.uri = transform_graph
    best, results = standard_artifacts.HyperParameters(), standard_artifacts.TunerResults()
    best.uri, results.uri = str(tmp_path / "best"), str(tmp_path / "results")
    context = base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / "tmp"), unique_id="1")
    # The pipeline's Tuner executor (TFX's, training on the span history; none here).
    from pipeline_src.components.trainer import TunerExecutor

    TunerExecutor(context).Do(
        {"examples": [examples], "history": [], "transform_graph": [graph]},
        {"best_hyperparameters": [best], "tuner_results": [results]},
        {"tuner_fn": "pipeline_src.model.tuner.tuner_fn",
         "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
         "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["eval"])),
         "custom_config": json.dumps({**mt.CUSTOM_CONFIG, "tuner_trials": 2,
                                      "tuner_epochs": 1})})

    config = json.loads((Path(best.uri) / "best_hyperparameters.txt").read_text())
    trials = json.loads((Path(results.uri) / "tuner_results.json").read_text())
    assert len(trials) == 2
    for trial in trials:
        for name, values in hyperparameters.SEARCH_SPACE.items():
            assert trial[name] in values
    top = max(trials, key=lambda t: t["score"])
    assert config["values"] == {k: top[k] for k in hyperparameters.SEARCH_SPACE}

    # The Trainer with the Tuner's output as TFX hands it over (fn_args.hyperparameters).
    import copy

    from pipeline_src.model import trainer, warm_start

    model_uri = tmp_path / "tuned_model"
    fn_args = copy.copy(trained.fn_args)
    fn_args.hyperparameters = config
    fn_args.serving_model_dir = str(model_uri / mt.SERVING_DIR)
    fn_args.model_run_dir = str(tmp_path / "tuned_run")
    fn_args.custom_config = {**mt.CUSTOM_CONFIG, "epochs": 1}
    trainer.run_fn(fn_args)
    record = warm_start.read_training_record(str(model_uri))
    assert record["hyperparameters"] == config["values"]
    assert record["learning_rate"] == top["learning_rate"] and record["dropout"] == top["dropout"]


def test_the_best_values_override_the_configuration_and_nothing_else():
    best = {"space": [], "values": {"learning_rate": 0.001, "dropout": 0.35}}
    assert hyperparameters.apply({"learning_rate": 0.003, "dropout": 0.2, "epochs": 3}, best) == {
        "learning_rate": 0.001, "dropout": 0.35, "epochs": 3}
    assert hyperparameters.apply({"dropout": 0.2}, None) == {"dropout": 0.2}   # no Tuner
    with pytest.raises(ValueError, match="momentum"):
        hyperparameters.best_values({"values": {"momentum": 0.9}})


def test_tuner_trials_add_a_tuner_node_whose_best_values_the_trainer_takes():
    """Off by default (no Tuner in the committed IR); on, a Tuner node between Transform
    and the Trainer, its best hyperparameters the Trainer's `hyperparameters` input."""
    import dataclasses

    from pipeline_src import names
    from pipeline_src.config import load_config
    from pipeline_src.orchestration import compile as compiled

    config = load_config()
    assert names.TUNER not in compiled.task_graph(compiled.load_ir_dict())
    tuned = dataclasses.replace(config, training=dataclasses.replace(
        config.training, tuner_trials=3, tuner_epochs=1))
    ir = json.loads(compiled.render(tuned)[compiled.IR_FILE])
    graph = compiled.task_graph(ir)
    assert "Transform" in graph[names.TUNER] and names.TUNER in graph[names.TRAINER]
    nodes = {n["pipelineNode"]["nodeInfo"]["id"]: n["pipelineNode"] for n in ir["nodes"]}
    channel = nodes[names.TRAINER]["inputs"]["inputs"]["hyperparameters"]["channels"][0]
    assert channel["producerNodeQuery"]["id"] == names.TUNER
    assert channel["outputKey"] == "best_hyperparameters"
    tuner_config = json.loads(nodes[names.TUNER]["parameters"]["parameters"]["custom_config"]
                              ["fieldValue"]["stringValue"])
    assert (tuner_config["tuner_trials"], tuner_config["tuner_epochs"]) == (3, 1)
