"""Accepted shifts: a person says a lasting change in the data is expected now.

After Dorothy adapts the model to, say, Toto's portrait photos, the aspect-ratio
skew is real but no longer a reason to stop the push. She records that with
`emerald ack add`; the finding still shows (marked acknowledged) in the report
and in any alert, and no longer blocks.

Why a version-controlled YAML file (include/acknowledgments.yaml by default)
rather than a database row or an Airflow Variable: accepting a shift changes
what the gate lets through, so it deserves the review a code change gets; the
file travels with the DAGs to every deployment (Composer ships include/), is
read with the configuration by every node runner, and `git log` is its audit
trail next to the file's own record of who, when and why. Entries are never
deleted: revoking one stamps it revoked (who, when, why), and it stops applying.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import yaml

from pipeline_src import features
from pipeline_src.arguments import night_arg

KINDS = ("skew", "drift", "prediction")
PROPERTIES = {
    "skew": features.COMPARED_NUMERIC + features.COMPARED_CATEGORICAL,
    "drift": features.COMPARED_NUMERIC + features.COMPARED_CATEGORICAL,
    "prediction": (features.PREDICTED_CLASS, features.CONFIDENCE),
}
_HEADER = """\
# Accepted, lasting shifts (`emerald ack add | list | revoke`; README "Accepting a shift").
# An entry stops the gate from blocking on that property and kind from its first
# night on; the finding is still reported and alerted, marked acknowledged.
# Commit this file: review and `git log` are the audit trail. Never delete an
# entry: `emerald ack revoke` marks it revoked.
"""


class AcknowledgmentError(ValueError):
    """An acknowledgment that cannot be recorded or revoked as asked."""


@dataclasses.dataclass(frozen=True)
class Acknowledgment:
    id: int
    feature: str
    kind: str
    from_night: dt.date
    reason: str
    by: str
    recorded_at: str
    revoked_at: Optional[str] = None
    revoked_by: Optional[str] = None
    revoked_reason: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def applies(self, feature: str, kind: str, night: str) -> bool:
        return (self.active and self.feature == feature and self.kind == kind
                and dt.date.fromisoformat(night) >= self.from_night)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["from_night"] = self.from_night.isoformat()
        return {k: v for k, v in out.items() if v is not None}

    def describe(self) -> str:
        return f"acknowledged by {self.by} from {self.from_night}: {self.reason}"


def _parse(entry: Any, path: Path) -> Acknowledgment:
    if not isinstance(entry, dict):
        raise AcknowledgmentError(f"{path}: every acknowledgment is a mapping, not {entry!r}")
    try:
        return Acknowledgment(
            id=int(entry["id"]), feature=str(entry["feature"]), kind=str(entry["kind"]),
            from_night=dt.date.fromisoformat(str(entry["from_night"])),
            reason=str(entry["reason"]), by=str(entry["by"]),
            recorded_at=str(entry["recorded_at"]),
            revoked_at=entry.get("revoked_at"), revoked_by=entry.get("revoked_by"),
            revoked_reason=entry.get("revoked_reason"))
    except (KeyError, ValueError, TypeError) as exc:
        raise AcknowledgmentError(f"{path}: bad acknowledgment {entry!r}: {exc}") from None


def load(path: os.PathLike) -> list[Acknowledgment]:
    """Every acknowledgment in the file, revoked ones included; [] when there is no file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return []
    except yaml.YAMLError as exc:
        raise AcknowledgmentError(f"{path} is not valid YAML: {exc}") from None
    entries = raw.get("acknowledgments") or [] if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise AcknowledgmentError(f"{path}: expected a mapping with an 'acknowledgments' list")
    return [_parse(e, path) for e in entries]


def matching(acks: Iterable[Acknowledgment], feature: str, kind: str,
             night: str) -> Optional[Acknowledgment]:
    """The newest active acknowledgment covering this finding, if any."""
    hits = [a for a in acks if a.applies(feature, kind, night)]
    return max(hits, key=lambda a: a.id) if hits else None


def _save(path: Path, acks: Sequence[Acknowledgment]) -> None:
    """Atomic: a crash mid-write leaves the old file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump({"acknowledgments": [a.as_dict() for a in acks]}, sort_keys=False,
                          allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(_HEADER + body)
    os.replace(tmp, path)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def add(path: os.PathLike, *, feature: str, kind: str, from_night: str, reason: str,
        by: str) -> Acknowledgment:
    if kind not in KINDS:
        raise AcknowledgmentError(f"kind {kind!r} is not one of {KINDS}")
    if feature not in PROPERTIES[kind]:
        raise AcknowledgmentError(
            f"{feature!r} is not a compared {kind} property; one of {PROPERTIES[kind]}")
    try:
        first = dt.date.fromisoformat(from_night)
    except ValueError:
        raise AcknowledgmentError(f"--from-night {from_night!r} is not YYYY-MM-DD") from None
    if not reason.strip() or not by.strip():
        raise AcknowledgmentError("an acknowledgment needs a reason and who gives it")
    acks = load(path)
    ack = Acknowledgment(id=max((a.id for a in acks), default=0) + 1, feature=feature,
                         kind=kind, from_night=first, reason=reason.strip(), by=by.strip(),
                         recorded_at=_now())
    _save(Path(path), acks + [ack])
    return ack


def revoke(path: os.PathLike, ack_id: int, *, reason: str, by: str) -> Acknowledgment:
    acks = load(path)
    target = next((a for a in acks if a.id == ack_id), None)
    if target is None:
        raise AcknowledgmentError(f"no acknowledgment {ack_id} in {path}")
    if not target.active:
        raise AcknowledgmentError(f"acknowledgment {ack_id} was revoked at {target.revoked_at}")
    if not reason.strip() or not by.strip():
        raise AcknowledgmentError("a revocation needs a reason and who gives it")
    revoked = dataclasses.replace(target, revoked_at=_now(), revoked_by=by.strip(),
                                  revoked_reason=reason.strip())
    _save(Path(path), [revoked if a.id == ack_id else a for a in acks])
    return revoked


# ------------------------------------------------------------------- the CLI

def _run(args) -> int:
    import json
    import sys

    from pipeline_src.config import load_config

    path = load_config().paths.acknowledgments
    try:
        if args.ack_command == "add":
            ack = add(path, feature=args.feature, kind=args.kind, from_night=args.from_night,
                      reason=args.reason, by=args.by)
            print(f"recorded acknowledgment {ack.id} in {path}: {ack.kind} on {ack.feature} "
                  f"from {ack.from_night} (commit the file)")
        elif args.ack_command == "revoke":
            ack = revoke(path, args.id, reason=args.reason, by=args.by)
            print(f"revoked acknowledgment {ack.id} in {path} (commit the file)")
        else:
            acks = load(path)
            if args.json:
                print(json.dumps([a.as_dict() for a in acks], indent=1))
            elif not acks:
                print(f"no acknowledgments in {path}")
            for a in acks if not args.json else ():
                state = "active" if a.active else (
                    f"REVOKED {a.revoked_at} by {a.revoked_by}: {a.revoked_reason}")
                print(f"{a.id:>3}  {a.kind:<10} {a.feature:<15} from {a.from_night}  "
                      f"by {a.by} at {a.recorded_at}: {a.reason}  [{state}]")
    except AcknowledgmentError as exc:
        print(f"emerald ack: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("ack", help="accept a lasting shift (skew, drift, prediction)")
    commands = parser.add_subparsers(dest="ack_command", required=True)
    add_p = commands.add_parser("add", help="record an acknowledgment")
    add_p.add_argument("--feature", required=True, help="the property, e.g. aspect_ratio")
    add_p.add_argument("--kind", required=True, choices=KINDS)
    add_p.add_argument("--from-night", required=True, type=night_arg,
                       help="first night it applies to, YYYY-MM-DD")
    add_p.add_argument("--reason", required=True, help="why the shift is expected now")
    add_p.add_argument("--by", required=True, help="who accepts it")
    list_p = commands.add_parser("list", help="every acknowledgment, revoked ones included")
    list_p.add_argument("--json", action="store_true")
    revoke_p = commands.add_parser("revoke", help="stop an acknowledgment from applying")
    revoke_p.add_argument("id", type=int)
    revoke_p.add_argument("--reason", required=True)
    revoke_p.add_argument("--by", required=True)
    parser.set_defaults(func=_run)
