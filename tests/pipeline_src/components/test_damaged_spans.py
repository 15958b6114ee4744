"""ExampleGen on spans damaged on disk after ingestion: rejected and named, never dropped unseen.

The spans are made by the real ingestion, then damaged the way a disk, a sync
or a hand does it; the executor runs as TFX runs it, on a real Examples artifact.
"""
from __future__ import annotations

import datetime as dt
import errno
import json
import logging
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import features, ingest
from pipeline_src.components import examplegen
from pipeline_src.ingest import sources

NIGHT = dt.date(2026, 1, 2)
LABELS = ("lion", "tiger", "bear")


@pytest.fixture
def spans(tmp_path) -> Path:
    source = tmp_path / "source"
    testing.write_tree(source / "toto" / NIGHT.isoformat(),
                       {k: make() for k, make in testing.GOOD.items()})
    testing.write_tree(source / "corpus",
                       {"lion/c.jpg": testing.jpeg(), "bear/d.png": testing.png()})
    ingest.ingest_night(str(source), NIGHT, tmp_path / "spans", tmp_path / "q",
                        known_labels=LABELS, max_pixels=testing.BAD_MAX_PIXELS)
    return tmp_path / "spans"


def execute(spans: Path, out: Path):
    """The night as TFX runs ExampleGen on it (no history: the corpus is made too)."""
    tonight = testing.SpanArtifacts(out, spans).night(NIGHT)
    return tonight, json.loads((Path(tonight.uri) / "rejected.json").read_text())


def test_a_span_image_overwritten_with_garbage_is_rejected_and_named(spans, tmp_path, caplog):
    night = spans / "toto" / NIGHT.isoformat()
    (night / "lion" / "a.jpg").write_bytes(testing.garbled())
    (night / "tiger" / "c.png").write_bytes(testing.truncated())
    with caplog.at_level(logging.WARNING, logger=examplegen.__name__):
        examples, rejected = execute(spans, tmp_path / "out")
    assert sorted(r["object"] for r in rejected) == [str(night / "lion" / "a.jpg"),
                                                      str(night / "tiger" / "c.png")]
    assert all(r["reason"].startswith(("corrupt or truncated", "not an image")) for r in rejected)
    assert examples.get_int_custom_property("rejected_count") == 2      # what the report shows
    counts = json.loads(examples.get_string_custom_property("split_counts"))
    assert counts[features.EVAL] == len(testing.GOOD) - 2               # the rest goes on
    for r in rejected:
        assert f"span file {r['object']} rejected" in caplog.text
    assert "remove it and ingest its night again" in caplog.text


def test_a_span_file_that_cannot_be_read_is_rejected_with_the_os_error(spans, tmp_path,
                                                                        monkeypatch):
    broken = spans / "toto" / NIGHT.isoformat() / "bear" / "gray.jpg"
    read = sources.LocalStorage.read

    def failing_disk(storage, info):
        if storage.root / info.name == broken:
            raise OSError(errno.EIO, "Input/output error", str(broken))
        return read(storage, info)

    monkeypatch.setattr(sources.LocalStorage, "read", failing_disk)
    _, rejected = execute(spans, tmp_path / "out")
    assert rejected == [{"object": str(broken), "reason": "unreadable: Input/output error"}]


def test_a_night_folder_that_is_no_date_stops_the_night_naming_it(spans, tmp_path):
    stray = spans / "toto" / "2026-13-45"
    testing.write_tree(stray, {"lion/x.jpg": testing.jpeg()})
    with pytest.raises(ValueError, match=f"span folder {stray} is not a night"):
        execute(spans, tmp_path / "out")


def test_a_damaged_manifest_does_not_matter_to_examplegen(spans, tmp_path):
    """ExampleGen reads the images, not the manifest (ingestion repairs a damaged one)."""
    (spans / "toto" / NIGHT.isoformat() / "_manifest.json").write_bytes(b"\x00garbage")
    _, rejected = execute(spans, tmp_path / "out")
    assert rejected == []
