"""Cost growth: does a night cost what arrived that night, or everything that ever arrived?

Issue 11's benchmark. A corpus of 2,001 photos at 640x480 and ten of Toto's
nights of 300, the "landscape" style (no skew: every night passes the gate, so
every task runs and the model is pushed, night after night). In one fresh
EMERALD_HOME, through Airflow's `dag.test()`: the bootstrap night (the corpus
alone), then Toto's nights 1 to N in order, as the nightly schedule would run
them. Every task is timed between dag.test()'s start and end lines
(bench_night.TaskTimer). The table sets night 2 beside night N with the ratio;
issue 11's goals: the data tasks (ingestion, ExampleGen, StatisticsGen, the
validators) at most 1.2x, the whole night at most 1.3x. Beside that ratio, the
median of the last three nights over that of nights 2 to 4, and every night's
time per data task: one night's time of a short task varies by up to 2x on these
machines. Writes BENCHMARKS.md's "cost growth" section.

    .venv/bin/python bench/bench_cost_growth.py [--corpus-per-label 667] [--nights 10]
        [--toto-per-label 100] [--scale 1.6]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_night import fresh_home, timed_night  # noqa: E402  (sibling scripts, not a package)
from bench_parse import write_section  # noqa: E402

from pipeline_src import names  # noqa: E402

DATA_TASKS = (names.INGEST_NIGHT, names.EXAMPLE_GEN, names.STATISTICS_GEN, *names.VALIDATORS)
DATA_GOAL, NIGHT_GOAL = 1.2, 1.3            # issue 11: night N over night 2
WHOLE_NIGHT = "whole night (wall)"
BLOCKED_PUSH = {names.DATA_GATE, names.PUSHER}   # what fails, by design, when a push is blocked


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus-per-label", type=int, default=667)
    parser.add_argument("--nights", type=int, default=10, help="Toto's nights after the corpus")
    parser.add_argument("--toto-per-label", type=int, default=100)
    parser.add_argument("--scale", type=float, default=1.6, help="1.6: a 640x480 corpus")
    args = parser.parse_args()
    if args.nights < 2:
        parser.error("--nights must be at least 2 (night 2 is the table's first column)")
    load = os.getloadavg()
    home, config = fresh_home("emerald-bench-growth-")
    from pipeline_src.tools import demo, synth

    synth.synthesize(config.paths.source, nights=args.nights, seed=0,
                     start_date=demo.FIRST_NIGHT + dt.timedelta(days=1),
                     corpus_per_label=args.corpus_per_label,
                     toto_per_label=args.toto_per_label, toto_style="landscape",
                     scale=args.scale)
    seconds: dict[int, dict[str, float]] = {}     # night number (0: the corpus) -> task -> s
    outcomes: dict[int, dict] = {}
    for number in range(args.nights + 1):
        night = demo.FIRST_NIGHT + dt.timedelta(days=number)
        summary, wall, per_task = timed_night(config, night, corpus_only=number == 0)
        if not set(summary["failed_tasks"]) <= BLOCKED_PUSH:    # a blocked push is by design
            raise RuntimeError(f"night {number} ({night}): state {summary['state']}, failed "
                               f"{summary['failed_tasks']}; logs under {home}")
        seconds[number] = {**per_task, WHOLE_NIGHT: wall}
        outcomes[number] = summary
        print(f"night {number} ({night}): {wall:.1f} s", flush=True)
        if number >= 2:      # after every night: a run stopped early still leaves its table
            write_section("BENCHMARKS.md", "cost growth", render(args, load, seconds, outcomes))
    return 0


def render(args, load: tuple, seconds: dict[int, dict[str, float]],
           outcomes: dict[int, dict]) -> str:
    last = max(seconds)
    corpus = 3 * args.corpus_per_label
    per_night = 3 * args.toto_per_label
    width, height = round(400 * args.scale), round(300 * args.scale)
    command = ("`.venv/bin/python bench/bench_cost_growth.py --corpus-per-label "
               f"{args.corpus_per_label} --nights {args.nights} --toto-per-label "
               f"{args.toto_per_label} --scale {args.scale}`")
    lines = [
        "## Cost growth, night 2 against night " + str(last),
        "",
        f"Command: {command} (2 cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} at the start). A corpus of {corpus:,} synthetic photos at "
        f"{width}x{height}, then {args.nights} of Toto's nights of {per_night} in the "
        "landscape style (no skew: every night passes the data gate), one after "
        "another through `dag.test()` in one fresh EMERALD_HOME; each task timed between "
        "dag.test()'s start and end log lines. Night 2 has "
        f"{corpus + 2 * per_night:,} images behind it, night {last} "
        f"{corpus + last * per_night:,}. Issue 11's goals: the data tasks at most "
        f"{DATA_GOAL}x as long on night {last} as on night 2, the whole night at most "
        f"{NIGHT_GOAL}x."
        + ("" if last == args.nights else
           f" **Partial:** the run stopped after night {last} of {args.nights}; the "
           "table compares the nights it had finished."),
        "",
        f"| task | night 2 | night {last} | ratio | goal | {_trend_heading(last)} |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for task in [t for t in seconds[last] if t != WHOLE_NIGHT] + [WHOLE_NIGHT]:
        before, after = seconds[2].get(task), seconds[last].get(task)
        if before is None or after is None:
            lines.append(f"| {task} | {_cell(before)} | {_cell(after)} | | | |")
            continue
        ratio = after / before if before else float("inf")
        goal = DATA_GOAL if task in DATA_TASKS else NIGHT_GOAL if task == WHOLE_NIGHT else None
        verdict = "" if goal is None else f"{goal}x: {'met' if ratio <= goal else 'missed'}"
        name = f"**{task}**" if task == WHOLE_NIGHT else task
        lines.append(f"| {name} | {before:.1f} s | {after:.1f} s | {ratio:.2f}x | {verdict} | "
                     f"{_trend(seconds, task, last)} |")
    lines += ["", "A single night's time on this machine varies by up to 2x from night to "
              "night for the short tasks (the same work; see the series below), so the last "
              "column sets the median of three nights at each end beside each other. Each "
              "night's seconds, night 1 to night " + str(last) + ":", ""]
    for task in [t for t in seconds[last] if t in DATA_TASKS] + [WHOLE_NIGHT]:
        lines.append(f"- {task}: " + ", ".join(
            f"{seconds[n][task]:.1f}" for n in sorted(seconds) if n and task in seconds[n]))
    lines += ["", "Every night's wall time: " + ", ".join(
        f"{'corpus' if n == 0 else n} {s[WHOLE_NIGHT]:.0f} s" for n, s in seconds.items())
        + ". Training and push: " + ", ".join(
        f"{'corpus' if n == 0 else n} {(o.get('training') or {}).get('mode', '?')}"
        f"{', pushed' if o.get('pushed') else ', not pushed'}" for n, o in outcomes.items())
        + "."]
    return "\n".join(lines)


def _trend_heading(last: int) -> str:
    if last < 7:
        return "trend"
    return f"median of nights {last - 2}-{last} over nights 2-4"


def _trend(seconds: dict[int, dict[str, float]], task: str, last: int) -> str:
    """The median of the last three nights over that of nights 2 to 4 (with 7 or more)."""
    import statistics

    if last < 7:
        return ""
    early = [seconds[n].get(task) for n in (2, 3, 4)]
    late = [seconds[n].get(task) for n in (last - 2, last - 1, last)]
    if None in early + late or not statistics.median(early):
        return ""
    return f"{statistics.median(late) / statistics.median(early):.2f}x"


def _cell(value) -> str:
    return "not run" if value is None else f"{value:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
