"""A real local Airflow (scripts/airflow_local.sh) and a headless Chromium, for the browser test.

Airflow runs in its own EMERALD_HOME / AIRFLOW_HOME under a temp dir, on free ports, with
small demo data. Every process is stopped at the end (the script's process groups, then
anything left in its pid files). Screenshots go to test-artifacts/ui/.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from emerald_testing import free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = os.environ.get("EMERALD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ADMIN_USER, ADMIN_PASSWORD = "admin", "emerald-ui-test"
START_TIMEOUT = 420


def _clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment minus Airflow/Emerald settings the test session set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "EMERALD_", "STORAGE_EMULATOR_HOST"))}
    env.update(extra)
    return env


def _healthy(url: str) -> bool:
    try:
        health = json.load(urllib.request.urlopen(f"{url}/health", timeout=5))
    except Exception:
        return False
    return (health.get("metadatabase", {}).get("status") == "healthy"
            and health.get("scheduler", {}).get("latest_scheduler_heartbeat") is not None)


def _kill_group(pid: int, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium: missing is a failure (CI installs it in .ci/run), never a skip."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install it with "
                    "`apt-get install -y chromium` (.ci/run does) or set EMERALD_CHROMIUM",
                    pytrace=False)
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def local_airflow(tmp_path_factory, artifacts):
    """scripts/airflow_local.sh in the foreground, in its own process group."""
    from pipeline_src.tools.synth import synthesize

    home = tmp_path_factory.mktemp("emerald-ui") / "home"
    synthesize(home / "source", nights=1, seed=0, start_date=dt.date(2026, 1, 2),
               corpus_per_label=40, toto_per_label=12)
    port = free_port()
    env = _clean_env(
        EMERALD_HOME=str(home), AIRFLOW_PORT=str(port),
        AIRFLOW_LOG_SERVER_PORT=str(free_port()), AIRFLOW_TRIGGER_LOG_PORT=str(free_port()),
        AIRFLOW_ADMIN_USER=ADMIN_USER, AIRFLOW_ADMIN_PASSWORD=ADMIN_PASSWORD,
        AIRFLOW_HEALTH_TIMEOUT=str(START_TIMEOUT))
    log_path = artifacts / "airflow_local.log"
    log = open(log_path, "w")
    script = subprocess.Popen(["bash", str(REPO / "scripts" / "airflow_local.sh")], cwd=REPO,
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://localhost:{port}"
    airflow_home = home / "airflow"
    try:
        deadline = time.monotonic() + START_TIMEOUT + 120
        while not ("Airflow is up" in log_path.read_text() and _healthy(url)):
            if script.poll() is not None:
                pytest.fail(f"scripts/airflow_local.sh exited {script.returncode}:\n"
                            + log_path.read_text()[-4000:], pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail("local Airflow did not come up:\n" + log_path.read_text()[-4000:],
                            pytrace=False)
            time.sleep(2)
        yield SimpleNamespace(url=url, port=port, home=home, airflow_home=airflow_home,
                              user=ADMIN_USER, password=ADMIN_PASSWORD,
                              reports=home / "reports", log=log_path)
    finally:
        # The script's trap stops webserver, scheduler and triggerer (each its own group).
        _kill_group(script.pid, signal.SIGTERM)
        try:
            script.wait(timeout=90)
        except subprocess.TimeoutExpired:
            _kill_group(script.pid, signal.SIGKILL)
            script.wait(timeout=10)
        subprocess.run(["bash", str(REPO / "scripts" / "airflow_local.sh"), "stop"], cwd=REPO,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        for pid_file in (airflow_home / "run").glob("*.pid"):     # belt and braces
            try:
                _kill_group(int(pid_file.read_text().strip()), signal.SIGKILL)
            except ValueError:
                pass
        log.close()
        for name in ("webserver", "scheduler", "triggerer"):
            out = airflow_home / "logs" / f"{name}.out"
            if out.exists():
                shutil.copy(out, artifacts / f"{name}.out")


@pytest.fixture
def browser_page(chromium, artifacts):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
