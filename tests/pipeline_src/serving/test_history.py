"""The serving location's record on its own: entries are appended, never rewritten; the
pointer and TF Serving's config name one version and are replaced whole."""
from __future__ import annotations

import json

import pytest

from pipeline_src.serving import history


def _entry(version, method="nightly", **extra):
    return {"version": version, "method": method, "night": "2026-01-01", **extra}


def test_entries_are_one_object_each_numbered_in_order(tmp_path):
    serving = str(tmp_path / "serving")
    first = history.append(serving, _entry("100"))
    second = history.append(serving, _entry("200"))
    assert (first["seq"], second["seq"]) == (1, 2)
    names = sorted(p.name for p in (tmp_path / "serving" / "history").iterdir())
    assert names == ["000001-100.json", "000002-200.json"]       # no temporary left behind
    assert [e["version"] for e in history.entries(serving)] == ["100", "200"]
    before = (tmp_path / "serving" / "history" / "000001-100.json").read_text()
    history.append(serving, _entry("100", "rollback"))
    assert (tmp_path / "serving" / "history" / "000001-100.json").read_text() == before


def test_an_entry_never_replaces_one_that_exists(tmp_path, monkeypatch):
    """A writer that read the history before another appended takes the next number."""
    serving = str(tmp_path / "serving")
    history.append(serving, _entry("100"))
    stale = history.entries(serving)
    calls = []

    def entries_once_stale(where):
        calls.append(where)
        return stale if len(calls) == 1 else real_entries(where)

    real_entries = history.entries
    history.append(serving, _entry("200"))                        # the other writer
    monkeypatch.setattr(history, "entries", entries_once_stale)
    third = history.append(serving, _entry("300"))
    assert third["seq"] == 3 and len(calls) == 2
    monkeypatch.undo()
    assert [e["version"] for e in history.entries(serving)] == ["100", "200", "300"]


def test_an_unknown_method_is_refused(tmp_path):
    with pytest.raises(ValueError, match="method"):
        history.append(str(tmp_path), _entry("1", "by_hand"))


def test_the_pointer_follows_the_newest_entry_and_names_it_for_tf_serving(tmp_path):
    serving = str(tmp_path / "serving")
    assert history.sync_pointer(serving, "emerald") is None
    history.append(serving, _entry("100", model={"id": 3, "uri": "/m/3"}))
    pointer = history.sync_pointer(serving, "emerald")
    assert pointer["version"] == "100" and pointer["seq"] == 1
    assert json.loads((tmp_path / "serving" / "CURRENT").read_text())["model"]["id"] == 3
    config = (tmp_path / "serving" / "models.config").read_text()
    assert "specific { versions: 100 }" in config and f'"{serving}"' in config
    assert 'name: "emerald"' in config
    history.append(serving, _entry("200"))
    assert history.sync_pointer(serving, "emerald")["version"] == "200"
    assert "versions: 200" in (tmp_path / "serving" / "models.config").read_text()
    assert sorted(p.name for p in (tmp_path / "serving").iterdir()) == [
        "CURRENT", "history", "models.config"]                    # the temporaries renamed


def test_without_a_pointer_the_newest_version_folder_serves(tmp_path):
    for version in ("9", "10"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / "11").mkdir()                                     # a push still copying
    assert history.serving_version(str(tmp_path)) == "10"
    assert history.serving_version(str(tmp_path / "missing")) is None


def test_gs_paths_keep_their_scheme():
    assert history.join("gs://bucket/serving/", "history", "x.json") == \
        "gs://bucket/serving/history/x.json"
