"""Airflow's plugin loader, in a fresh process, imports the plugin entry points and nothing else.

The loader (airflow.plugins_manager.load_plugins_from_plugin_directory) imports
every .py file under plugins/ that .airflowignore lets through, as a top-level
module named after the file: without plugins/.airflowignore, emerald_gcs/hooks.py
would be `hooks` (then shadowed by emerald_alerts/hooks.py), pulling the Google
provider into every scheduler and webserver process.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
STRAY_NAMES = ("hooks", "operators", "sensors", "testing", "_common", "__init__")

_PROBE = r"""
import json, os, sys
plugins = os.path.realpath(os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"])


def from_plugins():
    # {module name: its file relative to plugins/} for the modules loaded from plugins/
    found = {}
    for name, module in list(sys.modules.items()):
        path = os.path.realpath(getattr(module, "__file__", None) or "/")
        if path.startswith(plugins + os.sep):
            found[name] = os.path.relpath(path, plugins)
    return found


from airflow import plugins_manager
from airflow.utils.file import find_path_from_directory

before = from_plugins()
plugins_manager.ensure_plugins_loaded()
print("PROBE" + json.dumps({
    "scanned": sorted(os.path.relpath(p, plugins)
                      for p in find_path_from_directory(plugins, ".airflowignore")
                      if p.endswith(".py")),
    "loaded": {k: v for k, v in from_plugins().items() if k not in before},
    "import_errors": {k: str(v) for k, v in plugins_manager.import_errors.items()},
    "plugins": [{"name": p.name, "source": str(p.source),
                 "views": [{"name": v["name"], "category": v["category"],
                            "route_base": v["view"].route_base} for v in p.appbuilder_views]}
                for p in plugins_manager.plugins
                if isinstance(p.source, plugins_manager.PluginsDirectorySource)],
    "stray": sorted(set(sys.modules) & set(sys.argv[1:])),
    "google_provider": "airflow.providers.google" in sys.modules,
}))
"""


def entry_points() -> set[str]:
    """The files under plugins/ that define an AirflowPlugin subclass (relative paths)."""
    found = set()
    for path in PLUGINS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(base, "id", getattr(base, "attr", None)) == "AirflowPlugin"
                    for base in node.bases):
                found.add(path.relative_to(PLUGINS).as_posix())
    return found


def package_name(relpath: str) -> str:
    """The name a module has when imported through its package: a/b.py -> a.b, a/__init__.py -> a."""
    parts = relpath[: -len(".py")].split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def probe(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "EMERALD_", "PYTHON", "STORAGE_EMULATOR_HOST"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow-home"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    result = subprocess.run([sys.executable, "-c", _PROBE, *STRAY_NAMES], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(result.stdout.split("PROBE", 1)[1])


def test_the_loader_imports_only_the_plugin_entry_points(tmp_path):
    expected = entry_points()
    assert expected == {"emerald_reports/emerald_reports_plugin.py"}

    found = probe(tmp_path)

    assert found["import_errors"] == {}
    # What .airflowignore lets through is what the loader imports: the entry points only.
    assert set(found["scanned"]) == expected
    # The loader names a module after its file; anything else from plugins/ was imported
    # through its package (the entry point imports emerald_reports.views, ...).
    by_loader = {path for name, path in found["loaded"].items() if name != package_name(path)}
    assert by_loader == expected, found["loaded"]
    assert {name for name, path in found["loaded"].items() if path in expected} \
        == {Path(path).stem for path in expected}
    assert found["stray"] == []
    assert not found["google_provider"]              # what the stray `hooks` cost (~1 s)
    # The Emerald reports plugin is still there, with its page.
    assert found["plugins"] == [{
        "name": "emerald_reports",
        "source": "$PLUGINS_FOLDER/emerald_reports/emerald_reports_plugin.py",
        "views": [{"name": "Emerald reports", "category": "Emerald",
                   "route_base": "/emerald-reports"}],
    }]
