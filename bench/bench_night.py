"""Wall time of demo nights on this machine, per task (= per TFX component).

Runs the demo's first two nights (corpus only, then Toto's first night) in a
fresh EMERALD_HOME through Airflow (`dag.test()`), then reads each task's
duration from Airflow's metadata DB. Writes the table into BENCHMARKS.md.

    .venv/bin/python bench/bench_night.py
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parse import write_section  # noqa: E402  (a sibling script, not a package)


class TaskTimer(logging.Handler):
    """Task durations from dag.test()'s own log lines (it records no start/end dates)."""

    START = re.compile(r"\[DAG TEST\] starting task_id=(\S+)")
    END = re.compile(r"\[DAG TEST\] end task task_id=(\S+)|Task failed; ti=<TaskInstance: [^.\s]+\.(\S+) ")

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.started, self.seconds = {}, {}

    def emit(self, record):
        message = record.getMessage()
        if match := self.START.search(message):
            self.started[match.group(1)] = record.created
        elif match := self.END.search(message):
            task = match.group(1) or match.group(2)
            if task in self.started:
                self.seconds[task] = record.created - self.started.pop(task)


def fresh_home(prefix: str):
    """A fresh EMERALD_HOME (no AIRFLOW_* from the caller) with Airflow prepared for
    `dag.test()`; returns (home, config)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["EMERALD_HOME"] = str(home)
    for key in [k for k in os.environ if k.startswith("AIRFLOW")]:
        del os.environ[key]
    from pipeline_src.config import load_config
    from pipeline_src.orchestration.night import prepare_airflow

    config = load_config()
    prepare_airflow(config)   # Airflow configures logging on import: attach timers after it
    import airflow.models  # noqa: F401
    return home, config


def timed_night(config, night: dt.date, corpus_only: bool) -> tuple[dict, float, dict]:
    """One night through `dag.test()`: (its summary, wall seconds, seconds per task)."""
    from pipeline_src.orchestration.night import run_night

    timer = TaskTimer()
    logging.getLogger().addHandler(timer)
    started = time.perf_counter()
    try:
        summary = run_night(config, night, corpus_only=corpus_only)
    finally:
        logging.getLogger().removeHandler(timer)
    return summary, time.perf_counter() - started, timer.seconds


def main() -> int:
    from pipeline_src.tools import demo
    from pipeline_src.tools import synth

    _, config = fresh_home("emerald-bench-night-")
    synth.synthesize(config.paths.source, nights=1, seed=0,
                     start_date=demo.FIRST_NIGHT + dt.timedelta(days=1))
    walls, runs, rows = {}, {}, {}
    for offset, label in ((0, "night 1 (corpus only)"), (1, "night 2 (Toto)")):
        night = demo.FIRST_NIGHT + dt.timedelta(days=offset)
        summary, walls[label], per_task = timed_night(config, night, corpus_only=offset == 0)
        runs[label] = summary
        for task, seconds in per_task.items():
            rows.setdefault(task, {})[label] = seconds
        print(f"{label}: {walls[label]:.1f} s, state {summary['state']}", flush=True)
    order = list(rows)
    labels = list(runs)
    lines = ["## One demo night, per component",
             "",
             "Command: `.venv/bin/python bench/bench_night.py` (2 cores, demo data: 120 corpus "
             "images, 36 per Toto night; each task timed between dag.test()'s start and end "
             "log lines. `dag.test()` runs every task in one process, so TensorFlow/TFX are "
             "imported once, by the first TFX task to run (about 12 s of the first row on a fresh process: the resolver on night 1).",
             "",
             "| task | " + " | ".join(labels) + " |",
             "|---|" + "---|" * len(labels)]
    for task in order:
        lines.append(f"| {task} | " + " | ".join(
            f"{rows[task][l]:.1f} s" if l in rows[task] else "not run" for l in labels) + " |")
    lines.append("| **whole night (wall)** | " + " | ".join(f"**{walls[l]:.0f} s**"
                                                          for l in labels) + " |")
    accuracy = {l: runs[l]["accuracy"]["overall"] for l in labels}
    lines += ["", "Outcome: " + "; ".join(
        f"{l}: accuracy {accuracy[l]:.2f}, blessed {runs[l]['blessed']}, "
        f"pushed {runs[l]['pushed']}, push blocked by the data gate {runs[l]['push_blocked']}"
        for l in labels) + "."]
    write_section("BENCHMARKS.md", "night", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
