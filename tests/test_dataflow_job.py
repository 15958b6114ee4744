"""The `gcp` profile's Beam args make a Dataflow job whose workers run the project's image.

Built offline, for real: TFX's own StatisticsGen executor runs its Beam pipeline
with the profile's args and `--dry_run=True`, so Beam's DataflowRunner translates
the pipeline and builds the Job it would submit, then stops before the first
request to Google. What is checked is that Job: the SDK harness container of
every environment is the Dockerfile's dataflow-worker image, nothing is staged
per job (no SDK tarball, no TFX sdist: the image holds them), and the workers'
service account, subnetwork, private IPs, region and temp location are the
profile's.
"""
from __future__ import annotations

import os

import pytest

from pipeline_src.config import load_config

pytestmark = pytest.mark.slow       # TF + TFX + Beam imports, a Dataflow translation: ~40 s


def beam_flag(args, name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, (name, args)
    return values[0]


def tiny_examples(root: str):
    import tensorflow as tf
    from tfx.types import artifact_utils, standard_artifacts

    examples = standard_artifacts.Examples()
    examples.uri = os.path.join(root, "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        folder = os.path.join(examples.uri, f"Split-{split}")
        os.makedirs(folder)
        with tf.io.TFRecordWriter(os.path.join(folder, "data.gz"), options="GZIP") as writer:
            for value in range(5):
                feature = {"brightness": tf.train.Feature(
                    float_list=tf.train.FloatList(value=[value / 5]))}
                writer.write(tf.train.Example(
                    features=tf.train.Features(feature=feature)).SerializeToString())
    return examples


def test_statisticsgen_job_runs_on_the_worker_image(tmp_path, monkeypatch):
    pytest.importorskip("apache_beam.runners.dataflow.internal.apiclient")
    from apache_beam.options.pipeline_options import GoogleCloudOptions, SetupOptions
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.dataflow import dataflow_runner
    from apache_beam.runners.dataflow.internal import apiclient
    from tfx.components.statistics_gen import executor as statistics_gen
    from tfx.types import standard_artifacts

    config = load_config(env={"EMERALD_PROFILE": "gcp", "EMERALD_HOME": str(tmp_path)})
    args = list(config.beam_args)
    assert beam_flag(args, "runner") == "DataflowRunner"
    image = beam_flag(args, "sdk_container_image")
    assert image.endswith("/emerald-dataflow:latest")
    assert beam_flag(args, "sdk_location") == "container"

    # The real runner, watched: each job it builds (dry run: built, never submitted).
    built = []
    real_run = dataflow_runner.DataflowRunner.run_pipeline

    def watched(runner, pipeline, options):
        result = real_run(runner, pipeline, options)
        built.append((result.job, options))
        return result

    monkeypatch.setattr(dataflow_runner.DataflowRunner, "run_pipeline", watched)
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "statistics")
    executor = statistics_gen.Executor(statistics_gen.Executor.Context(
        beam_pipeline_args=args + ["--dry_run=True"], tmp_dir=str(tmp_path / "tmp"),
        unique_id="1"))
    executor.Do({"examples": [tiny_examples(str(tmp_path))]}, {"statistics": [statistics]},
                {"exclude_splits": "[]"})

    assert len(built) == 1, "StatisticsGen is one Beam job"
    job, options = built[0]
    environments = job.proto_pipeline.components.environments
    assert environments
    for env in environments.values():
        assert env.urn == "beam:env:docker:v1"
        assert beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == image
        staged = [beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
            a.role_payload).staged_name for a in env.dependencies]
        assert not [name for name in staged if name.endswith((".tar.gz", ".whl"))], staged
    # TFX adds an sdist of itself unless the args name a container: they do.
    assert not options.view_as(SetupOptions).extra_packages

    # The job's environment as Dataflow receives it (what the service would be sent).
    environment = apiclient.Environment(
        [], job.options, "8", "gs://emerald-pipeline/beam-staging/pipeline.pb",
        job.proto_pipeline).proto
    pool = environment.workerPools[0]
    assert [c.containerImage for c in pool.sdkHarnessContainerImages] == [image]
    assert environment.serviceAccountEmail == beam_flag(args, "service_account_email")
    assert pool.subnetwork == beam_flag(args, "subnetwork")
    assert str(pool.ipConfiguration) == "WORKER_IP_PRIVATE"
    assert environment.tempStoragePrefix.startswith(
        "storage.googleapis.com/" + beam_flag(args, "temp_location")[len("gs://"):])
    assert job.options.view_as(GoogleCloudOptions).region == beam_flag(args, "region")
