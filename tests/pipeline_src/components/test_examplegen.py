"""ExampleGen: which images land in which split, and what each example carries."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import features
from pipeline_src.components import examplegen, spans as span_plan
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


def test_corpus_only_night_uses_a_stable_hash_split(spans):
    plan = span_plan.plan_splits(spans, FIRST - dt.timedelta(days=1), "newest_night", 25)
    assert plan.eval_mode == "hash"
    train, evaluation = plan.splits[features.TRAIN], plan.splits[features.EVAL]
    assert {i.source for i in train + evaluation} == {"corpus"}
    assert len(train) + len(evaluation) == 12
    assert not _names(train) & _names(evaluation)
    again = span_plan.plan_splits(spans, FIRST - dt.timedelta(days=1), "newest_night", 25)
    assert _names(again.splits[features.EVAL]) == _names(evaluation)
    assert plan.previous_night is None


def test_a_toto_night_is_evaluated_on_that_night_and_trained_on_what_came_before(spans):
    second = FIRST + dt.timedelta(days=1)
    plan = span_plan.plan_splits(spans, second, "newest_night", 25)
    assert plan.eval_mode == "newest_night"
    evaluation = plan.splits[features.EVAL]
    assert {(i.source, i.night) for i in evaluation} == {("toto", second.isoformat())}
    train_nights = {i.night for i in plan.splits[features.TRAIN]}
    assert train_nights == {"corpus", FIRST.isoformat()}
    assert plan.previous_night == FIRST.isoformat()
    assert {i.night for i in plan.splits[features.PREVIOUS]} == {FIRST.isoformat()}


def test_hash_option_mixes_every_night_into_both_splits(spans):
    plan = span_plan.plan_splits(spans, FIRST + dt.timedelta(days=1), "hash", 50)
    assert plan.eval_mode == "hash"
    everything = plan.splits[features.TRAIN] + plan.splits[features.EVAL]
    assert len(everything) == 12 + 2 * 6


def test_examples_carry_the_contract_features_and_bad_images_are_recorded(spans, tmp_path):
    plan = span_plan.plan_splits(spans, FIRST, "newest_night", 25)
    corrupt = spans / "toto" / FIRST.isoformat() / "lion" / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    try:
        plan = span_plan.plan_splits(spans, FIRST, "newest_night", 25)
        result = examplegen.write_splits(plan, str(tmp_path), max_pixels=10_000_000)
    finally:
        corrupt.unlink()
    assert result["counts"][features.EVAL] == 6   # the broken file is not an example...
    (rejected,) = result["rejected"]               # ...but it is accounted for, once
    assert set(rejected) == {"object", "reason"}
    assert rejected["object"] == str(corrupt)
    assert rejected["reason"].startswith("corrupt or truncated image: ")
    example = testing.split_examples(str(tmp_path), features.EVAL)[0]
    feats = example.features.feature
    assert set(feats) == DOCUMENTED_FEATURES                   # what README.md promises
    assert feats[features.SOURCE].bytes_list.value[0] == b"toto"
    assert feats[features.ORIENTATION].bytes_list.value[0] == b"portrait"
    assert feats[features.ASPECT_RATIO].float_list.value[0] == pytest.approx(0.75)
    assert 0 <= feats[features.CAPTURE_HOUR].int64_list.value[0] <= 23
    assert feats[features.NIGHT].bytes_list.value[0] == FIRST.isoformat().encode()
