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

from pipeline_src.locations import location
from pipeline_src.names import ARCHITECTURES, SMALL_CNN

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG_FILE = REPO_ROOT / "include" / "emerald.yaml"

# dag.node_runner: where a TFX node's launch runs
IN_PROCESS = "in_process"               # in the Airflow task's own process
EXTERNAL_PYTHON = "external_python"     # another interpreter (dag.external_python) on the worker
KUBERNETES = "kubernetes"               # a pod of its own (dag.kubernetes_image)
NODE_RUNNERS = (IN_PROCESS, EXTERNAL_PYTHON, KUBERNETES)
EVAL_SPLITS = ("newest_night", "hash")


def is_true(value) -> bool:
    """A rendered Airflow template ("True", "false", "") or a CLI value as a bool."""
    return str(value).strip().lower() in ("true", "1", "yes")


class ConfigError(ValueError):
    """The configuration file or an environment override is invalid."""


class UsageError(ValueError):
    """A command asked for what cannot be done as asked (a night before dag.start_date).

    Like ConfigError, the `emerald` command prints it as one line (no traceback) and
    exits 2: the user has something to change, not a bug to report.
    """


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
    kubernetes: "KubernetesConfig"


@dataclasses.dataclass(frozen=True)
class KubernetesConfig:
    """Where and how big each pod is (node_runner: kubernetes, Cloud Composer)."""
    namespace: str                     # Composer 3 runs user pods in composer-user-workloads
    service_account: str               # the pods' Kubernetes service account ("" = namespace's)
    # task id (or "default") -> {"cpu": ..., "memory": ...}: requests and limits alike
    resources: Mapping[str, Mapping[str, str]]

    def resources_for(self, task_id: str) -> Mapping[str, str]:
        return self.resources.get(task_id) or self.resources.get("default") or {}


@dataclasses.dataclass(frozen=True)
class Paths:
    home: Path
    source: str          # local path or gs://bucket/prefix
    spans: Path          # ingested spans: what ExampleGen reads (a folder, or gs:// as a UPath)
    pipeline_root: str
    metadata: Path
    serving: str
    reports: Path        # a folder, or gs:// as a UPath (pipeline_src.locations)
    quarantine: Path
    acknowledgments: Path   # accepted shifts (version-controlled YAML; `emerald ack`)

    @property
    def keras_home(self) -> Path:
        """KERAS_HOME for every Emerald process: Keras writes keras.json there at import,
        which would otherwise land in the user's ~/.keras."""
        return self.home / "keras"


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
class VertexTrainingConfig:
    """The Trainer as a Vertex AI custom job (orchestration/vertex.py); the image's
    `python` must be TFX's, with pipeline_src (the Dockerfile's dataflow-worker)."""
    enabled: bool = False
    project: str = ""
    region: str = ""
    image: str = ""                  # the job's container
    machine_type: str = "n1-standard-8"
    service_account: str = ""        # "": Vertex AI's default for the project


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    epochs: int                      # a full retrain: passes over the training split
    batch_size: int
    learning_rate: float
    warm_start: bool                 # start from the serving model when its architecture matches
    warm_start_epochs: int           # a warm night's budget: passes over new + replayed images
    replay_fraction: float           # share of the older history replayed on a warm night
    replay_max_images: int = 500     # ...and no more than this many (0: no cap): a flat cost
    dropout: float = 0.2             # before the output layer
    architecture: str = "small_cnn"  # names.ARCHITECTURES (pipeline_src/model/model.py)
    backbone_weights: Optional[str] = None   # a backbone's weights: file, gs://, URL, imagenet
    tuner_trials: int = 0            # > 0: a Tuner node searches that many points first
    tuner_epochs: int = 2            # passes over the train split per trial
    tflite: bool = True              # a checked model.tflite beside the SavedModel (tflite.py)
    vertex: VertexTrainingConfig = VertexTrainingConfig()


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
class ServingConfig:
    # The share of tonight's eval images on which the TFLite model must give the
    # SavedModel's top-1 before model.tflite is written beside it (and so published).
    tflite_min_agreement: float = 0.99


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    min_accuracy: float
    max_accuracy_drop: float
    slices: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MetadataConfig:
    backend: str                     # sqlite | postgresql
    postgresql: Mapping[str, str]    # host, port, dbname, user, password_env


# late: pipeline_src.ingest.late; model: tonight's model was not blessed by the Evaluator
FINDING_KINDS = ("schema", "skew", "drift", "prediction", "late", "model")


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
    serving: ServingConfig = ServingConfig()


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


def _choice(raw: Mapping, key: str, choices: tuple[str, ...], section: str = "") -> str:
    value = str(raw[key])
    if value not in choices:
        raise ConfigError(f"{section}{key} {value!r} is not one of {choices}")
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
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}{line} is not valid YAML: "
                          f"{getattr(exc, 'problem', None) or exc}") from None


def load_config(path: Optional[os.PathLike] = None,
                env: Optional[Mapping[str, str]] = None) -> Config:
    """Reads the YAML config, merges the profile, applies EMERALD_* overrides."""
    env = os.environ if env is None else env
    config_file = Path(path or env.get("EMERALD_CONFIG") or DEFAULT_CONFIG_FILE)
    raw = _read_yaml(config_file)
    profile = env.get("EMERALD_PROFILE") or None
    if profile:
        raw = _merge(raw, _read_yaml(_profile_file(config_file, profile)))
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{config_file}: the configuration is not a mapping")
    try:
        home = _home(_section(raw, "paths"), env)
        config = Config(
            pipeline_name=str(raw["pipeline_name"]),
            dag=_dag(_section(raw, "dag"), env),
            paths=_paths(_section(raw, "paths"), home, env),
            ingest=_ingest(_section(raw, "ingest")),
            data=_data(_section(raw, "data")),
            training=_training(_section(raw, "training")),
            validation=_validation(_section(raw, "validation")),
            evaluation=_evaluation(_section(raw, "evaluation")),
            beam_args=tuple(str(a).format(home=home, repo=REPO_ROOT)
                            for a in (raw.get("beam") or {}).get("args", ())),
            metadata=_metadata(raw.get("metadata") or {"backend": "sqlite", "postgresql": {}}),
            gate=_gate(raw.get("gate") or {}),
            alerts=_alerts(raw.get("alerts") or {}, env),
            config_file=config_file,
            profile=profile,
            serving=_serving(raw.get("serving") or {}),
        )
        if config.training.vertex.enabled and "://" not in config.paths.pipeline_root:
            raise ConfigError(f"training.vertex.enabled is true but paths.pipeline_root is "
                              f"local: the Vertex AI job reads and writes the artifacts there")
        return config
    except KeyError as missing:
        raise ConfigError(f"{config_file}: missing setting {missing}") from None
    except (TypeError, ValueError) as bad:
        if isinstance(bad, ConfigError) and str(config_file) in str(bad):
            raise
        raise ConfigError(f"{config_file}: {bad}") from None     # every error names the file


def _profile_file(config_file: Path, profile: str) -> Path:
    """include/profiles/{profile}.yaml beside the config file; an unknown name is a
    ConfigError that lists the profiles there are (a name is never a path)."""
    folder = config_file.parent / "profiles"
    known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    if profile not in known:
        raise ConfigError(
            f"unknown profile {profile!r} (EMERALD_PROFILE): the profiles in {folder} are "
            f"{', '.join(known) or 'none'}; unset EMERALD_PROFILE for the defaults")
    return folder / f"{profile}.yaml"


def _home(raw_paths: Mapping, env: Mapping[str, str]) -> Path:
    home = env.get("EMERALD_HOME") or raw_paths["home"]
    return Path(os.path.expanduser(str(home).format(repo=REPO_ROOT))).resolve()


def _dag(raw: Mapping, env: Mapping[str, str]) -> DagConfig:
    node_runner = env.get("EMERALD_NODE_RUNNER") or raw["node_runner"]
    if node_runner not in NODE_RUNNERS:
        raise ConfigError(f"node_runner {node_runner!r} is not one of {NODE_RUNNERS}")
    return DagConfig(
        dag_id=str(raw["dag_id"]),
        schedule=str(raw["schedule"]),
        start_date=dt.date.fromisoformat(str(raw["start_date"])),
        owner=str(raw["owner"]),
        retries=int(raw["retries"]),
        retry_delay_minutes=float(raw["retry_delay_minutes"]),
        max_retry_delay_minutes=float(raw["max_retry_delay_minutes"]),
        tags=tuple(raw["tags"]),
        node_runner=node_runner,
        external_python=str(raw["external_python"]).format(repo=REPO_ROOT),
        kubernetes_image=str(raw["kubernetes_image"]),
        kubernetes=_kubernetes(raw.get("kubernetes") or {}),
    )


RESOURCE_KEYS = ("cpu", "memory")


def _kubernetes(raw: Mapping) -> KubernetesConfig:
    resources = {}
    for task, amounts in (raw.get("resources") or {}).items():
        if not isinstance(amounts, Mapping) or not set(amounts) <= set(RESOURCE_KEYS):
            raise ConfigError(f"dag.kubernetes.resources.{task}: a mapping of {RESOURCE_KEYS}")
        resources[str(task)] = MappingProxyType({k: str(v) for k, v in amounts.items()})
    return KubernetesConfig(namespace=str(raw.get("namespace") or "default"),
                            service_account=str(raw.get("service_account") or ""),
                            resources=MappingProxyType(resources))


def _paths(raw: Mapping, home: Path, env: Mapping[str, str]) -> Paths:
    def path(key: str, override: Optional[str] = None) -> str:
        value = (override or str(raw[key])).format(home=home, repo=REPO_ROOT)
        if "://" in value:
            return value
        return str(Path(os.path.expanduser(value)).resolve())

    return Paths(
        home=home,
        source=path("source", env.get("EMERALD_SOURCE")),
        spans=location(path("spans")),
        pipeline_root=path("pipeline_root"),
        metadata=Path(path("metadata")),
        serving=path("serving"),
        reports=location(path("reports")),
        quarantine=location(path("quarantine")),
        acknowledgments=Path(path("acknowledgments", env.get("EMERALD_ACKNOWLEDGMENTS"))),
    )


def _ingest(raw: Mapping) -> IngestConfig:
    return IngestConfig(
        max_pixels=int(raw["max_pixels"]),
        unknown_labels=_choice(raw, "unknown_labels", ("ingest", "hold"), "ingest."),
        processes=int(raw.get("processes", 0)),
        completion=_choice(raw, "completion", ("quiet", "marker"), "ingest."),
        quiet_seconds=int(raw["quiet_seconds"]),
        timeout_seconds=int(raw["timeout_seconds"]),
    )


def _data(raw: Mapping) -> DataConfig:
    eval_split = raw["eval_split"]
    if eval_split not in EVAL_SPLITS:
        raise ConfigError(f"data.eval_split {eval_split!r} is not one of {EVAL_SPLITS}")
    return DataConfig(
        labels=tuple(str(x) for x in raw["labels"]),
        image_size=int(raw["image_size"]),
        eval_split=eval_split,
        hash_eval_percent=int(raw["hash_eval_percent"]),
    )


def _training(raw: Mapping) -> TrainingConfig:
    replay = float(raw.get("replay_fraction", 0.25))
    if not 0.0 <= replay <= 1.0:
        raise ConfigError(f"training.replay_fraction {replay} is not in [0, 1]")
    replay_max = int(raw.get("replay_max_images", 500))
    if replay_max < 0:
        raise ConfigError(f"training.replay_max_images {replay_max} is negative (0: no cap)")
    warm_epochs = int(raw.get("warm_start_epochs", 5))
    if warm_epochs < 1:   # a warm night that trains nothing would serve yesterday's model
        raise ConfigError(f"training.warm_start_epochs {warm_epochs} is not at least 1")
    architecture = _choice({"architecture": SMALL_CNN, **raw}, "architecture", ARCHITECTURES,
                           "training.")
    dropout = float(raw.get("dropout", 0.2))
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"training.dropout {dropout} is not in [0, 1)")
    trials, trial_epochs = int(raw.get("tuner_trials", 0)), int(raw.get("tuner_epochs", 2))
    if trials < 0 or trial_epochs < 1:
        raise ConfigError(f"training.tuner_trials {trials} must be >= 0 (0: no Tuner) and "
                          f"training.tuner_epochs {trial_epochs} >= 1")
    weights = raw.get("backbone_weights")
    if weights and architecture == SMALL_CNN:
        raise ConfigError("training.backbone_weights is set, but training.architecture "
                          f"{SMALL_CNN} has no backbone")
    return TrainingConfig(epochs=int(raw["epochs"]), batch_size=int(raw["batch_size"]),
                          learning_rate=float(raw["learning_rate"]),
                          warm_start=is_true(raw.get("warm_start", True)),
                          warm_start_epochs=warm_epochs,
                          replay_fraction=replay, replay_max_images=replay_max,
                          dropout=dropout, architecture=architecture,
                          backbone_weights=str(weights) if weights else None,
                          tuner_trials=trials, tuner_epochs=trial_epochs,
                          tflite=is_true(raw.get("tflite", True)),
                          vertex=_vertex(raw.get("vertex") or {}))


def _vertex(raw: Mapping) -> VertexTrainingConfig:
    vertex = VertexTrainingConfig(enabled=is_true(raw.get("enabled", False)), **{
        f.name: str(raw.get(f.name) or f.default)
        for f in dataclasses.fields(VertexTrainingConfig) if f.name != "enabled"})
    missing = [key for key in ("project", "region", "image") if not getattr(vertex, key)]
    if vertex.enabled and missing:
        raise ConfigError(f"training.vertex.enabled is true but training.vertex.{missing[0]} "
                          f"is not set")
    return vertex


def _serving(raw: Mapping) -> ServingConfig:
    agreement = float(raw.get("tflite_min_agreement", 0.99))
    if not 0.0 < agreement <= 1.0:   # 0 would publish any TFLite model, > 1 none
        raise ConfigError(f"serving.tflite_min_agreement {agreement} is not in (0, 1]")
    return ServingConfig(tflite_min_agreement=agreement)


def _evaluation(raw: Mapping) -> EvaluationConfig:
    return EvaluationConfig(min_accuracy=float(raw["min_accuracy"]),
                            max_accuracy_drop=float(raw["max_accuracy_drop"]),
                            slices=tuple(raw["slices"]))


def _metadata(raw: Mapping) -> MetadataConfig:
    return MetadataConfig(
        backend=_choice(raw, "backend", ("sqlite", "postgresql"), "metadata."),
        postgresql=MappingProxyType(
            {str(k): str(v) for k, v in (raw.get("postgresql") or {}).items()}))


def _gate(raw: Mapping) -> GateConfig:
    gate = GateConfig(block=tuple(raw.get("block", ("schema", "skew"))),
                      warn=tuple(raw.get("warn", ("drift", "prediction", "late"))))
    for kind in gate.block + gate.warn:
        if kind not in FINDING_KINDS:
            raise ConfigError(f"gate: unknown finding kind {kind!r}; kinds: {FINDING_KINDS}")
    return gate


def _alerts(raw: Mapping, env: Mapping[str, str]) -> AlertConfig:
    emails = env.get("EMERALD_ALERT_EMAILS")
    if emails is not None:
        email_list = tuple(e.strip() for e in emails.split(",") if e.strip())
    else:
        email_list = tuple(raw.get("emails") or ())
    return AlertConfig(
        emails=email_list,
        smtp_conn_id=str(raw.get("smtp_conn_id", "smtp_default")),
        slack_conn_id=str(raw.get("slack_conn_id", "slack_webhook_default")),
    )
