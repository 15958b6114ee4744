"""Fixtures of the serving tests: three real SavedModels, and nights laid out in a real MLMD.

`colour_models` exports three colour-rule models (tests/pipeline_src/model/model_testing.py)
through the project's exporter, so each version's answers are known:

    v1  every colour to its own label (lion red, tiger green, bear blue)
    v2  tigers are lions
    v3  lions are bears

`Nights` writes what a night's TFX run leaves behind, as TFX records it
(ExampleGen's Examples with its span, splits and counts, Transform's TransformGraph,
the Trainer's Model and its training record, the Evaluator's ModelEvaluation and
ModelBlessing, the Pusher's PushedModel and its copy under {serving}/{version}; each
execution's INPUT and OUTPUT events keyed as the portable launcher keys them, and
ExampleGen's execution properties), into the configured SQLite MLMD, so the report
task, the Resolver strategy and `emerald lineage` read it as they read a real run.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from pathlib import Path

import pytest

from pipeline_src import names

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
    CORPUS_IMAGES = 12      # the corpus span's examples, every night

    def __init__(self, config, store):
        self.config, self.store = config, store
        self.images: dict[str, int] = {}     # night -> Toto images: what later nights train on

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

    def _execute(self, run_id: str, node: str, outputs: dict, inputs: dict = (),
                 properties: dict = ()) -> None:
        """A COMPLETE execution of `node` in the run: INPUT events for `inputs` and OUTPUT
        events for `outputs` ({key: [artifact]}, each event's path [key, index] as TFX's
        event_lib writes it), its exec properties as custom properties (execution_lib)."""
        from ml_metadata.proto import metadata_store_pb2

        execution = metadata_store_pb2.Execution(
            type_id=self.store.put_execution_type(metadata_store_pb2.ExecutionType(name=node)),
            last_known_state=metadata_store_pb2.Execution.COMPLETE)
        for name, value in dict(properties).items():
            field = "int_value" if isinstance(value, int) else "string_value"
            setattr(execution.custom_properties[name], field, value)
        contexts = [self._context("pipeline", self.PIPELINE),
                    self._context("pipeline_run", run_id),
                    self._context("node", f"{self.PIPELINE}.{node}")]
        events, produced = [], []
        for kind, channels in ((metadata_store_pb2.Event.INPUT, dict(inputs)),
                               (metadata_store_pb2.Event.OUTPUT, outputs)):
            for key, artifacts in channels.items():
                for index, artifact in enumerate(artifacts):
                    event = metadata_store_pb2.Event(type=kind)
                    event.path.steps.add().key = key
                    event.path.steps.add().index = index
                    events.append((artifact.mlmd_artifact, event))
                    produced.append(artifact)
        _, ids, _ = self.store.put_execution(execution, events, contexts)
        for artifact, artifact_id in zip(produced, ids):
            artifact.id = artifact_id

    def night(self, night: str, model_dir: str, version: str, *, blessed: bool = True,
              pushed: bool = True, accuracy: float = 0.9, toto_images: int = 4,
              base_model=None, night_counts: bool = True, train_nights=None) -> dict:
        """A night's run; returns its run id and artifacts. `pushed` also copies the model.

        As ImageExampleGen splits it (newest_night): train is the corpus and the earlier
        nights, eval tonight's `toto_images`, previous the last earlier night; with its
        images per split and night unless `night_counts` is off (Examples from before
        that property). A `base_model` makes the Trainer a warm start from it;
        `train_nights` (with "corpus") limits the train split to those, as a split of
        tonight's span alone would be."""
        from tfx.types import artifact_utils, standard_artifacts as sa

        from pipeline_src.components.spans import span_of

        run_id = f"scheduled__{night}.{version}"
        earlier = sorted(n for n in self.images if n < night)
        train_counts = {"corpus": self.CORPUS_IMAGES, **{n: self.images[n] for n in earlier}}
        if train_nights is not None:
            train_counts = {n: c for n, c in train_counts.items() if n in train_nights}
        examples = self._type(sa.Examples())
        examples.uri = f"{self.config.paths.pipeline_root}/ImageExampleGen/examples/{version}"
        examples.span = span_of(dt.date.fromisoformat(night))
        examples.split_names = artifact_utils.encode_split_names(["train", "eval", "previous"])
        examples.set_string_custom_property("night", night)
        examples.set_string_custom_property("eval_mode", "newest_night")
        examples.set_string_custom_property("previous_night", earlier[-1] if earlier else "none")
        examples.set_string_custom_property("split_counts", json.dumps({
            "train": sum(train_counts.values()), "eval": toto_images,
            "previous": self.images[earlier[-1]] if earlier else toto_images}))
        examples.set_int_custom_property("rejected_count", 0)
        if night_counts:
            previous = earlier[-1] if earlier else night
            examples.set_string_custom_property(names.EXAMPLES_NIGHT_COUNTS, json.dumps({
                "train": train_counts, "eval": {night: toto_images},
                "previous": {previous: self.images.get(previous, toto_images)}}))
        self._execute(run_id, "ImageExampleGen", {"examples": [examples]}, properties={
            "input_base": str(self.config.paths.spans), "night": night,
            "eval_split": "newest_night", "hash_eval_percent": 25, "max_pixels": 4_000_000})
        transform_graph = self._type(sa.TransformGraph())
        transform_graph.uri = f"{self.config.paths.pipeline_root}/Transform/graph/{version}"
        self._execute(run_id, "Transform", {"transform_graph": [transform_graph]},
                      inputs={"examples": [examples]})
        model = self._type(sa.Model())
        model.uri = model_dir
        # As the Trainer records it: what it learnt from, per night (tonight evaluates).
        from pipeline_src.model import warm_start

        Path(model_dir).mkdir(parents=True, exist_ok=True)
        warm_start.write_training_record(model_dir, {
            "mode": "warm" if base_model else "full",
            "reason": "warm start" if base_model else "no blessed model to start from",
            "night_counts": train_counts, "trained_on_nights": sorted(train_counts)})
        self.images[night] = toto_images
        self._execute(run_id, "Trainer", {"model": [model]},
                      inputs={"examples": [examples], "transform_graph": [transform_graph],
                              **({"base_model": [base_model]} if base_model else {})})
        evaluation = self._type(sa.ModelEvaluation())
        evaluation.uri = f"{model_dir}/evaluation-{night}"
        evaluation.set_float_custom_property("accuracy", accuracy)     # read by fake_accuracy
        blessing = self._type(sa.ModelBlessing())
        blessing.uri = f"{model_dir}/blessing-{night}"
        blessing.set_int_custom_property("blessed", int(blessed))
        blessing.set_int_custom_property("current_model_id", model.id)
        self._execute(run_id, "Evaluator", {"evaluation": [evaluation], "blessing": [blessing]},
                      inputs={"examples": [examples], "model": [model]})
        pushed_model = self._type(sa.PushedModel())
        pushed_model.uri = f"{model_dir}/pushed-{night}"
        pushed_model.set_int_custom_property("pushed", int(pushed))
        if pushed:
            destination = Path(self.config.paths.serving) / version
            shutil.copytree(Path(model_dir) / mt.SERVING_DIR, destination)
            pushed_model.set_string_custom_property("pushed_version", version)
            pushed_model.set_string_custom_property("pushed_destination", str(destination))
        self._execute(run_id, "Pusher", {"pushed_model": [pushed_model]},
                      inputs={"model": [model], "model_blessing": [blessing]})
        return {"run_id": run_id, "model": model, "blessing": blessing, "examples": examples,
                "pushed_model": pushed_model, "transform_graph": transform_graph}

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
