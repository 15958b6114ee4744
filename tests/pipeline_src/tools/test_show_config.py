"""`emerald config [--json]` shows the configuration every task will load, as a user runs it.

Run as the real command (a subprocess, a fresh environment), so what is checked is
what a user sees: the profile merged over the file, the environment applied last,
and one JSON object on stdout that `jq` can read.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline_src.config import load_config
from pipeline_src.tools import show_config

REPO = Path(__file__).resolve().parents[3]


def emerald_config(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EMERALD", "AIRFLOW"))}
    clean.update(env)
    return subprocess.run([sys.executable, "-m", "pipeline_src.tools.cli", "config", *args],
                          cwd=REPO, env=clean, capture_output=True, text=True, timeout=60)


def test_json_is_the_profile_merged_and_the_environment_applied(tmp_path):
    proc = emerald_config("--json", EMERALD_PROFILE="gcp", EMERALD_HOME=str(tmp_path),
                          EMERALD_ALERT_EMAILS="toto@example.com, dorothy@example.com")
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = json.loads(proc.stdout)               # the whole of stdout is one object
    assert shown["profile"] == "gcp"
    assert shown["paths"]["home"] == str(tmp_path.resolve())                 # environment
    assert shown["paths"]["pipeline_root"] == "gs://emerald-pipeline/root"   # the profile
    assert shown["paths"]["spans"] == "gs://emerald-pipeline/spans"          # the profile
    assert shown["paths"]["metadata"] == str(tmp_path.resolve() / "metadata.sqlite")  # the file
    assert shown["metadata"]["backend"] == "postgresql"
    assert shown["dag"]["node_runner"] == "kubernetes"
    assert "--runner=DataflowRunner" in shown["beam_args"]
    assert shown["alerts"]["emails"] == ["toto@example.com", "dorothy@example.com"]
    assert shown["environment"] == {
        "EMERALD_PROFILE": "gcp", "EMERALD_HOME": str(tmp_path),
        "EMERALD_ALERT_EMAILS": "toto@example.com, dorothy@example.com"}
    # Every setting of the loaded object is shown, section by section.
    config = load_config(env={"EMERALD_PROFILE": "gcp", "EMERALD_HOME": str(tmp_path)})
    assert shown["training"] == show_config.plain(config.training)
    assert shown["validation"]["skew"] == dict(config.validation.skew)


def test_plain_text_is_one_setting_per_line(tmp_path):
    proc = emerald_config(EMERALD_HOME=str(tmp_path), EMERALD_SOURCE="gs://toto/walk")
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    assert json.loads(shown["paths.source"]) == "gs://toto/walk"
    assert json.loads(shown["paths.spans"]) == str(tmp_path.resolve() / "spans")
    assert json.loads(shown["data.labels"]) == ["lion", "tiger", "bear"]
    assert json.loads(shown["validation.skew.brightness"]) == 0.3
    assert json.loads(shown["environment.EMERALD_SOURCE"]) == "gs://toto/walk"


def test_a_bad_profile_is_the_usual_one_line_error(tmp_path):
    proc = emerald_config("--json", EMERALD_PROFILE="nope", EMERALD_HOME=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].startswith("emerald: error: unknown profile 'nope'")
