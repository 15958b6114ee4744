"""Launching a node imports what that node needs: checked in a fresh process, as a task is.

Every Airflow task is a new process that pays for its imports before its
executor starts. The resolver and Pusher need TFX's launcher, MLMD and (TFX's
file I/O) TensorFlow; not Beam, TFMA, Transform, TFDV's library, every TFX
component or the pipeline definition. Before node.py deferred them, a launch
of either imported ~9,500 modules (~4,750 now; BENCHMARKS.md, "Fixed cost per task").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# A module that only the heavy library's own import brings in (the package name itself
# may be a deferred stand-in; see node.DEFERRED_PACKAGE_INITS).
HEAVY = {
    "apache_beam": "Apache Beam",
    "tensorflow_transform": "TensorFlow Transform",
    "tensorflow_model_analysis.api.model_eval_lib": "TFMA's library",
    "tensorflow_data_validation.api.stats_api": "TFDV's library",
    "tfx_bsl.public": "tfx_bsl",
    "tfx.components.evaluator.component": "every TFX component (tfx.components' __init__)",
    "pipeline_src.orchestration.pipeline": "the pipeline definition (TFMA, the components)",
    "airflow.providers.google": "the Google provider",
    "docker": "the docker client (container executor operator)",
}

_LAUNCH = r"""
import json, sys
from pipeline_src.config import load_config
from pipeline_src.orchestration.node import launch_node

outcomes = {}
for node_id in sys.argv[1:]:
    try:
        launch_node(load_config(), node_id, run_id="imports.1", night="2026-01-02")
        outcomes[node_id] = "ok"
    except Exception as error:     # Pusher without a model: its executor ran and refused
        outcomes[node_id] = f"{type(error).__name__}: {error}"
print("PROBE" + json.dumps({"outcomes": outcomes, "modules": sorted(sys.modules)}))
"""


def _fresh_process(tmp_path, code: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "EMERALD_"))}
    env.update(EMERALD_HOME=str(tmp_path / "home"), KERAS_HOME=str(tmp_path / "keras"),
               PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads(result.stdout.split("PROBE", 1)[1])


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    return _fresh_process(tmp_path_factory.mktemp("imports"), _LAUNCH,
                          "ServingModelResolver", "Pusher")


def test_the_resolver_and_pusher_launch_for_real(launched):
    assert launched["outcomes"]["ServingModelResolver"] == "ok"
    # Its executor was imported and ran: there is no model in a fresh pipeline root.
    assert launched["outcomes"]["Pusher"] == "RuntimeError: Pusher has no model input."
    assert "tfx.components.pusher.executor" in launched["modules"]


def test_a_non_beam_node_launch_imports_none_of_the_heavy_libraries(launched):
    imported = set(launched["modules"])
    assert {module: what for module, what in HEAVY.items() if module in imported} == {}
    assert len(imported) < 6500, len(imported)        # ~9,500 before the cuts


_TRANSPARENT = r"""
import json, sys, types
from pipeline_src.orchestration import node

for package in node.DEFERRED_PACKAGE_INITS:
    node.defer_package_init(package)
launcher = node.import_launcher()
found = {"deferred_before": [p for p in node.DEFERRED_PACKAGE_INITS
                             if "__getattr__" in sys.modules[p].__dict__]}
from tfx.proto.orchestration import executable_spec_pb2
beam = launcher.DEFAULT_EXECUTOR_OPERATORS[executable_spec_pb2.BeamExecutableSpec]
found["beam_imported_by_launcher"] = "apache_beam" in sys.modules
spec = executable_spec_pb2.BeamExecutableSpec()
spec.python_executor_spec.class_path = "tfx.components.statistics_gen.executor.Executor"
operator = beam(spec)
found["beam_operator"] = type(operator).__module__ + "." + type(operator).__name__
from tfx.orchestration.portable import beam_executor_operator
found["real_module_after"] = not beam_executor_operator.__doc__.startswith("stand-in")
from tfx.components import Pusher, Evaluator       # the real __init__ runs on demand
import tensorflow_data_validation as tfdv
found["names"] = [Pusher.__name__, Evaluator.__name__, tfdv.infer_schema.__name__]
found["deferred_after"] = [p for p in node.DEFERRED_PACKAGE_INITS
                           if "__getattr__" in sys.modules[p].__dict__
                           and p != "tensorflow_model_analysis"]
# A deferred package hands out a submodule for a name its real __init__ binds to the
# same submodule, never to something else.
import importlib, pkgutil
clashes = {}
for name in node.DEFERRED_PACKAGE_INITS:
    package = importlib.import_module(name)
    getattr(package, "__all__", None)          # the real __init__, if it has not run
    for info in pkgutil.iter_modules(package.__path__):
        value = package.__dict__.get(info.name)
        if value is not None and not isinstance(value, types.ModuleType):
            clashes[f"{name}.{info.name}"] = type(value).__name__
found["clashes"] = clashes
print("PROBE" + json.dumps(found))
"""


def test_deferred_imports_are_transparent_to_what_uses_them(tmp_path):
    found = _fresh_process(tmp_path, _TRANSPARENT)
    assert found["deferred_before"] == ["tfx.components", "tensorflow_data_validation",
                                        "tensorflow_model_analysis"]
    assert not found["beam_imported_by_launcher"]
    # A Beam node still gets TFX's Beam operator, imported when it is needed.
    assert found["beam_operator"] == \
        "tfx.orchestration.portable.beam_executor_operator.BeamExecutorOperator"
    assert found["real_module_after"]
    assert found["names"] == ["Pusher", "Evaluator", "infer_schema"]
    assert found["deferred_after"] == []
    assert found["clashes"] == {}
