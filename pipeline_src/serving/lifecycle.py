"""The model's lifecycle in the history: a night's push recorded, a rollback, the listing.

A push entry is built from what the night left in MLMD (the Trainer's Model,
the Evaluator's ModelBlessing, the Pusher's PushedModel, ExampleGen's
Examples) and from its summary (the sliced accuracy), so the history says
which artifact serves without anyone having to trust a folder name.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Optional

from pipeline_src import names
from pipeline_src.config import Config, UsageError
from pipeline_src.serving import history

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _ref(artifact) -> Optional[dict[str, Any]]:
    return None if artifact is None else {"id": int(artifact.id), "uri": artifact.uri}


CORPUS = "corpus"     # the corpus's name among the nights a training record lists


def push_entry(config: Config, summary: dict[str, Any], store) -> dict[str, Any]:
    """The history entry of the night's push (the summary says it pushed)."""
    from pipeline_src.decision.report import run_outputs

    found: dict[str, Any] = {}
    for node, items in run_outputs(store, summary["tfx_run_id"]).items():
        for kind, artifact in items:
            if node != names.RESOLVER and kind in ("Model", "ModelBlessing", "PushedModel",
                                                    "Examples"):
                found[kind] = artifact
    examples = found.get("Examples")
    # What the model learnt from: the Trainer's own record (warm starts included), the one
    # source; a model from before training records has none.
    trained = list((summary.get("training") or {}).get("trained_on_nights") or [])
    return {
        "version": str(summary["pushed_version"]),
        "night": summary["date"],
        "time": _now(),
        "method": "force_push" if summary.get("forced") else "nightly",
        "tfx_run_id": summary["tfx_run_id"],
        "metrics": {"accuracy": summary.get("accuracy") or {"overall": None, "slices": {}}},
        "blessing": {"blessed": bool(summary.get("blessed")),
                     **(_ref(found.get("ModelBlessing")) or {})},
        "trained_on": {"corpus": CORPUS in trained,
                       "nights": [n for n in trained if n != CORPUS],
                       "eval_mode": summary.get("eval_mode"),
                       "examples": _ref(examples)},
        "model": _ref(found.get("Model")),
        "pushed_model": _ref(found.get("PushedModel")),
    }


def record_push(config: Config, summary: dict[str, Any], store=None) -> Optional[dict]:
    """Appends the night's push to the history once, and makes it serve; None if not pushed.

    Idempotent: a rerun of the report task finds the entry of that version and
    only re-syncs the pointer, which follows the newest entry, so a rollback
    made since is not undone.
    """
    if not summary.get("pushed") or not summary.get("pushed_version"):
        return None
    serving, version = config.paths.serving, str(summary["pushed_version"])
    entry = next((e for e in history.entries(serving)
                  if e["version"] == version and e["method"] != "rollback"), None)
    if entry is None:
        if store is None:
            from pipeline_src.decision.report import open_store

            store = open_store(config)
        entry = history.append(serving, push_entry(config, summary, store))
        log.info("history: version %s pushed %s (entry %d)", version, entry["method"],
                 entry["seq"])
    history.sync_pointer(serving, config.pipeline_name)
    return entry


def entries_of(serving: str, version: str) -> list[dict[str, Any]]:
    """The version's history entries, oldest first; UsageError naming the known versions
    when it has none."""
    past = history.entries(serving)
    mine = [e for e in past if e["version"] == version]
    if not mine:
        known = ", ".join(dict.fromkeys(e["version"] for e in past)) or "none"
        raise UsageError(f"no pushed version {version!r} in {history.join(serving, 'history')}"
                         f" (versions: {known}); see `emerald models`")
    return mine


def rollback(config: Config, version: str, reason: Optional[str] = None) -> dict[str, Any]:
    """Makes an earlier pushed version serve again; raises UsageError for an unknown one."""
    serving, version = config.paths.serving, str(version)
    pushes = entries_of(serving, version)
    if not history.has_saved_model(serving, version):
        raise UsageError(f"version {version} is in the history but its SavedModel is gone "
                         f"from {history.version_path(serving, version)}")
    current = history.sync_pointer(serving, config.pipeline_name)
    if current and str(current["version"]) == version:
        raise UsageError(f"version {version} already serves")
    origin = pushes[-1]
    entry = {key: origin.get(key) for key in ("version", "night", "tfx_run_id", "metrics",
                                              "blessing", "trained_on", "model", "pushed_model")}
    entry.update(method="rollback", time=_now(), reason=reason,
                 previous_version=current and str(current["version"]))
    entry = history.append(serving, entry)
    history.point_at(serving, entry, config.pipeline_name)
    log.info("history: rolled back to version %s (entry %d)", version, entry["seq"])
    return entry


def listing(config: Config) -> list[dict[str, Any]]:
    """The history, oldest first; the entry CURRENT points at has "serving": true."""
    serving = config.paths.serving
    past = history.entries(serving)
    pointer = history.read_pointer(serving)
    serving_seq = None
    if pointer:
        serving_seq = pointer.get("seq")
        if serving_seq is None:   # a pointer without seq: the newest entry of its version
            serving_seq = next((e["seq"] for e in reversed(past)
                                if e["version"] == str(pointer["version"])), None)
    return [{**e, "serving": e["seq"] == serving_seq} for e in past]
