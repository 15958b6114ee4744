"""Session fixtures of the model tests: one transform graph, one real training run.

`trained` runs the Trainer's run_fn once per session on tiny colour data and
lays its output out as the Trainer component does: the Model artifact's folder
holds Format-Serving/ (the SavedModel) and the recorded eval predictions.
test_model_training checks what it wrote; test_blessing evaluates it.
"""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

import model_testing as mt


@pytest.fixture(scope="session")
def transform_graph(tmp_path_factory) -> str:
    pytest.importorskip("tensorflow_transform")
    root = tmp_path_factory.mktemp("transform_graph")
    return mt.write_transform_graph(root / "transform_graph", root / "tft_tmp")


@pytest.fixture(scope="session")
def trained(tmp_path_factory, transform_graph):
    tf = pytest.importorskip("tensorflow")
    from tfx.components.trainer.fn_args_utils import FnArgs

    from pipeline_src.model import trainer

    root = tmp_path_factory.mktemp("emerald_model")
    rng = random.Random(0)
    train = [mt.example(mt.image_bytes(rng, mt.COLOURS[label]), label)
             for label in mt.LABELS for _ in range(12)]
    train += [mt.example(mt.image_bytes(rng, (128, 128, 128)), "zebra") for _ in range(3)]
    rng.shuffle(train)
    eval_labels = [label for label in mt.LABELS for _ in range(3)]
    evaluation = [mt.example(mt.image_bytes(rng, mt.COLOURS[label], "PNG"), label)
                  for label in eval_labels]
    examples_dir = root / "examples"
    mt.write_split(examples_dir / "Split-train", train)
    mt.write_split(examples_dir / "Split-eval", evaluation)

    model_uri = root / "model"            # the Model artifact's uri
    fn_args = FnArgs(
        working_dir=str(root / "working"),
        train_files=[str(examples_dir / "Split-train" / "*")],
        eval_files=[str(examples_dir / "Split-eval" / "*")],
        train_steps=None, eval_steps=None,
        transform_graph_path=transform_graph, transform_output=transform_graph,
        serving_model_dir=str(model_uri / mt.SERVING_DIR),
        model_run_dir=str(root / "model_run"),
        custom_config=mt.CUSTOM_CONFIG)
    trainer.run_fn(fn_args)
    return SimpleNamespace(
        fn_args=fn_args, model_uri=str(model_uri), examples_dir=str(examples_dir),
        eval_labels=eval_labels, eval_records=evaluation,
        loaded=tf.saved_model.load(fn_args.serving_model_dir))
