"""The serving location's own record: an append-only history, the pointer, TF Serving's config.

    {serving}/{version}/                   a SavedModel, as TFX's Pusher writes it
    {serving}/history/{seq:06d}-{version}.json   one object per push or rollback, never rewritten
    {serving}/CURRENT                      {"version", "seq", ...}: the entry that serves
    {serving}/models.config                TF Serving's model config: that version, specifically

One object per entry (not one file rewritten each night) because a GCS object
cannot be appended to, and rewriting a shared file loses an entry when two
writers race; a new entry is written under a temporary name and renamed to its
final one only if that name is free. The pointer follows the newest entry:
whatever appends an entry then calls sync_pointer(), and a crash between the
two is repaired by the next sync. CURRENT and models.config are each written
whole to a temporary object and renamed over the old one, so a reader sees the
old pointer or the new one, never half of one.

All I/O is tf.io.gfile (the serving location may be gs://).
"""
from __future__ import annotations

import json
import posixpath
import re
import uuid
from typing import Any, Optional

HISTORY_DIR = "history"
POINTER_FILE = "CURRENT"
MODEL_CONFIG_FILE = "models.config"
METHODS = ("nightly", "force_push", "rollback")
ENTRY_NAME = re.compile(r"^(\d{6})-([^/]+)\.json$")
APPEND_ATTEMPTS = 5          # a concurrent writer took the sequence number: take the next one


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(serving: str, *parts: str) -> str:
    """posixpath, not os.path or pathlib: gs://bucket/prefix keeps its double slash."""
    return posixpath.join(serving.rstrip("/"), *parts)


def _read_json(path: str) -> Any:
    with _gfile().GFile(path, "r") as handle:
        return json.loads(handle.read())


def _write_atomically(path: str, text: str, overwrite: bool, taken: str = "") -> None:
    """Write a temporary object beside `path`, then rename it into place.

    overwrite=False fails (tf.errors.AlreadyExistsError) when `path`, or anything
    matching the glob `taken`, exists.
    """
    import tensorflow as tf

    gfile = _gfile()
    parent = posixpath.dirname(path)
    gfile.makedirs(parent)
    temp = join(parent, f".tmp-{uuid.uuid4().hex}")
    with gfile.GFile(temp, "w") as handle:
        handle.write(text)
    try:
        if not overwrite and (gfile.exists(path) or (taken and gfile.glob(taken))):
            raise tf.errors.AlreadyExistsError(None, None, f"{path} exists")
        gfile.rename(temp, path, overwrite=overwrite)
    except tf.errors.OpError:
        if gfile.exists(temp):
            gfile.remove(temp)
        raise


def entries(serving: str) -> list[dict[str, Any]]:
    """Every entry, oldest first (by sequence number)."""
    gfile = _gfile()
    folder = join(serving, HISTORY_DIR)
    if not gfile.isdir(folder):
        return []
    out = []
    for name in sorted(gfile.listdir(folder)):
        match = ENTRY_NAME.match(name.rstrip("/"))
        if match:
            entry = _read_json(join(folder, name))
            entry["seq"] = int(match.group(1))
            out.append(entry)
    return sorted(out, key=lambda e: e["seq"])


def append(serving: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Adds `entry` as the next sequence number; returns it with its `seq`."""
    import tensorflow as tf

    if entry.get("method") not in METHODS:
        raise ValueError(f"history entry method {entry.get('method')!r} is not one of {METHODS}")
    for _ in range(APPEND_ATTEMPTS):
        seq = max((e["seq"] for e in entries(serving)), default=0) + 1
        stored = {**entry, "seq": seq}
        path = join(serving, HISTORY_DIR, f"{seq:06d}-{entry['version']}.json")
        try:     # the number is taken whatever the version in the name
            _write_atomically(path, json.dumps(stored, indent=1, sort_keys=True),
                              overwrite=False, taken=join(serving, HISTORY_DIR, f"{seq:06d}-*"))
        except tf.errors.AlreadyExistsError:
            continue
        return stored
    raise RuntimeError(f"could not append to {join(serving, HISTORY_DIR)}: "
                       f"{APPEND_ATTEMPTS} concurrent writers took every sequence number")


def read_pointer(serving: str) -> Optional[dict[str, Any]]:
    """CURRENT, or None when nothing was pointed at yet (or the object is unreadable)."""
    path = join(serving, POINTER_FILE)
    if not _gfile().exists(path):
        return None
    try:
        pointer = _read_json(path)
    except ValueError:
        return None
    return pointer if isinstance(pointer, dict) and pointer.get("version") else None


def model_config_text(serving: str, version: str, model_name: str) -> str:
    """TF Serving's --model_config_file: this one version serves, not the newest folder."""
    return (
        "model_config_list {\n"
        "  config {\n"
        f"    name: {json.dumps(model_name)}\n"
        f"    base_path: {json.dumps(serving.rstrip('/'))}\n"
        '    model_platform: "tensorflow"\n'
        "    model_version_policy {\n"
        f"      specific {{ versions: {int(version)} }}\n"
        "    }\n"
        "  }\n"
        "}\n")


def point_at(serving: str, entry: dict[str, Any], model_name: str) -> dict[str, Any]:
    """Makes `entry`'s version serve: models.config first, then CURRENT (the commit point)."""
    pointer = {key: entry.get(key) for key in ("version", "seq", "method", "night", "time")}
    pointer["model"] = entry.get("model")
    pointer["path"] = version_path(serving, entry["version"])
    _write_atomically(join(serving, MODEL_CONFIG_FILE),
                      model_config_text(serving, entry["version"], model_name), overwrite=True)
    _write_atomically(join(serving, POINTER_FILE),
                      json.dumps(pointer, indent=1, sort_keys=True), overwrite=True)
    return pointer


def sync_pointer(serving: str, model_name: str) -> Optional[dict[str, Any]]:
    """Points at the newest entry unless CURRENT already does; None with no history."""
    history = entries(serving)
    if not history:
        return read_pointer(serving)
    newest = history[-1]
    pointer = read_pointer(serving)
    if pointer and pointer.get("seq") == newest["seq"] \
            and str(pointer.get("version")) == str(newest["version"]):
        return pointer
    return point_at(serving, newest, model_name)


def version_path(serving: str, version: str) -> str:
    return join(serving, str(version))


def has_saved_model(serving: str, version: str) -> bool:
    return _gfile().exists(join(version_path(serving, version), "saved_model.pb"))


def serving_version(serving: str) -> Optional[str]:
    """CURRENT's version; without a pointer, the newest version folder (TF Serving's default)."""
    pointer = read_pointer(serving)
    if pointer:
        return str(pointer["version"])
    gfile = _gfile()
    if not gfile.isdir(serving):
        return None
    versions = sorted((n.rstrip("/") for n in gfile.listdir(serving)
                       if n.rstrip("/").isdigit()), key=int)
    versions = [v for v in versions if has_saved_model(serving, v)]
    return versions[-1] if versions else None
