"""The data gate's policy: sort a night's findings and decide the push.

TFX has no native way to stop a run on anomalies (its validators only record
them), nor alerts: this is that gate. It works on the night summary
(pipeline_src/decision/report.py gathers it from MLMD); the task around it is in
pipeline_src/orchestration/tasks.py.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from pipeline_src.config import Config, GateConfig

STATISTIC_NAMES = {   # TFDV's anomaly types that carry a measured value
    "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH": "Jensen-Shannon divergence",
    "COMPARATOR_L_INFTY_HIGH": "L-infinity distance",
}
# Summary keys of each finding kind: TFDV's schema anomalies, then Emerald's detector.
# Late uploads: photos of earlier nights caught up tonight (pipeline_src.ingest.late).
# Model: the Evaluator did not bless tonight's model (pipeline_src.decision.blessing): a
# night that retrains and pushes nothing must page like a data finding, not pass green.
SUMMARY_KEYS = (("schema", "anomalies"), ("skew", "skew"), ("drift", "drift"),
                ("prediction", "prediction"), ("late", "late_uploads"), ("model", "model_findings"))


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str                     # schema | skew | drift | prediction | late | model
    feature: str
    anomaly: str                  # TFDV's anomaly type, or the detector's test
    where: str                    # split (schema), or the baseline compared with
    description: str
    value: Optional[float] = None          # the effect (or TFDV's value)
    threshold: Optional[float] = None      # the minimum effect (or TFDV's threshold)
    effect_name: Optional[str] = None      # KS distance | total variation distance
    p_value: Optional[float] = None
    alpha: Optional[float] = None          # the level the test was held to tonight
    n_tonight: Optional[int] = None
    n_baseline: Optional[int] = None
    acknowledged: Optional[str] = None     # who accepted this shift, from when, why
    acknowledgment_id: Optional[int] = None

    def statistic(self) -> str:
        return self.effect_name or STATISTIC_NAMES.get(
            self.anomaly, self.anomaly.replace("_", " ").lower())

    def _against(self, night: str, previous_night: Optional[str]) -> str:
        if self.kind == "skew":
            return f"toto {night} vs training"
        if self.kind == "drift":
            return f"toto {night} vs toto {previous_night or 'last night'}"
        if self.kind == "prediction":
            return f"serving model on toto {night} vs on its evaluation data"
        if self.kind == "late":
            return f"caught up on {night}"
        if self.kind == "model":
            return f"Evaluator on the {self.where} split of {night}"
        return f"split {self.where} of {night}"

    def message(self, night: str, previous_night: Optional[str]) -> str:
        """E.g. 'aspect_ratio: KS distance 0.77 > 0.30, p 1.0e-04 < 5.0e-04, 36 tonight
        vs 156 in the baseline, toto 2026-01-02 vs training'."""
        against = self._against(night, previous_night)
        if self.kind == "model":     # the description says which bound failed, and how
            text = f"model not blessed: {self.description} ({against})"
        elif self.value is None or self.threshold is None:
            text = f"{self.feature}: {self.description} ({self.anomaly}), {against}"
        elif self.p_value is None:
            text = (f"{self.feature}: {self.statistic()} {self.value:.2f} > "
                    f"{self.threshold:.2f}, {against}")
        else:
            text = (f"{self.feature}: {self.statistic()} {self.value:.2f} > {self.threshold:.2f}, "
                    f"p {self.p_value:.1e} < {self.alpha:.1e}, {self.n_tonight} tonight vs "
                    f"{self.n_baseline} in the baseline, {against}")
        if self.acknowledged:
            text += f" [ACKNOWLEDGED #{self.acknowledgment_id}: {self.acknowledged}]"
        return text

    def as_dict(self, night: str, previous_night: Optional[str]) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["statistic"] = self.statistic()
        out["message"] = self.message(night, previous_night)
        return out


@dataclasses.dataclass(frozen=True)
class Decision:
    blocking: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    force_push: bool
    acknowledged: tuple[Finding, ...] = ()   # accepted shifts: reported, never blocking

    @property
    def blocked(self) -> bool:
        """The push is stopped: blocking findings and no override."""
        return bool(self.blocking) and not self.force_push

    @property
    def forced(self) -> bool:
        """The override pushed despite blocking findings."""
        return bool(self.blocking) and self.force_push

    @property
    def unblessed(self) -> bool:
        """Tonight's model was not blessed: nothing is pushed, force_push or not."""
        return any(f.kind == "model" for f in self.blocking + self.warnings)

    @property
    def needs_alert(self) -> bool:
        """Acknowledged findings alone send nothing: accepting a shift ends the nightly page."""
        return bool(self.blocking or self.warnings)

    def findings(self) -> tuple[Finding, ...]:
        return self.blocking + self.warnings + self.acknowledged


def findings_from_summary(summary: dict[str, Any], acks: Sequence[Any] = ()) -> list[Finding]:
    """Findings from `report.night_summary()`'s lists, acknowledgments applied."""
    from pipeline_src.decision import acknowledgments

    night = summary.get("date") or ""
    found = []
    for kind, key in SUMMARY_KEYS:
        seen = set()
        for item in summary.get(key, []):
            dedupe = (item["feature"], item["type"], item["where"])
            if dedupe in seen:
                continue
            seen.add(dedupe)
            ack = (acknowledgments.matching(acks, item["feature"], kind, night)
                   if kind in ("skew", "drift", "prediction") and night else None)
            found.append(Finding(
                kind=kind, feature=item["feature"], anomaly=item["type"],
                where=item["where"], description=item["description"],
                value=item.get("value"), threshold=item.get("threshold"),
                effect_name=item.get("effect_name"), p_value=item.get("p_value"),
                alpha=item.get("alpha"), n_tonight=item.get("n_tonight"),
                n_baseline=item.get("n_baseline"),
                acknowledged=ack.describe() if ack else None,
                acknowledgment_id=ack.id if ack else None))
    return found


def decide(findings: Sequence[Finding], policy: GateConfig, force_push: bool) -> Decision:
    live = [f for f in findings if not f.acknowledged]
    return Decision(
        blocking=tuple(f for f in live if f.kind in policy.block),
        warnings=tuple(f for f in live if f.kind in policy.warn),
        force_push=force_push,
        acknowledged=tuple(f for f in findings if f.acknowledged))


def alert_text(decision: Decision, night: str, previous_night: Optional[str],
               report_url: str) -> tuple[str, str]:
    """(subject, plain text body) of the night's one alert."""
    if decision.forced and decision.unblessed:
        verdict = ("force_push, but the model is NOT blessed: NOT pushed (the Pusher "
                   "checks the blessing itself)")
    elif decision.forced:
        verdict = "PUSHED ANYWAY (force_push) despite blocking findings"
    elif decision.blocked:
        verdict = "push BLOCKED" + (" (model not blessed)" if decision.unblessed else "")
    elif decision.unblessed:
        verdict = "model NOT blessed: not pushed"
    else:
        verdict = "pushed as usual; warnings only"
    subject = f"[Emerald] night {night}: {verdict}"
    lines = [f"Emerald night {night}: {verdict}.", ""]
    if decision.blocking:
        lines.append("Blocking findings:")
        lines += [f"  - {f.message(night, previous_night)}" for f in decision.blocking]
    if decision.warnings:
        lines.append("Warnings:")
        lines += [f"  - {f.message(night, previous_night)}" for f in decision.warnings]
    if decision.acknowledged:
        lines.append("Acknowledged (accepted shifts, not blocking):")
        lines += [f"  - {f.message(night, previous_night)}" for f in decision.acknowledged]
    lines += ["", f"Night report: {report_url}"]
    return subject, "\n".join(lines)


def gate_night(config: Config, summary: dict[str, Any], force_push: bool) -> Decision:
    """The decision for a night's summary, with the acknowledgments on file now."""
    from pipeline_src.decision import acknowledgments

    acks = acknowledgments.load(config.paths.acknowledgments)
    return decide(findings_from_summary(summary, acks), config.gate, force_push)


class PushBlocked(RuntimeError):
    """The gate stopped tonight's push; the message lists the blocking findings."""
