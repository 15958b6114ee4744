"""One Examples artifact per span, made once: a night reads its own photos, no more.

The spans are real synthetic photos; ImageExampleGen's executor runs as TFX runs it
(testing.SpanArtifacts: its outputs where TFX puts them, its `history` what TFX's own
all_spans resolver op gives over everything published so far). Which images a night
reads is watched on the real read path (examplegen._read, wrapped, still reading).
"""
from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import features, names
from pipeline_src.components import examplegen, span_history
from pipeline_src.components.spans import list_spans
from pipeline_src.tools import synth
from pipeline_src.validation import columns as property_columns
from pipeline_src.validation import summary as feature_summary

FIRST = dt.date(2026, 5, 1)
SECOND, THIRD = FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=2)


@pytest.fixture
def spans(tmp_path) -> Path:
    base = tmp_path / "spans"
    synth.synthesize(base, nights=3, seed=11, start_date=FIRST, corpus_per_label=3,
                     toto_per_label=2)
    return base


@pytest.fixture
def store(spans, tmp_path) -> testing.SpanArtifacts:
    return testing.SpanArtifacts(tmp_path / "root", spans)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The uri of every image ExampleGen reads, in order."""
    seen: list[str] = []
    real_read = examplegen._read

    def read(plan, image):
        seen.append(image.uri)
        return real_read(plan, image)

    monkeypatch.setattr(examplegen, "_read", read)
    return seen


def _night_images(spans: Path, night: dt.date) -> set[str]:
    return {str(p) for p in (spans / "toto" / night.isoformat()).glob("*/*")}


def _records(patterns) -> list:
    import tensorflow as tf

    from pipeline_src.model import data

    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(
        data.list_files(patterns), compression_type="GZIP")]


def _spans(history) -> dict[str, tuple[int, int]]:
    return {span_history.span_name(a): (a.span, a.version) for a in history}


def test_a_night_decodes_only_its_own_photos_and_trains_on_every_span_before_it(
        spans, store, reads):
    first = store.night(FIRST)
    assert len(reads) == 9 + 6                      # no history yet: the corpus, and tonight
    assert [span_history.span_name(a) for a in store.updated] == ["corpus"]
    assert first.span == (FIRST - dt.date(1970, 1, 1)).days and first.version == 0
    store.night(SECOND)
    reads.clear()
    third = store.night(THIRD)
    assert set(reads) == _night_images(spans, THIRD) and len(reads) == 6   # tonight's six
    assert store.updated == []
    # No span made anew: the folder TFX made for one is gone (no orphaned output).
    assert not Path(store.root, "ImageExampleGen", examplegen.UPDATED_SPANS, "3").exists()
    assert Path(store.root, "ImageExampleGen", examplegen.UPDATED_SPANS, "1").is_dir()
    history = store.history()
    assert _spans(history) == {"corpus": (0, 0), **{
        n.isoformat(): ((n - dt.date(1970, 1, 1)).days, 0) for n in (FIRST, SECOND, THIRD)}}
    # What the Trainer trains on: every span before tonight, whole, then tonight's train split
    # (empty: tonight evaluates); what it evaluates on: tonight's eval split.
    trained = _records(span_history.training_patterns(third, history))
    assert collections.Counter(e.features.feature[features.NIGHT].bytes_list.value[0].decode()
                               for e in trained) == {
        "corpus": 9, FIRST.isoformat(): 6, SECOND.isoformat(): 6}
    evaluated = testing.split_examples(third.uri, features.EVAL)
    assert {e.features.feature[features.NIGHT].bytes_list.value[0] for e in evaluated} == {
        THIRD.isoformat().encode()} and len(evaluated) == 6
    assert json.loads(third.get_string_custom_property(names.SPLIT_COUNTS)) == {
        features.TRAIN: 9 + 6 + 6, features.EVAL: 6, features.PREVIOUS: 6}
    assert json.loads(third.get_string_custom_property(names.EXAMPLES_NIGHT_COUNTS)) == {
        features.TRAIN: {"corpus": 9, FIRST.isoformat(): 6, SECOND.isoformat(): 6},
        features.EVAL: {THIRD.isoformat(): 6}, features.PREVIOUS: {SECOND.isoformat(): 6}}
    assert third.get_string_custom_property("previous_night") == SECOND.isoformat()
    assert span_history.span_name(span_history.previous_span(third, history)) == \
        SECOND.isoformat()


def test_a_rerun_adds_no_span(spans, store, reads):
    store.night(FIRST)
    store.night(SECOND)
    before = _spans(store.history())
    reads.clear()
    again = store.night(SECOND)
    assert set(reads) == _night_images(spans, SECOND)         # tonight's photos only
    assert store.updated == []
    after = _spans(store.history())
    assert set(after) == set(before)                          # the same spans...
    assert after[SECOND.isoformat()] == (before[SECOND.isoformat()][0], 1)   # a new version
    assert {k: v for k, v in after.items() if k != SECOND.isoformat()} == {
        k: v for k, v in before.items() if k != SECOND.isoformat()}
    assert json.loads(again.get_string_custom_property(names.SPLIT_COUNTS))[features.TRAIN] \
        == 9 + 6


def test_a_reupload_makes_that_span_anew_and_nothing_else(spans, store, reads):
    store.night(FIRST)
    store.night(SECOND)
    night = spans / "toto" / FIRST.isoformat() / "lion"
    redone = sorted(night.iterdir())[0]
    redone.write_bytes(testing.jpeg((96, 128)))            # Toto re-uploads one photo
    reads.clear()
    third = store.night(THIRD)
    assert set(reads) == _night_images(spans, FIRST) | _night_images(spans, THIRD)
    (remade,) = store.updated
    assert (span_history.span_name(remade), remade.version) == (FIRST.isoformat(), 1)
    assert Path(remade.uri).parent == Path(store.root, "ImageExampleGen",
                                           examplegen.UPDATED_SPANS, "3")   # TFX's rule
    assert _spans(store.history())[FIRST.isoformat()][1] == 1
    trained = _records(span_history.training_patterns(third, store.history()))
    sizes = {(e.features.feature[features.WIDTH].int64_list.value[0],
              e.features.feature[features.HEIGHT].int64_list.value[0]) for e in trained}
    assert (96, 128) in sizes                               # the new photo trains


def test_a_damaged_photo_makes_its_span_anew_with_the_photo_rejected(spans, store, reads):
    store.night(FIRST)
    broken = sorted((spans / "toto" / FIRST.isoformat() / "tiger").iterdir())[0]
    broken.write_bytes(testing.garbled())                    # a disk or a hand since
    second = store.night(SECOND)
    (remade,) = store.updated
    assert remade.get_int_custom_property(names.SPAN_REJECTED) == 1
    rejected = json.loads(Path(remade.uri, names.REJECTED_FILE).read_text())
    assert [r["object"] for r in rejected] == [str(broken)]
    assert second.get_int_custom_property("rejected_count") == 1     # the night's report
    assert json.loads(Path(second.uri, names.REJECTED_FILE).read_text()) == rejected
    reads.clear()
    store.night(THIRD)                                       # made once: not read again
    assert set(reads) == _night_images(spans, THIRD)


def test_a_span_of_another_layout_in_the_history_is_made_anew(spans, store, reads):
    first = store.night(FIRST)
    first.set_int_custom_property(names.SPAN_FORMAT, 0)     # an Examples artifact of old
    store.night(SECOND)
    assert [span_history.span_name(a) for a in store.updated] == [FIRST.isoformat()]


def test_a_past_night_run_again_trains_on_nothing_after_it(spans, store):
    for night in (FIRST, SECOND, THIRD):
        store.night(night)
    again = store.night(SECOND)
    assert [span_history.span_name(a) for a in
            span_history.training_spans(again, store.history())] == ["corpus", FIRST.isoformat()]
    assert json.loads(again.get_string_custom_property(names.SPLIT_COUNTS))[features.TRAIN] \
        == 9 + 6


def test_the_corpus_only_night_makes_the_corpus_with_a_hash_split(spans, store):
    tonight = store.night(FIRST - dt.timedelta(days=1), hash_eval_percent=50)
    assert span_history.span_name(tonight) == "corpus" and tonight.span == 0
    assert store.updated == []
    assert tonight.get_string_custom_property("eval_mode") == "hash"
    counts = json.loads(tonight.get_string_custom_property(names.SPLIT_COUNTS))
    assert counts[features.TRAIN] + counts[features.EVAL] == 9 and counts[features.EVAL]
    assert counts[features.PREVIOUS] == 0
    # The next night trains on the whole corpus, its eval part included.
    first = store.night(FIRST)
    assert json.loads(first.get_string_custom_property(names.SPLIT_COUNTS))[features.TRAIN] == 9


def test_the_hash_option_splits_tonight_and_trains_on_the_rest(spans, store):
    store.night(FIRST, eval_split="hash", hash_eval_percent=50)
    second = store.night(SECOND, eval_split="hash", hash_eval_percent=50)
    assert second.get_string_custom_property("eval_mode") == "hash"
    own = span_history.span_counts(second)
    assert own[features.TRAIN] and own[features.EVAL] and sum(own.values()) == 6
    counts = json.loads(second.get_string_custom_property(names.SPLIT_COUNTS))
    assert counts == {features.TRAIN: 9 + 6 + own[features.TRAIN],
                      features.EVAL: own[features.EVAL], features.PREVIOUS: 6}


def test_a_source_moved_whole_makes_no_span_anew(spans, store, reads, tmp_path):
    store.night(FIRST)
    store.night(SECOND)
    moved = tmp_path / "elsewhere" / "spans"
    moved.parent.mkdir()
    spans.rename(moved)                       # the same objects (mtime, size) under a new root
    store.spans = str(moved)
    reads.clear()
    store.night(THIRD)
    assert store.updated == []
    assert set(reads) == _night_images(moved, THIRD) and len(reads) == 6


def test_the_key_changes_with_the_listing_the_settings_and_the_record_features(
        spans, monkeypatch):
    corpus = list_spans(spans).corpus
    key = examplegen.span_key(corpus, 1000)
    assert examplegen.span_key(corpus, 1000) == key
    assert examplegen.span_key(corpus, 2000) != key           # max_pixels decides rejections
    assert examplegen.span_key(corpus[1:], 1000) != key
    monkeypatch.setattr(examplegen, "RECORD_FEATURES", examplegen.RECORD_FEATURES + ["new"])
    assert examplegen.span_key(corpus, 1000) != key


def test_the_nights_feature_summary_merged_span_by_span_is_its_records(spans, store):
    store.night(FIRST)
    store.night(SECOND)
    third = store.night(THIRD)
    merged = json.loads(Path(third.uri, names.FEATURE_SUMMARY_FILE).read_text())
    history = store.history()
    truth = {features.TRAIN: _records(span_history.training_patterns(third, history)),
             features.EVAL: testing.split_examples(third.uri, features.EVAL),
             features.PREVIOUS: [e for split in features.SPAN_SPLITS for e in
                                 testing.split_examples(span_history.previous_span(
                                     third, history).uri, split)]}
    for split, examples in truth.items():
        by_hand = feature_summary.empty()
        for example in examples:
            feature_summary.add_serialized(by_hand, example.SerializeToString())
        ours = merged[split]
        assert ours["count"] == by_hand["count"] == len(examples)
        assert ours["categorical"] == by_hand["categorical"]
        for name in feature_summary.NUMERIC:
            assert feature_summary.numeric(ours, name) == pytest.approx(
                feature_summary.numeric(by_hand, name), rel=1e-9), (split, name)


def test_each_spans_property_columns_are_its_records_values_in_order(spans, store):
    store.night(FIRST)
    store.night(SECOND)
    for span in store.history():
        stored = json.loads(Path(span.uri, names.PROPERTY_COLUMNS_FILE).read_text())
        for split in features.SPAN_SPLITS:
            records = _records([span_history.file_pattern(span, split)])
            assert set(stored[split]) == set(property_columns.NAMES)
            by_hand = property_columns.empty()
            for example in records:
                property_columns.append(by_hand, feature_summary.values_of(
                    example.SerializeToString()))
            assert stored[split] == by_hand, (span_history.span_name(span), split)
            assert len(records) == span_history.span_counts(span)[split]
