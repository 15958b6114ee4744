"""ExampleGen's span cache: a night decodes only what is new, and writes what it always did.

The spans are real synthetic photos; the executor runs as TFX runs it, with its
output where TFX puts it ({root}/ImageExampleGen/examples/{id}), so its cache is
{root}/ImageExampleGen/.span_cache. Which images a night reads is watched on the
real read path (examplegen._read, wrapped, still reading).
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from tfx.types import standard_artifacts

import emerald_testing as testing
from pipeline_src import features, names
from pipeline_src.components import examplegen, span_cache
from pipeline_src.tools import synth

FIRST = dt.date(2026, 5, 1)
SECOND, THIRD = FIRST + dt.timedelta(days=1), FIRST + dt.timedelta(days=2)
SPLITS = (features.TRAIN, features.EVAL, features.PREVIOUS)


@pytest.fixture
def spans(tmp_path) -> Path:
    base = tmp_path / "spans"
    synth.synthesize(base, nights=3, seed=11, start_date=FIRST, corpus_per_label=3,
                     toto_per_label=2)
    return base


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


def execute(spans: Path, root: Path, night: dt.date, execution: int, **props):
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "ImageExampleGen" / "examples" / str(execution))
    os.makedirs(examples.uri)
    examplegen.Executor().Do({}, {"examples": [examples]}, {
        "input_base": str(spans), "night": night.isoformat(), "eval_split": "newest_night",
        "hash_eval_percent": 25, "max_pixels": testing.BAD_MAX_PIXELS, **props})
    return examples


def written(examples) -> dict:
    """Each split's records (serialized) and the rejections, as a night's consumers see them."""
    out = {}
    for split in SPLITS:
        out[split] = testing.split_examples(examples.uri, split)
    out["rejected"] = json.loads(Path(examples.uri, "rejected.json").read_text())
    out["split_counts"] = examples.get_string_custom_property("split_counts")
    return out


def _night_images(spans: Path, night: dt.date) -> set[str]:
    return {str(p) for p in (spans / "toto" / night.isoformat()).glob("*/*")}


def test_a_night_decodes_only_its_own_images_and_writes_what_an_uncached_night_writes(
        spans, tmp_path, reads):
    execute(spans, tmp_path / "cached", FIRST, 1)
    execute(spans, tmp_path / "cached", SECOND, 2)
    assert len(reads) == 9 + 6 + 6                  # the corpus and two nights, once each
    reads.clear()
    third = execute(spans, tmp_path / "cached", THIRD, 3)
    assert set(reads) == _night_images(spans, THIRD)       # tonight's six photos, nothing else
    assert len(reads) == 6

    reads.clear()
    uncached = examplegen.write_splits(
        examplegen.plan_splits(spans, THIRD, "newest_night", 25),
        str(tmp_path / "by-hand"), testing.BAD_MAX_PIXELS)          # no cache_dir: all read
    assert len(reads) == 9 + 6 + 6 + 6
    by_hand = {split: testing.split_examples(str(tmp_path / "by-hand"), split)
               for split in SPLITS}
    cached = written(third)
    assert {split: cached[split] for split in SPLITS} == by_hand      # the same, in order
    assert json.loads(cached["split_counts"]) == uncached["counts"] == {
        features.TRAIN: 9 + 6 + 6, features.EVAL: 6, features.PREVIOUS: 6}


def test_a_rerun_reads_nothing_and_a_reupload_rereads_its_night_only(spans, tmp_path, reads):
    execute(spans, tmp_path, SECOND, 1)
    reads.clear()
    again = execute(spans, tmp_path, SECOND, 2)
    assert reads == []
    assert written(again)[features.EVAL]

    redone = spans / "toto" / FIRST.isoformat() / "lion" / sorted(
        os.listdir(spans / "toto" / FIRST.isoformat() / "lion"))[0]
    redone.write_bytes(testing.jpeg((96, 128)))       # Toto re-uploads one photo
    execute(spans, tmp_path, SECOND, 3)
    assert set(reads) == _night_images(spans, FIRST)  # that night again, nothing else
    # One entry per span, the stale one removed.
    entries = sorted(os.listdir(tmp_path / "ImageExampleGen" / ".span_cache" / FIRST.isoformat()))
    assert len(entries) == 2 and {e.rsplit(".", 1)[-1] for e in entries} == {"gz", "json"}


def test_a_rejected_image_stays_rejected_from_the_cache(spans, tmp_path, reads):
    broken = spans / "toto" / FIRST.isoformat() / "tiger" / "zz_broken.jpg"
    broken.write_bytes(testing.garbled())
    first = written(execute(spans, tmp_path, SECOND, 1))
    reads.clear()
    second = written(execute(spans, tmp_path, SECOND, 2))
    assert reads == []
    assert second == first
    assert [r["object"] for r in second["rejected"]] == [str(broken)]
    assert second["rejected"][0]["reason"].startswith(("corrupt or truncated", "not an image"))


def test_a_damaged_entry_fails_the_task_and_its_retry_decodes_the_span_again(
        spans, tmp_path, reads):
    good = written(execute(spans, tmp_path, SECOND, 1))
    folder = tmp_path / "ImageExampleGen" / ".span_cache" / "corpus"
    (records,) = folder.glob("*.tfrecord.gz")
    records.write_bytes(records.read_bytes()[:200])           # a disk or a sync cut it short
    with pytest.raises(span_cache.CacheDamaged, match="span corpus"):
        execute(spans, tmp_path, SECOND, 2)
    reads.clear()
    retried = written(execute(spans, tmp_path, SECOND, 3))       # Airflow's retry
    assert len([r for r in reads if "/corpus/" in r]) == 9
    assert retried == good


def test_the_cache_lives_beside_the_outputs_tfx_gives_and_nowhere_else():
    assert span_cache.cache_dir_for("/r/ImageExampleGen/examples/12") == \
        "/r/ImageExampleGen/.span_cache"
    assert span_cache.cache_dir_for("gs://b/root/ImageExampleGen/examples/12/") == \
        "gs://b/root/ImageExampleGen/.span_cache"
    assert span_cache.cache_dir_for("/tmp/some/out") is None


def test_the_key_changes_with_the_listing_and_the_settings(spans):
    from pipeline_src.components.spans import list_spans

    corpus = list_spans(spans).corpus
    key = span_cache.span_key(corpus, 1000)
    assert span_cache.span_key(corpus, 1000) == key
    assert span_cache.span_key(corpus, 2000) != key           # max_pixels decides rejections
    assert span_cache.span_key(corpus[1:], 1000) != key


def test_a_cached_span_is_copied_whole_one_file_per_span_in_each_split(spans, tmp_path, reads):
    execute(spans, tmp_path, SECOND, 1)
    third = execute(spans, tmp_path, THIRD, 2)
    train = sorted(os.listdir(os.path.join(third.uri, f"Split-{features.TRAIN}")))
    assert train == [f"data_tfrecord-0000{i}-of-00003.gz" for i in range(3)]  # corpus, 2 nights
    cache = tmp_path / "ImageExampleGen" / ".span_cache"
    for span, shard in (("corpus", train[0]), (FIRST.isoformat(), train[1])):
        (records,) = (cache / span).glob("*.tfrecord.gz")
        assert Path(third.uri, f"Split-{features.TRAIN}", shard).read_bytes() == \
            records.read_bytes()                                  # byte for byte, not re-encoded
    (second_night,) = (cache / SECOND.isoformat()).glob("*.tfrecord.gz")
    assert Path(third.uri, f"Split-{features.PREVIOUS}", "data_tfrecord-00000-of-00001.gz"
                ).read_bytes() == second_night.read_bytes()       # last night, in two splits


def test_on_a_local_disk_a_cached_span_is_a_hard_link_and_a_rerun_into_the_folder_keeps_it(
        spans, tmp_path, reads):
    execute(spans, tmp_path, SECOND, 1)
    third = execute(spans, tmp_path, THIRD, 2)
    (corpus,) = (tmp_path / "ImageExampleGen" / ".span_cache" / "corpus").glob("*.tfrecord.gz")
    shard = Path(third.uri, f"Split-{features.TRAIN}", "data_tfrecord-00000-of-00003.gz")
    assert os.path.samefile(shard, corpus) and os.stat(corpus).st_nlink == 2   # first night decoded
    before = corpus.read_bytes()
    examplegen.write_splits(examplegen.plan_splits(spans, THIRD, "newest_night", 25), third.uri,
                            testing.BAD_MAX_PIXELS)          # uncached, into the same folder
    assert corpus.read_bytes() == before and not os.path.samefile(shard, corpus)
    def records(path):
        import tensorflow as tf
        from tensorflow.core.example import example_pb2
        return [example_pb2.Example.FromString(r.numpy())      # a map's order may differ
                for r in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]

    assert records(shard) == records(corpus)                 # the same records, decoded anew


def test_a_flipped_byte_in_an_entry_of_the_same_size_fails_the_copy_and_drops_the_entry(
        spans, tmp_path, reads):
    good = written(execute(spans, tmp_path, SECOND, 1))
    (records,) = (tmp_path / "ImageExampleGen" / ".span_cache" / "corpus").glob("*.tfrecord.gz")
    data = bytearray(records.read_bytes())
    data[len(data) // 2] ^= 0xFF
    records.write_bytes(bytes(data))
    with pytest.raises(span_cache.CacheDamaged, match="span corpus.*CRC-32"):
        execute(spans, tmp_path, SECOND, 2)
    assert not list(records.parent.glob("*.json"))                # the entry is dropped
    reads.clear()
    assert written(execute(spans, tmp_path, SECOND, 3)) == good
    assert len([r for r in reads if "/corpus/" in r]) == 9


def test_a_span_the_hash_split_divides_is_copied_record_by_record(spans, tmp_path, reads):
    execute(spans, tmp_path / "cached", SECOND, 1, eval_split="hash", hash_eval_percent=50)
    reads.clear()
    cached = written(execute(spans, tmp_path / "cached", SECOND, 2, eval_split="hash",
                             hash_eval_percent=50))
    assert reads == []
    by_hand = examplegen.write_splits(examplegen.plan_splits(spans, SECOND, "hash", 50),
                                      str(tmp_path / "by-hand"), testing.BAD_MAX_PIXELS)
    assert json.loads(cached["split_counts"]) == by_hand["counts"]
    assert by_hand["counts"][features.TRAIN] and by_hand["counts"][features.EVAL]
    for split in (features.TRAIN, features.EVAL):
        assert cached[split] == testing.split_examples(str(tmp_path / "by-hand"), split)


def test_the_key_changes_with_the_features_a_record_holds(spans, monkeypatch):
    from pipeline_src.components.spans import list_spans

    corpus = list_spans(spans).corpus
    key = span_cache.span_key(corpus, 1000)
    monkeypatch.setattr(span_cache, "RECORD_FEATURES", span_cache.RECORD_FEATURES + ["new"])
    assert span_cache.span_key(corpus, 1000) != key


def test_a_cached_nights_feature_summaries_are_an_uncached_nights(spans, tmp_path):
    from pipeline_src.validation import summary as feature_summary

    execute(spans, tmp_path / "cached", FIRST, 1)
    execute(spans, tmp_path / "cached", SECOND, 2)
    third = execute(spans, tmp_path / "cached", THIRD, 3)
    cached = json.loads(Path(third.uri, "feature_summary.json").read_text())
    by_hand = examplegen.write_splits(examplegen.plan_splits(spans, THIRD, "newest_night", 25),
                                      str(tmp_path / "by-hand"), testing.BAD_MAX_PIXELS)
    for split in SPLITS:
        ours, truth = cached[split], by_hand["summaries"][split]
        assert ours["count"] == truth["count"] == json.loads(
            third.get_string_custom_property("split_counts"))[split]
        assert ours["categorical"] == truth["categorical"]
        for name in feature_summary.NUMERIC:
            assert feature_summary.numeric(ours, name) == pytest.approx(
                feature_summary.numeric(truth, name), rel=1e-9), (split, name)
    assert cached[features.TRAIN]["categorical"][features.NIGHT] == {
        "corpus": 9, FIRST.isoformat(): 6, SECOND.isoformat(): 6}


def test_a_cached_nights_property_columns_are_an_uncached_nights(spans, tmp_path):
    from pipeline_src.validation import columns as property_columns

    execute(spans, tmp_path / "cached", FIRST, 1)
    execute(spans, tmp_path / "cached", SECOND, 2)
    third = execute(spans, tmp_path / "cached", THIRD, 3)
    cached = json.loads(Path(third.uri, names.PROPERTY_COLUMNS_FILE).read_text())
    examplegen.write_splits(examplegen.plan_splits(spans, THIRD, "newest_night", 25),
                            str(tmp_path / "by-hand"), testing.BAD_MAX_PIXELS)
    by_hand = json.loads((tmp_path / "by-hand" / names.PROPERTY_COLUMNS_FILE).read_text())
    counts = json.loads(third.get_string_custom_property("split_counts"))
    for split in SPLITS:
        assert set(cached[split]) == set(property_columns.NAMES)
        assert cached[split] == by_hand[split], split         # same values, same order
        assert {len(values) for values in cached[split].values()} == {counts[split]}
    assert sorted(set(cached[features.TRAIN][features.NIGHT])) == [
        FIRST.isoformat(), SECOND.isoformat(), "corpus"]
