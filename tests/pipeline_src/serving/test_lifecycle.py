"""Three nights through the report task, a rollback, then the next night's baseline.

The nights are real SavedModels and real MLMD artifacts laid out as TFX does
(conftest.Nights), recorded by the night_report task's own body
(tasks.write_night_report); `emerald models` / `rollback` run through the CLI's main().
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline_src.orchestration import tasks
from pipeline_src.serving import history, lifecycle
from pipeline_src.serving.strategy import ServingModelStrategy
from pipeline_src.tools import cli

NIGHTS = ("2026-01-01", "2026-01-02", "2026-01-03")
VERSIONS = ("1767300000", "1767400000", "1767500000")


def _emerald(capsys, *argv):
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _models(capsys):
    code, out, _ = _emerald(capsys, "models", "--json")
    assert code == 0
    return json.loads(out)


def _three_nights(nights, colour_models, config):
    for night in NIGHTS:                        # the spans ExampleGen read
        (config.paths.spans / "toto" / night).mkdir(parents=True)
    runs = []
    for night, version, name, accuracy in zip(NIGHTS, VERSIONS, ("v1", "v2", "v3"),
                                              (0.9, 0.85, 0.95)):
        runs.append(nights.night(night, colour_models[name], version, accuracy=accuracy))
        summary = tasks.write_night_report(config, runs[-1]["run_id"], night, state="success")
        assert summary["pushed"] and summary["pushed_version"] == version
    return runs


@pytest.mark.slow
def test_three_nights_a_rollback_and_the_next_nights_baseline(nights, colour_models,
                                                              serving_config, capsys):
    runs = _three_nights(nights, colour_models, serving_config)
    serving = serving_config.paths.serving

    listed = _models(capsys)
    assert [(e["seq"], e["version"], e["night"], e["method"]) for e in listed] == [
        (1, VERSIONS[0], NIGHTS[0], "nightly"), (2, VERSIONS[1], NIGHTS[1], "nightly"),
        (3, VERSIONS[2], NIGHTS[2], "nightly")]
    assert [e["serving"] for e in listed] == [False, False, True]
    third = listed[2]
    assert third["metrics"]["accuracy"] == {
        "overall": pytest.approx(0.95), "slices": {"source=corpus": pytest.approx(0.95),
                                                   "source=toto": pytest.approx(0.95)}}
    assert third["blessing"]["blessed"] and third["blessing"]["id"] == runs[2]["blessing"].id
    assert third["model"] == {"id": runs[2]["model"].id, "uri": colour_models["v3"]}
    assert third["trained_on"]["nights"] == list(NIGHTS[:2])     # earlier nights; tonight evals
    assert third["trained_on"]["corpus"] and third["pushed_model"]["id"]
    assert json.loads(Path(serving, "CURRENT").read_text())["version"] == VERSIONS[2]

    code, out, _ = _emerald(capsys, "rollback", VERSIONS[0], "--reason", "tigers are lions")
    assert code == 0 and VERSIONS[0] in out
    listed = _models(capsys)
    rolled = listed[-1]
    assert (rolled["seq"], rolled["version"], rolled["method"], rolled["reason"],
            rolled["previous_version"]) == (4, VERSIONS[0], "rollback", "tigers are lions",
                                            VERSIONS[2])
    assert rolled["model"] == listed[0]["model"] and rolled["night"] == NIGHTS[0]
    assert [e["serving"] for e in listed] == [False, False, False, True]
    assert "specific { versions: %s }" % VERSIONS[0] in Path(serving, "models.config").read_text()
    code, table, _ = _emerald(capsys, "models")
    starred = [line for line in table.splitlines() if line.startswith("*")]
    assert code == 0 and starred[0].split()[1:4] == ["4", VERSIONS[0], NIGHTS[0]]
    assert "rollback" in starred[0] and "(tigers are lions)" in starred[0]

    # The fourth night: its model is blessed but the gate blocks the push. Its Evaluator
    # and validator must compare with what serves, the rolled-back v1, not the latest blessed.
    nights.night("2026-01-04", colour_models["v2"], "1767600000", pushed=False)
    inputs = nights.resolver_inputs()
    picked = ServingModelStrategy().resolve_artifacts(nights.store, inputs)
    assert [m.uri for m in picked["model"]] == [colour_models["v1"]]
    assert [m.id for m in picked["model"]] == [runs[0]["model"].id]
    assert [b.id for b in picked["model_blessing"]] == [runs[0]["blessing"].id]
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
        LatestBlessedModelStrategy)
    latest = LatestBlessedModelStrategy().resolve_artifacts(nights.store, nights.resolver_inputs())
    assert latest["model"][0].id != runs[0]["model"].id          # what the old resolver gave

    # A rerun of night 3's report task records nothing twice and does not undo the rollback.
    tasks.write_night_report(serving_config, runs[2]["run_id"], NIGHTS[2], state="success")
    assert len(history.entries(serving)) == 4
    assert history.read_pointer(serving)["version"] == VERSIONS[0]


def test_recording_is_idempotent_and_a_not_pushed_night_is_not_recorded(nights, serving_config,
                                                                        tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "Format-Serving").mkdir(parents=True)
    (model_dir / "Format-Serving" / "saved_model.pb").write_bytes(b"")
    run = nights.night(NIGHTS[0], str(model_dir), VERSIONS[0], blessed=True)
    for _ in range(3):
        tasks.write_night_report(serving_config, run["run_id"], NIGHTS[0], state="success")
    serving = serving_config.paths.serving
    assert [e["version"] for e in history.entries(serving)] == [VERSIONS[0]]
    assert history.read_pointer(serving)["version"] == VERSIONS[0]
    unpushed = nights.night(NIGHTS[1], str(model_dir), VERSIONS[1], blessed=False, pushed=False)
    summary = tasks.write_night_report(serving_config, unpushed["run_id"], NIGHTS[1])
    assert not summary["pushed"]
    assert len(history.entries(serving)) == 1


def test_a_crash_between_entry_and_pointer_is_repaired_by_the_rerun(nights, serving_config,
                                                                    tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    (model_dir / "Format-Serving").mkdir(parents=True)
    (model_dir / "Format-Serving" / "saved_model.pb").write_bytes(b"")
    run = nights.night(NIGHTS[0], str(model_dir), VERSIONS[0])
    with monkeypatch.context() as patched:
        patched.setattr(history, "sync_pointer", lambda *a: (_ for _ in ()).throw(OSError("kill")))
        with pytest.raises(OSError):
            tasks.write_night_report(serving_config, run["run_id"], NIGHTS[0])
    assert history.read_pointer(serving_config.paths.serving) is None
    tasks.write_night_report(serving_config, run["run_id"], NIGHTS[0])
    assert history.read_pointer(serving_config.paths.serving)["version"] == VERSIONS[0]
    assert len(history.entries(serving_config.paths.serving)) == 1


def test_a_forced_push_is_recorded_as_force_push(serving_config, monkeypatch):
    monkeypatch.setattr(lifecycle, "push_entry", lambda config, summary, store: {
        "version": summary["pushed_version"], "night": summary["date"],
        "method": "force_push" if summary.get("forced") else "nightly"})
    entry = lifecycle.record_push(serving_config, {
        "pushed": True, "pushed_version": "5", "forced": True, "date": NIGHTS[0],
        "tfx_run_id": "r"}, store=object())
    assert entry["method"] == "force_push"


def test_rollback_to_an_unknown_version_is_one_line_and_exit_2(serving_config, capsys):
    history.append(serving_config.paths.serving, {"version": "100", "method": "nightly"})
    code, out, err = _emerald(capsys, "rollback", "999")
    assert code == 2 and out == ""
    assert err.startswith("emerald: error: no pushed version '999'") and "100" in err
    assert err.count("\n") == 1
    assert len(history.entries(serving_config.paths.serving)) == 1    # nothing recorded


def test_rollback_to_a_version_whose_model_is_gone_or_that_serves_is_refused(
        serving_config, capsys):
    serving = serving_config.paths.serving
    history.append(serving, {"version": "100", "method": "nightly"})
    code, _, err = _emerald(capsys, "rollback", "100")
    assert code == 2 and "SavedModel is gone" in err
    Path(serving, "100").mkdir()
    Path(serving, "100", "saved_model.pb").write_bytes(b"")
    code, _, err = _emerald(capsys, "rollback", "100")
    assert code == 2 and "already serves" in err


def test_without_a_pointer_the_strategy_gives_the_latest_blessed_model(nights, tmp_path):
    first = nights.night(NIGHTS[0], str(tmp_path / "m1"), "1", pushed=False)
    second = nights.night(NIGHTS[1], str(tmp_path / "m2"), "2", pushed=False)
    nights.night(NIGHTS[2], str(tmp_path / "m3"), "3", blessed=False, pushed=False)
    picked = ServingModelStrategy().resolve_artifacts(nights.store, nights.resolver_inputs())
    assert [m.id for m in picked["model"]] == [second["model"].id] != [first["model"].id]
    empty = ServingModelStrategy().resolve_artifacts(nights.store, {
        "model": [], "model_blessing": []})
    assert empty == {"model": [], "model_blessing": []}


def test_models_lists_nothing_before_the_first_push(serving_config, capsys):
    assert _models(capsys) == []
    code, out, _ = _emerald(capsys, "models")
    assert code == 0 and "no model pushed yet" in out


@pytest.mark.slow
def test_tfx_input_resolution_runs_the_strategy_from_the_compiled_pipeline(
        nights, serving_config, tmp_path):
    """The Resolver as pipeline.py would declare it, compiled to IR and resolved by TFX's own
    input resolution against the store: the class path in the IR loads, the pick is the serving
    model although a later model is blessed."""
    from tfx import v1 as tfx
    from tfx.dsl.compiler import compiler
    from tfx.orchestration import metadata
    from tfx.orchestration.portable import inputs_utils

    from pipeline_src import names
    from pipeline_src.metadata import metadata_connection_config

    runs = []
    for night, version in zip(NIGHTS, VERSIONS):
        model_dir = tmp_path / version
        (model_dir / "Format-Serving").mkdir(parents=True)
        (model_dir / "Format-Serving" / "saved_model.pb").write_bytes(b"")
        runs.append(nights.night(night, str(model_dir), version, pushed=night != NIGHTS[2]))
        tasks.write_night_report(serving_config, runs[-1]["run_id"], night)
    resolver = tfx.dsl.Resolver(
        strategy_class=ServingModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(names.RESOLVER)
    ir = compiler.Compiler().compile(tfx.dsl.Pipeline(
        pipeline_name=nights.PIPELINE, pipeline_root=str(tmp_path / "root"),
        components=[resolver]))
    node = ir.nodes[0].pipeline_node
    assert "pipeline_src.serving.strategy.ServingModelStrategy" in str(node.inputs)
    with metadata.Metadata(metadata_connection_config(serving_config)) as handle:
        resolved = inputs_utils.resolve_input_artifacts(pipeline_node=node,
                                                        metadata_handle=handle)
    assert [m.id for m in resolved[0]["model"]] == [runs[1]["model"].id]    # night 2 serves
