"""Dockerfile and docker-compose.yaml, checked without a Docker engine.

What a `docker compose up` would need and can be read from the files: the
base image and the lock, the layout config.py relies on, the services and
their health checks and start order, and that the compose environment plus
include/profiles/docker.yaml give a Postgres MLMD and the venv the image builds.
`docker compose config` (or the older `docker-compose config`) validates the
file when a client is installed; it needs no engine.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE_FILE = REPO / "docker-compose.yaml"
BASE_IMAGE = "apache/airflow:2.10.5-python3.10"
EMERALD_ROOT = "/opt/emerald"
VENV_PYTHON = "/opt/emerald/venv/bin/python"
AIRFLOW_SERVICES = ("airflow-webserver", "airflow-scheduler", "airflow-triggerer")
SERVICES = ("postgres", "airflow-init", *AIRFLOW_SERVICES, "gcs-emulator", "smtp")


# -- helpers -------------------------------------------------------------------------------

def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """Each build stage's (INSTRUCTION, arguments), by the stage's name (FROM ... AS name)."""
    stages: dict[str, list[tuple[str, str]]] = {}
    for keyword, args in all_instructions():
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages[name] = []
        stages[name].append((keyword, args))
    return stages


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The Airflow image's instructions: the last stage, what `docker build` makes by default
    (docker-compose builds it; no `target:`)."""
    return list(dockerfile_stages().values())[-1]


def all_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    return instructions


def of(kind: str) -> list[str]:
    return [args for keyword, args in dockerfile_instructions() if keyword == kind]


def copies() -> list[tuple[str, str]]:
    """(source, destination) of each COPY from the build context."""
    pairs = []
    for args in of("COPY"):
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        assert "--from" not in args, "multi-stage COPY: extend this test"
        *sources, dest = words
        pairs += [(src, dest) for src in sources]
    return pairs


def lock_pin(name: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(name.lower() + "=="):
            return line.split("==", 1)[1].split(";")[0].strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def resolve(value) -> str:
    """Compose interpolation with the defaults: ${VAR:-default} -> default, $$ -> $."""
    text = str(value)
    text = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", text)
    return text.replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: resolve(v) for k, v in env.items()}


def healthcheck_text(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else test


# -- Dockerfile ----------------------------------------------------------------------------

def test_base_image_is_airflow_of_the_lock():
    froms = of("FROM")
    assert froms == [f"{BASE_IMAGE} AS airflow"]
    assert list(dockerfile_stages())[-1] == "airflow"     # the default target
    version = lock_pin("apache-airflow")
    assert f"apache/airflow:{version}-python3.10" == BASE_IMAGE
    assert any(arg == f"AIRFLOW_VERSION={version}" for arg in of("ARG"))
    assert ">=3.10,<3.11" in (REPO / "pyproject.toml").read_text()


def test_runs_as_the_airflow_user():
    """Root only for what needs it; pip, the venv and the final user are airflow.

    Follows USER through the file: the base image starts as airflow (uid 50000). pip run as
    root would install into root's site (PIP_USER) or own the venv by root, and files COPYed
    without --chown are root's, which the group-0 compose user cannot write.
    """
    user, as_root, as_airflow = "airflow", [], []
    for keyword, args in dockerfile_instructions():
        if keyword == "USER":
            user = args.split(":")[0]
        elif keyword == "RUN":
            (as_root if user in ("root", "0") else as_airflow).append(args)
        elif keyword == "COPY":
            assert "--chown=airflow:0" in args.split(), f"COPY {args}: not owned by airflow"
    assert user == "airflow", f"the image ends as {user!r}"
    assert as_root and as_airflow
    for run in as_root:
        assert not re.search(r"\bpip\b|-m venv|/venv/bin/python", run), f"as root: {run}"
    installs = [r for r in as_airflow if re.search(r"\bpip install\b", r)]
    assert len(installs) == 3          # the lock into the venv, Emerald into it, the Airflow side
    assert any("python -m venv /opt/emerald/venv" in r for r in as_airflow)


def test_copied_files_exist_and_are_not_dockerignored():
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat.replace("**/", ""))
                   for pat in ignore)

    pairs = copies()
    assert pairs
    for src, _ in pairs:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        assert not ignored(src), f"COPY {src}: excluded by .dockerignore"
    # The big things stay out of the build context.
    for heavy in (".venv", ".git", ".emerald"):
        assert ignored(heavy), f"{heavy} should be in .dockerignore"


def test_layout_keeps_pipeline_src_beside_include():
    dest = {src.rstrip("/"): d.rstrip("/") for src, d in copies()}
    assert dest["pipeline_src"] == f"{EMERALD_ROOT}/pipeline_src"
    assert dest["include"] == f"{EMERALD_ROOT}/include"   # config.py: parents[1] / "include"
    assert dest["pyproject.toml"] == f"{EMERALD_ROOT}/pyproject.toml"
    env = " ".join(of("ENV"))
    assert f"AIRFLOW__CORE__DAGS_FOLDER={dest['dags']}" in env
    assert f"AIRFLOW__CORE__PLUGINS_FOLDER={dest['plugins']}" in env


def test_lock_goes_into_its_own_venv_and_airflow_stays_pinned():
    dest = {src: d for src, d in copies()}
    lock_in_image = dest["requirements.txt"]
    runs = of("RUN")
    venv_pip = VENV_PYTHON.replace("/python", "/pip")
    # The venv, from the lock, then Emerald itself without dependencies (editable).
    assert any("python -m venv /opt/emerald/venv" in r for r in runs)
    assert any(venv_pip in r and f"-r {lock_in_image}" in r for r in runs)
    assert any(venv_pip in r and "--no-deps -e /opt/emerald" in r for r in runs)
    # The image sets PIP_USER=true, which pip refuses inside a venv.
    assert all("PIP_USER=false" in r for r in runs if venv_pip in r)
    # The image's own environment never gets the lock, and pins Airflow to the image's version.
    airflow_side = [r for r in runs if re.search(r"(^|&& )pip install", r)]
    assert airflow_side, "no pip install for the Airflow side"
    for run in airflow_side:
        assert lock_in_image not in run
        assert '"apache-airflow==${AIRFLOW_VERSION}"' in run
    assert (REPO / "scripts" / "requirements-airflow.txt").is_file()


def test_emerald_console_script_is_the_venvs():
    assert any("/opt/emerald/venv/bin/emerald /usr/local/bin/emerald" in r for r in of("RUN"))


def test_dataflow_worker_stage_is_beams_image_with_the_lock():
    """`docker build --target dataflow-worker`: what Dataflow's workers run (gcp profile)."""
    stage = dockerfile_stages()["dataflow-worker"]
    froms = [args for keyword, args in stage if keyword == "FROM"]
    assert froms == [f"apache/beam_python3.10_sdk:{lock_pin('apache-beam')} AS dataflow-worker"]
    runs = [args for keyword, args in stage if keyword == "RUN"]
    copied = {}
    for keyword, args in stage:
        if keyword == "COPY":
            *sources, dest = shlex.split(args)
            copied.update({src: dest for src in sources})
    assert copied["requirements.txt"] == f"{EMERALD_ROOT}/requirements.txt"
    assert copied["pipeline_src"] == f"{EMERALD_ROOT}/pipeline_src"      # config.py's layout
    assert copied["include"] == f"{EMERALD_ROOT}/include"
    assert any(f"pip install --no-cache-dir -r {EMERALD_ROOT}/requirements.txt" in r for r in runs)
    assert any(f"--no-deps -e {EMERALD_ROOT}" in r for r in runs)
    checked = " ".join(runs)
    for module in ("tensorflow_data_validation", "tensorflow_transform",
                   "tensorflow_model_analysis", "pipeline_src"):
        assert module in checked, f"the build does not import {module}"
    # Beam's boot program stays the entry point; the worker harness is Beam's own.
    assert not [k for k, _ in stage if k in ("ENTRYPOINT", "CMD", "USER")]


def test_the_vertex_trainer_runs_on_the_worker_image_whose_python_has_tfx_and_the_trainer():
    """TFX's Vertex job overrides the container's command with `python -m
    tfx.scripts.run_executor`: the image's own python (no venv in this stage) must hold
    TFX and the run_fn's module, which the stage's build imports."""
    from pipeline_src.config import load_config

    vertex = load_config(env={"EMERALD_PROFILE": "gcp"}).training.vertex
    assert vertex.image.rsplit("/", 1)[-1] == "emerald-dataflow:latest"
    stage = dockerfile_stages()["dataflow-worker"]
    runs = " ".join(args for keyword, args in stage if keyword == "RUN")
    imported = {name.strip() for statement in re.findall(r'python -c "import ([^;"]+)', runs)
                for name in statement.split(",")}
    assert {"tfx.scripts.run_executor", "pipeline_src.model.trainer"} <= imported, imported
    assert not [args for keyword, args in stage if keyword == "ENV" and "PATH" in args]


def test_gcp_profile_runs_dataflow_on_the_worker_image():
    from pipeline_src.config import load_config

    args = load_config(env={"EMERALD_PROFILE": "gcp"}).beam_args
    flags = dict(a[2:].split("=", 1) if "=" in a else (a[2:], True) for a in args)
    assert flags["runner"] == "DataflowRunner"
    assert flags["sdk_container_image"].rsplit("/", 1)[-1] == "emerald-dataflow:latest"
    assert flags["sdk_location"] == "container"          # nothing staged: the image has it
    for name in ("project", "region", "temp_location", "staging_location",
                 "service_account_email", "subnetwork"):
        assert flags.get(name), f"--{name} is not set"
    assert flags["temp_location"].startswith("gs://")
    assert flags["staging_location"].startswith("gs://")
    assert flags.get("no_use_public_ips") is True


def test_docker_profile_points_at_what_the_image_builds():
    from pipeline_src.config import load_config

    cfg = load_config(env={"EMERALD_PROFILE": "docker", "EMERALD_MLMD_PASSWORD": "secret"})
    assert cfg.profile == "docker"
    assert cfg.dag.external_python == VENV_PYTHON
    assert str(cfg.paths.home) == f"{EMERALD_ROOT}/data"
    assert cfg.metadata.backend == "postgresql"
    pg = cfg.metadata.postgresql
    assert (pg["host"], pg["dbname"], pg["user"]) == ("postgres", "mlmd", "airflow")
    assert pg["password_env"] == "EMERALD_MLMD_PASSWORD"


# -- docker-compose.yaml ---------------------------------------------------------------------

def test_services_and_healthchecks(services):
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        if name != "airflow-init":
            assert services[name].get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
    assert "pg_isready" in healthcheck_text(services["postgres"])
    web = healthcheck_text(services["airflow-webserver"])
    assert "localhost:8080/health" in web and "8080:8080" in services["airflow-webserver"]["ports"]
    assert "localhost:8974/health" in healthcheck_text(services["airflow-scheduler"])
    assert ('airflow jobs check --job-type TriggererJob --hostname "$${HOSTNAME}"'
            in healthcheck_text(services["airflow-triggerer"]))
    assert "9023" in healthcheck_text(services["gcs-emulator"])
    assert "1025" in healthcheck_text(services["smtp"])
    for name in AIRFLOW_SERVICES:
        assert services[name]["command"] in ("webserver", "scheduler", "triggerer")
        assert services[name]["command"] in name


def test_start_order(services):
    for name in AIRFLOW_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
        assert deps["gcs-emulator"]["condition"] == "service_healthy"
        assert deps["smtp"]["condition"] == "service_healthy"
    assert services["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name, service in services.items():   # every dependency exists
        for dep in service.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"


def test_airflow_init_migrates_and_creates_the_admin(services):
    init = services["airflow-init"]
    env = env_of(init)
    assert env["_AIRFLOW_DB_MIGRATE"] == "true"
    assert env["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert env["_AIRFLOW_WWW_USER_USERNAME"] and env["_AIRFLOW_WWW_USER_PASSWORD"]
    assert "/entrypoint airflow version" in " ".join(init["command"])
    assert init["user"] == "0:0"


def test_airflow_environment(compose, services):
    assert compose["x-airflow-common"]["user"] == "${AIRFLOW_UID:-50000}:0"
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        service = services[name]
        if name != "airflow-init":   # root, to chown the volumes (as the official file)
            assert service["user"] == "${AIRFLOW_UID:-50000}:0", name
        env = env_of(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
        db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert db.scheme.startswith("postgresql") and db.hostname == "postgres"
        assert db.path == "/airflow"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
        assert env["EMERALD_PROFILE"] == "docker"
        assert env["EMERALD_NODE_RUNNER"] == "external_python"
        assert env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
        # The same password opens Airflow's database and MLMD's.
        pg_env = env_of(services["postgres"])
        assert env["EMERALD_MLMD_PASSWORD"] == pg_env["POSTGRES_PASSWORD"] == db.password
        assert db.username == pg_env["POSTGRES_USER"]


def test_connections_point_at_the_emulator_and_the_smtp_catcher(services):
    from airflow.models.connection import Connection

    env = env_of(services["airflow-scheduler"])
    emulator = urlsplit(env["STORAGE_EMULATOR_HOST"])
    assert emulator.hostname == "gcs-emulator"
    emulator_cmd = " ".join(services["gcs-emulator"]["command"])
    assert f"--port={emulator.port}" in emulator_cmd and "--host=0.0.0.0" in emulator_cmd

    gcp = Connection.from_json(env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"], conn_id="google_cloud_default")
    assert gcp.conn_type == "google_cloud_platform" and gcp.extra_dejson["project"]

    smtp = Connection.from_json(env["AIRFLOW_CONN_SMTP_DEFAULT"], conn_id="smtp_default")
    assert smtp.conn_type == "smtp" and smtp.host == "smtp"
    assert f"0.0.0.0:{smtp.port}" in " ".join(services["smtp"]["command"])
    assert smtp.extra_dejson["from_email"]
    assert smtp.extra_dejson["disable_tls"] is True and smtp.extra_dejson["disable_ssl"] is True


def test_volumes_mount_the_project_as_the_image_lays_it_out(compose, services):
    named = set(compose.get("volumes") or {})
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        mounts = {}
        for volume in services[name]["volumes"]:
            source, target = volume.split(":")[:2]
            mounts[target] = source
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        for folder in ("dags", "plugins", "include", "pipeline_src"):
            assert mounts[f"{EMERALD_ROOT}/{folder}"] == f"./{folder}"
        env = env_of(services[name])
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == f"{EMERALD_ROOT}/dags"
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == f"{EMERALD_ROOT}/plugins"
        assert f"{EMERALD_ROOT}/data" in mounts          # EMERALD_HOME of the docker profile


def test_postgres_creates_the_mlmd_database(services):
    postgres = services["postgres"]
    assert env_of(postgres)["POSTGRES_DB"] == "airflow"
    inits = [v.split(":") for v in postgres["volumes"] if "/docker-entrypoint-initdb.d/" in v]
    assert inits, "no init script mounted"
    sql = "\n".join((REPO / source).read_text() for source, *_ in inits)
    assert re.search(r"CREATE DATABASE\s+mlmd\b", sql, re.IGNORECASE)


def test_compose_environment_gives_a_postgres_mlmd(services):
    """The scheduler's environment, read as the tasks read it: MLMD on the compose Postgres."""
    from pipeline_src.config import load_config

    env = env_of(services["airflow-scheduler"])
    cfg = load_config(env=env)
    assert cfg.profile == "docker"
    assert cfg.dag.node_runner == "external_python"
    assert cfg.metadata.backend == "postgresql"
    pg = cfg.metadata.postgresql
    assert pg["host"] in services and pg["host"] == "postgres"
    assert int(pg["port"]) == 5432
    assert pg["user"] == env_of(services["postgres"])["POSTGRES_USER"]
    assert env[pg["password_env"]] == env_of(services["postgres"])["POSTGRES_PASSWORD"]
    assert cfg.dag.external_python == VENV_PYTHON
    # Emulator and SMTP catcher run the venv's tools, which the lock provides.
    for service, tool in (("gcs-emulator", "gcp-storage-emulator"), ("smtp", "aiosmtpd")):
        assert any(tool in part for part in services[service]["entrypoint"])
        lock_pin(tool)


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy and subprocess.run([legacy, "version"], capture_output=True).returncode == 0:
        return [legacy]
    return None


def test_docker_compose_config_validates():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose client (the plugin or docker-compose) installed")
    result = subprocess.run([*cli, "-f", str(COMPOSE_FILE), "config"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert set(SERVICES) <= set(rendered["services"])
    scheduler_env = rendered["services"]["airflow-scheduler"]["environment"]
    assert scheduler_env["EMERALD_PROFILE"] == "docker"
    assert json.loads(scheduler_env["AIRFLOW_CONN_SMTP_DEFAULT"])["host"] == "smtp"
