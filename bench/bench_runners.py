"""Orchestration overhead: one night through four runners, side by side, on the same data.

The same corpus-only night (the same synthetic images, the same compiled
pipeline, the same configuration), each runner in a fresh EMERALD_HOME:

* **LocalDagRunner**: TFX's own runner on the compiled IR (include/compiled/),
  its runtime parameters, Beam arguments and MLMD connection filled in the way
  `emerald node` fills them, in one process; ingestion before it and the gate's
  decision and the report after it (`emerald ingest`'s and the report task's
  code), so they all do the same work;
* **dag.test()**: `emerald run --corpus-only` (every task in one process);
* **the real scheduler with the SequentialExecutor** on SQLite, what `airflow
  standalone` runs: every task its own `airflow tasks run ... --local` process;
* **the real scheduler with the PreloadingLocalExecutor** (emerald_tfx.executor,
  two task slots), Airflow's database and MLMD on a PostgreSQL server started
  here: every task a process forked from a scheduler that imported TensorFlow,
  TFX and the executors once.

Wall time: the first two from process start to exit; a scheduler's from the
DAG run's queued_at to its end_date (the scheduler was started before). Run at
two sizes: the demo's corpus (40 images per label) and a large one (667 per
label: 2,001 images). Writes BENCHMARKS.md's "runners" section.

A night's wall time varies from run to run by more than the orchestration costs (the
Trainer's 30 epochs alone by tens of seconds), so `--repeats N` runs each chosen runner
N times, interleaved (one of each, then again), and compares medians; it writes the
"runners-repeated" section, with every run's wall.

    .venv/bin/python bench/bench_runners.py [--sizes 40,667]
    .venv/bin/python bench/bench_runners.py --sizes 667 --repeats 3 \
        --runners LocalDagRunner,PreloadingLocalExecutor
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
# The checkout before tests/ (as bench_task_overhead.py): tests/pipeline_src must not be found
# in place of the real pipeline_src.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
from bench_parse import write_section  # noqa: E402  (sibling scripts, not a package)
from bench_task_overhead import DAG_ID, NIGHT, scheduled_night, task_timings  # noqa: E402
import emerald_testing as testing  # noqa: E402  (the tests' real scheduler, shared)

REPO = Path(__file__).resolve().parents[1]
LOCAL_DAG_RUNNER, DAG_TEST = "LocalDagRunner", "dag.test()"
SEQUENTIAL = "scheduler, SequentialExecutor"
PRELOADED = "scheduler, PreloadingLocalExecutor"
RUNNERS = (LOCAL_DAG_RUNNER, DAG_TEST, SEQUENTIAL, PRELOADED)
PRELOADING = "emerald_tfx.executor.PreloadingLocalExecutor"
SCHEDULER_RUN_ID = "bench_runners"
LOCAL_RUN_ID = "bench_local_dag_runner.1"
RESULT = "RESULT"


# --------------------------------------------------------------------------- #
# Child processes: one night each, printing RESULT{json}
# --------------------------------------------------------------------------- #
class _Timer(logging.Handler):
    """Per-task seconds from log lines: START(name) ... END(name)."""

    def __init__(self, start: str, end: str):
        super().__init__(level=logging.INFO)
        self.start, self.end = re.compile(start), re.compile(end)
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def emit(self, record):
        message = record.getMessage()
        if match := self.start.search(message):
            self.started[match.group(1)] = record.created
        elif match := self.end.search(message):
            name = next(g for g in match.groups() if g)
            if name in self.started:
                self.seconds[name] = record.created - self.started.pop(name)


def child_local_dag_runner() -> dict:
    """Ingestion, TFX's LocalDagRunner on the compiled IR, then the gate's decision and the
    report: the DAG's work, without Airflow."""
    from pipeline_src.config import load_config
    from pipeline_src.ingest.night import configured_settings, ingest_night
    from pipeline_src.metadata import metadata_connection_config
    from pipeline_src.orchestration import node, tasks

    config = load_config()
    timer = _Timer(r"Component (\S+) is running\.", r"Component (\S+) is finished\.")
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger().addHandler(timer)
    from absl import logging as absl_logging       # TFX's runner logs through absl

    absl_logging.set_verbosity(absl_logging.INFO)
    started = time.perf_counter()
    ingest_night(config.paths.source, dt.date.fromisoformat(NIGHT), config.paths.spans,
                 config.paths.quarantine, include_night=False, require_corpus=True,
                 **configured_settings(config))
    ingested = time.perf_counter()

    from tfx.orchestration.local import local_dag_runner, runner_utils
    from tfx.orchestration.portable import runtime_parameter_utils

    ir = node.load_ir()
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, node.runtime_parameters(config, LOCAL_RUN_ID, NIGHT))
    deployment = runner_utils.extract_local_deployment_config(ir)
    deployment.metadata_connection_config.database_connection_config.CopyFrom(
        metadata_connection_config(config))
    for spec in deployment.executor_specs.values():
        if spec.HasField("beam_executable_spec"):
            node.with_beam_args(spec.beam_executable_spec, config.beam_args)
    ir.deployment_config.Pack(deployment)
    node.skip_tfx_package_for_local_beam(config.beam_args)
    Path(config.paths.pipeline_root).mkdir(parents=True, exist_ok=True)
    local_dag_runner.LocalDagRunner().run_with_ir(ir)
    tfx_done = time.perf_counter()
    summary = tasks.write_night_report(config, LOCAL_RUN_ID, NIGHT)
    finished = time.perf_counter()
    timer.seconds.update({"ingest": ingested - started, "gate + report": finished - tfx_done})
    # LocalDagRunner raises when a node fails: the run succeeded.
    return {"tasks": timer.seconds, "summary": _outcome({**summary, "state": "success"})}


def child_dag_test() -> dict:
    """`emerald run --corpus-only`'s code (dag.test()), with each task timed from the log."""
    from pipeline_src.config import load_config
    from pipeline_src.orchestration.night import prepare_airflow, run_night

    config = load_config()
    prepare_airflow(config)          # Airflow configures logging on import: attach after it
    import airflow.models  # noqa: F401
    timer = _Timer(r"\[DAG TEST\] starting task_id=(\S+)",
                   r"\[DAG TEST\] end task task_id=(\S+)|"
                   r"Task failed; ti=<TaskInstance: [^.\s]+\.(\S+) ")
    logging.getLogger().addHandler(timer)
    summary = run_night(config, dt.date.fromisoformat(NIGHT), corpus_only=True)
    return {"tasks": timer.seconds, "summary": _outcome(summary)}


def _outcome(summary: dict) -> dict:
    return {"state": summary.get("state"), "pushed": summary.get("pushed"),
            "blessed": summary.get("blessed"),
            "accuracy": (summary.get("accuracy") or {}).get("overall")}


# --------------------------------------------------------------------------- #
# The parent: data, environments, the runs
# --------------------------------------------------------------------------- #
def environment(root: Path, source: Path, config_sections: Optional[dict] = None,
                **settings: str) -> dict:
    """A fresh EMERALD_HOME under `root` reading the images at `source`: the environment of
    every process of one run (the scheduler's too); `config_sections` over the default
    configuration, `settings` (EMERALD_* / AIRFLOW_*) over the environment."""
    home = root / "home"
    root.mkdir(parents=True)
    config_file = testing.quick_retry_config(root, **(config_sections or {}))
    env, _ = testing.scheduler_environment(home, config_file, EMERALD_SOURCE=str(source),
                                           **settings)
    return {**env, "PYTHONPATH": str(REPO)}


def run_child(mode: str, env: dict, log: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    with open(log, "w") as stderr:
        proc = subprocess.run([sys.executable, __file__, "--child", mode], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=4 * 3600)
    wall = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT)]
    if proc.returncode or not lines:
        raise RuntimeError(f"{mode} exited {proc.returncode}; see {log}")
    return wall, json.loads(lines[-1][len(RESULT):])


def _seconds(value) -> float:
    """A dag_run timestamp as seconds: SQLite gives text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.timestamp()


def run_scheduler(env: dict, logs: Path) -> tuple[float, dict]:
    logs.mkdir(parents=True, exist_ok=True)
    scheduled_night(env, logs, SCHEDULER_RUN_ID, hours=4)
    state, queued, ended = testing.airflow_rows(
        testing.airflow_db(env), "SELECT state, queued_at, end_date FROM dag_run "
                         "WHERE dag_id=? AND run_id=?", DAG_ID, SCHEDULER_RUN_ID)[0]
    rows = task_timings(env, logs, run_id=SCHEDULER_RUN_ID)
    per_task = {task: marks["end"] - marks["process"] for task, marks in rows.items()
                if "process" in marks and marks.get("end")}
    return _seconds(ended) - _seconds(queued), {"tasks": per_task, "summary": {"state": state}}


def run_preloaded_scheduler(root: Path, source: Path) -> tuple[float, dict]:
    """The scheduler with the PreloadingLocalExecutor (two task slots), Airflow's database
    and MLMD on a PostgreSQL server started here (tests/test_preloading_executor.py)."""
    with testing.postgres_server() as server:
        testing.create_database(server, "airflow")
        env = environment(
            root, source,
            {"metadata": {"backend": "postgresql", "postgresql": {
                "host": server["host"], "port": server["port"], "dbname": "mlmd",
                "user": server["user"], "password_env": "EMERALD_MLMD_PASSWORD"}}},
            EMERALD_MLMD_PASSWORD=server["password"], AIRFLOW__CORE__EXECUTOR=PRELOADING,
            AIRFLOW__CORE__PARALLELISM="2",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=testing.database_url(server, "airflow"))
        return run_scheduler(env, root / "logs")


def run_once(runner: str, root: Path, source: Path) -> tuple[float, dict]:
    """One night of `runner` in a fresh EMERALD_HOME under `root`: (wall seconds, details)."""
    if runner == LOCAL_DAG_RUNNER:
        return run_child("local", environment(root, source), root / "local.log")
    if runner == DAG_TEST:
        return run_child("dag-test", environment(root, source), root / "dag-test.log")
    if runner == SEQUENTIAL:
        return run_scheduler(environment(root, source), root / "logs")
    return run_preloaded_scheduler(root, source)


def _runner(name: str) -> str:
    """A runner by its name in the tables, or by a unique part of it (PreloadingLocalExecutor)."""
    matches = [r for r in RUNNERS if name == r] or [r for r in RUNNERS if name in r]
    if len(matches) != 1:
        raise SystemExit(f"--runners: {name!r} is none or several of {', '.join(RUNNERS)}")
    return matches[0]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=("local", "dag-test"))
    parser.add_argument("--sizes", default="40,667",
                        help="corpus images per label, one night per runner per size")
    parser.add_argument("--repeats", type=int, default=1,
                        help="nights per runner per size, interleaved; above 1, medians "
                             "are compared (the runners-repeated section)")
    parser.add_argument("--runners", default=",".join(RUNNERS),
                        help="which runners, comma-separated (LocalDagRunner is the baseline "
                             "and always runs)")
    args = parser.parse_args()
    if args.child:
        result = child_local_dag_runner() if args.child == "local" else child_dag_test()
        print(RESULT + json.dumps(result), flush=True)
        return 0

    from pipeline_src.tools import synth

    chosen = {_runner(n.strip()) for n in args.runners.split(",") if n.strip()}
    runners = [r for r in RUNNERS if r in chosen | {LOCAL_DAG_RUNNER}]
    load = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="emerald-bench-runners-"))
    results: dict[int, dict[str, list[tuple[float, dict]]]] = {}
    for per_label in (int(s) for s in args.sizes.split(",")):
        source = base / f"source-{per_label}"
        synth.synthesize(source, nights=0, seed=0, corpus_per_label=per_label)
        results[per_label] = {runner: [] for runner in runners}
        for repeat in range(args.repeats):
            for runner in runners:
                root = base / f"{per_label}-{RUNNERS.index(runner)}-{repeat}"
                outcome = run_once(runner, root, source)
                results[per_label][runner].append(outcome)
                print(f"{per_label * 3} images, {runner}, run {repeat + 1}: {outcome[0]:.1f} s "
                      f"({outcome[1]['summary']})", flush=True)
    repeated = args.repeats > 1 or len(runners) < len(RUNNERS)   # the four-runner table needs all
    command = " ".join(["bench/bench_runners.py", f"--sizes {args.sizes}"] + (
        [f"--repeats {args.repeats}", f"--runners {args.runners}"] if repeated else []))
    if repeated:
        write_section("BENCHMARKS.md", "runners-repeated",
                      render_repeated(results, runners, load, command))
    else:
        write_section("BENCHMARKS.md", "runners",
                      render({k: {r: v[0] for r, v in by.items()} for k, by in results.items()},
                             load, args.sizes))
    return 0


def _goal(per_label: int) -> float:
    return 1.5 if per_label * 3 < 2000 else 1.15


def task_table(seconds: dict[str, dict[str, float]], tasks: list[str]) -> list[str]:
    """A markdown table of each task's seconds (rows) under each runner (columns)."""
    lines = ["| task | " + " | ".join(seconds) + " |", "|---|" + "---:|" * len(seconds)]
    for task in tasks:
        cells = [by_task.get(task) for by_task in seconds.values()]
        lines.append(f"| {task} | " + " | ".join(
            f"{c:.1f}" if c is not None else "" for c in cells) + " |")
    return lines


def _median_run(outcomes: list[tuple[float, dict]]) -> tuple[float, dict]:
    """The run whose wall is the median (the lower middle one of an even count)."""
    ordered = sorted(outcomes, key=lambda o: o[0])
    return ordered[(len(ordered) - 1) // 2]


def render_repeated(results: dict, runners: list[str], load: tuple, command: str) -> str:
    """Medians of every runner's walls, each run's walls, and the median run's tasks."""
    lines = [
        "## Orchestration overhead, repeated: medians of interleaved runs",
        "",
        f"Command: `.venv/bin/python {command}` (2 cores, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start). The runners, data and "
        "walls of the section above; each runner's night run several times, interleaved "
        "(one night of each runner in turn, then again), each in a fresh EMERALD_HOME, so a "
        "slow spell of the machine falls on every runner alike. Ratios are of medians; "
        "the goals are issue 11's (1.5x at the demo's size, 1.15x at 2,000 images or more).",
        "",
        "| images | runner | walls, in run order | median | median / LocalDagRunner's "
        "| goal |",
        "|---:|---|---|---:|---:|---|",
    ]
    for per_label, by_runner in results.items():
        baseline = statistics.median(o[0] for o in by_runner[LOCAL_DAG_RUNNER])
        for runner in runners:
            walls = [o[0] for o in by_runner[runner]]
            median = statistics.median(walls)
            ratio = median / baseline
            goal = ""
            if runner == PRELOADED:
                verdict = "met" if ratio <= _goal(per_label) else "**not met**"
                goal = f"<= {_goal(per_label)}x: {verdict}"
            lines.append(f"| {per_label * 3} | {runner} | "
                         + ", ".join(f"{w:.0f} s" for w in walls)
                         + f" | {median:.0f} s | {ratio:.2f}x | {goal} |")
    largest = max(results)
    median_runs = {r: _median_run(results[largest][r]) for r in runners}
    tasks = list(dict.fromkeys(t for r in runners for t in median_runs[r][1]["tasks"]))
    lines += ["", f"Per task at {largest * 3} images in each runner's median run (seconds, "
              "measured as in the section above):", ""]
    lines += task_table({r: median_runs[r][1]["tasks"] for r in runners}, tasks)
    trainer = {r: [o[1]["tasks"].get("Trainer") for o in results[largest][r]] for r in runners}
    lines += ["", f"The Trainer's seconds in every run at {largest * 3} images: " + "; ".join(
        f"{r}: " + ", ".join(f"{t:.0f}" for t in ts if t is not None)
        for r, ts in trainer.items()) + "."]
    outcomes = "; ".join(f"{r}: " + ", ".join(str(o[1]["summary"]) for o in results[largest][r])
                         for r in runners)
    lines += ["", f"Outcomes at {largest * 3} images: {outcomes}."]
    return "\n".join(lines)


def render(results: dict, load: tuple, sizes: str) -> str:
    lines = [
        "## Orchestration overhead: the same night through four runners",
        "",
        f"Command: `.venv/bin/python bench/bench_runners.py --sizes {sizes}` (2 cores, load "
        f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start). One corpus-only "
        "night of synthetic images (the demo's generator; the same images for every runner "
        "of a size), a fresh EMERALD_HOME per run, the default configuration (30 epochs). "
        "LocalDagRunner runs the compiled IR in one process, with ingestion before it and "
        "the gate's decision and the report after it; dag.test() is `emerald run "
        "--corpus-only`; the SequentialExecutor is what `airflow standalone` runs (SQLite), "
        "each task a new `airflow tasks run --local` process; the PreloadingLocalExecutor "
        "(`emerald_tfx.executor`) is the LocalExecutor with two task slots, its task "
        "processes forked from a scheduler that imported TensorFlow, TFX and every node's "
        "executor once, with Airflow's database and MLMD on PostgreSQL. Walls: process "
        "start to exit for the first two; the DAG run's queued_at to end_date for the "
        "schedulers (started before the run). The goals are issue 11's, for the real "
        "scheduler against LocalDagRunner: 1.5x at the demo's size, 1.15x at 2,000 images "
        "or more.",
        "",
        "| images | " + " | ".join(RUNNERS) + " | SequentialExecutor / LocalDagRunner "
        "| PreloadingLocalExecutor / LocalDagRunner | goal |",
        "|---:|" + "---:|" * (len(RUNNERS) + 2) + "---|",
    ]
    for per_label, by_runner in results.items():
        walls = {r: by_runner[r][0] for r in RUNNERS}
        sequential = walls[SEQUENTIAL] / walls[LOCAL_DAG_RUNNER]
        preloaded = walls[PRELOADED] / walls[LOCAL_DAG_RUNNER]
        goal = _goal(per_label)
        verdict = "met" if preloaded <= goal else "**not met**"
        lines.append(f"| {per_label * 3} | " + " | ".join(f"{walls[r]:.0f} s" for r in RUNNERS)
                     + f" | {sequential:.2f}x | {preloaded:.2f}x | <= {goal}x with the "
                       f"PreloadingLocalExecutor: {verdict} |")
    largest = max(results)
    by_runner = results[largest]
    tasks = list(dict.fromkeys(t for r in RUNNERS for t in by_runner[r][1]["tasks"]))
    lines += ["", f"Per task at {largest * 3} images (seconds; a scheduler's cell is the "
              "task's whole process, from the executor's `Executing command` line to the "
              "task log's last line, and with two slots tasks overlap; LocalDagRunner's "
              "ingest and gate + report are its in-process calls):", ""]
    lines += task_table({r: by_runner[r][1]["tasks"] for r in RUNNERS}, tasks)
    outcomes = "; ".join(f"{r}: {by_runner[r][1]['summary']}" for r in RUNNERS)
    lines += ["", f"Outcome at {largest * 3} images: {outcomes}."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
