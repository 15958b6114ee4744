"""ExampleGen: which images land in which split, and what each example carries."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import features
from pipeline_src.components import spans as span_plan
from pipeline_src.tools import synth

FIRST = dt.date(2026, 1, 2)
README = Path(__file__).resolve().parents[3] / "README.md"

# The features every example carries, as README.md's "**ExampleGen**" bullet documents them
# ("writes tf.Examples with the image bytes, label, height, ..."): the contract users and the
# model read, written down independently of pipeline_src/features.py.
DOCUMENTED_FEATURES = {
    "image", "label", "height", "width", "aspect_ratio", "pixel_area", "brightness",
    "rms_contrast", "mean_red", "mean_green", "mean_blue", "sharpness", "source", "night",
    "capture_hour", "orientation",
}


def readme_examplegen_features() -> set[str]:
    """The feature list of README.md's ExampleGen bullet, parsed."""
    bullet = README.read_text().split("- **ExampleGen**", 1)[1].split("\n- ", 1)[0]
    listed = " ".join(bullet.split()).split("writes tf.Examples with the ", 1)[1]
    listed = listed.split(". Splits:", 1)[0]
    while "(" in listed:                                  # drop the (explanations)
        listed = re.sub(r"\([^()]*\)", "", listed)
    words = re.split(r",|/|\band\b", listed)
    return {"image" if w.strip() == "image bytes" else w.strip() for w in words if w.strip()}


def test_the_readme_documents_the_example_features():
    assert readme_examplegen_features() == DOCUMENTED_FEATURES


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    base = tmp_path_factory.mktemp("spans")
    synth.synthesize(base, nights=2, seed=3, start_date=FIRST,
                     corpus_per_label=4, toto_per_label=2)
    return base


def _names(images):
    return {(i.source, i.night, i.label, i.filename) for i in images}


def test_a_corpus_only_night_makes_the_corpus_its_span_with_a_stable_hash_split(spans):
    night = FIRST - dt.timedelta(days=1)
    plan = span_plan.plan_night(spans, night, "newest_night")
    assert plan.tonight.is_corpus and plan.tonight.number == 0
    assert plan.eval_mode == "hash" and plan.previous_night is None
    assert plan.training_spans() == []
    splits = span_plan.span_splits(plan.tonight, "newest_night", 25)
    train, evaluation = splits[features.TRAIN], splits[features.EVAL]
    assert {i.source for i in train + evaluation} == {"corpus"}
    assert len(train) + len(evaluation) == 12 and train and evaluation
    assert not _names(train) & _names(evaluation)
    again = span_plan.span_splits(span_plan.plan_night(spans, night, "newest_night").tonight,
                                  "newest_night", 25)
    assert _names(again[features.EVAL]) == _names(evaluation)


def test_a_toto_night_is_evaluated_on_that_night_and_trained_on_what_came_before(spans):
    second = FIRST + dt.timedelta(days=1)
    plan = span_plan.plan_night(spans, second, "newest_night")
    assert plan.eval_mode == "newest_night"
    assert plan.tonight.name == second.isoformat()
    assert plan.tonight.number == (second - dt.date(1970, 1, 1)).days
    splits = span_plan.span_splits(plan.tonight, "newest_night", 25)
    assert splits[features.TRAIN] == []
    assert {(i.source, i.night) for i in splits[features.EVAL]} == {("toto", second.isoformat())}
    assert [span.name for span in plan.training_spans()] == ["corpus", FIRST.isoformat()]
    assert plan.previous_night == FIRST.isoformat()


def test_a_past_night_run_again_plans_nothing_after_it(spans):
    plan = span_plan.plan_night(spans, FIRST, "newest_night")
    assert list(plan.spans) == ["corpus", FIRST.isoformat()]     # not the night after
    assert plan.previous_night is None


def test_the_hash_option_splits_each_span_by_the_hash(spans):
    second = FIRST + dt.timedelta(days=1)
    plan = span_plan.plan_night(spans, second, "hash")
    assert plan.eval_mode == "hash"
    splits = span_plan.span_splits(plan.tonight, "hash", 50)
    assert len(splits[features.TRAIN]) + len(splits[features.EVAL]) == 6
    assert {i.night for i in splits[features.TRAIN] + splits[features.EVAL]} == {
        second.isoformat()}


def test_examples_carry_the_contract_features_and_bad_images_are_recorded(spans, tmp_path):
    corrupt = spans / "toto" / FIRST.isoformat() / "lion" / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    try:
        tonight = testing.SpanArtifacts(tmp_path, spans, max_pixels=10_000_000).night(FIRST)
    finally:
        corrupt.unlink()
    assert json.loads(tonight.get_string_custom_property("split_counts"))[features.EVAL] == 6
    (rejected,) = json.loads(Path(tonight.uri, "rejected.json").read_text())   # once
    assert set(rejected) == {"object", "reason"}
    assert rejected["object"] == str(corrupt)
    assert rejected["reason"].startswith("corrupt or truncated image: ")
    assert tonight.get_int_custom_property("rejected_count") == 1
    example = testing.split_examples(tonight.uri, features.EVAL)[0]
    feats = example.features.feature
    assert set(feats) == DOCUMENTED_FEATURES                   # what README.md promises
    assert feats[features.SOURCE].bytes_list.value[0] == b"toto"
    assert feats[features.ORIENTATION].bytes_list.value[0] == b"portrait"
    assert feats[features.ASPECT_RATIO].float_list.value[0] == pytest.approx(0.75)
    assert 0 <= feats[features.CAPTURE_HOUR].int64_list.value[0] <= 23
    assert feats[features.NIGHT].bytes_list.value[0] == FIRST.isoformat().encode()
