"""Emerald's configuration: one YAML file in include/, cast once into a frozen object.

The DAG file and the TFX pipeline both call `load_config()`, so no path,
threshold or schedule is typed twice. Importing this module has no side
effects and costs only PyYAML.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Optional

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_FILE = REPO_ROOT / "include" / "emerald.yaml"

NODE_RUNNERS = ("in_process", "external_python", "kubernetes")
EVAL_SPLITS = ("newest_night", "hash")


def is_true(value) -> bool:
    """A rendered Airflow template ("True", "false", "") or a CLI value as a bool."""
    return str(value).strip().lower() in ("true", "1", "yes")


class ConfigError(ValueError):
    """The configuration file or an environment override is invalid."""


@dataclasses.dataclass(frozen=True)
class DagConfig:
    dag_id: str
    schedule: str
    start_date: dt.date
    owner: str
    retries: int
    retry_delay_minutes: float
    max_retry_delay_minutes: float
    tags: tuple[str, ...]
    node_runner: str
    external_python: str
    kubernetes_image: str


@dataclasses.dataclass(frozen=True)
class Paths:
    home: Path
    source: str          # local path or gs://bucket/prefix
    spans: Path          # ingested spans: what ExampleGen reads
    pipeline_root: str
    metadata: Path
    serving: str
    reports: Path
    quarantine: Path
    acknowledgments: Path   # accepted shifts (version-controlled YAML; `emerald ack`)


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    max_pixels: int
    unknown_labels: str   # ingest | hold
    processes: int        # 0: one per usable CPU; 1: the ingesting process alone
    completion: str       # quiet | marker
    quiet_seconds: int
    timeout_seconds: int


@dataclasses.dataclass(frozen=True)
class DataConfig:
    labels: tuple[str, ...]
    image_size: int
    eval_split: str
    hash_eval_percent: int


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int
    batch_size: int
    learning_rate: float


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """Emerald's detector: a finding is significant at the night's rate AND a large effect."""
    false_alarm_rate: float          # per night, all tests together (Bonferroni)
    permutations: int                # resamples behind a permutation p-value
    skew: Mapping[str, float]        # property -> minimum effect (KS or total variation distance)
    drift: Mapping[str, float]
    prediction: Mapping[str, float]

    def min_effects(self) -> dict[str, Mapping[str, float]]:
        return {"skew": self.skew, "drift": self.drift, "prediction": self.prediction}


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    min_accuracy: float
    max_accuracy_drop: float
    slices: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MetadataConfig:
    backend: str                     # sqlite | postgresql
    postgresql: Mapping[str, str]    # host, port, dbname, user, password_env


FINDING_KINDS = ("schema", "skew", "drift", "prediction")


@dataclasses.dataclass(frozen=True)
class GateConfig:
    block: tuple[str, ...]      # finding kinds that stop the push
    warn: tuple[str, ...]       # kinds that only alert


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    emails: tuple[str, ...]
    smtp_conn_id: str
    slack_conn_id: str


@dataclasses.dataclass(frozen=True)
class Config:
    pipeline_name: str
    dag: DagConfig
    paths: Paths
    ingest: IngestConfig
    data: DataConfig
    training: TrainingConfig
    validation: ValidationConfig
    evaluation: EvaluationConfig
    beam_args: tuple[str, ...]
    metadata: MetadataConfig
    gate: GateConfig
    alerts: AlertConfig
    config_file: Path
    profile: Optional[str] = None


def _section(raw: Mapping, name: str) -> Mapping:
    value = raw.get(name)
    if not isinstance(value, Mapping):
        raise ConfigError(f"config section {name!r} is missing or not a mapping")
    return value


def _thresholds(raw: Mapping, name: str) -> Mapping[str, float]:
    values = {str(k): float(v) for k, v in (raw.get(name) or {}).items()}
    for feature, threshold in values.items():
        if not 0.0 <= threshold < 1.0:
            raise ConfigError(
                f"validation.{name}.{feature} = {threshold}: minimum effects are in [0, 1)")
    return MappingProxyType(values)


def _validation(raw: Mapping) -> ValidationConfig:
    rate = float(raw.get("false_alarm_rate", 0.01))
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"validation.false_alarm_rate = {rate}: it is in (0, 1)")
    permutations = int(raw.get("permutations", 9999))
    if permutations < 99:
        raise ConfigError(f"validation.permutations = {permutations}: at least 99")
    return ValidationConfig(
        false_alarm_rate=rate, permutations=permutations,
        skew=_thresholds(raw, "skew"), drift=_thresholds(raw, "drift"),
        prediction=_thresholds(raw, "prediction"))


def _choice(raw: Mapping, key: str, choices: tuple[str, ...]) -> str:
    value = str(raw[key])
    if value not in choices:
        raise ConfigError(f"{key} {value!r} is not one of {choices}")
    return value


def _merge(base: Mapping, overlay: Mapping) -> dict:
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc


def load_config(path: Optional[os.PathLike] = None,
                env: Optional[Mapping[str, str]] = None) -> Config:
    """Reads the YAML config, merges the profile, applies EMERALD_* overrides."""
    env = os.environ if env is None else env
    config_file = Path(path or env.get("EMERALD_CONFIG") or DEFAULT_CONFIG_FILE)
    raw = _read_yaml(config_file)
    profile = env.get("EMERALD_PROFILE") or None
    if profile:
        raw = _merge(raw, _read_yaml(config_file.parent / "profiles" / f"{profile}.yaml"))

    raw_dag = _section(raw, "dag")
    raw_paths = _section(raw, "paths")
    raw_data = _section(raw, "data")

    home = env.get("EMERALD_HOME") or raw_paths["home"]
    home = Path(os.path.expanduser(home.format(repo=REPO_ROOT))).resolve()

    def path(key: str, override: Optional[str] = None) -> str:
        value = override or str(raw_paths[key])
        value = value.format(home=home, repo=REPO_ROOT)
        if "://" in value:
            return value
        return str(Path(os.path.expanduser(value)).resolve())

    node_runner = env.get("EMERALD_NODE_RUNNER") or raw_dag["node_runner"]
    if node_runner not in NODE_RUNNERS:
        raise ConfigError(f"node_runner {node_runner!r} is not one of {NODE_RUNNERS}")
    eval_split = raw_data["eval_split"]
    if eval_split not in EVAL_SPLITS:
        raise ConfigError(f"data.eval_split {eval_split!r} is not one of {EVAL_SPLITS}")

    emails = env.get("EMERALD_ALERT_EMAILS")
    raw_alerts = raw.get("alerts") or {}
    if emails is not None:
        email_list = tuple(e.strip() for e in emails.split(",") if e.strip())
    else:
        email_list = tuple(raw_alerts.get("emails") or ())

    raw_ingest = _section(raw, "ingest")
    raw_validation = _section(raw, "validation")
    raw_metadata = raw.get("metadata") or {"backend": "sqlite", "postgresql": {}}
    metadata_backend = _choice(raw_metadata, "backend", ("sqlite", "postgresql"))
    raw_eval = _section(raw, "evaluation")
    raw_gate = raw.get("gate") or {}
    gate = GateConfig(block=tuple(raw_gate.get("block", ("schema", "skew"))),
                      warn=tuple(raw_gate.get("warn", ("drift", "prediction"))))
    for kind in gate.block + gate.warn:
        if kind not in FINDING_KINDS:
            raise ConfigError(f"gate: unknown finding kind {kind!r}; kinds: {FINDING_KINDS}")
    raw_training = _section(raw, "training")
    return Config(
        pipeline_name=str(raw["pipeline_name"]),
        dag=DagConfig(
            dag_id=str(raw_dag["dag_id"]),
            schedule=str(raw_dag["schedule"]),
            start_date=dt.date.fromisoformat(str(raw_dag["start_date"])),
            owner=str(raw_dag["owner"]),
            retries=int(raw_dag["retries"]),
            retry_delay_minutes=float(raw_dag["retry_delay_minutes"]),
            max_retry_delay_minutes=float(raw_dag["max_retry_delay_minutes"]),
            tags=tuple(raw_dag["tags"]),
            node_runner=node_runner,
            external_python=str(raw_dag["external_python"]).format(repo=REPO_ROOT),
            kubernetes_image=str(raw_dag["kubernetes_image"]),
        ),
        paths=Paths(
            home=home,
            source=path("source", env.get("EMERALD_SOURCE")),
            spans=Path(path("spans")),
            pipeline_root=path("pipeline_root"),
            metadata=Path(path("metadata")),
            serving=path("serving"),
            reports=Path(path("reports")),
            quarantine=Path(path("quarantine")),
            acknowledgments=Path(path("acknowledgments", env.get("EMERALD_ACKNOWLEDGMENTS"))),
        ),
        ingest=IngestConfig(
            max_pixels=int(raw_ingest["max_pixels"]),
            unknown_labels=_choice(raw_ingest, "unknown_labels", ("ingest", "hold")),
            processes=int(raw_ingest.get("processes", 0)),
            completion=_choice(raw_ingest, "completion", ("quiet", "marker")),
            quiet_seconds=int(raw_ingest["quiet_seconds"]),
            timeout_seconds=int(raw_ingest["timeout_seconds"]),
        ),
        data=DataConfig(
            labels=tuple(str(x) for x in raw_data["labels"]),
            image_size=int(raw_data["image_size"]),
            eval_split=eval_split,
            hash_eval_percent=int(raw_data["hash_eval_percent"]),
        ),
        training=TrainingConfig(
            epochs=int(raw_training["epochs"]),
            batch_size=int(raw_training["batch_size"]),
            learning_rate=float(raw_training["learning_rate"]),
        ),
        validation=_validation(raw_validation),
        evaluation=EvaluationConfig(
            min_accuracy=float(raw_eval["min_accuracy"]),
            max_accuracy_drop=float(raw_eval["max_accuracy_drop"]),
            slices=tuple(raw_eval["slices"]),
        ),
        beam_args=tuple(str(a).format(home=home, repo=REPO_ROOT)
                        for a in (raw.get("beam") or {}).get("args", ())),
        metadata=MetadataConfig(
            backend=metadata_backend,
            postgresql=MappingProxyType(
                {str(k): str(v) for k, v in (raw_metadata.get("postgresql") or {}).items()})),
        gate=gate,
        alerts=AlertConfig(
            emails=email_list,
            smtp_conn_id=str(raw_alerts.get("smtp_conn_id", "smtp_default")),
            slack_conn_id=str(raw_alerts.get("slack_conn_id", "slack_webhook_default")),
        ),
        config_file=config_file,
        profile=profile,
    )
