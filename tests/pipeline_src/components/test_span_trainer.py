"""The Trainer's executor with the span history: what run_fn is given to train on.

TFX's own GenericExecutor builds the FnArgs (the transform graph, the output dirs,
custom_config); the pipeline's adds the history. A real night's spans, made by
ImageExampleGen's executor night after night (testing.SpanArtifacts).
"""
from __future__ import annotations

import datetime as dt
import json

import emerald_testing as testing
from pipeline_src import features
from pipeline_src.components import span_history, trainer
from pipeline_src.tools import synth

FIRST = dt.date(2026, 5, 1)
SECOND = FIRST + dt.timedelta(days=1)


def _fn_args(tmp_path, tonight, history):
    from tfx.proto import trainer_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    return trainer.Executor()._GetFnArgs(
        {"examples": [tonight], "history": history}, {"model": [model], "model_run": [model_run]},
        {"run_fn": "pipeline_src.model.trainer.run_fn", "custom_config": json.dumps({}),
         "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=[features.TRAIN])),
         "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=[features.EVAL]))})


def test_run_fn_trains_on_every_span_before_tonight_and_evaluates_on_tonight(tmp_path):
    synth.synthesize(tmp_path / "spans", nights=2, seed=4, start_date=FIRST,
                     corpus_per_label=2, toto_per_label=1)
    store = testing.SpanArtifacts(tmp_path / "root", tmp_path / "spans")
    store.night(FIRST)
    second = store.night(SECOND)
    history = store.history()
    fn_args = _fn_args(tmp_path, second, history)
    corpus, first = span_history.training_spans(second, history)
    assert (span_history.span_name(corpus), span_history.span_name(first)) == (
        "corpus", FIRST.isoformat())
    assert fn_args.train_files == [span_history.file_pattern(span, split)
                                   for span in (corpus, first)
                                   for split in features.SPAN_SPLITS] + [
        span_history.file_pattern(second, features.TRAIN)]
    assert fn_args.eval_files == [span_history.file_pattern(second, features.EVAL)]
    # Without a history (the Tuner test, an executor called by hand): tonight's splits.
    alone = _fn_args(tmp_path, second, [])
    assert alone.train_files == [span_history.file_pattern(second, features.TRAIN)]
