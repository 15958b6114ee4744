"""Spans and quarantine on gs:// (a real GCS emulator): the generation folders and the pointer.

What pods see on Cloud Composer: ingestion publishes each span as a new
generation folder made current by a pointer written last; a rerun that finds
nothing changed writes nothing; readers (ExampleGen's plan, the late-upload
look-back, lineage) follow the pointer; a concurrent publish is refused.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

import emerald_testing as testing
from pipeline_src import names
from pipeline_src.components import spans as span_plan
from pipeline_src.ingest import IngestError, LocalStorage, ingest_night, late
from pipeline_src.ingest.manifest import load_manifest
from pipeline_src.ingest.remote import GENERATION, RemoteSpan

NIGHT = dt.date(2026, 1, 2)
LABELS = ("lion", "tiger", "bear")


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory):
    with testing.gcs_emulator(tmp_path_factory.mktemp("emulator") / "emulator.log") as url:
        yield url


@pytest.fixture
def bucket(emulator_url, monkeypatch, tmp_path):
    """A fresh bucket; the source stays on local disk (what changes here is the target)."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator_url)
    client = testing.anonymous_client()
    name = f"spans-{uuid.uuid4().hex[:10]}"
    client.create_bucket(name)
    source = tmp_path / "source"
    testing.write_tree(source / "toto" / NIGHT.isoformat(),
                       {k: f() for k, f in testing.GOOD.items()})
    testing.write_tree(source / "toto" / NIGHT.isoformat(), {"lion/truncated.jpg": testing.truncated()})
    testing.write_tree(source / "corpus", {"lion/c.jpg": testing.jpeg(), "tiger/d.png": testing.png()})
    return client, name, source


def run(bucket, night=NIGHT, **kw):
    client, name, source = bucket
    kw.setdefault("known_labels", LABELS)
    kw.setdefault("max_pixels", testing.BAD_MAX_PIXELS)
    kw.setdefault("processes", 1)
    return ingest_night(str(source), night, f"gs://{name}/spans", f"gs://{name}/quarantine", **kw)


def objects(bucket, prefix="") -> dict[str, int]:
    client, name, _ = bucket
    return {b.name: b.generation for b in client.list_blobs(name, prefix=prefix)}


def pointer(bucket, span: str) -> dict:
    client, name, _ = bucket
    return json.loads(client.bucket(name).blob(f"spans/{span}/{names.SPAN_POINTER}")
                      .download_as_text())


def generations(bucket, span: str) -> set[str]:
    return {n.split("/")[len(span.split("/")) + 1] for n in objects(bucket, f"spans/{span}/")
            if GENERATION.match(n.split("/")[len(span.split("/")) + 1])}


NIGHT_SPAN = f"toto/{NIGHT.isoformat()}"


def test_a_night_is_published_as_a_generation_and_a_pointer(bucket):
    report = run(bucket)
    assert report.ingested == len(testing.GOOD) and len(report.quarantined) == 1
    current = pointer(bucket, NIGHT_SPAN)["generation"]
    assert GENERATION.match(current) and report.corpus["generation"]
    listed = objects(bucket, f"spans/{NIGHT_SPAN}/")
    images = {n.split(f"{current}/", 1)[1] for n in listed if f"/{current}/" in n}
    assert images == set(testing.GOOD) | {"_manifest.json"}
    assert set(listed) == {f"spans/{NIGHT_SPAN}/{current}/{i}" for i in images} | {
        f"spans/{NIGHT_SPAN}/{names.SPAN_POINTER}"}
    manifest = load_manifest(f"gs://{bucket[1]}/spans/{NIGHT_SPAN}")
    assert manifest["example_count"] == len(testing.GOOD) and manifest["night"] == NIGHT.isoformat()
    # the quarantine is in the bucket too, with the reason beside the object and an index
    quarantined = objects(bucket, f"quarantine/{NIGHT.isoformat()}/")
    assert set(quarantined) == {f"quarantine/{NIGHT.isoformat()}/{n}" for n in (
        "lion/truncated.jpg", "lion/truncated.jpg.reason.txt", "_quarantine.json")}
    client, name, _ = bucket
    reason = client.bucket(name).blob(
        f"quarantine/{NIGHT.isoformat()}/lion/truncated.jpg.reason.txt").download_as_text()
    assert "reason: corrupt or truncated" in reason


def test_a_rerun_with_nothing_changed_writes_nothing(bucket):
    run(bucket)
    before = objects(bucket)
    again = run(bucket)
    assert (again.ingested, again.unchanged) == (0, len(testing.GOOD))
    assert again.corpus["published"] is False
    assert objects(bucket) == before          # the same objects at the same generations


def test_a_change_publishes_a_new_generation_keeping_the_one_it_replaced(bucket):
    _, _, source = bucket
    run(bucket)
    first = pointer(bucket, NIGHT_SPAN)["generation"]
    (source / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").write_bytes(testing.jpeg((10, 10)))
    second_report = run(bucket)
    assert (second_report.ingested, second_report.unchanged) == (1, len(testing.GOOD) - 1)
    second = pointer(bucket, NIGHT_SPAN)["generation"]
    assert second != first and generations(bucket, NIGHT_SPAN) == {first, second}
    # the unchanged images were copied inside the bucket, not fetched again
    assert second_report.bytes_read == len(testing.jpeg((10, 10))) + len(testing.truncated())
    (source / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").write_bytes(testing.jpeg((12, 10)))
    run(bucket)
    third = pointer(bucket, NIGHT_SPAN)["generation"]
    assert generations(bucket, NIGHT_SPAN) == {second, third}     # the oldest is deleted
    listing = span_plan.list_spans(f"gs://{bucket[1]}/spans")
    tonight = listing.night_images(NIGHT)
    assert sorted(f"{i.label}/{i.filename}" for i in tonight) == sorted(testing.GOOD)
    assert all(f"/{third}/" in i.uri for i in tonight)
    assert sorted(f"{i.label}/{i.filename}" for i in listing.corpus) == ["lion/c.jpg",
                                                                        "tiger/d.png"]


def test_a_fixed_object_leaves_the_quarantine(bucket):
    _, _, source = bucket
    run(bucket)
    (source / "toto" / NIGHT.isoformat() / "lion" / "truncated.jpg").write_bytes(testing.jpeg())
    report = run(bucket)
    assert not report.quarantined and report.span_examples == len(testing.GOOD) + 1
    assert objects(bucket, f"quarantine/{NIGHT.isoformat()}/") == {}


def test_a_concurrent_publish_is_refused_and_leaves_the_winner_current(bucket):
    """Another ingestion publishes the span between this one's pointer read and its own
    publish: the re-read guard refuses (the emulator ignores preconditions)."""
    client, name, source = bucket
    run(bucket)
    (source / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").write_bytes(testing.jpeg((10, 10)))

    class RacedStorage(LocalStorage):
        raced = False

        def list(self, prefix):
            if prefix.startswith("toto/") and not RacedStorage.raced:
                RacedStorage.raced = True
                run(bucket, include_corpus=False)            # the other ingestion wins
            return super().list(prefix)

    with pytest.raises(IngestError, match="another ingestion published this span"):
        run(bucket, include_corpus=False, storage=RacedStorage(source))
    winner = pointer(bucket, NIGHT_SPAN)["generation"]
    assert len(generations(bucket, NIGHT_SPAN)) == 2 and winner in generations(bucket, NIGHT_SPAN)
    assert load_manifest(f"gs://{name}/spans/{NIGHT_SPAN}")["example_count"] == len(testing.GOOD)


def test_a_publish_that_fails_before_the_pointer_leaves_the_span_as_it_was(bucket, monkeypatch):
    _, _, source = bucket
    run(bucket)
    before = pointer(bucket, NIGHT_SPAN)["generation"]
    (source / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").write_bytes(testing.jpeg((10, 10)))

    def fail(*args, **kwargs):
        raise IngestError("the pointer could not be written")
    with monkeypatch.context() as patch:
        patch.setattr(RemoteSpan, "_point_at", fail)
        with pytest.raises(IngestError, match="pointer could not be written"):
            run(bucket, include_corpus=False)
    assert pointer(bucket, NIGHT_SPAN)["generation"] == before
    assert generations(bucket, NIGHT_SPAN) == {before}        # its folder removed
    assert run(bucket, include_corpus=False).ingested == 1    # the retry publishes


def test_a_folder_a_crash_left_behind_is_removed_by_the_next_publish(bucket):
    client, name, source = bucket
    run(bucket)
    orphan = "g-20260101T000000-0badcafe"
    client.bucket(name).blob(f"spans/{NIGHT_SPAN}/{orphan}/lion/x.jpg").upload_from_string(b"x")
    assert span_plan.list_spans(f"gs://{name}/spans").night_images(NIGHT)[0].uri.count(orphan) == 0
    (source / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").write_bytes(testing.jpeg((10, 10)))
    run(bucket)
    assert orphan not in generations(bucket, NIGHT_SPAN)


def test_late_uploads_are_found_against_the_pointed_manifest(bucket):
    _, name, source = bucket
    run(bucket)
    assert late.unseen_objects(LocalStorage(source), "", NIGHT, f"gs://{name}/spans") == (
        "late", [])
    testing.write_tree(source / "toto" / NIGHT.isoformat(), {"bear/late.jpg": testing.jpeg()})
    kind, unseen = late.unseen_objects(LocalStorage(source), "", NIGHT, f"gs://{name}/spans")
    assert (kind, unseen) == ("late", [f"toto/{NIGHT.isoformat()}/bear/late.jpg"])
    caught = late.catch_up(str(source), NIGHT + dt.timedelta(days=1), f"gs://{name}/spans",
                           f"gs://{name}/quarantine", known_labels=LABELS,
                           max_pixels=testing.BAD_MAX_PIXELS, processes=1)
    assert [(c.night, c.kind, c.ingested) for c in caught] == [(NIGHT.isoformat(), "late", 1)]
    images = span_plan.list_spans(f"gs://{name}/spans").night_images(NIGHT)
    assert "bear/late.jpg" in {f"{i.label}/{i.filename}" for i in images}


def test_spans_and_quarantine_must_be_both_in_the_bucket_or_both_on_disk(bucket, tmp_path):
    _, name, source = bucket
    with pytest.raises(IngestError, match="both in the bucket or both on disk"):
        ingest_night(str(source), NIGHT, f"gs://{name}/spans", tmp_path / "q",
                     known_labels=LABELS, processes=1)


def test_workers_write_scratch_and_this_process_publishes(bucket):
    """Worker processes fetch and decode into local scratch as for a local span; only
    this process talks to the bucket's spans."""
    report = run(bucket, processes=2)
    assert report.ingested == len(testing.GOOD) and report.worker_processes >= 1
    assert pointer(bucket, NIGHT_SPAN)["example_count"] == len(testing.GOOD)
