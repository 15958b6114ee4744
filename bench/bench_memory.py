"""Peak memory per node, each node its own process, at two corpus sizes.

Every step of a corpus-only night runs as its own process, as on a worker or
in a pod: ingestion of the corpus (`emerald ingest`'s code), `emerald node
NODE` for every node of the compiled pipeline in the IR's order, `emerald
gate` and `emerald report`. A step's peak RSS is os.wait4's ru_maxrss: the
process's own peak, or one of the children it waited for (ingestion's worker
processes), whichever is larger. Also its wall time. Writes BENCHMARKS.md's
"memory" section.

    .venv/bin/python bench/bench_memory.py [--sizes 667,3334]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_parse import write_section  # noqa: E402  (sibling scripts, not a package)
from bench_runners import REPO, environment  # noqa: E402
from bench_task_overhead import NIGHT  # noqa: E402

RUN_ID = "bench_memory.1"
INGEST = f"""
import datetime as dt
from pipeline_src.config import load_config
from pipeline_src.ingest.night import configured_settings, ingest_night
c = load_config()
ingest_night(c.paths.source, dt.date.fromisoformat({NIGHT!r}), c.paths.spans,
             c.paths.quarantine, include_night=False, require_corpus=True,
             **configured_settings(c))
"""
GATE_PASSED, GATE_BLOCKED = 0, 3         # `emerald gate`'s exit codes (tasks.BLOCKED_EXIT_CODE)


def steps() -> list[tuple[str, list[str], tuple[int, ...]]]:
    """(name, argv, accepted exit codes) of a night's processes, in order."""
    from pipeline_src.orchestration.compile import load_ir_dict, task_graph

    emerald = [sys.executable, "-m", "pipeline_src.tools.cli"]
    run = ["--run-id", RUN_ID, "--night", NIGHT]
    return ([("ingest", [sys.executable, "-c", INGEST], (0,))]
            + [(node_id, [*emerald, "node", *run, node_id], (0,))
               for node_id in task_graph(load_ir_dict())]
            + [("gate", [*emerald, "gate", *run], (GATE_PASSED, GATE_BLOCKED)),
               ("report", [*emerald, "report", *run], (0,))])


def measure(argv: list[str], env: dict, log: Path, accepted: tuple[int, ...]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one process."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in accepted:
        raise RuntimeError(f"{argv[-1]} exited {proc.returncode}; see {log}")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="667,3334", help="corpus images per label")
    args = parser.parse_args()
    from pipeline_src.tools import synth

    load = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="emerald-bench-memory-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, dict[str, tuple[float, float]]] = {}
    for per_label in sizes:
        source = base / f"source-{per_label}"
        synth.synthesize(source, nights=0, seed=0, corpus_per_label=per_label)
        root = base / str(per_label)
        env = environment(root, source)
        results[per_label] = {}
        for name, argv, accepted in steps():
            results[per_label][name] = measure(argv, env, root / f"{name}.log", accepted)
            rss, wall = results[per_label][name]
            print(f"{per_label * 3} images, {name}: {rss:.0f} MiB, {wall:.1f} s", flush=True)
    write_section("BENCHMARKS.md", "memory", render(results, load, args.sizes))
    return 0


def render(results: dict, load: tuple, sizes: str) -> str:
    small, large = min(results), max(results)
    lines = [
        "## Peak memory per node",
        "",
        f"Command: `.venv/bin/python bench/bench_memory.py --sizes {sizes}` (2 cores, load "
        f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start). A corpus-only "
        "night of synthetic images (the demo's generator), every step its own process as on "
        "a worker or in a pod: ingestion, `emerald node NODE` in the compiled pipeline's "
        "order, `emerald gate`, `emerald report`; the default configuration (30 epochs, the "
        "local profile's Beam arguments: DirectRunner in memory, one worker). Peak RSS is "
        "os.wait4's ru_maxrss (the process, or a child it waited for).",
        "",
        f"| step | peak RSS at {small * 3} images | at {large * 3} | ratio "
        f"| wall at {small * 3} | at {large * 3} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in results[small]:
        (rss_s, wall_s), (rss_l, wall_l) = results[small][name], results[large][name]
        lines.append(f"| {name} | {rss_s:.0f} MiB | {rss_l:.0f} MiB | {rss_l / rss_s:.2f}x "
                     f"| {wall_s:.1f} s | {wall_l:.1f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
