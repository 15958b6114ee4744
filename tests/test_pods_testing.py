"""The sandbox the pods' end-to-end test runs each process in (tests/pods_testing.py), quick.

It must catch what a process writes outside its scratch folder, without letting it reach
this machine's disk, and let through what it writes in its working directory, HOME,
TMPDIR and a pod's volume; its exit code and output are the process's.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pods_testing import Sandbox, require_sandbox


@pytest.fixture(autouse=True)
def _sandbox_here():
    require_sandbox()

WRITER = r"""
import os, pathlib, sys, tempfile
pathlib.Path("in-work.txt").write_text("w")
pathlib.Path(os.environ["HOME"], ".cache").mkdir()
pathlib.Path(os.environ["HOME"], ".cache", "x").write_text("h")
tempfile.NamedTemporaryFile(delete=False).write(b"t")
pathlib.Path("/airflow/xcom/return.json").write_text('{"ok": 1}')
outside = pathlib.Path(sys.argv[1])
(outside / "new-dir").mkdir()
(outside / "new-dir" / "f.txt").write_text("leak")
(outside / "kept.txt").unlink()
print("done")
sys.exit(7)
"""


def test_writes_outside_the_scratch_folder_are_caught_and_never_reach_the_disk(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "kept.txt").write_text("still here")
    sandbox = Sandbox(tmp_path / "box")
    run = sandbox.run("writer", [sys.executable, "-c", WRITER, str(outside)],
                      {"PATH": "/usr/bin:/bin"}, volumes=("/airflow/xcom",), timeout=60)
    assert run.returncode == 7 and run.stdout.strip() == "done", run.tail()
    assert sorted(run.outside_writes) == [f"c {outside / 'kept.txt'}",
                                          f"d {outside / 'new-dir'}",
                                          f"f {outside / 'new-dir' / 'f.txt'}"]
    assert (outside / "kept.txt").read_text() == "still here"      # the disk: untouched
    assert not (outside / "new-dir").exists()
    scratch = run.log.parent / "scratch"
    assert (scratch / "work" / "in-work.txt").read_text() == "w"
    assert (scratch / "home" / ".cache" / "x").read_text() == "h"
    assert len(list((scratch / "tmp").iterdir())) == 1             # TMPDIR is the scratch's
    assert (Sandbox.volume(run, "/airflow/xcom") / "return.json").read_text() == '{"ok": 1}'
    assert not Path("/airflow").exists()


def test_a_process_that_writes_only_in_its_scratch_folder_is_clean(tmp_path):
    run = Sandbox(tmp_path / "box").run(
        "clean", [sys.executable, "-c", "open('a', 'w').write('x')"], {"PATH": "/usr/bin:/bin"},
        timeout=60)
    assert run.returncode == 0, run.tail()
    assert run.outside_writes == []
