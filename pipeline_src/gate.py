"""The data gate: sort this run's anomalies into schema / skew / drift and decide the push.

TFX has no native way to stop a run on anomalies (ExampleValidator and
DistributionValidator only record them), nor alerts: this is that gate. It
reads the anomalies the run's validators wrote, found through MLMD.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from pipeline_src.config import Config, GateConfig

SCHEMA_NODE = "ExampleValidator"
KIND_BY_NODE = {SCHEMA_NODE: "schema", "SkewValidator": "skew", "DriftValidator": "drift"}
STATISTIC_NAMES = {
    "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH": "Jensen-Shannon divergence",
    "COMPARATOR_L_INFTY_HIGH": "L-infinity distance",
}


@dataclasses.dataclass(frozen=True)
class Finding:
    kind: str                     # schema | skew | drift
    feature: str
    anomaly: str                  # TFDV's anomaly type
    where: str                    # split, or split pair "eval_train"
    description: str
    value: Optional[float] = None
    threshold: Optional[float] = None

    def statistic(self) -> str:
        return STATISTIC_NAMES.get(self.anomaly, self.anomaly.replace("_", " ").lower())

    def message(self, night: str, previous_night: Optional[str]) -> str:
        """E.g. 'aspect_ratio: Jensen-Shannon divergence 0.41 > 0.10, toto 2026-01-05 vs training'."""
        if self.kind == "skew":
            against = f"toto {night} vs training"
        elif self.kind == "drift":
            against = f"toto {night} vs toto {previous_night or 'last night'}"
        else:
            against = f"split {self.where} of {night}"
        if self.value is not None and self.threshold is not None:
            return (f"{self.feature}: {self.statistic()} {self.value:.2f} > "
                    f"{self.threshold:.2f}, {against}")
        return f"{self.feature}: {self.description} ({self.anomaly}), {against}"

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

    @property
    def blocked(self) -> bool:
        """The push is stopped: blocking findings and no override."""
        return bool(self.blocking) and not self.force_push

    @property
    def forced(self) -> bool:
        """The override pushed despite blocking findings."""
        return bool(self.blocking) and self.force_push

    @property
    def needs_alert(self) -> bool:
        return bool(self.blocking or self.warnings)


def findings_from_summary(summary: dict[str, Any]) -> list[Finding]:
    """Findings from `report.night_summary()`'s anomalies / skew / drift lists."""
    found = []
    for kind, key in (("schema", "anomalies"), ("skew", "skew"), ("drift", "drift")):
        seen = set()
        for item in summary.get(key, []):
            dedupe = (item["feature"], item["type"], item["where"])
            if dedupe in seen:
                continue
            seen.add(dedupe)
            found.append(Finding(kind=kind, feature=item["feature"], anomaly=item["type"],
                                 where=item["where"], description=item["description"],
                                 value=item.get("value"), threshold=item.get("threshold")))
    return found


def decide(findings: Sequence[Finding], policy: GateConfig, force_push: bool) -> Decision:
    return Decision(
        blocking=tuple(f for f in findings if f.kind in policy.block),
        warnings=tuple(f for f in findings if f.kind in policy.warn),
        force_push=force_push)


def alert_text(decision: Decision, night: str, previous_night: Optional[str],
               report_url: str) -> tuple[str, str]:
    """(subject, plain text body) of the night's one alert."""
    if decision.forced:
        verdict = "PUSHED ANYWAY (force_push) despite blocking findings"
    elif decision.blocked:
        verdict = "push BLOCKED"
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
    lines += ["", f"Night report: {report_url}"]
    return subject, "\n".join(lines)


def gate_night(config: Config, summary: dict[str, Any], force_push: bool) -> Decision:
    return decide(findings_from_summary(summary), config.gate, force_push)
