"""Fixtures of the serving tests: three real SavedModels, and nights laid out in a real MLMD.

`colour_models` exports three colour-rule models (tests/pipeline_src/model/model_testing.py)
through the project's exporter, so each version's answers are known:

    v1  every colour to its own label (lion red, tiger green, bear blue)
    v2  tigers are lions
    v3  lions are bears

`Nights` writes what a night's TFX run leaves behind, as TFX records it
(ExampleGen's Examples, the Trainer's Model, the Evaluator's ModelEvaluation and
ModelBlessing, the Pusher's PushedModel and its copy under {serving}/{version}),
into the configured SQLite MLMD, so the report task and the Resolver strategy
read it as they read a real run.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "model"))
import model_testing as mt  # noqa: E402

RULES = {
    "v1": {"lion": "lion", "tiger": "tiger", "bear": "bear"},
    "v2": {"lion": "lion", "tiger": "lion", "bear": "bear"},
    "v3": {"lion": "bear", "tiger": "tiger", "bear": "bear"},
}


@pytest.fixture(scope="session")
def colour_models(tmp_path_factory) -> dict[str, str]:
    """Name -> a Model artifact folder holding Format-Serving/ (the SavedModel)."""
    pytest.importorskip("tensorflow_transform")
    root = tmp_path_factory.mktemp("serving_models")
    graph = mt.write_transform_graph(root / "transform_graph", root / "tft_tmp")
    return {name: mt.export_model(mt.colour_rule_model(rule), graph, root / name)
            for name, rule in RULES.items()}


class Nights:
    """One TFX pipeline's runs in an MLMD store, a night at a time."""

    PIPELINE = "emerald"

    def __init__(self, config, store):
        self.config, self.store = config, store
        self.nights: list[str] = []        # recorded so far: what a later night trains on

    def _type(self, artifact):
        from ml_metadata.proto import metadata_store_pb2

        artifact.type_id = self.store.put_artifact_type(artifact.artifact_type)
        artifact.mlmd_artifact.state = metadata_store_pb2.Artifact.LIVE    # published
        return artifact

    def _context(self, type_name: str, name: str):
        from ml_metadata.proto import metadata_store_pb2

        found = self.store.get_context_by_type_and_name(type_name, name)
        if found is not None:
            return found
        context = metadata_store_pb2.Context(
            type_id=self.store.put_context_type(metadata_store_pb2.ContextType(name=type_name)),
            name=name)
        context.id = self.store.put_contexts([context])[0]
        return context

    def _execute(self, run_id: str, node: str, outputs) -> None:
        """A COMPLETE execution of `node` in the run, with OUTPUT events for `outputs`."""
        from ml_metadata.proto import metadata_store_pb2

        execution = metadata_store_pb2.Execution(
            type_id=self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=node)),
            last_known_state=metadata_store_pb2.Execution.COMPLETE)
        contexts = [self._context("pipeline", self.PIPELINE),
                    self._context("pipeline_run", run_id),
                    self._context("node", f"{self.PIPELINE}.{node}")]
        events = [(a.mlmd_artifact, metadata_store_pb2.Event(type=metadata_store_pb2.Event.OUTPUT))
                  for a in outputs]
        _, ids, _ = self.store.put_execution(execution, events, contexts)
        for artifact, artifact_id in zip(outputs, ids):
            artifact.id = artifact_id

    def night(self, night: str, model_dir: str, version: str, *, blessed: bool = True,
              pushed: bool = True, accuracy: float = 0.9) -> dict:
        """A night's run; returns its run id and artifacts. `pushed` also copies the model."""
        from tfx.types import standard_artifacts as sa

        run_id = f"scheduled__{night}.{version}"
        examples = self._type(sa.Examples())
        examples.uri = f"{self.config.paths.pipeline_root}/ImageExampleGen/examples/{version}"
        examples.set_string_custom_property("night", night)
        examples.set_string_custom_property("eval_mode", "newest_night")
        examples.set_string_custom_property("previous_night", "none")
        examples.set_string_custom_property("split_counts", json.dumps({"train": 12, "eval": 9}))
        examples.set_int_custom_property("rejected_count", 0)
        self._execute(run_id, "ImageExampleGen", [examples])
        model = self._type(sa.Model())
        model.uri = model_dir
        # As the Trainer records it: the corpus and the earlier nights (tonight evaluates).
        from pipeline_src.model import warm_start

        Path(model_dir).mkdir(parents=True, exist_ok=True)
        warm_start.write_training_record(model_dir, {
            "mode": "full", "reason": "no blessed model to start from",
            "trained_on_nights": sorted(n for n in self.nights if n < night) + ["corpus"]})
        self.nights.append(night)
        self._execute(run_id, "Trainer", [model])
        evaluation = self._type(sa.ModelEvaluation())
        evaluation.uri = f"{model_dir}/evaluation-{night}"
        evaluation.set_float_custom_property("accuracy", accuracy)     # read by fake_accuracy
        blessing = self._type(sa.ModelBlessing())
        blessing.uri = f"{model_dir}/blessing-{night}"
        blessing.set_int_custom_property("blessed", int(blessed))
        blessing.set_int_custom_property("current_model_id", model.id)
        self._execute(run_id, "Evaluator", [evaluation, blessing])
        pushed_model = self._type(sa.PushedModel())
        pushed_model.uri = f"{model_dir}/pushed-{night}"
        pushed_model.set_int_custom_property("pushed", int(pushed))
        if pushed:
            destination = Path(self.config.paths.serving) / version
            shutil.copytree(Path(model_dir) / mt.SERVING_DIR, destination)
            pushed_model.set_string_custom_property("pushed_version", version)
            pushed_model.set_string_custom_property("pushed_destination", str(destination))
        self._execute(run_id, "Pusher", [pushed_model])
        return {"run_id": run_id, "model": model, "blessing": blessing}

    def resolver_inputs(self) -> dict:
        """What the Resolver's two channels hold: every Model and ModelBlessing of the pipeline."""
        from tfx.types import artifact_utils, standard_artifacts as sa

        out = {}
        for key, cls in (("model", sa.Model), ("model_blessing", sa.ModelBlessing)):
            artifact_type = self.store.get_artifact_type(cls.TYPE_NAME)
            out[key] = [artifact_utils.deserialize_artifact(artifact_type, a)
                        for a in self.store.get_artifacts_by_type(cls.TYPE_NAME)]
        return out


@pytest.fixture
def serving_config(emerald_home, monkeypatch):
    """The configuration with everything (serving, MLMD, reports) under a fresh EMERALD_HOME;
    the night's accuracy comes from the ModelEvaluation's `accuracy` property (no TFMA run)."""
    from pipeline_src.config import load_config
    from pipeline_src.decision import report

    def fake_accuracy(uri):
        store = report.open_store(load_config())
        found = [a for a in store.get_artifacts_by_type("ModelEvaluation") if a.uri == uri]
        value = found[0].custom_properties["accuracy"].double_value
        return {"overall": value, "slices": {"source=corpus": value, "source=toto": value}}

    monkeypatch.setattr(report, "_accuracy", fake_accuracy)
    config = load_config()
    Path(config.paths.serving).mkdir(parents=True)
    return config


@pytest.fixture
def nights(serving_config):
    from pipeline_src.decision import report

    return Nights(serving_config, report.open_store(serving_config))
