"""Blessing: TFX's real Evaluator, as the night runs it, on models of known accuracy.

The Evaluator and the Pusher are the nodes of the pipeline compiled from the
configuration (compile.build_pipeline(load_config()), the code behind
include/compiled/pipeline.json): their executor classes, their parameters
(the EvalConfig of pipeline.eval_config() with include/emerald.yaml's
`evaluation` thresholds, the eval split, the push destination) and the Beam
arguments come from there, and the executors run as the launcher calls them.
Only the artifacts are made by hand, laid out as ExampleGen and the Trainer
lay them out.

The models are exported through the project's exporter, so they have the
signatures the Evaluator reads; their accuracy on the night is known exactly:

    night         15 lions, 2 tigers, 3 bears, and one zebra (an unknown label: weight 0)
    perfect       a colour rule, every image right                      20/20 = 1.00
    tiger_as_lion calls the 2 tigers lions                              18/20 = 0.90
    bear_as_lion  calls the 3 bears lions                               17/20 = 0.85
    always_lion   the project's CNN, output layer set to say "lion"     15/20 = 0.75
    trained       the project's CNN trained by run_fn (conftest.py)

Thresholds (include/emerald.yaml): min_accuracy 0.8, max_accuracy_drop 0.1.
"""
from __future__ import annotations

import json
import os
import random
from types import SimpleNamespace

import pytest

tf = pytest.importorskip("tensorflow")
tfma = pytest.importorskip("tensorflow_model_analysis")

from tfx.dsl.compiler import compiler  # noqa: E402
from tfx.orchestration import data_types_utils  # noqa: E402
from tfx.orchestration.local import runner_utils  # noqa: E402
from tfx.orchestration.portable import inputs_utils, runtime_parameter_utils  # noqa: E402
from tfx.proto.orchestration import executable_spec_pb2  # noqa: E402
from tfx.types import standard_artifacts  # noqa: E402
from tfx.utils import import_utils, proto_utils  # noqa: E402

import model_testing as mt  # noqa: E402
from pipeline_src import features, names  # noqa: E402
from pipeline_src.config import load_config  # noqa: E402
from pipeline_src.decision import blessing, gate  # noqa: E402
from pipeline_src.model import exporter  # noqa: E402
from pipeline_src.orchestration import compile as compiled  # noqa: E402
from pipeline_src.orchestration import node as node_lib  # noqa: E402
from pipeline_src.orchestration import pipeline  # noqa: E402

pytestmark = pytest.mark.slow

NIGHT = "2026-01-05"
RUN_ID = f"scheduled__{NIGHT}T02:00:00+00:00.5"
COUNTS = {"lion": 15, "tiger": 2, "bear": 3}
RULES = {
    "perfect": {"lion": "lion", "tiger": "tiger", "bear": "bear"},
    "tiger_as_lion": {"lion": "lion", "tiger": "lion", "bear": "bear"},
    "bear_as_lion": {"lion": "lion", "tiger": "tiger", "bear": "lion"},
}
ACCURACY = "sparse_categorical_accuracy"


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The project's configuration, with EMERALD_HOME (serving, pipeline root) in a tmp folder."""
    home = tmp_path_factory.mktemp("emerald_home")
    return load_config(env={**os.environ, "EMERALD_HOME": str(home)})


@pytest.fixture(scope="module")
def ir(config):
    """The compiled pipeline with this run's runtime parameters, as node.launch_node has it."""
    result = compiler.Compiler().compile(compiled.build_pipeline(config))
    runtime_parameter_utils.substitute_runtime_parameter(
        result, node_lib.runtime_parameters(config, RUN_ID, NIGHT))
    return result


def _node(ir, node_id):
    (found,) = [n.pipeline_node for n in ir.nodes if n.pipeline_node.node_info.id == node_id]
    return found


def _executor(ir, config, node_id, tmp_dir):
    """The node's executor, built from the IR's executor spec, with the launch-time Beam args."""
    spec = node_lib.with_beam_args(runner_utils.extract_executor_spec(
        runner_utils.extract_local_deployment_config(ir), node_id), config.beam_args)
    if isinstance(spec, executable_spec_pb2.BeamExecutableSpec):
        cls = import_utils.import_class_by_path(spec.python_executor_spec.class_path)
        return cls(cls.Context(beam_pipeline_args=list(spec.beam_pipeline_args),
                               tmp_dir=str(tmp_dir), unique_id=node_id))
    cls = import_utils.import_class_by_path(spec.class_path)
    return cls(cls.Context(tmp_dir=str(tmp_dir), unique_id=node_id))


def _exec_properties(ir, node_id) -> dict:
    """The node's execution properties, resolved as the launcher resolves them."""
    return data_types_utils.build_parsed_value_dict(
        inputs_utils.resolve_parameters_with_schema(node_parameters=_node(ir, node_id).parameters))


def _slice(slice_key) -> tuple:
    """TFMA's SliceKey as ((feature, value), ...); () is the overall slice."""
    return tuple((key.column, key.bytes_value.decode() or key.int64_value)
                 for key in slice_key.single_slice_keys)


def _artifact(cls, uri, artifact_id=None):
    artifact = cls()
    artifact.uri = str(uri)
    if artifact_id is not None:
        artifact.id = artifact_id
    return artifact


@pytest.fixture(scope="module")
def night_examples(tmp_path_factory):
    """The night as ImageExampleGen writes it: an Examples artifact with Split-eval.

    The three bears and two of the lions were taken at 23:00, the others at 22:00, so
    a model that misses the bears is poor on the capture_hour=23 slice (2/5)."""
    root = tmp_path_factory.mktemp("night_examples")
    rng = random.Random(5)
    records, late_lions = [], 0
    for label, count in COUNTS.items():
        for i in range(count):
            late = label == "bear" or (label == "lion" and late_lions < 2)
            late_lions += label == "lion" and late
            records.append(mt.example(
                mt.image_bytes(rng, mt.COLOURS[label]), label, source=False,
                extra={features.SOURCE: "toto", features.NIGHT: NIGHT,
                       features.ORIENTATION: ("landscape", "portrait")[i % 2],
                       features.CAPTURE_HOUR: 23 if late else 22}))
    records.append(mt.example(mt.image_bytes(rng, (128, 128, 128)), "zebra", source=False,
                              extra={features.SOURCE: "toto", features.NIGHT: NIGHT,
                                     features.ORIENTATION: "landscape",
                                     features.CAPTURE_HOUR: 22}))
    mt.write_split(root / f"Split-{features.EVAL}", records)
    return str(root)


@pytest.fixture(scope="module")
def models(tmp_path_factory, transform_graph, trained):
    """Model artifact folders (each with Format-Serving/), by name."""
    root = tmp_path_factory.mktemp("models")
    made = {name: mt.export_model(mt.colour_rule_model(rule), transform_graph, root / name)
            for name, rule in RULES.items()}
    made["always_lion"] = mt.export_model(mt.one_class_model("lion"), transform_graph,
                                          root / "always_lion")
    made["trained"] = trained.model_uri
    return made


@pytest.fixture(scope="module")
def evaluate(tmp_path_factory, ir, config, night_examples, models):
    """evaluate(candidate, baseline=None, eval_config=None): the Evaluator's outcome, cached.

    Runs the IR's Evaluator executor with the IR's execution properties (eval_config
    replaced only when a test asks for another one)."""
    root = tmp_path_factory.mktemp("evaluations")
    ids = {name: i + 1 for i, name in enumerate(sorted(models))}
    done = {}

    def run(candidate, baseline=None, eval_config=None):
        key = (candidate, baseline, None if eval_config is None else eval_config.SerializeToString())
        if key in done:
            return done[key]
        where = root / f"{len(done)}-{candidate}-vs-{baseline}"
        examples = _artifact(standard_artifacts.Examples, night_examples)
        examples.split_names = json.dumps([features.EVAL])
        examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")
        inputs = {"examples": [examples],
                  "model": [_artifact(standard_artifacts.Model, models[candidate], ids[candidate])]}
        if baseline:
            inputs["baseline_model"] = [
                _artifact(standard_artifacts.Model, models[baseline], ids[baseline])]
        outputs = {"evaluation": [_artifact(standard_artifacts.ModelEvaluation, where / "evaluation")],
                   "blessing": [_artifact(standard_artifacts.ModelBlessing, where / "blessing")]}
        for (artifact,) in outputs.values():
            os.makedirs(artifact.uri)
        properties = _exec_properties(ir, names.EVALUATOR)
        if eval_config is not None:
            properties["eval_config"] = proto_utils.proto_to_json(eval_config)
        _executor(ir, config, names.EVALUATOR, where / "tmp").Do(inputs, outputs, properties)

        (blessing,) = outputs["blessing"]
        evaluation = outputs["evaluation"][0].uri
        validation = tfma.load_validation_result(evaluation)
        metrics = {}   # (slice, model name, is_diff) -> accuracy
        for per_slice in tfma.load_metrics(evaluation):
            for item in per_slice.metric_keys_and_values:
                if item.key.name == ACCURACY:
                    metrics[(_slice(per_slice.slice_key), item.key.model_name,
                             item.key.is_diff)] = item.value.double_value.value
        failures = [(_slice(per_slice.slice_key), failure.metric_key.name,
                     failure.metric_key.is_diff,
                     "+".join(field.name for field, _ in failure.metric_threshold.ListFields()))
                    for per_slice in validation.metric_validations_per_slice
                    for failure in per_slice.failures]
        result = SimpleNamespace(
            blessing=blessing, blessed=blessing.get_int_custom_property("blessed"),
            files=sorted(os.listdir(blessing.uri)), validation_ok=validation.validation_ok,
            failures=failures, metrics=metrics,
            accuracy=metrics[((), "candidate" if baseline else "", False)])
        done[key] = result
        return result

    return run


# --------------------------------------------------------------------------- the thresholds

def test_the_evaluator_runs_the_configured_thresholds(ir, config):
    """What the other tests exercise is eval_config() with include/emerald.yaml's values."""
    assert (config.evaluation.min_accuracy, config.evaluation.max_accuracy_drop) == (0.8, 0.1)
    compiled_config = tfma.EvalConfig()
    proto_utils.json_to_proto(_exec_properties(ir, names.EVALUATOR)["eval_config"],
                              compiled_config)
    assert compiled_config == pipeline.eval_config(
        config.evaluation.min_accuracy, config.evaluation.max_accuracy_drop,
        config.evaluation.slices)
    assert json.loads(_exec_properties(ir, names.EVALUATOR)["example_splits"]) == [features.EVAL]


def test_a_model_below_the_accuracy_floor_is_not_blessed(evaluate):
    result = evaluate("always_lion")
    assert result.accuracy == pytest.approx(0.75)
    assert (result.blessed, result.files, result.validation_ok) == (0, ["NOT_BLESSED"], False)
    # The floor failed (no baseline yet: the change threshold is not applied).
    assert result.failures == [((), ACCURACY, False, "value_threshold")]


def test_a_model_exactly_at_the_floor_is_blessed_though_float32_rounds_it_down(evaluate, config):
    """README: 'bless at accuracy >= 0.8'. TFMA's accuracy is a float32: 18/20 is
    0.89999998, so with a floor of 0.9 a model right at the floor must still bless."""
    floor = 0.9
    result = evaluate("tiger_as_lion", eval_config=pipeline.eval_config(
        floor, config.evaluation.max_accuracy_drop, config.evaluation.slices))
    assert result.accuracy == pytest.approx(floor) and result.accuracy < floor
    assert (result.blessed, result.files, result.failures) == (1, ["BLESSED"], [])


def test_a_candidate_regressing_beyond_the_tolerance_is_not_blessed(evaluate):
    alone = evaluate("bear_as_lion")
    assert alone.accuracy == pytest.approx(0.85)
    assert alone.blessed == 1                               # above the floor on its own...
    result = evaluate("bear_as_lion", baseline="perfect")
    assert result.metrics[((), "baseline", False)] == pytest.approx(1.0)
    assert result.metrics[((), "candidate", True)] == pytest.approx(-0.15)
    assert (result.blessed, result.files) == (0, ["NOT_BLESSED"])   # ...but a 0.15 drop
    assert result.failures == [((), ACCURACY, True, "change_threshold")]


def test_a_drop_of_exactly_the_tolerance_still_blesses(evaluate):
    """include/emerald.yaml: 'a drop of up to 0.1 (3 pictures) still blesses'."""
    result = evaluate("tiger_as_lion", baseline="perfect")
    assert result.metrics[((), "candidate", True)] == pytest.approx(-0.1)
    assert (result.blessed, result.files, result.failures) == (1, ["BLESSED"], [])


def test_slices_are_reported_not_gated(evaluate):
    """A poor slice does not stop the blessing: thresholds hold on the overall slice only."""
    result = evaluate("bear_as_lion")
    assert result.metrics[(((features.CAPTURE_HOUR, 23),), "", False)] == pytest.approx(0.4)
    assert result.blessed == 1
    reported = {where for where, _, _ in result.metrics}
    assert reported == {(), ((features.SOURCE, "toto"),),
                        ((features.ORIENTATION, "landscape"),), ((features.ORIENTATION, "portrait"),),
                        ((features.CAPTURE_HOUR, 22),), ((features.CAPTURE_HOUR, 23),)}


def test_the_trained_model_is_blessed_and_beats_a_poor_baseline(evaluate, models):
    """The real CNN from run_fn, on a night it never saw, against last night's poor model."""
    against = evaluate("trained", baseline="always_lion")
    assert against.accuracy >= 0.9
    assert against.metrics[((), "baseline", False)] == pytest.approx(0.75)
    assert against.metrics[((), "candidate", True)] > 0
    assert (against.blessed, against.files, against.failures) == (1, ["BLESSED"], [])
    # The blessing names the model it blesses and the baseline it was compared with.
    assert against.blessing.get_string_custom_property("current_model") == models["trained"]
    assert against.blessing.get_string_custom_property("baseline_model") == models["always_lion"]


# --------------------------------------------------------------------------- force_push

def _push(ir, config, tmp_path, model_uri, blessing):
    pushed = _artifact(standard_artifacts.PushedModel, tmp_path / "pushed_model")
    os.makedirs(pushed.uri)
    _executor(ir, config, names.PUSHER, tmp_path / "tmp").Do(
        {"model": [_artifact(standard_artifacts.Model, model_uri)], "model_blessing": [blessing]},
        {"pushed_model": [pushed]}, _exec_properties(ir, names.PUSHER))
    serving = config.paths.serving
    versions = sorted(os.listdir(serving)) if os.path.isdir(serving) else []
    return pushed.get_int_custom_property("pushed"), versions


def test_force_push_overrides_the_data_gate_not_the_blessing(ir, config, evaluate, models,
                                                             tmp_path):
    """README: 'Trigger with force_push: true to push anyway ... The model must still be
    blessed by the Evaluator to be pushed.'

    force_push reaches the data gate only; the Pusher takes the Evaluator's blessing and
    nothing else, and refuses an unblessed model."""
    # 1. The gate: blocking findings, forced: the push is let through (and said to be forced).
    skew = gate.Finding(kind="skew", feature="aspect_ratio", anomaly="ks", where="train",
                        description="skewed", value=0.7, threshold=0.3)
    decision = gate.decide([skew], config.gate, force_push=True)
    assert (decision.blocked, decision.forced) == (False, True)

    # 2. What the Pusher is given: the Trainer's model and the Evaluator's blessing; no
    #    parameter, input or template carries force_push.
    pusher = _node(ir, names.PUSHER)
    producers = {key: [c.producer_node_query.id for c in spec.channels]
                 for key, spec in pusher.inputs.inputs.items()}
    assert producers == {"model": ["Trainer"],
                         "model_blessing": [names.EVALUATOR]}
    assert [c.output_key for c in pusher.inputs.inputs["model_blessing"].channels] == ["blessing"]
    assert set(_exec_properties(ir, names.PUSHER)) == {"push_destination", "custom_config"}
    from emerald_dag.builder import build_nightly_dag

    task = build_nightly_dag(config).task_dict[names.PUSHER]
    assert not [field for field in task.template_fields
                if "force_push" in str(getattr(task, field))]

    # 3. The Pusher itself, on the unblessed model (what force_push lets through the gate).
    unblessed = evaluate("always_lion")
    assert unblessed.blessed == 0
    assert _push(ir, config, tmp_path / "forced", models["always_lion"],
                 unblessed.blessing) == (0, [])
    # The same Pusher pushes a blessed model, into the configured serving directory.
    blessed = evaluate("trained", baseline="always_lion")
    assert blessed.blessed == 1
    pushed, versions = _push(ir, config, tmp_path / "blessed", models["trained"],
                             blessed.blessing)
    assert (pushed, len(versions)) == (1, 1)
    served = tf.saved_model.load(os.path.join(config.paths.serving, versions[0]))
    assert exporter.SERVING_SIGNATURE in served.signatures


# --------------------------------------------------------------------------- the first night

def _verdict(config, result):
    """The night summary's reading of this Evaluator outcome (blessing.evaluation_verdict)."""
    evaluation = os.path.join(os.path.dirname(result.blessing.uri), "evaluation")
    verdict = blessing.evaluation_verdict(config, result.blessing.mlmd_artifact, evaluation)
    return verdict, blessing.model_findings(verdict)


def test_the_first_night_is_held_to_min_accuracy_alone_and_says_so(evaluate, config):
    """TFX "rubber stamps" a model without a baseline (tfx/components/evaluator/executor.py:
    update_eval_config_with_defaults(..., rubber_stamp=True) drops the change threshold),
    but TFMA still applies the value threshold: below min_accuracy is NOT blessed."""
    below = evaluate("always_lion")                      # 0.75, no baseline
    assert below.blessed == 0 and not below.blessing.has_custom_property("baseline_model")
    verdict, findings = _verdict(config, below)
    summary = {"date": NIGHT, "evaluation": verdict, "model_findings": findings}
    assert verdict["basis"] == "no baseline model: blessed against min_accuracy only"
    assert (verdict["blessed"], verdict["baseline_model"]) == (False, None)
    assert verdict["accuracy"] == pytest.approx(0.75) and verdict["baseline_accuracy"] is None
    assert verdict["failed_thresholds"] == ["value_threshold"]
    (finding,) = findings
    assert finding["type"] == "BELOW_MIN_ACCURACY"
    assert finding["description"].startswith(
        "accuracy 0.750 < min_accuracy 0.800 (no baseline model: blessed against "
        "min_accuracy only); not pushed")
    decision = gate.decide(gate.findings_from_summary(summary), config.gate, force_push=False)
    assert decision.blocked and decision.unblessed            # gate.block has "model"

    above = evaluate("bear_as_lion")                     # 0.85, no baseline: blessed
    verdict, findings = _verdict(config, above)
    assert (verdict["blessed"], findings) == (True, [])
    assert verdict["basis"] == "no baseline model: blessed against min_accuracy only"


def test_a_regression_is_a_model_finding_naming_the_baseline_and_the_drop(evaluate, config,
                                                                         models):
    verdict, findings = _verdict(config, evaluate("bear_as_lion", baseline="perfect"))
    assert verdict["baseline_model"] == models["perfect"]
    assert verdict["basis"].startswith("blessed against min_accuracy and the baseline model")
    assert verdict["baseline_accuracy"] == pytest.approx(1.0)
    (finding,) = findings
    assert finding["type"] == "ACCURACY_REGRESSION"
    assert finding["value"] == pytest.approx(0.15) and finding["threshold"] == 0.1
    assert finding["description"].startswith(
        f"accuracy 0.850 vs 1.000 of the baseline model {models['perfect']}: a drop of 0.150 "
        f"> max_accuracy_drop 0.100")


def test_an_unblessed_first_night_reaches_email_and_slack(evaluate, config, tmp_path,
                                                         monkeypatch, smtp_inbox, webhook_inbox):
    """The real Evaluator's verdict, the gate's words, a real SMTP and a real webhook server."""
    from pipeline_src.decision.alerts import EmeraldAlertHook

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp_inbox.conn_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_WEBHOOK_DEFAULT", webhook_inbox.conn_uri)
    verdict, findings = _verdict(config, evaluate("always_lion"))
    summary = {"date": NIGHT, "evaluation": verdict, "model_findings": findings}
    decision = gate.decide(gate.findings_from_summary(summary), config.gate, force_push=False)
    subject, body = gate.alert_text(decision, NIGHT, None, "http://localhost:8080/r")
    outcome = EmeraldAlertHook(marker_dir=tmp_path, emails=("dorothy@example.com",)).send(
        RUN_ID, subject, body, context={})
    assert outcome == {"email": "sent", "slack": "sent"}
    (message,) = smtp_inbox.messages
    assert message["subject"] == f"[Emerald] night {NIGHT}: push BLOCKED (model not blessed)"
    assert "model not blessed: accuracy 0.750 &lt; min_accuracy 0.800 (no baseline model" in message["data"]
    (post,) = webhook_inbox.posts
    assert "accuracy 0.750 < min_accuracy 0.800" in json.loads(post["body"])["text"]
