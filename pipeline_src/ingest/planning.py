"""What to do with each listed object, decided from its name alone before anything is read.

Skips placeholders and the completion marker, quarantines objects outside a
safe label folder, holds unknown labels when asked to, and gives every other
object its file in the span (names made safe and unique).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Optional, Sequence

from .layout import MARKER_NAME, safe_name
from .manifest import STATUS_HELD, STATUS_QUARANTINED, STATUS_SKIPPED
from .sources import ObjectInfo

LABEL_NOT_IN_SCHEMA = "label not in schema"
UNKNOWN_LABEL_POLICIES = ("ingest", "hold")

_SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclasses.dataclass
class Plan:
    info: ObjectInfo
    rel: str
    label: Optional[str]
    file: Optional[str]         # label/safe_name inside the span
    status: str                 # what the plan already decided, or "" to fetch and decode
    reason: str = ""


def plan_objects(objects: Sequence[ObjectInfo], prefix: str, known_labels: Sequence[str],
                 unknown_labels: str) -> list[Plan]:
    plans, used = [], set()
    for info in objects:
        rel = info.name[len(prefix):]
        if not rel or rel.endswith("/"):
            plans.append(Plan(info, rel, None, None, STATUS_SKIPPED, "folder placeholder"))
            continue
        if rel == MARKER_NAME:
            plans.append(Plan(info, rel, None, None, STATUS_SKIPPED, "completion marker"))
            continue
        parts = rel.split("/")
        if len(parts) < 2:
            plans.append(Plan(info, rel, None, f"_no_label/{safe_name(rel)}", STATUS_QUARANTINED,
                              "not in a label folder"))
            continue
        label, name = parts[0], "/".join(parts[1:])
        if not _SAFE_LABEL.match(label):
            plans.append(Plan(info, rel, None, f"_bad_label/{safe_name(rel)}", STATUS_QUARANTINED,
                              f"unsafe label folder name {label!r}"))
            continue
        fname = safe_name(name)
        if (label, fname) in used:
            stem, ext = os.path.splitext(fname)
            fname = f"{stem}-{hashlib.sha1(rel.encode()).hexdigest()[:10]}{ext}"
        used.add((label, fname))
        if known_labels and label not in known_labels and unknown_labels == "hold":
            plans.append(Plan(info, rel, label, f"{label}/{fname}", STATUS_HELD,
                              LABEL_NOT_IN_SCHEMA))
            continue
        plans.append(Plan(info, rel, label, f"{label}/{fname}", ""))
    return plans
