"""PreloadingLocalExecutor preloads only what its task processes can inherit.

The night it makes faster runs in tests/test_preloading_executor.py (slow: a real
scheduler on PostgreSQL). Here, quickly: with `dag.node_runner` other than
in_process the nodes run in another interpreter, so the executor imports no TFX
(which that interpreter's virtualenv may be the only one to have) and starts as
the LocalExecutor does.
"""
from __future__ import annotations

import os
import subprocess
import sys

START_AND_STOP = """
import sys
import airflow  # noqa: F401 - puts plugins/ on sys.path
from emerald_tfx.executor import PreloadingLocalExecutor
executor = PreloadingLocalExecutor(parallelism=1)
executor.start()
try:
    print("RESULT workers", len(executor.workers), "tensorflow", "tensorflow" in sys.modules)
finally:
    executor.end()
"""


def test_another_node_runner_preloads_nothing(tmp_path):
    env = {**os.environ, "EMERALD_NODE_RUNNER": "external_python"}
    proc = subprocess.run([sys.executable, "-c", START_AND_STOP], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr                  # Airflow logs to stdout
    result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert result == ["RESULT workers 1 tensorflow False"], output
    assert "node_runner is external_python, not in_process: nothing to preload" in output
