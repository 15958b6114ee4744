"""Wall time of demo nights on this machine, per task (= per TFX component).

Runs the demo's first two nights (corpus only, then Toto's first night) in a
fresh EMERALD_HOME through Airflow (`dag.test()`), then reads each task's
duration from Airflow's metadata DB. Writes the table into BENCHMARKS.md.

    .venv/bin/python bench/bench_night.py
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parse import write_section  # noqa: E402  (a sibling script, not a package)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="emerald-bench-night-"))
    os.environ["EMERALD_HOME"] = str(home)
    for key in [k for k in os.environ if k.startswith("AIRFLOW")]:
        del os.environ[key]
    from pipeline_src import demo, synth
    from pipeline_src.config import load_config
    from pipeline_src.night import run_night

    config = load_config()
    synth.synthesize(config.paths.source, nights=1, seed=0,
                     start_date=demo.FIRST_NIGHT + dt.timedelta(days=1))
    walls, runs = {}, {}
    for offset, label in ((0, "night 1 (corpus only)"), (1, "night 2 (Toto)")):
        night = demo.FIRST_NIGHT + dt.timedelta(days=offset)
        started = time.perf_counter()
        summary = run_night(config, night, corpus_only=offset == 0)
        walls[label] = time.perf_counter() - started
        runs[label] = summary
        print(f"{label}: {walls[label]:.1f} s, state {summary['state']}", flush=True)

    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    rows = {}
    with create_session() as session:
        for label, summary in runs.items():
            run_id = summary["tfx_run_id"].rsplit(".", 1)[0]
            for ti in session.query(TaskInstance).filter(TaskInstance.run_id == run_id):
                rows.setdefault(ti.task_id, {})[label] = ti.duration or 0.0
    order = sorted(rows, key=lambda t: min(
        (ti for ti in rows[t].values()), default=0), reverse=True)
    labels = list(runs)
    lines = ["## One demo night, per component",
             "",
             "Command: `.venv/bin/python bench/bench_night.py` (2 cores, demo data: 120 corpus "
             "images, 36 per Toto night; each task's duration from Airflow's DB after "
             "`dag.test()`, which runs every task in one process, so TensorFlow/TFX are "
             "imported once, in the first task that needs them).",
             "",
             "| task | " + " | ".join(labels) + " |",
             "|---|" + "---|" * len(labels)]
    for task in order:
        lines.append(f"| {task} | " + " | ".join(f"{rows[task].get(l, 0):.1f} s"
                                                 for l in labels) + " |")
    lines.append("| **whole night (wall)** | " + " | ".join(f"**{walls[l]:.0f} s**"
                                                          for l in labels) + " |")
    accuracy = {l: runs[l]["accuracy"]["overall"] for l in labels}
    lines += ["", "Outcome: " + "; ".join(
        f"{l}: accuracy {accuracy[l]:.2f}, blessed {runs[l]['blessed']}, "
        f"pushed {runs[l]['pushed']}" for l in labels) + "."]
    write_section("BENCHMARKS.md", "night", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
