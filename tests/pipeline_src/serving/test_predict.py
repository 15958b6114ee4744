"""`emerald predict`: the serving model's answers on fresh images; a bad file is its own error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

import model_testing as mt
from pipeline_src.serving import history
from pipeline_src.tools import cli

COLOURS = {"red": (230, 30, 20), "green": (30, 210, 40), "blue": (20, 40, 220)}


def _push(config, models, name, version):
    shutil.copytree(Path(models[name]) / mt.SERVING_DIR, Path(config.paths.serving) / version)
    entry = history.append(config.paths.serving, {"version": version, "method": "nightly"})
    history.sync_pointer(config.paths.serving, config.pipeline_name)
    return entry


@pytest.fixture
def photos(tmp_path) -> dict[str, str]:
    out = {}
    for i, (name, colour) in enumerate(COLOURS.items()):
        path = tmp_path / f"{name}.{'png' if i == 1 else 'jpg'}"
        Image.new("RGB", (90 + 20 * i, 60), colour).save(path)    # odd sizes, JPEG and PNG
        out[name] = str(path)
    (tmp_path / "notes.jpg").write_text("not a picture")
    out["text"] = str(tmp_path / "notes.jpg")
    good = (tmp_path / "red.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    out["truncated"] = str(tmp_path / "cut.jpg")
    out["missing"] = str(tmp_path / "nowhere.png")
    return out


def _predict(capsys, *argv):
    capsys.readouterr()
    code = cli.main(["predict", *argv])
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_the_serving_model_labels_fresh_images_and_bad_files_are_their_own_errors(
        serving_config, colour_models, photos, capsys):
    _push(serving_config, colour_models, "v1", "100")
    _push(serving_config, colour_models, "v3", "200")           # lions are bears: it serves
    order = ["red", "text", "green", "missing", "blue", "truncated"]
    code, out = _predict(capsys, *[photos[n] for n in order], "--json")
    assert code == 1                                             # some image had no answer
    results = json.loads(out)
    assert [r["image"] for r in results] == [photos[n] for n in order]
    by_name = dict(zip(order, results))
    assert [by_name[n]["label"] for n in ("red", "green", "blue")] == ["bear", "tiger", "bear"]
    for name in ("red", "green", "blue"):
        scores = by_name[name]["scores"]
        assert set(scores) == set(mt.LABELS) and sum(scores.values()) == pytest.approx(1, abs=1e-4)
        assert max(scores, key=scores.get) == by_name[name]["label"]
    assert by_name["text"]["label"] is None and "not an image" in by_name["text"]["error"]
    assert "truncated" in by_name["truncated"]["error"]
    assert by_name["missing"]["error"] == "no such file"

    code, out = _predict(capsys, photos["red"], photos["green"], "--version", "100", "--json")
    assert code == 0 and [r["label"] for r in json.loads(out)] == ["lion", "tiger"]

    cli.main(["rollback", "100"])
    code, out = _predict(capsys, photos["red"], photos["text"])
    lines = out.splitlines()
    assert lines[0] == "model version 100" and lines[1].split()[:2] == ["image", "label"]
    assert lines[2].split()[:2] == [photos["red"], "lion"]
    assert lines[3].startswith(photos["text"]) and "error: not an image" in lines[3]


def test_predict_before_any_push_is_one_line(serving_config, photos, capsys):
    code = cli.main(["predict", photos["red"]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("emerald: error: no model serves yet")
