"""scripts/deploy_composer.py against a real gcp-storage-emulator, and the deployed tree parsed.

The deploy runs as Composer would be fed: the checkout's dags/, plugins/,
pipeline_src/ and include/ land in the bucket's dags/ and plugins/ folders.
The last test downloads those two folders and fills a DagBag from them in a
fresh interpreter where the checkout (and its editable install) is hidden,
as on a Composer worker where only dags/ and plugins/ are on sys.path.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Required, not optional: the lock pins apache-airflow-providers-cncf-kubernetes, and the gcp
# profile's node runner (KubernetesPodOperator) is what a Composer worker parses.
import airflow.providers.cncf.kubernetes  # noqa: F401

import emerald_testing as testing
from pipeline_src import names as task_names

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "deploy_composer.py"
PROJECT = "emerald-test"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    with testing.gcs_emulator(tmp_path_factory.mktemp("emulator") / "emulator.log") as url:
        yield url


@pytest.fixture
def client(emulator, monkeypatch):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator)
    return testing.anonymous_client(PROJECT)


_bucket_count = 0


@pytest.fixture
def bucket(client):
    global _bucket_count
    _bucket_count += 1
    bucket = client.create_bucket(f"composer-env-{os.getpid()}-{_bucket_count}")
    # Composer's own file in dags/: a deploy must never delete what it did not upload.
    bucket.blob("dags/airflow_monitoring.py").upload_from_string(b"# Composer's\n")
    return bucket


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the four deployed folders, __pycache__ and all, that a test may change."""
    root = tmp_path / "checkout"
    for folder in ("dags", "plugins", "pipeline_src", "include"):
        shutil.copytree(REPO / folder, root / folder)
    # Make sure there is bytecode to skip, whatever state the checkout is in.
    (root / "pipeline_src" / "__pycache__").mkdir(exist_ok=True)
    (root / "pipeline_src" / "__pycache__" / "config.cpython-310.pyc").write_bytes(b"\0")
    (root / "plugins" / "emerald_tfx" / "stray.pyc").write_bytes(b"\0")
    return root


def deploy(emulator: str, *args: str, root: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, STORAGE_EMULATOR_HOST=emulator, GOOGLE_CLOUD_PROJECT=PROJECT)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--environment", "emerald-test", "--location",
         "europe-west1", "--root", str(root), *args],
        env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def names(bucket) -> set[str]:
    return {blob.name for blob in bucket.client.list_blobs(bucket.name)}


# The script's one summary line: "12 uploaded, 3 unchanged, 0 deleted (gs://b/data/...)".
_SUMMARY_RE = re.compile(r"^(\d+) uploaded, (\d+) unchanged, (\d+) deleted \(gs://[^)]+\)$",
                         re.MULTILINE)


def counts(stdout: str) -> dict[str, int]:
    """The numbers of the summary line, parsed exactly (not "0 uploaded" in "10 uploaded")."""
    found = _SUMMARY_RE.findall(stdout)
    assert len(found) == 1, f"expected one summary line, got {found}:\n{stdout}"
    uploaded, unchanged, deleted = map(int, found[0])
    return {"uploaded": uploaded, "unchanged": unchanged, "deleted": deleted}


def action_lines(stdout: str, action: str) -> list[str]:
    """The object names of the "uploaded gs://..." / "deleted  gs://..." lines."""
    pattern = re.compile(rf"^{action} +gs://[^/]+/(\S+)$", re.MULTILINE)
    return sorted(pattern.findall(stdout))


def expected_objects(root: Path) -> set[str]:
    """What a deploy of `root` must upload, worked out from the checkout's files."""
    expected = {"plugins/.airflowignore"}
    for local, prefix in (("dags", "dags"), ("plugins", "plugins"),
                          ("pipeline_src", "plugins/pipeline_src"),
                          ("include", "plugins/include")):
        for path in (root / local).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(f"{prefix}/{path.relative_to(root / local).as_posix()}")
    return expected


def test_deploy_uploads_the_composer_layout(emulator, bucket, checkout):
    result = deploy(emulator, "--bucket", f"gs://{bucket.name}/dags", "--skip-pypi",
                    "--skip-env-vars", root=checkout)
    uploaded = names(bucket)
    for name in ("dags/emerald_nightly.py",
                 "plugins/pipeline_src/__init__.py",
                 "plugins/pipeline_src/config.py",
                 "plugins/pipeline_src/orchestration/tasks.py",
                 "plugins/pipeline_src/components/distribution_validator.py",
                 "plugins/emerald_dag/builder.py",
                 "plugins/include/emerald.yaml",
                 "plugins/include/profiles/gcp.yaml",
                 "plugins/include/compiled/pipeline.json",
                 "plugins/include/compiled/schema.pbtxt",
                 "plugins/emerald_tfx/operators.py",
                 "plugins/emerald_gcs/operators.py",
                 "plugins/.airflowignore",
                 "dags/airflow_monitoring.py"):
        assert name in uploaded, f"{name} missing; got {sorted(uploaded)}"
    assert not [n for n in uploaded if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    # Every file of the four folders (but bytecode) is there, under its Composer prefix.
    for local, prefix in (("dags", "dags"), ("plugins", "plugins"),
                          ("pipeline_src", "plugins/pipeline_src"),
                          ("include", "plugins/include")):
        for path in (checkout / local).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                assert f"{prefix}/{path.relative_to(checkout / local).as_posix()}" in uploaded
    # Byte for byte.
    assert (bucket.blob("plugins/include/compiled/pipeline.json").download_as_bytes()
            == (checkout / "include" / "compiled" / "pipeline.json").read_bytes())
    ignore = bucket.blob("plugins/.airflowignore").download_as_text()
    assert "^pipeline_src($|/)" in ignore and "^include($|/)" in ignore
    # Exactly the checkout's files were uploaded (Composer's own file and the manifest aside),
    # each reported once, and the summary line counts them.
    expected = expected_objects(checkout)
    assert uploaded - {"dags/airflow_monitoring.py", "data/emerald-deploy/manifest.json"} == expected
    assert action_lines(result.stdout, "uploaded") == sorted(expected)
    assert counts(result.stdout) == {"uploaded": len(expected), "unchanged": 0, "deleted": 0}


def test_rerun_is_a_sync(emulator, bucket, checkout):
    extra = checkout / "pipeline_src" / "obsolete_helper.py"
    extra.write_text("VALUE = 1\n")
    args = ("--bucket", f"gs://{bucket.name}", "--skip-pypi", "--skip-env-vars")
    first = deploy(emulator, *args, root=checkout)
    assert "plugins/pipeline_src/obsolete_helper.py" in names(bucket)
    total = len(expected_objects(checkout))
    assert counts(first.stdout) == {"uploaded": total, "unchanged": 0, "deleted": 0}

    # Unchanged files are not uploaded again.
    again = deploy(emulator, *args, root=checkout)
    assert counts(again.stdout) == {"uploaded": 0, "unchanged": total, "deleted": 0}
    assert action_lines(again.stdout, "uploaded") == action_lines(again.stdout, "deleted") == []

    # A file removed from the checkout disappears from the bucket; a changed one is replaced;
    # objects the deploy never uploaded stay.
    extra.unlink()
    (checkout / "include" / "emerald.yaml").write_text(
        (checkout / "include" / "emerald.yaml").read_text() + "\n# changed\n")
    third = deploy(emulator, *args, root=checkout)
    after = names(bucket)
    assert "plugins/pipeline_src/obsolete_helper.py" not in after
    assert counts(third.stdout) == {"uploaded": 1, "unchanged": total - 2, "deleted": 1}
    assert action_lines(third.stdout, "uploaded") == ["plugins/include/emerald.yaml"]
    assert action_lines(third.stdout, "deleted") == ["plugins/pipeline_src/obsolete_helper.py"]
    assert bucket.blob("plugins/include/emerald.yaml").download_as_text().endswith("# changed\n")
    assert "dags/airflow_monitoring.py" in after
    manifest = json.loads(bucket.blob("data/emerald-deploy/manifest.json").download_as_bytes())
    assert "plugins/pipeline_src/obsolete_helper.py" not in manifest["objects"]
    assert "dags/emerald_nightly.py" in manifest["objects"]


def test_dry_run_prints_gcloud_and_changes_nothing(emulator, client):
    result = deploy(emulator, "--dry-run", "--env-var", "EMERALD_SOURCE=gs://toto/walk")
    out = result.stdout
    assert ("$ gcloud composer environments describe emerald-test --location europe-west1 "
            "'--format=value(config.dagGcsPrefix)'") in out
    assert ("$ gcloud composer environments update emerald-test --location europe-west1 "
            "--update-env-variables=EMERALD_PROFILE=gcp,EMERALD_SOURCE=gs://toto/walk") in out
    assert ("$ gcloud composer environments update emerald-test --location europe-west1 "
            "--update-pypi-packages-from-file requirements-composer.txt") in out
    listed = [line.strip("# ").strip() for line in out.splitlines() if line.startswith("#   ")]
    assert "pyyaml" in listed and "apache-airflow-providers-google" in listed
    assert not any(name.startswith(("tfx", "tensorflow", "apache-beam")) for name in listed)
    assert "would upload gs://<bucket of emerald-test>/plugins/pipeline_src/config.py" in out
    assert "uploaded gs://" not in out and "deleted  gs://" not in out


def test_bucket_from_gcloud_describe(emulator, bucket, tmp_path, checkout):
    """Without --bucket the script asks gcloud for dagGcsPrefix (a stand-in gcloud here)."""
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    calls = tmp_path / "calls.txt"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        'case "$*" in *describe*) echo "gs://' + bucket.name + '/dags";; '
        '*pypi*) echo "ERROR: (gcloud.composer.environments.update) INVALID_ARGUMENT: '
        'No change in configuration." >&2; exit 1;; esac\n')
    fake.chmod(0o755)
    env = dict(os.environ, STORAGE_EMULATOR_HOST=emulator, GOOGLE_CLOUD_PROJECT=PROJECT,
               PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--environment", "env1", "--location", "us-central1",
         "--root", str(checkout)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dags/emerald_nightly.py" in names(bucket)
    lines = calls.read_text().splitlines()
    assert lines[0] == ("composer environments describe env1 --location us-central1 "
                        "--format=value(config.dagGcsPrefix)")
    assert lines[1] == ("composer environments update env1 --location us-central1 "
                        "--update-env-variables=EMERALD_PROFILE=gcp")
    assert lines[2].startswith("composer environments update env1 --location us-central1 "
                               "--update-pypi-packages-from-file ")
    assert "already up to date" in result.stdout


# Run in a fresh interpreter: hides the checkout, then parses the downloaded dags/ folder.
_DAGBAG_PROBE = r"""
import json, os, sys
checkout = os.path.realpath(os.environ["EMERALD_CHECKOUT"])
# Hide the checkout's editable install (setuptools' finder) and any path into the checkout.
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
venv = os.path.realpath(sys.prefix)   # the checkout's .venv may live inside the checkout


def in_checkout(path):
    path = os.path.realpath(path)
    inside = path == checkout or path.startswith(checkout + os.sep)
    return inside and not (path == venv or path.startswith(venv + os.sep))


sys.path[:] = [p for p in sys.path if "__editable__" not in p and not in_checkout(p or os.getcwd())]
sys.path_importer_cache.clear()
import importlib.util
assert importlib.util.find_spec("pipeline_src") is None, "checkout still importable"

from airflow import plugins_manager
from airflow.models.dagbag import DagBag
from airflow.utils.file import find_path_from_directory

dags, plugins = os.environ["AIRFLOW__CORE__DAGS_FOLDER"], os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"]
bag = DagBag(dag_folder=dags, include_examples=False)
plugins_manager.ensure_plugins_loaded()
import pipeline_src.config as config
loaded = config.load_config()
scanned = [os.path.relpath(p, plugins) for p in find_path_from_directory(plugins, ".airflowignore")]
print("PROBE" + json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "tasks": ({t.task_id: type(t).__name__ for t in bag.dags["emerald_nightly"].tasks}
              if "emerald_nightly" in bag.dags else {}),
    "pipeline_src": config.__file__,
    "repo_root": str(config.REPO_ROOT),
    "config_file": str(loaded.config_file),
    "profile": loaded.profile,
    "source": loaded.paths.source,
    "plugin_import_errors": {k: str(v) for k, v in plugins_manager.import_errors.items()},
    "plugins": sorted(p.name for p in plugins_manager.plugins or []),
    "scanned_by_plugin_loader": scanned,
    "from_checkout": sorted(n for n, m in list(sys.modules.items())
                            if getattr(m, "__file__", None) and in_checkout(m.__file__)),
    "stray_top_level": sorted(n for n, m in list(sys.modules.items())
                              if (getattr(m, "__file__", None) or "").startswith(
                                  (os.path.join(plugins, "pipeline_src"), os.path.join(plugins, "include")))
                              and not n.startswith("pipeline_src")),
}))
"""


def test_deployed_tree_parses_without_the_checkout(emulator, bucket, tmp_path):
    """dags/ + plugins/ from the bucket are all a Composer worker has: the DAG must load from them."""
    deploy(emulator, "--bucket", f"gs://{bucket.name}", "--skip-pypi", "--skip-env-vars")
    env_root = tmp_path / "composer"          # like /home/airflow/gcs
    for blob in bucket.client.list_blobs(bucket.name):
        if blob.name.startswith(("dags/", "plugins/")):
            target = env_root / blob.name
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
    dags, plugins = env_root / "dags", env_root / "plugins"
    (dags / "airflow_monitoring.py").unlink()   # the stand-in, not a real DAG

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "EMERALD_", "PYTHON"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "EMERALD_PROFILE": "gcp",
        "EMERALD_HOME": str(tmp_path / "emerald-home"),
        "EMERALD_CHECKOUT": str(REPO),
    })
    result = subprocess.run([sys.executable, "-c", _DAGBAG_PROBE], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    probe = json.loads(result.stdout.split("PROBE", 1)[1])

    assert probe["import_errors"] == {}
    assert "emerald_nightly" in probe["dag_ids"]
    # Every node of the committed IR plus the five Airflow-only tasks, nothing else; the gcp
    # profile runs the nodes, the gate and the report in KubernetesPodOperator pods.
    ir = json.loads((REPO / "include" / "compiled" / "pipeline.json").read_text())
    node_ids = {node["pipelineNode"]["nodeInfo"]["id"] for node in ir["nodes"]}
    assert len(node_ids) == len(ir["nodes"]) == 10
    dag_only = {task_names.WAIT_FOR_NIGHT, task_names.INGEST_NIGHT, task_names.DATA_GATE,
                task_names.DATA_GATE_DECISION, task_names.NIGHT_REPORT}
    assert set(probe["tasks"]) == node_ids | dag_only
    assert len(probe["tasks"]) == 15
    pods = {t for t, cls in probe["tasks"].items() if cls == "KubernetesPodOperator"}
    assert pods == node_ids | {task_names.DATA_GATE_DECISION, task_names.NIGHT_REPORT}
    # The code and the configuration came from the downloaded plugins/ folder.
    assert probe["pipeline_src"] == str(plugins / "pipeline_src" / "config.py")
    assert probe["repo_root"] == str(plugins)
    assert probe["config_file"] == str(plugins / "include" / "emerald.yaml")
    assert probe["profile"] == "gcp" and probe["source"].startswith("gs://")
    assert probe["from_checkout"] == []
    # Airflow's plugin loader stays out of pipeline_src/ and include/ (.airflowignore).
    assert probe["plugin_import_errors"] == {}
    assert not [p for p in probe["scanned_by_plugin_loader"]
                if p.startswith(("pipeline_src", "include"))]
    assert probe["stray_top_level"] == []
