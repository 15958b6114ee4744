"""pipeline_src.ingest without Airflow or GCS: local sources, names, atomicity, retry, CLI."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

import emerald_testing as testing  # noqa: E402  (tests/emerald_testing.py: no Airflow import)
from pipeline_src import ingest  # noqa: E402

NIGHT = dt.date(2026, 1, 2)
LABELS = ("lion", "tiger", "bear")


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "source"
    testing.write_tree(root / "toto" / NIGHT.isoformat(),
                       {k: f() for k, f in testing.GOOD.items()})
    testing.write_tree(root / "corpus", {"lion/c.jpg": testing.jpeg(), "tiger/d.png": testing.png()})
    return root


def run(src, tmp_path, **kw):
    kw.setdefault("known_labels", LABELS)
    kw.setdefault("max_pixels", testing.BAD_MAX_PIXELS)
    return ingest.ingest_night(str(src), NIGHT, tmp_path / "spans", tmp_path / "q", **kw)


def test_module_imports_no_airflow():
    import subprocess
    out = subprocess.run([sys.executable, "-c", "import sys, pipeline_src.ingest; "
                          "print(any(m.startswith('airflow') for m in sys.modules))"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("name", [
    "../../etc/passwd", "/abs/path.jpg", "a b c.jpg", "ünïcødé.jpg", "x\u202egpj.exe",
    "..", ".", "", ".hidden", "a\\..\\..\\b.jpg", "line\nbreak.jpg", "a" * 500 + ".jpg",
    "CON", "x/../../y.png",
])
def test_safe_name_stays_in_its_directory(name, tmp_path):
    safe = ingest.safe_name(name)
    assert safe and "/" not in safe and "\\" not in safe and not safe.startswith(".")
    assert all(ord(c) < 128 and (c.isalnum() or c in "._-") for c in safe)
    assert len(safe) < 140
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()
    assert ingest.safe_name(name) == safe                     # deterministic


def test_safe_name_keeps_plain_names_and_separates_lookalikes():
    assert ingest.safe_name("IMG_0001.jpg") == "IMG_0001.jpg"
    assert ingest.safe_name("a b.jpg") != ingest.safe_name("a_b.jpg")
    assert ingest.safe_name("a b.jpg") != ingest.safe_name("a  b.jpg")


def test_local_night_corpus_and_rerun(src, tmp_path):
    first = run(src, tmp_path)
    assert first.ingested == len(testing.GOOD) and first.span_examples == len(testing.GOOD)
    assert first.corpus["ingested"] == 2
    span = tmp_path / "spans" / "toto" / NIGHT.isoformat()
    m = json.loads((span / "_manifest.json").read_text())
    assert m["night"] == NIGHT.isoformat() and m["source"] == "toto"
    assert m["example_count"] == len(testing.GOOD)
    assert all(e["crc32c"] for e in m["objects"])           # md5: only what GCS reports
    second = run(src, tmp_path)
    assert (second.ingested, second.unchanged) == (0, len(testing.GOOD))
    assert (second.corpus["ingested"], second.corpus["unchanged"]) == (0, 2)
    # a changed file (new mtime/size = a new generation locally) is picked up
    (src / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").write_bytes(testing.jpeg((10, 10)))
    third = run(src, tmp_path)
    assert (third.ingested, third.unchanged) == (1, len(testing.GOOD) - 1)
    assert json.loads((span / "_manifest.json").read_text())["example_count"] == len(testing.GOOD)


def test_a_span_file_lost_or_emptied_since_is_fetched_again(src, tmp_path):
    run(src, tmp_path)
    span = tmp_path / "spans" / "toto" / NIGHT.isoformat()
    good = (span / "lion" / "a.jpg").read_bytes()
    (span / "lion" / "a.jpg").write_bytes(b"")          # what a crash before writeback leaves
    (span / "tiger" / "png-named.jpg").unlink()
    again = run(src, tmp_path)
    assert (again.ingested, again.unchanged) == (2, len(testing.GOOD) - 2)
    assert (span / "lion" / "a.jpg").read_bytes() == good
    assert (span / "tiger" / "png-named.jpg").is_file()


def test_changed_max_pixels_reevaluates_everything(src, tmp_path):
    run(src, tmp_path)
    again = run(src, tmp_path, max_pixels=1500)               # 64x48 = 3072 px is now too big
    assert again.unchanged == 0 and again.ingested < len(testing.GOOD)
    assert any("too many pixels" in q["reason"] for q in again.quarantined)


def test_crash_midway_keeps_the_previous_span(src, tmp_path, monkeypatch):
    run(src, tmp_path)
    span = tmp_path / "spans" / "toto" / NIGHT.isoformat()
    before = sorted(p.relative_to(span) for p in span.rglob("*"))
    (src / "toto" / NIGHT.isoformat() / "lion" / "new.jpg").write_bytes(testing.jpeg())
    from pipeline_src import images
    monkeypatch.setattr(images, "inspect", lambda *a, **k: (_ for _ in ()).throw(MemoryError("boom")))
    with pytest.raises(MemoryError):
        run(src, tmp_path, include_corpus=False, processes=1, threads=4)
    assert sorted(p.relative_to(span) for p in span.rglob("*")) == before
    assert [p.name for p in span.parent.iterdir() if not p.name.endswith(".lock")] == [NIGHT.isoformat()]


def test_a_worker_process_that_dies_fails_the_night_and_keeps_the_previous_span(
        src, tmp_path, monkeypatch):
    run(src, tmp_path)
    span = tmp_path / "spans" / "toto" / NIGHT.isoformat()
    before = sorted(p.relative_to(span) for p in span.rglob("*"))
    testing.write_tree(src / "toto" / NIGHT.isoformat(),
                       {f"bear/new{i}.jpg": testing.jpeg(color=(i, 0, 0)) for i in range(40)})
    # An OOM kill, say: the worker reads its first message and is gone.
    monkeypatch.setattr(ingest.WorkerPool, "command", staticmethod(lambda: [
        sys.executable, "-c",
        "import sys; sys.stdin.buffer.read(1); print('out of memory', file=sys.stderr); sys.exit(9)"]))
    monkeypatch.setattr(ingest.parallel, "PROCESS_CHUNK", 1)
    with pytest.raises(ingest.IngestError, match=r"(?s)worker \d+ died \(exit code 9\) on "
                                                 r"toto/2026-01-02/.*out of memory"):
        run(src, tmp_path, include_corpus=False, processes=2)
    assert sorted(p.relative_to(span) for p in span.rglob("*")) == before
    assert [p.name for p in span.parent.iterdir() if not p.name.endswith(".lock")] == [NIGHT.isoformat()]


def test_worker_processes_and_this_process_alone_write_the_same_span(src, tmp_path):
    night = src / "toto" / NIGHT.isoformat()
    testing.write_tree(night, {name: make() for name, (make, _) in testing.BAD.items()})
    testing.write_tree(night, {f"tiger/more{i}.png": testing.png((20 + i, 30)) for i in range(40)})
    reports, manifests = [], []
    for i, procs in enumerate([2, 1]):
        out = tmp_path / f"run{i}"
        reports.append(ingest.ingest_night(
            str(src), NIGHT, out / "spans", out / "q", include_corpus=False,
            known_labels=LABELS, max_pixels=testing.BAD_MAX_PIXELS, processes=procs, threads=2))
        m = json.loads((out / "spans" / "toto" / NIGHT.isoformat() / "_manifest.json").read_text())
        manifests.append({k: v for k, v in m.items() if k != "written_at"})
    assert [r.worker_processes for r in reports] == [1, 0]
    assert reports[0].worker_peak_mb[0] > 5
    assert manifests[0] == manifests[1]
    assert reports[0].quarantined == reports[1].quarantined and len(reports[0].quarantined) == 6
    by_obj = {e["object"].rsplit("/", 2)[-2] + "/" + e["object"].rsplit("/", 1)[-1]: e
              for e in manifests[0]["objects"]}
    rotated = by_obj["lion/b.jpg"]
    assert (rotated["width"], rotated["height"], rotated["exif_orientation"]) == (64, 48, 6)
    assert rotated["capture_time"] == "2026-01-02T03:04:05"
    assert rotated["brightness"] is None         # not measured at ingestion
    assert by_obj["tiger/more39.png"]["width"] == 59


def test_worker_processes_start_only_for_large_trees(src, tmp_path, monkeypatch):
    testing.write_tree(src / "toto" / NIGHT.isoformat(),
                       {f"bear/n{i}.jpg": testing.jpeg(color=(i, 9, 9)) for i in range(8)})
    monkeypatch.setattr(ingest.parallel, "usable_cpus", lambda: 2)
    small = run(src, tmp_path / "a", include_corpus=False)
    assert small.worker_processes == 0
    monkeypatch.setattr(ingest.parallel, "PROCESS_MIN_OBJECTS", 8)
    large = run(src, tmp_path / "b", include_corpus=False)
    assert large.worker_processes == 1 and large.ingested == small.ingested


def test_empty_listing_never_wipes_an_existing_span(src, tmp_path):
    run(src, tmp_path)
    import shutil
    shutil.rmtree(src / "toto" / NIGHT.isoformat())
    with pytest.raises(ingest.IngestError, match="refusing to empty"):
        run(src, tmp_path)
    assert (tmp_path / "spans" / "toto" / NIGHT.isoformat() / "lion" / "a.jpg").is_file()


def test_missing_night_fails_naming_it(tmp_path):
    (tmp_path / "source").mkdir()
    with pytest.raises(ingest.IngestError, match=r"toto/2026-01-02"):
        run(tmp_path / "source", tmp_path)


class Flaky:
    def __init__(self, errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_policy_retries_transient_and_names_object_on_permanent():
    from google.api_core import exceptions as gexc
    import requests
    fast = ingest.RetryPolicy(attempts=5, initial_seconds=0, max_seconds=0)
    flaky = Flaky([gexc.TooManyRequests("429"), gexc.ServiceUnavailable("503"),
                   gexc.InternalServerError("500"), requests.exceptions.ReadTimeout("slow")])
    assert fast.call(flaky, "object gs://b/x.jpg") == "ok" and flaky.calls == 5
    with pytest.raises(ingest.IngestError, match=r"gs://b/x\.jpg: permanent error: Forbidden"):
        fast.call(Flaky([gexc.Forbidden("403")]), "object gs://b/x.jpg")
    with pytest.raises(ingest.IngestError, match=r"gs://b/y\.jpg: still failing after 5 attempts"):
        fast.call(Flaky([gexc.ServiceUnavailable("503")] * 9), "object gs://b/y.jpg")


def test_report_to_json_has_the_contract_keys(src, tmp_path):
    report = run(src, tmp_path)
    data = json.loads(report.to_json())
    assert {"date", "ingested", "unchanged", "quarantined", "span_examples"} <= set(data)
    assert dataclasses.is_dataclass(report)


def test_configured_settings_come_from_the_configuration_unless_overridden(tmp_path):
    """The operator, `emerald ingest` and the benchmarks take ingest_night's settings here."""
    from pipeline_src.config import load_config
    config = load_config(testing.quick_retry_config(
        tmp_path, ingest={"max_pixels": 12345, "unknown_labels": "hold", "processes": 3}))
    assert ingest.configured_settings(config) == {
        "max_pixels": 12345, "unknown_labels": "hold",
        "known_labels": tuple(config.data.labels), "processes": 3}
    overridden = ingest.configured_settings(config, max_pixels=99, unknown_labels=None,
                                            processes=0, known_labels=("lion",))
    assert overridden == {"max_pixels": 99, "unknown_labels": "hold",
                          "known_labels": ("lion",), "processes": 0}
    with pytest.raises(TypeError, match="threads"):
        ingest.configured_settings(config, threads=4)


def test_cli_json(src, tmp_path, capsys, monkeypatch):
    from pipeline_src.tools import cli
    (src / "toto" / NIGHT.isoformat() / "lion" / "zero.jpg").write_bytes(b"")
    monkeypatch.setenv("EMERALD_HOME", str(tmp_path / "home"))
    argv = ["ingest", "--source", str(src), "--date", NIGHT.isoformat(), "--json"]
    assert cli.main(argv) == 0
    # the last line: once Airflow is imported (tests/plugins), its root handler logs to stdout
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["date"] == NIGHT.isoformat()
    assert out["ingested"] == len(testing.GOOD) and out["unchanged"] == 0
    assert out["quarantined"] == [{"object": f"toto/{NIGHT.isoformat()}/lion/zero.jpg",
                                   "reason": "empty file (zero bytes)"}]
    assert out["span_examples"] == len(testing.GOOD)
    assert (tmp_path / "home" / "spans" / "toto" / NIGHT.isoformat() / "_manifest.json").is_file()
    assert (tmp_path / "home" / "quarantine" / NIGHT.isoformat() / "lion" / "zero.jpg").is_file()
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (again["ingested"], again["unchanged"]) == (0, len(testing.GOOD))
    assert cli.main(["ingest", "--source", str(src), "--date", "2026-05-05"]) == 2
    assert capsys.readouterr().err.startswith("emerald: error: no objects under")


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("policy", ["ingest", "hold"])
def test_an_unknown_label_folder_follows_the_policy(src, tmp_path, policy, capsys, monkeypatch):
    """`ingest.unknown_labels`: ingest (into the span, counted, for the schema check to flag)
    or hold (quarantined with the reason, out of the span): one outcome each, said once."""
    from pipeline_src.tools import cli
    night = src / "toto" / NIGHT.isoformat()
    testing.write_tree(night, {"zebra/z1.jpg": testing.jpeg(), "zebra/z2.png": testing.png()})
    monkeypatch.setenv("EMERALD_HOME", str(tmp_path / "home"))
    assert cli.main(["ingest", "--source", str(src), "--date", NIGHT.isoformat(),
                     "--unknown-labels", policy]) == 0
    out = capsys.readouterr().out
    span = tmp_path / "home" / "spans" / "toto" / NIGHT.isoformat()
    held = tmp_path / "home" / "quarantine" / NIGHT.isoformat() / "zebra"
    manifest = json.loads((span / "_manifest.json").read_text())
    if policy == "ingest":
        assert sorted(p.name for p in (span / "zebra").iterdir()) == ["z1.jpg", "z2.png"]
        assert manifest["unknown_labels"] == {"zebra": 2} and manifest["counts"]["held"] == 0
        assert "unknown label 'zebra' (not in data.labels): 2 ingested" in out
        assert "  quarantined " not in out and not held.exists()
    else:
        assert not (span / "zebra").exists() and manifest["counts"]["held"] == 2
        assert sorted(p.name for p in held.iterdir()) == [
            "z1.jpg", "z1.jpg.reason.txt", "z2.png", "z2.png.reason.txt"]
        assert "reason: label not in schema" in (held / "z1.jpg.reason.txt").read_text()
        assert f"quarantined toto/{NIGHT.isoformat()}/zebra/z1.jpg: label not in schema" in out
        assert "unknown label" not in out
    assert manifest["example_count"] == len(testing.GOOD) + (2 if policy == "ingest" else 0)


def test_a_missing_source_directory_fails_naming_it(tmp_path):
    """A SourceError: the source is wrong, retrying the night will not help."""
    with pytest.raises(ingest.SourceError, match=r"source directory .*nowhere does not exist"):
        run(tmp_path / "nowhere", tmp_path)
    assert not (tmp_path / "spans" / "toto" / NIGHT.isoformat()).exists()


def test_no_corpus_fails_the_bootstrap_night_and_only_warns_on_a_toto_night(tmp_path, caplog):
    (tmp_path / "source").mkdir()
    testing.write_tree(tmp_path / "source" / "toto" / NIGHT.isoformat(),
                       {"lion/a.jpg": testing.jpeg()})
    with pytest.raises(ingest.SourceError,
                       match=r"no corpus under .*source/corpus: the corpus-only night trains on "
                             r"the corpus alone; put it at .*source/corpus/\{label\}/\{name\}"):
        run(tmp_path / "source", tmp_path, include_night=False)
    with pytest.raises(ingest.SourceError, match=r"no corpus under .*--no-corpus"):
        run(tmp_path / "source", tmp_path, require_corpus=True)
    assert not (tmp_path / "spans" / "toto").exists()           # stopped before the night
    with caplog.at_level("WARNING", logger="pipeline_src.ingest"):
        report = run(tmp_path / "source", tmp_path)
    assert report.span_examples == 1
    assert "no corpus under" in caplog.text and "Toto's nights alone" in caplog.text


def test_a_corpus_of_bad_files_alone_is_no_corpus(tmp_path):
    testing.write_tree(tmp_path / "source" / "corpus", {"lion/x.jpg": b"", "lion/y.jpg": b"?"})
    with pytest.raises(ingest.SourceError, match=r"no image of the corpus under .* could be "
                                                 r"ingested \(2 objects: 2 quarantined into "):
        run(tmp_path / "source", tmp_path, include_night=False)
    assert len(list((tmp_path / "q" / "corpus" / "lion").glob("*.reason.txt"))) == 2


@pytest.mark.parametrize("damage", [
    b'{"version": 1, "objects": [{"obj',                       # truncated
    bytes(range(256)) * 4,                                      # garbage, not even UTF-8
    b"[1, 2, 3]",                                               # JSON, but not a manifest
    b'{"version": 1, "settings": SETTINGS, "objects": [7, {"status": "ingested"}, '
    b'{"object": 1, "file": null, "status": "ingested"}]}',   # damaged entries
])
def test_a_damaged_manifest_is_a_warning_and_the_night_is_fetched_again(src, tmp_path, damage,
                                                                          caplog):
    run(src, tmp_path)
    span = tmp_path / "spans" / "toto" / NIGHT.isoformat()
    settings = json.loads((span / "_manifest.json").read_text())["settings"]
    (span / "_manifest.json").write_bytes(damage.replace(b"SETTINGS",
                                                         json.dumps(settings).encode()))
    with caplog.at_level("WARNING", logger="pipeline_src.ingest"):
        again = run(src, tmp_path)
    assert (again.ingested, again.unchanged) == (len(testing.GOOD), 0)
    assert json.loads((span / "_manifest.json").read_text())["example_count"] == len(testing.GOOD)
    if b"SETTINGS" not in damage:
        assert f"unreadable manifest {span / '_manifest.json'}" in caplog.text
