"""StatisticsGen on ExampleGen's images, as the pipeline wires it: with the schema.

TFDV counts the distinct values of every bytes feature (top-k and uniques, through
a shuffle keyed by the value) unless the schema says the feature is an image
(image_domain). Without the schema, every encoded photo of the whole history is a
distinct "string" carried through that shuffle: StatisticsGen's memory and time
then grow with the bytes of everything ever ingested (BENCHMARKS.md, "Peak memory
per node"). With it, the image is a bytes feature: sizes only, no value counts.

StatisticsGen describes tonight's split alone; the training baseline the report
shows is ExampleGen's feature summary, merged span by span, and says what TFDV
over the whole train split says.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import emerald_testing as testing
from pipeline_src import features, names
from pipeline_src.orchestration import compile as compiled
from pipeline_src.orchestration.pipeline import schema
from pipeline_src.tools import synth

FIRST = dt.date(2026, 3, 1)


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The corpus-only night's span: the corpus, hash split into train and eval."""
    base = tmp_path_factory.mktemp("spans")
    synth.synthesize(base, nights=1, seed=5, start_date=FIRST, corpus_per_label=3,
                     toto_per_label=2)
    store = testing.SpanArtifacts(tmp_path_factory.mktemp("root"), base,
                                  hash_eval_percent=50, max_pixels=10_000_000)
    return store.night(FIRST - dt.timedelta(days=1))


def _statistics(examples, tmp_path, with_schema: bool, split: str = features.EVAL):
    from google.protobuf import text_format
    from tfx.components.statistics_gen import executor as statistics_gen
    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types import standard_artifacts

    inputs = {"examples": [examples]}
    if with_schema:
        artifact = standard_artifacts.Schema()
        artifact.uri = str(tmp_path / "schema")
        (tmp_path / "schema").mkdir(parents=True)
        (tmp_path / "schema" / "schema.pbtxt").write_text(
            text_format.MessageToString(schema(["bear", "lion", "tiger"])))
        inputs["schema"] = [artifact]
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    executor = statistics_gen.Executor(statistics_gen.Executor.Context(
        beam_pipeline_args=["--direct_num_workers=1"], tmp_dir=str(tmp_path / "tmp"),
        unique_id="1"))
    executor.Do(inputs, {"statistics": [statistics]}, {"exclude_splits": "[]"})
    stats = stats_artifact_utils.load_statistics(statistics, split).proto().datasets[0]
    return {".".join(f.path.step): f for f in stats.features}


def test_with_the_schema_the_encoded_image_is_sized_not_counted(examples, tmp_path):
    without = _statistics(examples, tmp_path / "without", with_schema=False)
    assert without[features.IMAGE].HasField("string_stats")     # every photo a "value"
    assert without[features.IMAGE].string_stats.unique == json.loads(   # ...each counted
        examples.get_string_custom_property(names.SPLIT_COUNTS))[features.EVAL] > 0
    with_schema = _statistics(examples, tmp_path / "with", with_schema=True)
    image = with_schema[features.IMAGE]
    assert image.HasField("bytes_stats") and not image.HasField("string_stats")
    assert image.bytes_stats.avg_num_bytes > 1000
    # The properties skew is judged on, and the labels, are described as before.
    assert with_schema[features.BRIGHTNESS].num_stats.mean == pytest.approx(
        without[features.BRIGHTNESS].num_stats.mean)
    assert with_schema[features.LABEL].string_stats.unique == 3


def test_the_pipeline_gives_statisticsgen_the_schema():
    ir = compiled.load_ir_dict()
    (node,) = [n["pipelineNode"] for n in ir["nodes"]
               if n["pipelineNode"]["nodeInfo"]["id"] == "StatisticsGen"]
    assert {"examples", "schema"} <= set(node["inputs"]["inputs"]), json.dumps(
        node["inputs"], indent=1)[:2000]


def test_the_merged_training_summary_says_what_tfdv_says_over_the_train_split(examples, tmp_path):
    from pipeline_src.validation import summary as feature_summary

    tfdv = _statistics(examples, tmp_path, with_schema=True, split=features.TRAIN)
    training = json.loads((Path(examples.uri) / names.FEATURE_SUMMARY_FILE).read_text())[
        features.TRAIN]                                  # the corpus span, as ExampleGen merged it
    count = json.loads(examples.get_string_custom_property(names.SPLIT_COUNTS))[features.TRAIN]
    assert training["count"] == count == tfdv[features.LABEL].string_stats.common_stats.num_non_missing
    assert 0 < count < 9
    for name in feature_summary.NUMERIC:
        ours, theirs = feature_summary.numeric(training, name), tfdv[name].num_stats
        assert (ours["mean"], ours["std_dev"], ours["min"], ours["max"]) == pytest.approx(
            (theirs.mean, theirs.std_dev, theirs.min, theirs.max), rel=1e-6, abs=1e-9), name
    for name in (features.LABEL, features.SOURCE, features.NIGHT, features.ORIENTATION):
        ours = dict(feature_summary.top_values(training, name))
        theirs = {v.value: v.frequency for v in tfdv[name].string_stats.top_values}
        assert ours == theirs and len(ours) == tfdv[name].string_stats.unique, name


def test_statisticsgen_describes_tonight_alone():
    ir = compiled.load_ir_dict()
    (node,) = [n["pipelineNode"] for n in ir["nodes"]
               if n["pipelineNode"]["nodeInfo"]["id"] == "StatisticsGen"]
    excluded = json.loads(node["parameters"]["parameters"]["exclude_splits"]["fieldValue"]
                          ["stringValue"])
    assert excluded == [features.TRAIN]
