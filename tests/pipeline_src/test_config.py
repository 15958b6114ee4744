import dataclasses
import datetime as dt

import pytest

from pipeline_src import arguments, config


def test_defaults_live_under_emerald_home(tmp_path):
    cfg = config.load_config(env={"EMERALD_HOME": str(tmp_path)})
    assert cfg.paths.home == tmp_path
    for path in (cfg.paths.source, cfg.paths.spans, cfg.paths.pipeline_root, cfg.paths.metadata,
                 cfg.paths.serving, cfg.paths.reports, cfg.paths.quarantine):
        assert str(path).startswith(str(tmp_path)), path
    assert cfg.dag.schedule == "0 2 * * *"
    assert cfg.dag.start_date == dt.date(2026, 1, 1)
    assert cfg.data.labels == ("lion", "tiger", "bear")


def test_source_override_accepts_gcs_uri(tmp_path):
    cfg = config.load_config(env={"EMERALD_HOME": str(tmp_path),
                                  "EMERALD_SOURCE": "gs://toto-bucket/walk"})
    assert cfg.paths.source == "gs://toto-bucket/walk"
    assert str(cfg.paths.spans).startswith(str(tmp_path))


def test_alert_emails_override_is_comma_separated(tmp_path):
    cfg = config.load_config(env={"EMERALD_HOME": str(tmp_path),
                                  "EMERALD_ALERT_EMAILS": "a@x.org, b@y.org,"})
    assert cfg.alerts.emails == ("a@x.org", "b@y.org")


def test_node_runner_override_is_validated(tmp_path):
    cfg = config.load_config(env={"EMERALD_HOME": str(tmp_path),
                                  "EMERALD_NODE_RUNNER": "external_python"})
    assert cfg.dag.node_runner == "external_python"
    with pytest.raises(config.ConfigError, match="node_runner"):
        config.load_config(env={"EMERALD_NODE_RUNNER": "celery"})


def test_config_is_frozen():
    cfg = config.load_config(env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.pipeline_name = "other"
    with pytest.raises(TypeError):
        cfg.validation.skew["aspect_ratio"] = 0.5


@pytest.mark.parametrize("old, new, message", [
    ("aspect_ratio: 0.3", "aspect_ratio: 1.5", "validation.skew.aspect_ratio = 1.5"),
    ("confidence: 0.3", "confidence: -0.1", "validation.prediction.confidence = -0.1"),
    ("false_alarm_rate: 0.01", "false_alarm_rate: 0", "false_alarm_rate = 0.0"),
    ("permutations: 9999", "permutations: 10", "permutations = 10"),
])
def test_detector_settings_out_of_range_are_rejected(tmp_path, old, new, message):
    _load_edited(tmp_path, old, new, message)


def _load_edited(tmp_path, old: str, new: str, message: str) -> str:
    """Loads the default config with `old` replaced by `new`; returns the ConfigError's text."""
    text = config.DEFAULT_CONFIG_FILE.read_text()
    assert old in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(config.ConfigError, match=message) as exc:
        config.load_config(bad, env={})
    return str(exc.value)


def test_detector_defaults_are_the_documented_ones():
    validation = config.load_config(env={}).validation
    assert validation.false_alarm_rate == 0.01 and validation.permutations == 9999
    assert set(validation.skew) == set(validation.drift) == {
        "aspect_ratio", "pixel_area", "brightness", "rms_contrast", "mean_red", "mean_green",
        "mean_blue", "sharpness", "label"}
    assert dict(validation.prediction) == {"predicted_class": 0.2, "confidence": 0.3}


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load_config(tmp_path / "nope.yaml", env={})


def test_gcp_profile_merges_over_the_defaults():
    cfg = config.load_config(env={"EMERALD_PROFILE": "gcp"})
    assert cfg.profile == "gcp"
    assert cfg.paths.source.startswith("gs://") and cfg.paths.pipeline_root.startswith("gs://")
    assert "--runner=DataflowRunner" in cfg.beam_args
    assert cfg.dag.node_runner == "kubernetes"
    assert cfg.metadata.backend == "postgresql"
    assert cfg.data.labels == ("lion", "tiger", "bear")     # untouched keys keep their value


@pytest.mark.parametrize("profile", ["mars", "../emerald", "profiles/gcp"])
def test_unknown_profile_is_a_clear_error_naming_the_profiles(profile):
    """A profile is a name among include/profiles/*.yaml, never a path to some YAML file."""
    with pytest.raises(config.ConfigError) as exc:
        config.load_config(env={"EMERALD_PROFILE": profile})
    assert str(exc.value).startswith(f"unknown profile {profile!r} (EMERALD_PROFILE): ")
    assert "are docker, gcp;" in str(exc.value) and "\n" not in str(exc.value)


def test_a_bad_choice_names_its_setting_and_the_file(tmp_path):
    error = _load_edited(tmp_path, "completion: quiet ", "completion: soon ",
                         r"ingest\.completion 'soon' is not one of \('quiet', 'marker'\)")
    assert error.startswith(f"{tmp_path / 'bad.yaml'}: ")


@pytest.mark.parametrize("value, reason", [
    ("2026-13-45", "(month must be in 1..12)"), ("2026-02-30", "(day is out of range for month)"),
    ("yesterday", ""), ("2026-1-2", ""), ("20260102", ""), ("", ""),
])
def test_night_arg_takes_only_a_real_yyyy_mm_dd_date(value, reason):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError) as exc:
        arguments.night_arg(value)
    assert str(exc.value) == f"{value!r} is not a night: YYYY-MM-DD, a real date" + (
        f" {reason}" if reason else "")
    assert arguments.night_arg("2026-01-02") == "2026-01-02"      # unchanged: a string


def test_gate_policy_kinds_are_validated(tmp_path):
    text = config.DEFAULT_CONFIG_FILE.read_text().replace("warn: [drift, prediction, late]", "warn: [vibes]")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(config.ConfigError, match="vibes"):
        config.load_config(bad, env={})


@pytest.mark.parametrize("old, new, message", [
    ("  owner: dorothy\n", "  owner: [dorothy\n", "is not valid YAML"),     # a broken line
    ("  epochs: 30\n", "", "missing setting 'epochs'"),
    ("  epochs: 30\n", "  epochs: many\n", "many"),
    ('  start_date: "2026-01-01"', '  start_date: "January"', "January"),
])
def test_a_malformed_config_is_one_clear_config_error(tmp_path, old, new, message):
    error = _load_edited(tmp_path, old, new, message)
    assert str(tmp_path / "bad.yaml") in error and "\n" not in error


def test_warm_start_settings_and_their_defaults():
    training = config.load_config(env={}).training
    assert (training.warm_start, training.warm_start_epochs, training.replay_fraction,
            training.replay_max_images) == (True, 5, 0.25, 500)


@pytest.mark.parametrize("old, new, message", [
    ("replay_fraction: 0.25", "replay_fraction: 1.5",
     r"training.replay_fraction 1.5 is not in \[0, 1\]"),
    ("replay_fraction: 0.25", "replay_fraction: -0.1", "training.replay_fraction -0.1"),
    ("warm_start_epochs: 5", "warm_start_epochs: 0", "training.warm_start_epochs 0"),
    ("replay_max_images: 500", "replay_max_images: -1", "training.replay_max_images -1"),
])
def test_warm_start_settings_out_of_range_are_rejected(tmp_path, old, new, message):
    _load_edited(tmp_path, old, new, message)


def test_model_choices_and_their_defaults():
    training = config.load_config(env={}).training
    assert (training.architecture, training.backbone_weights, training.dropout,
            training.tuner_trials, training.tuner_epochs) == ("small_cnn", None, 0.2, 0, 2)


@pytest.mark.parametrize("old, new, message", [
    ("architecture: small_cnn", "architecture: resnet", "training.architecture 'resnet'"),
    ("backbone_weights: null", "backbone_weights: /weights.h5",
     "training.backbone_weights is set, but training.architecture small_cnn has no backbone"),
    ("dropout: 0.2", "dropout: 1.0", r"training.dropout 1.0 is not in \[0, 1\)"),
    ("tuner_trials: 0", "tuner_trials: -1", "training.tuner_trials -1 must be >= 0"),
    ("tuner_epochs: 2", "tuner_epochs: 0", "training.tuner_epochs 0 >= 1"),
])
def test_model_choices_out_of_range_are_rejected(tmp_path, old, new, message):
    _load_edited(tmp_path, old, new, message)


def test_a_backbone_with_its_weights_is_read(tmp_path):
    text = config.DEFAULT_CONFIG_FILE.read_text()
    text = text.replace("architecture: small_cnn", "architecture: mobilenet_v3_small").replace(
        "backbone_weights: null", "backbone_weights: gs://models/mobilenet.h5")
    path = tmp_path / "emerald.yaml"
    path.write_text(text)
    training = config.load_config(path, env={}).training
    assert (training.architecture, training.backbone_weights) == (
        "mobilenet_v3_small", "gs://models/mobilenet.h5")


def test_warm_start_false_is_read_as_off(tmp_path):
    text = config.DEFAULT_CONFIG_FILE.read_text()
    text = text.replace("warm_start: true", "warm_start: false")
    edited = tmp_path / "edited.yaml"
    edited.write_text(text)
    assert config.load_config(edited, env={}).training.warm_start is False
