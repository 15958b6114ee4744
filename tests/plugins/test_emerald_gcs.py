"""The Airflow plugin against a real gcp-storage-emulator (started by conftest)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import emerald_testing as testing

NIGHT = "2026-01-02"
LABELS = ("lion", "tiger", "bear")


def good_files() -> dict:
    return {name: make() for name, make in testing.GOOD.items()}


def operator(gcs, **kwargs):
    from emerald_gcs.operators import IngestNightOperator
    args = dict(task_id="ingest", source=gcs.source, night=NIGHT, spans_dir=str(gcs.spans),
                quarantine_dir=str(gcs.quarantine), reports_dir=str(gcs.spans.parent / "reports"), max_pixels=testing.BAD_MAX_PIXELS,
                known_labels=LABELS, unknown_labels="ingest")
    args.update(kwargs)
    return IngestNightOperator(**args)


def night_dir(gcs) -> Path:
    return gcs.spans / "toto" / NIGHT


def manifest(gcs) -> dict:
    return json.loads((night_dir(gcs) / "_manifest.json").read_text())


def span_files(gcs) -> dict:
    root = night_dir(gcs)
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and p.name != "_manifest.json"}


# --------------------------------------------------------------------------- hook

def test_hook_talks_to_emulator_with_anonymous_credentials(gcs):
    from google.auth.credentials import AnonymousCredentials

    from emerald_gcs.hooks import EmeraldGCSHook
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})
    hook = EmeraldGCSHook()
    client = hook.get_conn()
    assert isinstance(client._credentials, AnonymousCredentials)
    assert client.project == "emerald-test"          # from the connection's extra
    assert hook.list(gcs.bucket, prefix=f"cam/toto/{NIGHT}/") == [f"cam/toto/{NIGHT}/lion/a.jpg"]


# --------------------------------------------------------------------------- operator

def test_good_night_is_ingested_with_manifest(gcs):
    files = good_files()
    gens = gcs.upload(NIGHT, {**files, "_SUCCESS": b""})
    testing.upload_tree(gcs.client, gcs.bucket, "cam/corpus", {"bear/c1.jpg": testing.jpeg()})

    result = operator(gcs).execute({})

    assert result["date"] == NIGHT
    assert result["ingested"] == len(files) and result["unchanged"] == 0
    assert result["quarantined"] == [] and result["span_examples"] == len(files)
    assert result["skipped"] == [{"object": f"cam/toto/{NIGHT}/_SUCCESS", "reason": "completion marker"}]
    assert span_files(gcs) == files                   # byte-identical, same layout
    m = manifest(gcs)
    assert m["example_count"] == len(files)
    by_obj = {e["object"].split(f"{NIGHT}/")[1]: e for e in m["objects"]}
    for name in files:
        e = by_obj[name]
        assert e["status"] == "ingested" and e["file"] == name
        assert e["generation"] == str(gens[f"cam/toto/{NIGHT}/{name}"])
        assert e["md5"] and e["crc32c"] and e["label"] == name.split("/")[0]
    rotated = by_obj["lion/b.jpg"]                    # 48x64 stored, EXIF orientation 6
    assert (rotated["width"], rotated["height"], rotated["exif_orientation"]) == (64, 48, 6)
    assert rotated["capture_time"] == "2026-01-02T03:04:05"
    assert by_obj["lion/a.jpg"]["capture_time"] is None
    assert by_obj["tiger/png-named.jpg"]["format"] == "PNG"
    assert by_obj["bear/gray.jpg"]["mode"] == "L" and by_obj["bear/cmyk.jpg"]["mode"] == "CMYK"
    assert (by_obj["bear/cmyk.jpg"]["width"], by_obj["bear/cmyk.jpg"]["height"]) == (36, 24)
    # the corpus rides along into its own span
    assert result["corpus"]["ingested"] == 1
    assert (gcs.spans / "corpus" / "bear" / "c1.jpg").is_file()
    assert json.loads((gcs.spans / "corpus" / "_manifest.json").read_text())["example_count"] == 1


def test_night_and_prefix_are_templated(gcs):
    from emerald_gcs.operators import IngestNightOperator
    from emerald_gcs.sensors import NightUploadCompleteSensor
    op = IngestNightOperator(task_id="ingest", source=gcs.source)
    sensor = NightUploadCompleteSensor(task_id="wait", source=gcs.source, completion="marker",
                                       timeout=1)
    assert "night_prefix" in op.template_fields and "night_prefix" in sensor.template_fields
    for task in (op, sensor):
        task.render_template_fields({"ds": "2026-03-04", "params": {}})
        assert task.night == "2026-03-04"
        assert task.night_prefix == f"{gcs.source}/toto/2026-03-04/"
    op2 = IngestNightOperator(task_id="ingest2", source=gcs.source)
    op2.render_template_fields({"ds": "2026-03-04", "params": {"night": "2026-02-01"}})
    assert op2.night_prefix == f"{gcs.source}/toto/2026-02-01/"


def test_every_bad_input_is_quarantined_with_a_reason(gcs):
    bad = {name: make() for name, (make, _) in testing.BAD.items()}
    good = good_files()
    gcs.upload(NIGHT, {**good, **bad})

    result = operator(gcs).execute({})

    reasons = {q["object"].split(f"{NIGHT}/")[1]: q["reason"] for q in result["quarantined"]}
    assert set(reasons) == set(bad)
    for name, (_, expected) in testing.BAD.items():
        if name == "tiger/garbled.jpg":   # either the header or the scan breaks
            assert "not an image" in reasons[name] or "corrupt" in reasons[name]
        else:
            assert expected in reasons[name], (name, reasons[name])
    assert result["ingested"] == len(good) and result["span_examples"] == len(good)
    qdir = gcs.quarantine / NIGHT
    for name, data in bad.items():
        assert (qdir / name).read_bytes() == data
        assert reasons[name] in (qdir / f"{name}.reason.txt").read_text()
    assert set(span_files(gcs)) == set(good)          # nothing bad reached the span
    m = manifest(gcs)                                  # every object accounted for
    assert len(m["objects"]) == len(good) + len(bad) == result["listed"]
    assert m["counts"] == {"listed": 12, "ingested": 6, "unchanged": 0, "quarantined": 6,
                           "held": 0, "skipped": 0}


@pytest.mark.parametrize("policy", ["ingest", "hold"])
def test_unknown_label_folder_is_ingested_or_held(gcs, policy):
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg(), "elephant/e1.jpg": testing.jpeg(),
                       "elephant/e2.png": testing.png()})
    result = operator(gcs, unknown_labels=policy).execute({})
    if policy == "ingest":
        assert result["ingested"] == 3 and result["unknown_labels"] == {"elephant": 2}
        assert (night_dir(gcs) / "elephant" / "e1.jpg").is_file()
        assert result["quarantined"] == []
    else:
        assert result["ingested"] == 1 and result["held"] == 2
        assert sorted(q["reason"] for q in result["quarantined"]) == ["label not in schema"] * 2
        assert (gcs.quarantine / NIGHT / "elephant" / "e1.jpg").is_file()
        assert not (night_dir(gcs) / "elephant").exists()
        assert {e["status"] for e in manifest(gcs)["objects"]} == {"ingested", "held"}


def test_rerun_is_idempotent(gcs):
    files = good_files()
    gcs.upload(NIGHT, {**files, "lion/empty.jpg": b""})
    first = operator(gcs).execute({})
    before = span_files(gcs)
    second = operator(gcs).execute({})
    third = operator(gcs).execute({})
    for rerun in (second, third):
        assert rerun["ingested"] == 0 and rerun["unchanged"] == len(files)
        assert rerun["span_examples"] == first["span_examples"] == len(files)
        assert [q["object"] for q in rerun["quarantined"]] == [f"cam/toto/{NIGHT}/lion/empty.jpg"]
    assert span_files(gcs) == before                   # nothing duplicated, nothing lost
    assert manifest(gcs)["example_count"] == len(files)
    leftovers = [p.name for p in (gcs.spans / "toto").iterdir() if p.name != NIGHT
                 and not p.name.endswith(".lock")]
    assert leftovers == []                             # no temporaries left behind


def test_reupload_new_generation_is_picked_up(gcs):
    gens = gcs.upload(NIGHT, {**good_files(), "tiger/bad.jpg": b"oops"})
    operator(gcs).execute({})
    new_a = testing.jpeg((80, 60), color=(0, 0, 255))
    new_gens = gcs.upload(NIGHT, {"lion/a.jpg": new_a, "tiger/bad.jpg": testing.jpeg((20, 10))})
    a = f"cam/toto/{NIGHT}/lion/a.jpg"
    assert new_gens[a] != gens[a]

    result = operator(gcs).execute({})

    assert result["ingested"] == 2 and result["unchanged"] == len(testing.GOOD) - 1
    assert result["quarantined"] == [] and result["span_examples"] == len(testing.GOOD) + 1
    assert (night_dir(gcs) / "lion" / "a.jpg").read_bytes() == new_a
    entry = next(e for e in manifest(gcs)["objects"] if e["object"] == a)
    assert entry["generation"] == str(new_gens[a]) and (entry["width"], entry["height"]) == (80, 60)
    assert not (gcs.quarantine / NIGHT).exists()       # the fixed file left quarantine


def test_object_names_never_escape_the_data_directory(gcs):
    names = {
        "lion/../../../escape.jpg": testing.jpeg(),
        "lion/a\\..\\..\\win.jpg": testing.jpeg(),
        "..lion/x.jpg": testing.jpeg(),
        "lion/ spaced name .jpg": testing.jpeg(),
        "lion/ünïcødé\u202e.jpg": testing.jpeg(),
        "lion//double-slash.jpg": testing.jpeg(),
        "../up.jpg": testing.jpeg(),
        "/abs.jpg": testing.jpeg(),
        "lion/.hidden.jpg": testing.jpeg(),
    }
    gcs.upload(NIGHT, names)
    result = operator(gcs).execute({})
    assert result["listed"] == len(names)
    assert result["ingested"] + len(result["quarantined"]) == len(names)
    home = gcs.tmp / "home"
    written = [p for p in gcs.tmp.rglob("*") if p.is_file()]
    assert written and all(home in p.parents for p in written), written
    for p in written:
        rel = p.relative_to(home)
        assert ".." not in rel.parts and all(not part.startswith(" ") for part in rel.parts)
        assert all(ord(c) < 128 for c in str(rel)), rel
    stored = [e["file"] for e in manifest(gcs)["objects"] if e["status"] == "ingested"]
    assert len(set(stored)) == len(stored) == result["ingested"]
    reasons = {q["reason"] for q in result["quarantined"]}
    assert reasons == {"unsafe label folder name '..'", "unsafe label folder name ''",
                       "unsafe label folder name '..lion'"}
    assert result["ingested"] == len(names) - 3


# --------------------------------------------------------------------------- faults

@pytest.mark.parametrize("processes", [1, 2], ids=["this-process", "worker-process"])
def test_transient_faults_are_retried_and_the_night_completes(gcs, processes, caplog,
                                                              monkeypatch):
    from pipeline_src import ingest
    files = good_files()
    gcs.upload(NIGHT, files)
    monkeypatch.setattr(ingest.parallel, "PROCESS_CHUNK", 1)     # the worker gets its share

    def fault(n, method, path):
        if n == 4:
            return "hang"                               # a client timeout
        if n % 3 == 0:
            return 503
        if n % 5 == 0:
            return 429
        return None

    with testing.FaultProxy(gcs.url, fault, hang_seconds=1.5) as proxy:
        os.environ["STORAGE_EMULATOR_HOST"] = proxy.url   # monkeypatch restores it
        client = testing.anonymous_client()
        storage = ingest.GCSStorage(
            gcs.bucket, client=client, timeout=(2.0, 0.5),
            retry=ingest.RetryPolicy(attempts=8, initial_seconds=0.01, max_seconds=0.1))
        with caplog.at_level("INFO", logger="pipeline_src.ingest"):
            report = ingest.ingest_night(gcs.source, NIGHT, gcs.spans, gcs.quarantine,
                                         storage=storage, known_labels=LABELS, threads=3,
                                         processes=processes)
    assert proxy.failed >= 4 and proxy.requests > len(files)
    assert report.ingested == len(files) and report.quarantined == []
    assert span_files(gcs) == files
    assert report.worker_processes == processes - 1
    if processes > 1:                                 # its own client, through the proxy
        assert 0 < sum(report.worker_objects) < len(files)
    assert "transient" in caplog.text                 # a worker's retries reach this log too


def test_operator_retries_through_the_hook(gcs, monkeypatch):
    files = good_files()
    gcs.upload(NIGHT, files)
    with testing.FaultProxy(gcs.url, lambda n, m, p: 503 if n % 2 == 0 else None) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        result = operator(gcs, include_corpus=False).execute({})
    assert proxy.failed >= len(files) // 2
    assert result["ingested"] == len(files)


@pytest.mark.parametrize("processes", [1, 2], ids=["this-process", "worker-process"])
def test_permanent_error_fails_naming_the_object_and_keeps_the_old_span(gcs, monkeypatch,
                                                                        processes):
    from airflow.exceptions import AirflowException
    files = good_files()
    gcs.upload(NIGHT, files)
    operator(gcs).execute({})
    before = span_files(gcs)
    gcs.upload(NIGHT, {"tiger/c.png": testing.png((50, 50))})   # forces a real download

    def forbidden(n, method, path):
        return 403 if "c.png" in path and "alt=media" in path else None

    with testing.FaultProxy(gcs.url, forbidden) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        with pytest.raises(AirflowException, match=r"toto/2026-01-02/tiger/c\.png.*permanent"):
            operator(gcs, processes=processes).execute({})
    assert proxy.failed == 1                          # not retried
    assert span_files(gcs) == before                  # the previous span is untouched


# --------------------------------------------------------------------------- late uploads

NEXT_NIGHT = "2026-01-03"


def test_a_late_upload_is_ingested_the_next_night_and_reported(gcs):
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})
    operator(gcs).execute({})
    gcs.upload(NIGHT, {"tiger/late.jpg": testing.jpeg(color=(10, 200, 10))})  # after ingestion
    gcs.upload(NEXT_NIGHT, {"bear/c.jpg": testing.jpeg()})
    result = operator(gcs, night=NEXT_NIGHT).execute({})
    assert result["ingested"] == 1                                   # tonight's own image
    assert result["late_uploads"] == [{
        "night": NIGHT, "kind": "late", "objects": [f"cam/toto/{NIGHT}/tiger/late.jpg"],
        "count": 1, "ingested": 1, "quarantined": 0}]
    assert sorted(span_files(gcs)) == ["lion/a.jpg", "tiger/late.jpg"]   # in Monday's span
    assert manifest(gcs)["counts"]["unchanged"] == 1                  # a.jpg not fetched again
    from pipeline_src.ingest import late
    assert late.read_record(gcs.spans.parent / "reports", NEXT_NIGHT) == result["late_uploads"]
    again = operator(gcs, night=NEXT_NIGHT).execute({})               # a rerun: nothing late
    assert again["late_uploads"] == []
    assert late.read_record(gcs.spans.parent / "reports", NEXT_NIGHT) == result["late_uploads"]


def test_a_night_that_never_ran_is_caught_up_as_missed_but_not_before_the_start(gcs):
    gcs.upload("2025-12-31", {"lion/old.jpg": testing.jpeg()})        # before dag.start_date
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})                  # its DAG run never ran
    gcs.upload(NEXT_NIGHT, {"bear/c.jpg": testing.jpeg()})
    result = operator(gcs, night=NEXT_NIGHT).execute({})
    assert [(n["night"], n["kind"], n["count"]) for n in result["late_uploads"]] == [
        (NIGHT, "missed", 1)]
    assert sorted(span_files(gcs)) == ["lion/a.jpg"]
    assert not (gcs.spans / "toto" / "2025-12-31").exists()


def test_the_look_back_is_bounded_and_can_be_switched_off(gcs):
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})
    gcs.upload(NEXT_NIGHT, {"bear/c.jpg": testing.jpeg()})
    gcs.upload("2026-01-10", {"bear/d.jpg": testing.jpeg()})
    assert operator(gcs, night=NEXT_NIGHT, late_lookback_nights=0).execute({})[
        "late_uploads"] == []
    assert operator(gcs, night="2026-01-10", late_lookback_nights=7).execute({})[
        "late_uploads"] == []                      # 2026-01-02 is 8 nights back
    assert not night_dir(gcs).exists()


# --------------------------------------------------------------------------- sensor

def _deferred(sensor):
    """The trigger the sensor hands to the triggerer, rebuilt from its serialised form
    (as the triggerer does), so what runs is what survives the database."""
    import importlib

    from airflow.exceptions import TaskDeferred
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = deferred.value.trigger.serialize()
    module, _, name = classpath.rpartition(".")
    json.dumps(kwargs)                                  # stored as JSON in the trigger table
    return getattr(importlib.import_module(module), name)(**kwargs)


def _fire(trigger) -> dict:
    import asyncio

    async def first_event():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(first_event())


def test_sensor_defers_and_the_trigger_waits_for_a_quiet_period_after_the_last_upload(gcs):
    import threading
    from emerald_gcs.sensors import NightUploadCompleteSensor
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})
    sensor = NightUploadCompleteSensor(task_id="wait", source=gcs.source, night=NIGHT,
                                       completion="quiet", quiet_seconds=1, poke_interval=0.2,
                                       timeout=30)
    trigger = _deferred(sensor)     # one object seen: the quiet period has not passed
    late = threading.Timer(0.6, gcs.upload, (NIGHT, {"tiger/b.jpg": testing.jpeg()}))
    started = time.monotonic()
    late.start()
    event = _fire(trigger)
    late.join()
    assert event == {"status": "complete", "objects": 2}   # the upload during the wait counted
    assert time.monotonic() - started >= 0.6 + 1.0         # quiet for 1 s after the last one
    sensor.execute_complete({}, event)                     # succeeds


def test_deferred_sensor_times_out_naming_the_night_and_the_rule(gcs):
    from airflow.exceptions import AirflowSensorTimeout

    from emerald_gcs.sensors import NightUploadCompleteSensor
    sensor = NightUploadCompleteSensor(task_id="wait", source=gcs.source, night="2026-09-09",
                                       completion="quiet", quiet_seconds=0.2,
                                       poke_interval=0.1, timeout=0.6)
    event = _fire(_deferred(sensor))
    assert event == {"status": "timeout"}
    with pytest.raises(AirflowSensorTimeout, match=r"toto/2026-09-09/.*no new upload for 0.2s"):
        sensor.execute_complete({}, event)


@pytest.mark.parametrize("completion", ["quiet", "marker"])
def test_a_missing_bucket_fails_at_once_in_the_worker_and_in_the_triggerer(gcs, completion):
    from airflow.exceptions import AirflowFailException

    from emerald_gcs.sensors import NightUploadCompleteSensor
    from emerald_gcs.triggers import NightUploadTrigger
    sensor = NightUploadCompleteSensor(task_id="wait", source="gs://no-such-bucket/cam",
                                       night=NIGHT, completion=completion, poke_interval=0.1,
                                       timeout=30)
    with pytest.raises(AirflowFailException, match="gs://no-such-bucket does not exist"):
        sensor.execute({})                      # failed for good: no retry of a typo
    trigger = NightUploadTrigger(dataclasses.asdict(sensor.watch()), 0.1, time.time() + 30)
    started = time.monotonic()
    event = _fire(trigger)
    assert time.monotonic() - started < 5
    assert event["status"] == "error" and "no-such-bucket does not exist" in event["message"]
    with pytest.raises(AirflowFailException, match="no-such-bucket does not exist"):
        sensor.execute_complete({}, event)


def test_a_complete_night_does_not_defer(gcs):
    from emerald_gcs.sensors import NightUploadCompleteSensor
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg(), "_SUCCESS": b""})
    sensor = NightUploadCompleteSensor(task_id="wait", source=gcs.source, night=NIGHT,
                                       completion="marker", poke_interval=0.1, timeout=5)
    assert sensor.execute({}) is None                      # no TaskDeferred raised


def test_the_nightly_dag_waits_in_the_triggerer(monkeypatch):
    from pipeline_src.config import load_config
    from emerald_dag.builder import build_nightly_dag
    from pipeline_src.names import WAIT_FOR_NIGHT
    wait = build_nightly_dag(load_config()).get_task(WAIT_FOR_NIGHT)
    assert wait.deferrable is True and wait.mode == "poke"   # poke mode is never reached


def test_poking_sensor_waits_for_the_quiet_period(gcs):
    from emerald_gcs.sensors import NightUploadCompleteSensor
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})
    sensor = NightUploadCompleteSensor(task_id="wait", source=gcs.source, night=NIGHT,
                                       completion="quiet", quiet_seconds=1, poke_interval=0.2,
                                       timeout=20, deferrable=False)
    started = time.monotonic()
    sensor.execute({})
    assert 1.0 <= time.monotonic() - started < 10
    assert sensor.watch().last_names == [f"cam/toto/{NIGHT}/lion/a.jpg"]


def test_sensor_marker_waits_for_success_file_and_times_out_naming_the_prefix(gcs):
    from airflow.exceptions import AirflowSensorTimeout

    from emerald_gcs.sensors import NightUploadCompleteSensor
    gcs.upload(NIGHT, {"lion/a.jpg": testing.jpeg()})
    kwargs = dict(task_id="wait", source=gcs.source, night=NIGHT, completion="marker",
                  poke_interval=0.1, timeout=0.5, deferrable=False)
    with pytest.raises(AirflowSensorTimeout) as err:
        NightUploadCompleteSensor(**kwargs).execute({})
    assert f"gs://{gcs.bucket}/cam/toto/{NIGHT}/" in str(err.value)
    assert "_SUCCESS" in str(err.value)
    gcs.upload(NIGHT, {"_SUCCESS": b""})
    NightUploadCompleteSensor(**kwargs).execute({})   # returns: the marker is there


def test_sensor_quiet_times_out_on_an_empty_night(gcs):
    from airflow.exceptions import AirflowSensorTimeout

    from emerald_gcs.sensors import NightUploadCompleteSensor
    sensor = NightUploadCompleteSensor(task_id="wait", source=gcs.source, night="2026-09-09",
                                       completion="quiet", quiet_seconds=0.2,
                                       poke_interval=0.1, timeout=0.6, deferrable=False)
    with pytest.raises(AirflowSensorTimeout, match=r"toto/2026-09-09/"):
        sensor.execute({})


# --------------------------------------------------------------------------- local source

def test_local_source_needs_no_gcs(tmp_path, monkeypatch):
    from emerald_gcs.operators import IngestNightOperator
    from emerald_gcs.sensors import NightUploadCompleteSensor
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    src = tmp_path / "source"
    testing.write_tree(src / "toto" / NIGHT, good_files())
    sensor = NightUploadCompleteSensor(task_id="wait", source=str(src), night=NIGHT,
                                       completion="quiet", quiet_seconds=300, timeout=5)
    started = time.monotonic()
    sensor.execute({})
    assert time.monotonic() - started < 1             # the folder exists: no quiet wait
    result = IngestNightOperator(task_id="ingest", source=str(src), night=NIGHT,
                                 spans_dir=str(tmp_path / "spans"),
                                 quarantine_dir=str(tmp_path / "q")).execute({})
    assert result["ingested"] == len(testing.GOOD) and result["quarantined"] == []
    assert result["corpus"]["listed"] == 0


def test_plugin_modules_import_cheaply():
    """The DAG imports operators and sensors at parse time: no Google client library then."""
    code = (
        "import sys, time; sys.path.insert(0, 'plugins');"
        "import airflow.models.baseoperator, airflow.sensors.base;"
        "from airflow.operators.empty import EmptyOperator;"
        "EmptyOperator(task_id='warm-up');"   # Airflow's own first-operator cost (~1 s)
        "t = time.perf_counter();"
        "from emerald_gcs.operators import IngestNightOperator;"
        "from emerald_gcs.sensors import NightUploadCompleteSensor;"
        "IngestNightOperator(task_id='i'); NightUploadCompleteSensor(task_id='s');"
        "dt = time.perf_counter() - t;"
        "heavy = [m for m in ('google.cloud.storage', 'airflow.providers.google.cloud.hooks.gcs',"
        " 'PIL', 'pipeline_src.ingest') if m in sys.modules];"
        "print(round(dt, 3), heavy)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True).stdout.split(" ", 1)
    heavy = out[1].strip()
    # What is imported is the promise; how long it takes is BENCHMARKS.md's business.
    assert heavy == "[]"
