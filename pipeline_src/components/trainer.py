"""TFX's Trainer and Tuner, given the span history: train on every span up to tonight.

The stock Trainer reads its train and eval files from one `examples` input, by
split name, and wants every artifact in it to hold both splits. A night's spans
play different parts: tonight's span is evaluated on tonight and trained on from
tomorrow, whole. So these components take tonight's span as `examples` (the
Evaluator's too) and the history as `history` (span_history.history_channel:
every span's latest version, from TFX's all_spans resolver), and their executors
are TFX's own with one change: fn_args.train_files is the history's spans up to
tonight, whole, then tonight's train split (span_history.training_patterns).
Everything else (run_fn, tuner_fn, custom_config, the base model, the outputs)
is the stock component's, so `pipeline_src.model.trainer.run_fn` sees the same
FnArgs it always did.
"""
from __future__ import annotations

from typing import Any, Optional

from tfx.components.trainer import executor as trainer_executor
from tfx.components.tuner import executor as tuner_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.utils import json_utils

from pipeline_src.components import span_history

HISTORY = "history"


def with_history(fn_args, input_dict) -> Any:
    """fn_args with the train files of tonight's span and its history."""
    tonight = artifact_utils.get_single_instance(input_dict[standard_component_specs.EXAMPLES_KEY])
    fn_args.train_files = span_history.training_patterns(tonight, input_dict.get(HISTORY, []))
    return fn_args


class Executor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor (run_fn), training on the history too."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX API
        return with_history(super()._GetFnArgs(input_dict, output_dict, exec_properties),
                            input_dict)


class TunerExecutor(tuner_executor.Executor):
    """TFX's Tuner executor (tuner_fn), searching on the history too."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 - TFX API
        from tfx.components.trainer import fn_args_utils

        if tuner_executor.get_tune_args(exec_properties):
            raise ValueError("TuneArgs is not supported by this Tuner's Executor.")
        fn_args = with_history(fn_args_utils.get_common_fn_args(
            input_dict, exec_properties, self._get_tmp_dir()), input_dict)
        result = tuner_executor._get_tuner_fn(exec_properties)(fn_args)  # noqa: SLF001
        result.tuner.search(**result.fit_kwargs)
        tuner_executor.write_best_hyperparameters(result.tuner, output_dict)


def _history_parameter() -> ChannelParameter:
    return ChannelParameter(type=standard_artifacts.Examples, optional=True, allow_empty=True)


class TrainerSpec(standard_component_specs.TrainerSpec):
    INPUTS = {**standard_component_specs.TrainerSpec.INPUTS, HISTORY: _history_parameter()}


class TunerSpec(standard_component_specs.TunerSpec):
    INPUTS = {**standard_component_specs.TunerSpec.INPUTS, HISTORY: _history_parameter()}


class SpanTrainer(base_component.BaseComponent):
    """tfx.components.Trainer (run_fn only) with the span history as an input."""

    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, *, examples, history, transform_graph, schema, run_fn: str,
                 train_args: trainer_pb2.TrainArgs, eval_args: trainer_pb2.EvalArgs,
                 custom_config: dict, base_model=None, hyperparameters=None):
        super().__init__(spec=TrainerSpec(
            examples=examples, history=history, transform_graph=transform_graph,
            schema=schema, base_model=base_model, hyperparameters=hyperparameters,
            train_args=train_args, eval_args=eval_args, run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config),
            model=channel.Channel(type=standard_artifacts.Model),
            model_run=channel.Channel(type=standard_artifacts.ModelRun)))


class SpanTuner(base_component.BaseComponent):
    """tfx.components.Tuner (tuner_fn) with the span history as an input."""

    SPEC_CLASS = TunerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TunerExecutor)

    def __init__(self, *, examples, history, transform_graph, schema, tuner_fn: str,
                 train_args: trainer_pb2.TrainArgs, eval_args: trainer_pb2.EvalArgs,
                 custom_config: dict, tune_args: Optional[Any] = None):
        super().__init__(spec=TunerSpec(
            examples=examples, history=history, transform_graph=transform_graph,
            schema=schema, train_args=train_args, eval_args=eval_args, tuner_fn=tuner_fn,
            tune_args=tune_args, custom_config=json_utils.dumps(custom_config),
            best_hyperparameters=channel.Channel(type=standard_artifacts.HyperParameters),
            tuner_results=channel.Channel(type=standard_artifacts.TunerResults)))
