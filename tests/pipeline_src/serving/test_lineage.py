"""`emerald lineage VERSION` against a real MLMD: three nights as TFX records them.

The nights are laid out in a real SQLite MLMD by conftest.Nights (events keyed as
the portable launcher keys them, ExampleGen's execution properties), pushed into
the history by the night_report task's own body (tasks.write_night_report), with
the spans' manifests where ingestion writes them; the CLI runs through main().
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_src.ingest.manifest import MANIFEST_NAME, write_json
from pipeline_src.orchestration import tasks
from pipeline_src.serving import history, lineage
from pipeline_src.tools import cli

NIGHTS = ("2026-01-01", "2026-01-02", "2026-01-03")
VERSIONS = ("1767300000", "1767400000", "1767500000")
TOTO_IMAGES = {"2026-01-01": 4, "2026-01-02": 5, "2026-01-03": 6}
LATE_UPLOAD = "2026-01-02"      # its span was re-ingested with one more image since
CORPUS = 12                     # conftest.Nights.CORPUS_IMAGES


def _emerald(capsys, *argv):
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _span_manifest(span_dir: Path, examples: int) -> Path:
    """What ingestion leaves in a span (pipeline_src/ingest/manifest.py), counts included."""
    span_dir.mkdir(parents=True, exist_ok=True)
    write_json(span_dir / MANIFEST_NAME, {"version": 1, "example_count": examples,
                                          "source_uri": f"file:///bucket/{span_dir.name}/",
                                          "written_at": "2026-01-04T02:00:00+00:00"})
    return span_dir / MANIFEST_NAME


def _three_nights(nights, config, tmp_path) -> list[dict]:
    spans = config.paths.spans
    _span_manifest(spans / "corpus", CORPUS)
    runs = []
    for night, version in zip(NIGHTS, VERSIONS):
        _span_manifest(spans / "toto" / night, TOTO_IMAGES[night] + (night == LATE_UPLOAD))
        model_dir = tmp_path / f"model-{night}"
        (model_dir / "Format-Serving").mkdir(parents=True)
        (model_dir / "Format-Serving" / "saved_model.pb").write_bytes(b"")
        runs.append(nights.night(night, str(model_dir), version, toto_images=TOTO_IMAGES[night]))
        summary = tasks.write_night_report(config, runs[-1]["run_id"], night, state="success")
        assert summary["pushed"] and summary["pushed_version"] == version
    return runs


def test_lineage_of_each_version_names_its_nights_counts_manifests_and_runs(
        nights, serving_config, tmp_path):
    runs = _three_nights(nights, serving_config, tmp_path)
    spans = serving_config.paths.spans
    for i, (night, version, run) in enumerate(zip(NIGHTS, VERSIONS, runs)):
        found = lineage.lineage(serving_config, version)
        assert (found["version"], found["night"], found["serving"]) == (version, night, i == 2)
        assert found["tfx_run"] == run["run_id"] == f"scheduled__{night}.{version}"
        assert found["dag_run"] == {"dag_id": serving_config.dag.dag_id,
                                    "run_id": f"scheduled__{night}", "id": int(version)}
        assert found["trainer"]["tfx_run"] == run["run_id"]
        assert found["trainer"]["node"] == "Trainer" and found["pusher"]["node"] == "Pusher"
        assert found["pushed_model"]["id"] == run["pushed_model"].id
        assert found["pushed_model"]["destination"] == str(Path(serving_config.paths.serving,
                                                                version))
        assert found["model"] == {"id": run["model"].id, "uri": run["model"].uri}
        assert found["blessing"]["id"] == run["blessing"].id and found["blessing"]["blessed"]
        assert found["transform_graph"]["id"] == run["transform_graph"].id
        [examples] = found["examples"]
        assert (examples["id"], examples["night"], examples["span"]) == (
            run["examples"].id, night, 20454 + i)                  # days since 1970-01-01
        assert examples["split_names"] == ["train", "eval", "previous"]
        assert examples["producer"]["node"] == "ImageExampleGen"
        assert examples["producer"]["tfx_run"] == run["run_id"]
        assert found["evaluated_on"] == [{"night": night, "eval_mode": "newest_night",
                                          "images": TOTO_IMAGES[night], "images_source": "mlmd"}]

        trained = found["trained_on"]
        assert (trained["spans"], trained["spans_source"]) == (str(spans), "mlmd")
        earlier = NIGHTS[:i]                                      # tonight evaluates
        assert [n["night"] for n in trained["nights"]] == [*earlier, "corpus"]
        assert trained["train_split_images"] == CORPUS + sum(TOTO_IMAGES[n] for n in earlier)
        assert trained["nights_source"] == "mlmd"
        by_night = {n["night"]: n for n in trained["nights"]}
        # ExampleGen's night_counts in MLMD, the Trainer's record beside it.
        assert (by_night["corpus"]["images"], by_night["corpus"]["images_source"]) == (
            CORPUS, "mlmd")
        for n in earlier:
            assert (by_night[n]["images"], by_night[n]["images_source"],
                    by_night[n]["training_record_images"]) == (
                TOTO_IMAGES[n], "mlmd", TOTO_IMAGES[n])
        assert by_night["corpus"]["manifest"]["path"] == str(spans / "corpus" / MANIFEST_NAME)
        for n in earlier:
            manifest = by_night[n]["manifest"]
            assert manifest["path"] == str(spans / "toto" / n / MANIFEST_NAME)
            assert manifest["exists"] and manifest["example_count"] == (
                TOTO_IMAGES[n] + (n == LATE_UPLOAD))   # the span now, not what was trained on


def test_a_warm_start_counts_the_nights_its_base_model_learnt_from(nights, serving_config,
                                                                   tmp_path):
    """Tonight's train split holds only the newest night (as a split of tonight's span
    would); the nights before it come, from MLMD, through the base model's Trainer."""
    spans = serving_config.paths.spans
    _span_manifest(spans / "corpus", CORPUS)
    runs = []
    for i, (night, version) in enumerate(zip(NIGHTS, VERSIONS)):
        _span_manifest(spans / "toto" / night, TOTO_IMAGES[night])
        model_dir = tmp_path / f"model-{night}"
        (model_dir / "Format-Serving").mkdir(parents=True)
        (model_dir / "Format-Serving" / "saved_model.pb").write_bytes(b"")
        warm = {"base_model": runs[-1]["model"], "train_nights": [NIGHTS[i - 1]]} if i else {}
        runs.append(nights.night(night, str(model_dir), version,
                                 toto_images=TOTO_IMAGES[night], **warm))
        tasks.write_night_report(serving_config, runs[-1]["run_id"], night, state="success")
    found = lineage.lineage(serving_config, VERSIONS[2])
    assert found["base_model"]["id"] == runs[1]["model"].id
    assert found["trained_on"]["train_split_images"] == TOTO_IMAGES[NIGHTS[1]]   # tonight's own
    assert [(n["night"], n["images"], n["images_source"]) for n in found["trained_on"]["nights"]
            ] == [(NIGHTS[0], TOTO_IMAGES[NIGHTS[0]], "mlmd"),
                  (NIGHTS[1], TOTO_IMAGES[NIGHTS[1]], "mlmd"), ("corpus", CORPUS, "mlmd")]


def test_examples_from_before_night_counts_fall_back_to_the_training_record(
        nights, serving_config, tmp_path):
    spans = serving_config.paths.spans
    _span_manifest(spans / "corpus", CORPUS)
    for night, version in zip(NIGHTS[:2], VERSIONS[:2]):
        _span_manifest(spans / "toto" / night, TOTO_IMAGES[night])
        model_dir = tmp_path / f"model-{night}"
        (model_dir / "Format-Serving").mkdir(parents=True)
        (model_dir / "Format-Serving" / "saved_model.pb").write_bytes(b"")
        run = nights.night(night, str(model_dir), version, toto_images=TOTO_IMAGES[night],
                           night_counts=False)
        tasks.write_night_report(serving_config, run["run_id"], night, state="success")
    trained = lineage.lineage(serving_config, VERSIONS[1])["trained_on"]
    assert trained["nights_source"] == "training_record"
    assert [(n["night"], n["images"], n["images_source"]) for n in trained["nights"]] == [
        (NIGHTS[0], TOTO_IMAGES[NIGHTS[0]], "training_record"),
        ("corpus", CORPUS, "training_record")]


def test_a_rolled_back_version_still_resolves_to_its_own_run(nights, serving_config,
                                                             tmp_path, capsys):
    runs = _three_nights(nights, serving_config, tmp_path)
    code, _, _ = _emerald(capsys, "rollback", VERSIONS[0], "--reason", "tigers are lions")
    assert code == 0
    found = lineage.lineage(serving_config, VERSIONS[0])
    assert found["serving"] and found["night"] == NIGHTS[0]
    assert [(e["seq"], e["method"]) for e in found["history"]] == [(1, "nightly"), (4, "rollback")]
    assert found["tfx_run"] == runs[0]["run_id"] and found["model"]["id"] == runs[0]["model"].id
    assert [n["night"] for n in found["trained_on"]["nights"]] == ["corpus"]
    assert not lineage.lineage(serving_config, VERSIONS[2])["serving"]


def test_json_is_one_object_and_the_text_names_the_same_facts(nights, serving_config,
                                                              tmp_path, capsys):
    runs = _three_nights(nights, serving_config, tmp_path)
    code, out, err = _emerald(capsys, "lineage", VERSIONS[2], "--json")
    assert code == 0
    found = json.loads(out)                      # the whole of stdout is one JSON object
    assert isinstance(found, dict) and found["tfx_run"] == runs[2]["run_id"]
    code, text, _ = _emerald(capsys, "lineage", VERSIONS[2])
    assert code == 0
    assert text.startswith(f"version {VERSIONS[2]}, pushed for night {NIGHTS[2]}  (serves)")
    assert runs[2]["run_id"] in text and f"scheduled__{NIGHTS[2]} (id {VERSIONS[2]})" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()
            if line.startswith("    ") and not line.split()[0] == "night"}
    assert rows["corpus"][1:4] == [str(CORPUS), "mlmd", str(CORPUS)]
    assert rows[NIGHTS[0]][1:4] == [str(TOTO_IMAGES[NIGHTS[0]]), "mlmd",
                                    str(TOTO_IMAGES[NIGHTS[0]])]
    assert str(serving_config.paths.spans / "toto" / NIGHTS[1] / MANIFEST_NAME) in text


@pytest.mark.slow
def test_the_installed_command_prints_one_json_object(nights, serving_config, tmp_path):
    _three_nights(nights, serving_config, tmp_path)
    emerald = Path(sys.executable).with_name("emerald")
    done = subprocess.run([str(emerald), "lineage", VERSIONS[1], "--json"], env=os.environ,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trained_on"]["nights"][0]["night"] == NIGHTS[0]


def test_an_unknown_version_is_one_line_and_exit_2(nights, serving_config, tmp_path, capsys):
    _three_nights(nights, serving_config, tmp_path)
    code, out, err = _emerald(capsys, "lineage", "999")
    assert code == 2 and out == ""
    assert err.startswith("emerald: error: no pushed version '999'") and VERSIONS[0] in err
    assert err.count("\n") == 1


def test_a_version_in_the_history_but_not_in_mlmd_is_one_line_and_exit_2(
        nights, serving_config, capsys):
    history.append(serving_config.paths.serving, {"version": "100", "method": "nightly",
                                                  "night": NIGHTS[0]})
    code, out, err = _emerald(capsys, "lineage", "100")
    assert code == 2 and out == ""
    [error] = [line for line in err.splitlines() if "error" in line]   # MLMD logs its opening
    assert error.startswith("emerald: error: version 100 is in the push history")
    assert "no PushedModel with pushed_version 100" in error


def test_the_dag_run_is_read_from_the_tfx_run_id_as_airflow_makes_it():
    assert lineage.dag_run_of("manual__2026-01-02T03:04:05.123456+00:00.17") == {
        "run_id": "manual__2026-01-02T03:04:05.123456+00:00", "id": 17}
    assert lineage.dag_run_of("my-run") is None          # `emerald node --run-id my-run`
    assert lineage.dag_run_of("scheduled__2026-01-02.") is None


def test_the_channel_keys_are_tfxs():
    from tfx.types import standard_component_specs as specs

    from pipeline_src.components.examplegen import ImageExampleGenSpec

    assert (lineage.MODEL_KEY, lineage.MODEL_BLESSING_KEY, lineage.EXAMPLES_KEY,
            lineage.TRANSFORM_GRAPH_KEY, lineage.BASE_MODEL_KEY) == (
        specs.MODEL_KEY, specs.MODEL_BLESSING_KEY, specs.EXAMPLES_KEY,
        specs.TRANSFORM_GRAPH_KEY, specs.BASE_MODEL_KEY)
    assert lineage.EXAMPLES_KEY in ImageExampleGenSpec.OUTPUTS
