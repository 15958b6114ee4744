"""The gate's policy, acknowledgments and the alert's words, on findings shaped like the summary's."""
import datetime as dt

import pytest

from pipeline_src.decision import gate
from pipeline_src.config import GateConfig
from pipeline_src.decision import acknowledgments

SUMMARY = {
    "date": "2026-01-05",
    "anomalies": [
        {"where": "eval", "feature": "label", "type": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
         "description": "Examples contain values missing from the schema: wolf (~14%)."},
        {"where": "eval", "feature": "label", "type": "ENUM_TYPE_UNEXPECTED_STRING_VALUES",
         "description": "Examples contain values missing from the schema: wolf (~14%)."},
    ],
    "skew": [{"where": "training", "feature": "aspect_ratio",
              "type": "Kolmogorov-Smirnov, permutation (9999)", "description": "...",
              "value": 0.7692, "threshold": 0.3, "effect_name": "KS distance",
              "p_value": 1e-4, "alpha": 5e-4, "n_tonight": 36, "n_baseline": 156}],
    "drift": [{"where": "toto 2026-01-04", "feature": "brightness",
               "type": "Kolmogorov-Smirnov, exact", "description": "...", "value": 0.41,
               "threshold": 0.3, "effect_name": "KS distance", "p_value": 2.5e-6,
               "alpha": 5e-4, "n_tonight": 36, "n_baseline": 36}],
    "prediction": [{"where": "the serving model's evaluation data", "feature": "confidence",
                    "type": "Kolmogorov-Smirnov, exact", "description": "...", "value": 0.5,
                    "threshold": 0.3, "effect_name": "KS distance", "p_value": 1e-7,
                    "alpha": 5e-4, "n_tonight": 36, "n_baseline": 30}],
}
POLICY = GateConfig(block=("schema", "skew"), warn=("drift", "prediction"))


def test_findings_are_sorted_by_kind_and_deduplicated():
    findings = gate.findings_from_summary(SUMMARY)
    assert [(f.kind, f.feature) for f in findings] == [
        ("schema", "label"), ("skew", "aspect_ratio"), ("drift", "brightness"),
        ("prediction", "confidence")]


def test_the_message_names_property_effect_p_value_sample_sizes_and_baseline():
    skew, drift, prediction = gate.findings_from_summary(SUMMARY)[1:]
    assert skew.message("2026-01-05", "2026-01-04") == (
        "aspect_ratio: KS distance 0.77 > 0.30, p 1.0e-04 < 5.0e-04, 36 tonight vs 156 in "
        "the baseline, toto 2026-01-05 vs training")
    assert drift.message("2026-01-05", "2026-01-04").endswith(
        "36 tonight vs 36 in the baseline, toto 2026-01-05 vs toto 2026-01-04")
    assert "serving model on toto 2026-01-05 vs on its evaluation data" in prediction.message(
        "2026-01-05", None)
    schema = gate.findings_from_summary(SUMMARY)[0]
    assert "wolf" in schema.message("2026-01-05", None)


def test_policy_blocks_schema_and_skew_and_only_warns_on_drift_and_prediction():
    decision = gate.decide(gate.findings_from_summary(SUMMARY), POLICY, force_push=False)
    assert decision.blocked and not decision.forced
    assert {f.kind for f in decision.blocking} == {"schema", "skew"}
    assert [f.kind for f in decision.warnings] == ["drift", "prediction"]
    drift_only = gate.decide(gate.findings_from_summary({"drift": SUMMARY["drift"]}),
                             POLICY, force_push=False)
    assert not drift_only.blocked and drift_only.needs_alert


def test_force_push_overrides_the_block_and_says_so():
    decision = gate.decide(gate.findings_from_summary(SUMMARY), POLICY, force_push=True)
    assert not decision.blocked and decision.forced
    subject, body = gate.alert_text(decision, "2026-01-05", "2026-01-04",
                                    "http://airflow/emerald-reports/night/2026-01-05")
    assert "force_push" in subject
    assert "aspect_ratio: KS distance 0.77 > 0.30, p 1.0e-04" in body
    assert "http://airflow/emerald-reports/night/2026-01-05" in body


def test_a_clean_night_needs_no_alert():
    decision = gate.decide([], POLICY, force_push=False)
    assert not decision.blocked and not decision.needs_alert


def _skew_only():
    return {"date": SUMMARY["date"], "skew": SUMMARY["skew"]}


def test_an_acknowledged_skew_no_longer_blocks_but_is_reported_and_alerted(tmp_path):
    path = tmp_path / "acks.yaml"
    ack = acknowledgments.add(path, feature="aspect_ratio", kind="skew",
                              from_night="2026-01-05", reason="portraits are expected now",
                              by="dorothy")
    acks = acknowledgments.load(path)
    decision = gate.decide(gate.findings_from_summary(_skew_only(), acks), POLICY, False)
    assert not decision.blocked and not decision.blocking and not decision.needs_alert
    (finding,) = decision.acknowledged
    assert finding.acknowledgment_id == ack.id
    assert "ACKNOWLEDGED #1: acknowledged by dorothy from 2026-01-05: portraits are expected" \
        in finding.message("2026-01-05", None)
    # With a blocking finding beside it, the alert lists the acknowledged one, marked.
    both = gate.decide(gate.findings_from_summary(dict(SUMMARY), acks), POLICY, False)
    assert both.blocked and "aspect_ratio" not in {f.feature for f in both.blocking}
    _, body = gate.alert_text(both, "2026-01-05", "2026-01-04", "http://x")
    assert "Acknowledged (accepted shifts, not blocking):" in body
    assert "aspect_ratio: KS distance 0.77" in body.split("Acknowledged")[1]


@pytest.mark.parametrize("change", [
    {"from_night": "2026-01-06"},          # applies from a later night only
    {"kind": "drift"},                     # another kind
    {"feature": "brightness"},             # another property
])
def test_an_acknowledgment_applies_only_to_its_property_kind_and_nights(tmp_path, change):
    args = {"feature": "aspect_ratio", "kind": "skew", "from_night": "2026-01-05",
            "reason": "expected", "by": "dorothy", **change}
    acknowledgments.add(tmp_path / "acks.yaml", **args)
    acks = acknowledgments.load(tmp_path / "acks.yaml")
    decision = gate.decide(gate.findings_from_summary(_skew_only(), acks), POLICY, False)
    assert decision.blocked and not decision.acknowledged


def test_a_revoked_acknowledgment_blocks_again_and_stays_on_record(tmp_path):
    path = tmp_path / "acks.yaml"
    acknowledgments.add(path, feature="aspect_ratio", kind="skew", from_night="2026-01-01",
                        reason="expected", by="dorothy")
    acknowledgments.revoke(path, 1, reason="portraits were a phase", by="toto")
    (entry,) = acknowledgments.load(path)
    assert not entry.active and entry.revoked_by == "toto" and entry.reason == "expected"
    decision = gate.decide(gate.findings_from_summary(_skew_only(), [entry]), POLICY, False)
    assert decision.blocked
    with pytest.raises(acknowledgments.AcknowledgmentError, match="was revoked"):
        acknowledgments.revoke(path, 1, reason="again", by="toto")


@pytest.mark.parametrize("bad, message", [
    ({"feature": "colour"}, "not a compared skew property"),
    ({"kind": "mood"}, "kind 'mood' is not one of"),
    ({"from_night": "2026-13-01"}, "is not YYYY-MM-DD"),
    ({"reason": "  "}, "needs a reason"),
])
def test_a_bad_acknowledgment_is_refused_and_nothing_is_written(tmp_path, bad, message):
    args = {"feature": "aspect_ratio", "kind": "skew", "from_night": "2026-01-05",
            "reason": "expected", "by": "dorothy", **bad}
    with pytest.raises(acknowledgments.AcknowledgmentError, match=message):
        acknowledgments.add(tmp_path / "acks.yaml", **args)
    assert not (tmp_path / "acks.yaml").exists()


def test_the_ack_command_adds_lists_and_revokes(tmp_path, monkeypatch, capsys):
    from pipeline_src.tools import cli

    monkeypatch.setenv("EMERALD_ACKNOWLEDGMENTS", str(tmp_path / "acks.yaml"))
    assert cli.main(["ack", "add", "--feature", "aspect_ratio", "--kind", "skew",
                     "--from-night", "2026-01-05", "--reason", "portraits", "--by", "dorothy"]) == 0
    assert cli.main(["ack", "revoke", "1", "--reason", "done", "--by", "toto"]) == 0
    assert cli.main(["ack", "list"]) == 0
    out = capsys.readouterr().out
    assert "recorded acknowledgment 1" in out and "revoked acknowledgment 1" in out
    assert "REVOKED" in out and "by toto: done" in out
    assert cli.main(["ack", "revoke", "7", "--reason", "x", "--by", "y"]) == 2
    assert "no acknowledgment 7" in capsys.readouterr().err
    text = (tmp_path / "acks.yaml").read_text()
    assert text.startswith("# Accepted, lasting shifts") and "revoked_by: toto" in text
    (entry,) = acknowledgments.load(tmp_path / "acks.yaml")
    assert entry.from_night == dt.date(2026, 1, 5) and entry.by == "dorothy"


def test_late_uploads_caught_up_tonight_warn_and_are_spelled_out_in_the_alert(tmp_path):
    """The ingest task's record (pipeline_src.ingest.late) becomes a warning: alerted,
    never blocking, with the night it belonged to and how many arrived late."""
    from pipeline_src.decision import report
    from pipeline_src.ingest import late

    late.write_record(tmp_path, "2026-01-05", [
        late.LateNight(night="2026-01-03", kind="late", objects=["cam/toto/2026-01-03/lion/x.jpg"],
                       count=1, ingested=1),
        late.LateNight(night="2026-01-04", kind="missed", objects=["a", "b"], count=2,
                       ingested=1, quarantined=1)])
    summary = {"date": "2026-01-05",
               "late_uploads": report.late_upload_findings(tmp_path, "2026-01-05")}
    policy = GateConfig(block=("schema", "skew"), warn=("drift", "prediction", "late"))
    decision = gate.decide(gate.findings_from_summary(summary), policy, force_push=False)
    assert not decision.blocked and decision.needs_alert
    assert [(f.kind, f.feature, f.anomaly) for f in decision.warnings] == [
        ("late", "toto/2026-01-03", "LATE_UPLOADS"), ("late", "toto/2026-01-04", "MISSED_NIGHT")]
    _, body = gate.alert_text(decision, "2026-01-05", None, "http://x/report")
    assert ("toto/2026-01-03: 1 upload(s) arrived after that night was ingested; ingested "
            "tonight (1 accepted, 0 quarantined) (LATE_UPLOADS), caught up on 2026-01-05") in body
    assert "toto/2026-01-04: 2 upload(s) were never ingested (no DAG run that night)" in body
    assert report.late_upload_findings(tmp_path, "2026-01-06") == []    # nothing that night
