"""What the Evaluator decided about tonight's model, and the findings an unblessed one makes.

Read, never recomputed: the ModelBlessing says blessed or not and, only when there
was one, which baseline it was held against; TFMA's validation result says which
threshold failed. The night's summary keeps the verdict (`evaluation`) and its
findings (`model_findings`, a list like every other finding kind's), so the gate
sorts them with the rest and the report and alert quote them.
"""
from __future__ import annotations

from typing import Any, Optional

from pipeline_src.config import Config

# What the Evaluator held tonight's model to. TFX's Evaluator "rubber stamps" a first
# model: without a baseline it drops the change threshold (tfx/components/evaluator/
# executor.py: update_eval_config_with_defaults(..., rubber_stamp=True)) and keeps the
# value threshold, so the first night is blessed against min_accuracy alone.
BASIS_NO_BASELINE = "no baseline model: blessed against min_accuracy only"
BASIS_WITH_BASELINE = ("blessed against min_accuracy and the baseline model "
                       "(no drop beyond max_accuracy_drop)")


def _overall_accuracies(uri: str) -> dict[str, Optional[float]]:
    """The overall slice's accuracy of the candidate, of the baseline, and their difference."""
    import tensorflow_model_analysis as tfma

    found: dict[str, Optional[float]] = {"candidate": None, "baseline": None, "change": None}
    for metrics in tfma.load_metrics(uri):
        if metrics.slice_key.single_slice_keys:
            continue
        for item in metrics.metric_keys_and_values:
            if item.key.name != "sparse_categorical_accuracy":
                continue
            role = ("change" if item.key.is_diff else
                    "baseline" if item.key.model_name == "baseline" else "candidate")
            found[role] = item.value.double_value.value
    return found


def _validation_failures(uri: str) -> tuple[Optional[bool], list[str], list[str]]:
    """TFMA's validation result: (validation_ok, the thresholds that failed, other reasons)."""
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_validation_result(uri)
    except Exception:  # noqa: BLE001 - no validations file: the Evaluator validated nothing
        return None, [], ["no validation result"]
    failed = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            for field, _ in failure.metric_threshold.ListFields():
                if field.name not in failed:
                    failed.append(field.name)      # value_threshold | change_threshold
    other = ([f"slices missing from the evaluation data: {len(result.missing_slices)}"]
             if result.missing_slices else [])
    if result.missing_thresholds:
        other.append("no threshold configured")
    return result.validation_ok, failed, other


def evaluation_verdict(config: Config, blessing, evaluation_uri: Optional[str]
                       ) -> dict[str, Any]:
    """What the Evaluator decided tonight, and against what (a baseline model or none).

    `blessing` is this run's ModelBlessing (None when the Evaluator did not complete):
    TFX records the baseline it compared with as its `baseline_model` property, and only
    when there was one. The verdict is read, not recomputed: TFMA's validation result
    says which threshold failed; the configured values are what the message quotes.
    """
    verdict: dict[str, Any] = {
        "evaluated": blessing is not None, "blessed": False, "baseline_model": None,
        "basis": None, "min_accuracy": config.evaluation.min_accuracy,
        "max_accuracy_drop": config.evaluation.max_accuracy_drop,
        "accuracy": None, "baseline_accuracy": None, "change": None,
        "validation_ok": None, "failed_thresholds": [], "reasons": []}
    if blessing is None:
        return verdict
    props = blessing.custom_properties
    verdict["blessed"] = bool(props["blessed"].int_value) if "blessed" in props else False
    baseline = props["baseline_model"].string_value if "baseline_model" in props else ""
    verdict["baseline_model"] = baseline or None
    verdict["basis"] = BASIS_WITH_BASELINE if baseline else BASIS_NO_BASELINE
    if not evaluation_uri:
        verdict["reasons"] = ["no ModelEvaluation recorded"]
    else:
        accuracies = _overall_accuracies(evaluation_uri)
        verdict.update(accuracy=accuracies["candidate"],
                       baseline_accuracy=accuracies["baseline"], change=accuracies["change"])
        (verdict["validation_ok"], verdict["failed_thresholds"],
         verdict["reasons"]) = _validation_failures(evaluation_uri)
    return verdict


PUSHER_CHECKS_BLESSING = ("not pushed, and force_push cannot push it: the Pusher checks "
                          "the Evaluator's blessing itself")


def model_findings(verdict: Optional[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary's "model" findings: one per failed threshold of an unblessed model.

    `verdict` is `report.evaluation_verdict()`. Empty when the model was blessed, or
    when the Evaluator did not complete (that task's failure alerts on its own:
    plugins/emerald_alerts/notifiers.py). The message says the Pusher will not push
    it, force_push or not, so nobody triggers a forced run expecting a push.
    """
    if not verdict or not verdict["evaluated"] or verdict["blessed"]:
        return []

    def num(value) -> str:
        return "unknown" if value is None else f"{value:.3f}"

    floor, drop = verdict["min_accuracy"], verdict["max_accuracy_drop"]
    accuracy, basis = verdict["accuracy"], verdict["basis"]
    out = []
    for failed in verdict["failed_thresholds"] or ["(none)"]:
        if failed == "value_threshold":
            out.append({"type": "BELOW_MIN_ACCURACY", "value": accuracy, "threshold": floor,
                        "description": f"accuracy {num(accuracy)} < min_accuracy {floor:.3f} "
                                       f"({basis})"})
        elif failed == "change_threshold":
            change = verdict["change"]
            out.append({"type": "ACCURACY_REGRESSION",
                        "value": None if change is None else -change, "threshold": drop,
                        "description": (
                            f"accuracy {num(accuracy)} vs {num(verdict['baseline_accuracy'])} "
                            f"of the baseline model {verdict['baseline_model']}: a drop of "
                            f"{num(None if change is None else -change)} > max_accuracy_drop "
                            f"{drop:.3f} ({basis})")})
        else:
            reasons = "; ".join(verdict["reasons"]) or "validation_ok is false"
            out.append({"type": "NOT_BLESSED", "value": accuracy, "threshold": floor,
                        "description": f"the Evaluator's validation failed ({reasons}); "
                                       f"accuracy {num(accuracy)}, min_accuracy {floor:.3f} "
                                       f"({basis})"})
    for item in out:
        item.update(where="eval", feature="accuracy",
                    description=f"{item['description']}; {PUSHER_CHECKS_BLESSING}")
    return out
