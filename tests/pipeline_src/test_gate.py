"""The gate's policy and the alert's words, on findings shaped like the validators' output."""
from pipeline_src import gate
from pipeline_src.config import GateConfig

SUMMARY = {
    "anomalies": [
        {"where": "eval", "feature": "label", "type": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
         "description": "Examples contain values missing from the schema: wolf (~14%)."},
        {"where": "eval", "feature": "label", "type": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
         "description": "Examples contain values missing from the schema: wolf (~14%)."},
    ],
    "skew": [{"where": "eval_train", "feature": "aspect_ratio",
              "type": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
              "description": "...", "value": 0.4123, "threshold": 0.1}],
    "drift": [{"where": "eval_previous", "feature": "brightness",
               "type": "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
               "description": "...", "value": 0.3, "threshold": 0.25}],
}
POLICY = GateConfig(block=("schema", "skew"), warn=("drift",))


def test_findings_are_sorted_by_kind_and_deduplicated():
    findings = gate.findings_from_summary(SUMMARY)
    assert [(f.kind, f.feature) for f in findings] == [
        ("schema", "label"), ("skew", "aspect_ratio"), ("drift", "brightness")]


def test_the_message_names_feature_statistic_value_threshold_and_what_was_compared():
    skew = gate.findings_from_summary(SUMMARY)[1]
    assert skew.message("2026-01-05", "2026-01-04") == (
        "aspect_ratio: Jensen-Shannon divergence 0.41 > 0.10, toto 2026-01-05 vs training")
    drift = gate.findings_from_summary(SUMMARY)[2]
    assert drift.message("2026-01-05", "2026-01-04") == (
        "brightness: Jensen-Shannon divergence 0.30 > 0.25, toto 2026-01-05 vs toto 2026-01-04")
    schema = gate.findings_from_summary(SUMMARY)[0]
    assert "wolf" in schema.message("2026-01-05", None)


def test_policy_blocks_schema_and_skew_and_only_warns_on_drift():
    decision = gate.decide(gate.findings_from_summary(SUMMARY), POLICY, force_push=False)
    assert decision.blocked and not decision.forced
    assert {f.kind for f in decision.blocking} == {"schema", "skew"}
    assert [f.kind for f in decision.warnings] == ["drift"]
    drift_only = gate.decide(gate.findings_from_summary({"drift": SUMMARY["drift"]}),
                             POLICY, force_push=False)
    assert not drift_only.blocked and drift_only.needs_alert


def test_force_push_overrides_the_block_and_says_so():
    decision = gate.decide(gate.findings_from_summary(SUMMARY), POLICY, force_push=True)
    assert not decision.blocked and decision.forced
    subject, body = gate.alert_text(decision, "2026-01-05", "2026-01-04",
                                    "http://airflow/emerald-reports/night/2026-01-05")
    assert "force_push" in subject
    assert "aspect_ratio: Jensen-Shannon divergence 0.41 > 0.10" in body
    assert "http://airflow/emerald-reports/night/2026-01-05" in body


def test_a_clean_night_needs_no_alert():
    decision = gate.decide([], POLICY, force_push=False)
    assert not decision.blocked and not decision.needs_alert
