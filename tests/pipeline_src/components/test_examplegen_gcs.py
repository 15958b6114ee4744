"""ExampleGen reading spans from gs:// (a real GCS emulator), through 5xx, throttling,
timeouts and outages: the same examples as from disk, or a failed night naming the object.

The executor runs as TFX runs it, on a real Examples artifact. Faults come from a
real HTTP proxy in front of the emulator (testing.FaultProxy).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import features
from pipeline_src.components import span_history, spans as span_plan
from pipeline_src.ingest import IngestError, sources
from pipeline_src.ingest.retry import RetryPolicy
from pipeline_src.tools import synth

FIRST = dt.date(2026, 1, 2)
SECOND = FIRST + dt.timedelta(days=1)
BUCKET = "toto-spans"
PREFIX = "emerald/spans"
BROKEN = f"toto/{SECOND.isoformat()}/lion/broken.jpg"


@pytest.fixture(scope="module")
def local_spans(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("spans")
    synth.synthesize(base, nights=2, seed=5, start_date=FIRST,
                     corpus_per_label=3, toto_per_label=2)
    (base / BROKEN).write_bytes(testing.garbled())       # damaged since ingestion
    return base


@pytest.fixture(scope="module")
def bucket(local_spans, tmp_path_factory):
    """The same spans, uploaded under gs://BUCKET/PREFIX of a running emulator."""
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with testing.gcs_emulator(log) as url:
        previous = os.environ.get("STORAGE_EMULATOR_HOST")
        os.environ["STORAGE_EMULATOR_HOST"] = url
        try:
            client = testing.anonymous_client()
            client.create_bucket(BUCKET)
            files = {str(p.relative_to(local_spans)): p.read_bytes()
                     for p in sorted(local_spans.rglob("*")) if p.is_file()}
            testing.upload_tree(client, BUCKET, PREFIX, files)
        finally:
            _restore("STORAGE_EMULATOR_HOST", previous)
        yield url


def _restore(name: str, value) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def execute(input_base: str, out: Path):
    """ExampleGen's first night (no history): tonight's span, and the earlier ones made."""
    store = testing.SpanArtifacts(out, input_base)
    tonight = store.night(SECOND)
    return tonight, store.updated


def written(made, root: str) -> dict:
    """Everything ExampleGen wrote, with object names relative to the spans root."""
    tonight, updated = made
    records = {}
    for artifact in [tonight] + updated:
        for split in features.SPAN_SPLITS:
            records[(span_history.span_name(artifact), split)] = testing.split_examples(
                artifact.uri, split)
    rejected = [{**r, "object": r["object"].removeprefix(root.rstrip("/") + "/")}
                for r in json.loads(Path(tonight.uri, "rejected.json").read_text())]
    props = {name: tonight.get_string_custom_property(name)
             for name in ("split_counts", "night_counts", "eval_mode", "previous_night")}
    props["rejected_count"] = tonight.get_int_custom_property("rejected_count")
    return {"records": records, "rejected": rejected, "properties": props,
            "spans": [(a.span, a.version, a.split_names) for a in [tonight] + updated]}


@pytest.fixture(scope="module")
def from_disk(local_spans, tmp_path_factory) -> dict:
    return written(execute(str(local_spans), tmp_path_factory.mktemp("disk") / "out"),
                   str(local_spans))


def quick_storage(monkeypatch, timeout=(2.0, 0.5), attempts=8):
    """ExampleGen's GCS storage with a short client timeout and backoff, so that a hang
    is a timeout within a second and retries take milliseconds, not the default minutes."""
    def open_quick(uri, client=None):
        kind, bucket_name, prefix = sources.parse_source(uri)
        assert kind == "gs"
        return sources.GCSStorage(
            bucket_name, timeout=timeout,
            retry=RetryPolicy(attempts=attempts, initial_seconds=0.01, max_seconds=0.1)), prefix
    monkeypatch.setattr(span_plan, "open_storage", open_quick)


def test_spans_on_gcs_give_the_examples_spans_on_disk_give(bucket, from_disk, local_spans,
                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", bucket)
    made = execute(f"gs://{BUCKET}/{PREFIX}", tmp_path / "out")
    assert written(made, f"gs://{BUCKET}/{PREFIX}") == from_disk
    assert from_disk["rejected"] == [{"object": BROKEN, "reason": from_disk["rejected"][0]
                                      ["reason"]}]   # a damaged image stays a rejection
    assert json.loads(Path(made[0].uri, "rejected.json").read_text())[0]["object"] == (
        f"gs://{BUCKET}/{PREFIX}/{BROKEN}")            # named where it is
    counts = json.loads(from_disk["properties"]["split_counts"])
    images = {night: [p for p in local_spans.glob(f"{night}/*/*") if p.name[0] not in "_."]
              for night in ("corpus", f"toto/{FIRST}", f"toto/{SECOND}")}
    assert counts[features.EVAL] == len(images[f"toto/{SECOND}"]) - 1     # all but BROKEN
    assert counts[features.TRAIN] == len(images["corpus"]) + len(images[f"toto/{FIRST}"])


def test_5xx_throttling_and_timeouts_are_retried_to_the_same_examples(
        bucket, from_disk, tmp_path, monkeypatch, caplog):
    def fault(n, method, path):
        if n in (3, 11):
            return "hang"                     # longer than the client's read timeout
        if n % 4 == 0:
            return 503
        if n % 7 == 0:
            return 429
        if n % 9 == 0:
            return 500
        return None

    with testing.FaultProxy(bucket, fault, hang_seconds=1.5) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        quick_storage(monkeypatch)
        with caplog.at_level("WARNING", logger="pipeline_src.ingest"):
            made = execute(f"gs://{BUCKET}/{PREFIX}", tmp_path / "out")
    assert proxy.failed >= 8                                   # the faults did happen...
    assert "Timeout" in caplog.text and "503" in caplog.text   # ...timeouts among them
    assert written(made, f"gs://{BUCKET}/{PREFIX}") == from_disk                      # ...and changed nothing


@pytest.mark.parametrize("status", [503, 403], ids=["outage", "forbidden"])
def test_a_read_that_keeps_failing_fails_the_night_naming_the_object(
        bucket, tmp_path, monkeypatch, status):
    """Not a rejection: the image is intact, the storage is not answering. A failed
    execution publishes no Examples, and Airflow retries the task."""
    target = f"{PREFIX}/toto/{SECOND.isoformat()}/tiger/".replace("/", "%2F")

    def outage(n, method, path):
        return status if target in path and "alt=media" in path else None

    with testing.FaultProxy(bucket, outage) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        quick_storage(monkeypatch, attempts=4)
        with pytest.raises(IngestError) as failure:
            execute(f"gs://{BUCKET}/{PREFIX}", tmp_path / "out")
    message = str(failure.value)
    assert f"gs://{BUCKET}/{PREFIX}/toto/{SECOND.isoformat()}/tiger/" in message
    if status == 503:
        assert "still failing after 4 attempts" in message and proxy.failed == 4
    else:
        assert "permanent error" in message and proxy.failed == 1     # not retried
    assert not (tmp_path / "out" / "ImageExampleGen" / "examples" / "1" / "rejected.json"
                ).exists()                                     # tonight's span was not made


def test_a_listing_that_keeps_failing_fails_the_night_naming_the_prefix(
        bucket, tmp_path, monkeypatch):
    with testing.FaultProxy(bucket, lambda n, m, p: 503 if "/o?" in p else None) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        quick_storage(monkeypatch, attempts=3)
        with pytest.raises(IngestError, match=rf"listing gs://{BUCKET}/{PREFIX}/corpus/: "
                                              r"still failing after 3 attempts"):
            execute(f"gs://{BUCKET}/{PREFIX}", tmp_path / "out")
    assert proxy.failed == 3


def test_a_missing_bucket_or_prefix_says_to_ingest_first(bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", bucket)
    with pytest.raises(FileNotFoundError, match=rf"no spans at gs://{BUCKET}/nowhere: run "
                                                r"`emerald ingest`"):
        execute(f"gs://{BUCKET}/nowhere", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"no spans at gs://no-such-bucket/spans: the "
                                                r"bucket does not exist; check paths.spans"):
        execute("gs://no-such-bucket/spans", tmp_path / "out2")
