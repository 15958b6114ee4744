"""The ImageDistributionValidator executor on a real Examples artifact written by ExampleGen."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src.tools import synth
from pipeline_src.config import load_config

NIGHT_1, NIGHT_2 = dt.date(2026, 1, 2), dt.date(2026, 1, 3)


def _examples(root, night, into=None):
    """Tonight's span and the history, as TFX gives them, after every night up to `night`."""
    store = testing.SpanArtifacts(into or root / f"spans-{night}", root / "source",
                                  max_pixels=40_000_000)
    for each in (NIGHT_1, NIGHT_2):
        tonight = store.night(each)
        if each == night:
            counts = json.loads(tonight.get_string_custom_property("split_counts"))
            return tonight, store.history(), counts
    raise ValueError(night)


def _run(tmp_path, night):
    examples, history, counts = _examples(tmp_path, night)
    return (*_validate(examples, history, tmp_path / f"out-{night}"), counts)


def _validate(examples, history, out_dir):
    from pipeline_src.components import distribution_validator as component

    config = load_config(env={})
    settings = component.settings_json(
        labels=config.data.labels, false_alarm_rate=config.validation.false_alarm_rate,
        permutations=999, min_effects=config.validation.min_effects())
    out = component.DistributionComparisons()
    out.uri = str(out_dir)
    out_dir.mkdir()
    component.Executor().Do({"examples": [examples], "history": history}, {"comparisons": [out]},
                            {"settings": settings})
    return component.load_comparisons(out.uri), out


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("validator")
    synth.synthesize(root / "source", nights=1, seed=3, start_date=NIGHT_1,
                     corpus_per_label=12, toto_per_label=6)                     # portrait, dark
    synth.synthesize(root / "source", nights=1, seed=3, start_date=NIGHT_2,
                     corpus_per_label=12, toto_per_label=6, toto_style="landscape")
    return root


def test_the_first_night_compares_with_training_and_skips_drift_and_prediction(source):
    result, artifact, counts = _run(source, NIGHT_1)
    assert counts == {"train": 36, "eval": 18, "previous": 0}
    skew = {c["feature"]: c for c in result["comparisons"] if c["kind"] == "skew"}
    assert set(skew) == {"aspect_ratio", "pixel_area", "brightness", "rms_contrast", "mean_red",
                         "mean_green", "mean_blue", "sharpness", "label"}
    assert {c["kind"] for c in result["comparisons"]} == {"skew"}
    assert {s["kind"]: s["reason"] for s in result["skipped"]} == {
        "drift": "no earlier Toto night", "prediction": "no blessed model serves yet"}
    assert result["tests"] == 9 and result["alpha"] == pytest.approx(0.01 / 9)
    # Toto's portrait, darker photos against the landscape corpus.
    for feature in ("aspect_ratio", "brightness", "sharpness"):
        assert skew[feature]["fired"], skew[feature]
        assert (skew[feature]["n_tonight"], skew[feature]["n_baseline"]) == (18, 36)
    assert skew["aspect_ratio"]["effect"] == 1.0
    assert not skew["label"]["fired"]               # the same animals
    # MLMD custom properties of the output artifact.
    assert artifact.get_int_custom_property("tests") == 9
    fired = artifact.get_int_custom_property("fired")
    assert fired == sum(c["fired"] for c in result["comparisons"]) >= 3
    assert "skew:aspect_ratio" in artifact.get_string_custom_property("fired_features")


def test_a_landscape_night_after_a_portrait_night_drifts_but_does_not_skew(source):
    result, _, counts = _run(source, NIGHT_2)
    assert counts["train"] == 54                     # the portrait night is training now
    by_kind = {}
    for c in result["comparisons"]:
        by_kind.setdefault(c["kind"], {})[c["feature"]] = c
    assert by_kind["drift"]["aspect_ratio"]["fired"]             # vs the portrait night
    assert by_kind["drift"]["aspect_ratio"]["baseline"] == f"toto {NIGHT_1}"
    assert not by_kind["skew"]["aspect_ratio"]["fired"]
    assert result["tests"] == 18
    json.dumps(result)                                            # all of it is JSON


def test_the_baseline_comes_from_the_property_columns_and_equals_the_records(source, tmp_path):
    """The columns ExampleGen writes with each span are the records' values (as multisets,
    to the bit), and the comparisons made from them are the ones the records give."""
    import numpy as np

    from pipeline_src import features, names
    from pipeline_src.components import distribution_validator as component
    from pipeline_src.components import span_history

    examples, history, _ = _examples(source, NIGHT_2, into=tmp_path / "spans")
    from_columns, _ = _validate(examples, history, tmp_path / "from-columns")
    compared = features.COMPARED_NUMERIC + features.COMPARED_CATEGORICAL
    for span in history:
        stored = component.split_properties(span, compared)
        for split in features.SPAN_SPLITS:
            read = component.read_properties(span_history.split_uri(span, split), compared)
            for name in compared:
                assert len(stored(split)[name]) == span_history.span_counts(span)[split]
                assert stored(split)[name].dtype == read[name].dtype, (split, name)
                assert np.array_equal(np.sort(stored(split)[name]), np.sort(read[name])), (
                    split, name)
    for span in history:                 # artifacts without columns: read the records
        (Path(span.uri) / names.PROPERTY_COLUMNS_FILE).unlink()
    from_records, _ = _validate(examples, history, tmp_path / "from-records")
    assert from_records == from_columns
    assert from_columns["tests"] == 18
