"""Fixed cost per task under the real scheduler: from process start to the executor's start.

Runs one corpus-only night (a small corpus: 20 images per label) through a real
`airflow scheduler` + `airflow triggerer` with the SequentialExecutor, as
tests/test_scheduler_faults.py does: every task is its own `airflow tasks run
DAG TASK RUN_ID --local` process (the LocalTaskJob and its raw task), as on a
worker. Per task, from the logs:

* process start: the SequentialExecutor's "Executing command: [... 'tasks', 'run', ...]"
  (scheduler log), logged just before it starts the task's process;
* execute: Airflow's "Exporting env vars" line (task log), just before the operator's
  execute(): Airflow's start-up, plugins and the DAG file's parse are before it;
* executor start: TFX's launcher's "Going to run a new execution:" line, the last one
  before the executor operator imports the executor's class and calls its Do;
* executor end: "Execution N succeeded."; task end: the task log's last line.

Then, in fresh processes, what a launch imports, before and after node.py's
deferred imports (the pipeline definition, tfx.components' __init__, TFDV's and
TFMA's __init__, Beam's executor operator). Writes BENCHMARKS.md's
"task-overhead" section.

    .venv/bin/python bench/bench_task_overhead.py
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The checkout before tests/ (as bench_ingest.py): tests/pipeline_src, a namespace package
# of the tests, must not be found in place of the real pipeline_src.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from bench_parse import write_section  # noqa: E402  (a sibling script, not a package)
import emerald_testing as testing  # noqa: E402  (the tests' real scheduler, shared)

REPO = Path(__file__).resolve().parents[1]
DAG_ID = testing.DAG_ID
NIGHT = "2026-01-01"
RUN_ID = "bench_overhead"
TIMESTAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d)[T ,]+(\d\d:\d\d:\d\d)[.,](\d+)([+-]\d{4}| UTC)?\]")
COMMAND = re.compile(r"(?:Executing command:|LocalWorker running) \[(.*)\]")   # Sequential | Local


def stamp(line: str):
    match = TIMESTAMP.match(line)
    if not match:
        return None
    day, clock, fraction, zone = match.groups()
    zone = "+0000" if zone in (None, " UTC") else zone
    return dt.datetime.strptime(f"{day} {clock}.{fraction[:6]:0<6}{zone}",
                                "%Y-%m-%d %H:%M:%S.%f%z").timestamp()


def run_night(env: dict, config, logs: Path) -> None:
    from pipeline_src.tools import synth

    synth.synthesize(Path(config.paths.source), nights=0, seed=0,
                     start_date=dt.date.fromisoformat(NIGHT), corpus_per_label=20)
    print(f"night: {scheduled_night(env, logs, RUN_ID)}", flush=True)


def scheduled_night(env: dict, logs: Path, run_id: str, hours: float = 1) -> str:
    """The corpus-only NIGHT as the DAG run `run_id` under a real scheduler and triggerer
    (started here, stopped after); returns the run's final state."""
    with testing.LocalScheduler(env, logs) as scheduler:
        scheduler.trigger(run_id, NIGHT, corpus_only=True)
        return scheduler.wait_for_run(run_id, hours * 3600)


def task_timings(env: dict, logs: Path, run_id: str = RUN_ID) -> dict[str, dict]:
    """Per task (its last attempt) of the run `run_id`: the marks above, in seconds since
    the epoch."""
    started: dict[str, float] = {}
    for line in (logs / "scheduler.0.log").read_text(errors="replace").splitlines():
        match = COMMAND.search(line)
        when = stamp(line)
        if match and when is not None:
            argv = [a.strip(" '\"") for a in match.group(1).split(",")]
            if "run" in argv and run_id in argv:
                started[argv[argv.index("run") + 2]] = when    # DAG, TASK, RUN_ID
    rows = {}
    task_logs = Path(env["AIRFLOW_HOME"]) / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    for folder in sorted(task_logs.glob("task_id=*")):
        task = folder.name.removeprefix("task_id=")
        attempts = sorted(folder.glob("attempt=*.log"),
                          key=lambda p: int(p.stem.removeprefix("attempt=")))
        marks: dict[str, float] = {}
        last = None
        for line in attempts[-1].read_text(errors="replace").splitlines():
            when = stamp(line)
            if when is None:
                continue
            last = when
            if "Exporting env vars" in line:
                marks.setdefault("execute", when)
            elif "Going to run a new execution:" in line:
                marks["executor_start"] = when
            elif re.search(r"Execution \d+ succeeded", line):
                marks["executor_end"] = when
        marks["end"] = last
        if task in started:
            marks["process"] = started[task]
        rows[task] = marks
    return rows


PROBE = r"""
import json, sys, time
mode, executor = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if mode == "before":          # what launch_node imported before the deferred imports
    import pipeline_src.orchestration.pipeline
    from tfx.orchestration.portable import launcher
    from tfx.dsl.components.base import base_beam_executor
else:
    from pipeline_src.orchestration import node
    for package in node.DEFERRED_PACKAGE_INITS:
        node.defer_package_init(package)
    node.import_launcher()
from pipeline_src import metadata
from pipeline_src.orchestration import recovery
if executor:
    from tfx.utils import import_utils
    import_utils.import_class_by_path(executor)
print("PROBE" + json.dumps({"seconds": time.perf_counter() - started,
                            "modules": len(sys.modules)}))
"""

EXECUTORS = {
    "ServingModelResolver": "",
    "ImportSchemaGen": "tfx.components.schema_gen.import_schema_gen.executor.Executor",
    "Pusher": "tfx.components.pusher.executor.Executor",
}


def import_costs(env: dict, rounds: int = 1) -> dict:
    """(node, before|after) -> median seconds and module count of a fresh process's imports."""
    results = {}
    for node_id, executor in EXECUTORS.items():
        for mode in ("before", "after"):
            samples = []
            for _ in range(rounds):
                out = subprocess.run([sys.executable, "-c", PROBE, mode, executor], cwd=REPO,
                                     env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                                     text=True, timeout=900, check=True).stdout
                samples.append(json.loads(out.split("PROBE", 1)[1]))
            results[node_id, mode] = {
                "seconds": statistics.median(s["seconds"] for s in samples),
                "modules": samples[-1]["modules"]}
            print(node_id, mode, results[node_id, mode], flush=True)
    return results


def seconds(marks: dict, start: str, end: str) -> str:
    return f"{marks[end] - marks[start]:.1f} s" if start in marks and end in marks else ""


def bold(cell: str) -> str:
    return f"**{cell}**" if cell else ""


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="emerald-bench-overhead-"))
    home, logs = root / "home", root / "logs"
    logs.mkdir(parents=True)
    env, config = testing.scheduler_environment(home, testing.quick_retry_config(root))
    load = os.getloadavg()
    costs = import_costs(env)
    run_night(env, config, logs)
    rows = task_timings(env, logs)
    order = sorted(rows, key=lambda t: rows[t].get("process", rows[t].get("execute", 0)))
    lines = [
        "## Fixed cost per task",
        "",
        "Command: `.venv/bin/python bench/bench_task_overhead.py` (2 cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start; a "
        "corpus-only night of 60 corpus images under a real `airflow scheduler` with the "
        "SequentialExecutor: each task is its own `airflow tasks run DAG TASK RUN_ID --local` "
        "process, as on a worker).",
        "",
        "Marks per task: *process start* is the executor's `Executing command` log line, "
        "*execute* Airflow's `Exporting env vars` line just before the operator's "
        "`execute()`, *executor start* TFX's `Going to run a new execution:` line (the "
        "executor's class is imported and its Do called right after it), *executor end* "
        "`Execution N succeeded`, *end* the task log's last line. Tasks without a TFX "
        "executor (the sensor, ingestion, the resolver, the gate, the report) have no "
        "executor columns: their work is execute -> end; a blank executor cell is a node "
        "whose task log lacks TFX's `Execution N succeeded` line (Transform and Trainer "
        "here): its execute -> end column bounds the executor's time.",
        "",
        "| task | process start -> execute (Airflow) | execute -> executor start (launch) "
        "| **process start -> executor start** | executor | execute -> end | process start -> end |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for task in order:
        m = rows[task]
        lines.append(f"| {task} | {seconds(m, 'process', 'execute')} | "
                     f"{seconds(m, 'execute', 'executor_start')} | "
                     f"{bold(seconds(m, 'process', 'executor_start'))} | "
                     f"{seconds(m, 'executor_start', 'executor_end')} | "
                     f"{seconds(m, 'execute', 'end')} | {seconds(m, 'process', 'end')} |")
    lines += [
        "",
        "What a launch imports in a fresh process (TFX's launcher, MLMD, the recovery step and "
        "the node's executor class; one process each), before and after node.py's deferred imports "
        "(no pipeline definition, `tfx.components`' and TFDV's and TFMA's package __init__ "
        "run only when something asks for them, Beam's and docker's executor operators "
        "imported when a Beam or container node launches):",
        "",
        "| node | before: seconds | before: modules | after: seconds | after: modules |",
        "|---|---:|---:|---:|---:|",
    ]
    for node_id in EXECUTORS:
        before, after = costs[node_id, "before"], costs[node_id, "after"]
        lines.append(f"| {node_id} | {before['seconds']:.1f} | {before['modules']} | "
                     f"{after['seconds']:.1f} | {after['modules']} |")
    lines += [
        "",
        "What remains is TFX's own: its file I/O (`tfx.dsl.io.fileio`) imports TensorFlow, "
        "and TensorFlow 2.16's `__init__` imports Keras 3 (about half of TensorFlow's import); "
        "ImportSchemaGen's executor imports SchemaGen's, whose statistics helper "
        "(`stats_artifact_utils`) needs TFDV's library at import; Pusher's imports TFX's "
        "component specs (TFDV's and TFMA's protos only, now). The machine's load varies "
        "between rows (2 shared cores): compare columns within a row.",
    ]
    write_section("BENCHMARKS.md", "task-overhead", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
