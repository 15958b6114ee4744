"""Ingestion throughput and memory against the raw PIL decode rate of the same files.

    .venv/bin/python bench/bench_ingest.py [--images 600] [--size 640x480] [--rounds 3]
                                           [--memory 200,800,1600,3200] [--no-write]

Writes its results into BENCHMARKS.md between `<!-- ingest:start -->` and
`<!-- ingest:end -->` (and prints them). Rates, each measured once per round,
rounds interleaved so that load from other jobs hits every row alike:
  * PIL load, 1 and 2 processes: Image.open(BytesIO(data)).load() - the raw decode bound;
  * images.inspect / images.decode, 2 processes: ingestion's light path / ExampleGen's full one;
  * ingest local: ingest_night from a local directory (the default: fetch+decode threads;
    and with 2 decode processes);
  * ingest emulator: from gcp-storage-emulator (its Python server shares the cores).
The ratio is ingest / PIL 2 processes within the same round; the table gives medians.
Peak memory: a fresh process ingests nights of growing size; VmHWM of that
process, and the largest decode worker's peak RSS (pages shared with the
parent by fork included, so parent + workers overstates the total).
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "plugins"))
NIGHT = dt.date(2026, 1, 2)


def make_images(n: int, size: tuple[int, int]) -> dict[str, bytes]:
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    labels = ("lion", "tiger", "bear")
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) * 255 // (w + h))], -1)
    files = {}
    for i in range(n):
        noise = rng.integers(-20, 20, size=(h, w, 3))
        arr = np.clip(base + noise + i % 50, 0, 255).astype("uint8")
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=85)
        files[f"{labels[i % 3]}/img_{i:05d}.jpg"] = buf.getvalue()
    return files


def _pil_load(data: bytes) -> int:
    from PIL import Image
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.size[0]


def _emerald_decode(data: bytes) -> int:
    from pipeline_src import images
    return images.decode(data)[1].width


def _emerald_inspect(data: bytes) -> int:
    from pipeline_src import images
    return images.inspect(data).width


def rate(fn, datas, procs: int) -> float:
    t = time.perf_counter()
    if procs == 1:
        for d in datas:
            fn(d)
    else:
        with mp.get_context("fork").Pool(procs) as pool:
            t = time.perf_counter()
            pool.map(fn, datas, chunksize=8)
    return len(datas) / (time.perf_counter() - t)


def ingest_rate(source: str, spans: Path, n: int, workers: int, decode_processes: int = 0) -> float:
    from pipeline_src import ingest
    t = time.perf_counter()
    report = ingest.ingest_night(source, NIGHT, spans, spans.parent / f"q-{spans.name}",
                                 include_corpus=False, workers=workers,
                                 decode_processes=decode_processes)
    elapsed = time.perf_counter() - t
    assert report.ingested == n, report
    return n / elapsed


def child_memory_ingest_only(n: int, src: str, decode_processes: int) -> None:
    """Runs in a fresh process: ingests the night at `src`, prints its peak memory."""
    from pipeline_src import ingest
    tmp = Path(tempfile.mkdtemp(prefix="emerald-bench-mem-"))
    report = ingest.ingest_night(src, NIGHT, tmp / "spans", tmp / "q", include_corpus=False,
                                 decode_processes=decode_processes)
    assert report.ingested == n
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent.
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM"))
    # The decode workers are forked (not exec'd) and joined: RUSAGE_CHILDREN is their peak.
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"peak_mb": round(int(hwm.split()[1]) / 1024, 1),
                      "worker_peak_mb": round(workers, 1)}))


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (pool and decode workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_section(body: str) -> Path:
    """Replaces only the ingest block of BENCHMARKS.md (other sections are left alone)."""
    path = REPO / "BENCHMARKS.md"
    start, end = "<!-- ingest:start -->", "<!-- ingest:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    return path


NOTES = """
What the rows measure: `ingest_night` lists the night, reads each file, computes its md5
and crc32c, fully decodes it with `images.inspect` (Pillow `load()`, never `draft()`: the
same acceptance and BadImage reasons as `images.decode`, without the upright copy, RGB
conversion and luminance pass), writes it into the span and finally writes the manifest.
The PIL rows only decode bytes already in memory, so everything else ingestion does per
image (about 0.4 ms of CPU here: md5 0.13 ms, reading, writing, path checks, listing,
manifest) is the gap to 1.0. At most 2 x workers images are in flight, whatever the
night's size. The emulator row includes the emulator's own single-threaded Python server
on the same cores. The decode-process variant (`decode_processes=2`) is kept as an option:
on this machine its pipes and forked workers cost more CPU per image than they bought.
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=600)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--memory", default="200,800,1600,3200")
    ap.add_argument("--workers", type=int, default=4, help="fetch threads (ingest's default on 2 cores)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--child-ingest", nargs=3, metavar=("N", "SRC", "DECODE_PROCESSES"))
    args = ap.parse_args()
    if args.child_ingest:
        child_memory_ingest_only(int(args.child_ingest[0]), args.child_ingest[1],
                                 int(args.child_ingest[2]))
        return
    command = " ".join([".venv/bin/python", "bench/bench_ingest.py"] + [shlex.quote(a) for a in sys.argv[1:]])

    from emerald_gcs import testing
    from pipeline_src import ingest
    from PIL import __version__ as pil_version
    w, h = map(int, args.size.split("x"))
    files = make_images(args.images, (w, h))
    datas = list(files.values())
    night_mb = sum(map(len, datas)) / 2**20
    tmp = Path(tempfile.mkdtemp(prefix="emerald-bench-"))
    testing.write_tree(tmp / "src" / "toto" / NIGHT.isoformat(), files)
    load_before = load_average()
    procs = len(os.sched_getaffinity(0))

    names = {"pil1": "PIL load, 1 process",
             "pil2": "PIL load, 2 processes (decode bound)",
             "inspect2": "images.inspect, 2 processes (ingestion's decode)",
             "decode2": "images.decode, 2 processes (ExampleGen's decode)"}
    for t in sorted({1, 2, args.workers}):
        names[f"local{t}"] = f"ingest, local source, {t} fetch+decode thread(s)"
    names["pool"] = f"ingest, local source, {args.workers} fetch threads + 2 decode processes"
    samples: dict[str, list[float]] = {k: [] for k in names}
    cpu_ms: dict[str, list[float]] = {k: [] for k in names}

    def measure(key, fn, *a):
        c0 = cpu_seconds()
        samples[key].append(fn(*a))
        cpu_ms[key].append((cpu_seconds() - c0) / args.images * 1000)

    ratios = []
    for r in range(args.rounds):
        measure("pil1", rate, _pil_load, datas, 1)
        measure("pil2", rate, _pil_load, datas, 2)
        measure("inspect2", rate, _emerald_inspect, datas, 2)
        measure("decode2", rate, _emerald_decode, datas, 2)
        for t in sorted({1, 2, args.workers}):
            measure(f"local{t}", ingest_rate, str(tmp / "src"), tmp / f"spans-r{r}-l{t}",
                    args.images, t)
        measure("pool", ingest_rate, str(tmp / "src"), tmp / f"spans-r{r}-pool", args.images,
                args.workers, 2)
        ratios.append(samples[f"local{args.workers}"][-1] / samples["pil2"][-1])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in samples.items())
              + f"; ratio {ratios[-1]:.2f}; load {load_average()}", flush=True)

    with testing.gcs_emulator() as url:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        client = testing.anonymous_client()
        client.create_bucket("bench")
        testing.upload_tree(client, "bench", f"cam/toto/{NIGHT}", files)
        emu = ingest_rate("gs://bench/cam", tmp / "spans-emu", args.images, args.workers)
        os.environ.pop("STORAGE_EMULATOR_HOST")
    load_after_rates = load_average()

    mem_rows = []
    for n in map(int, args.memory.split(",")):
        src = tmp / f"mem{n}"
        extra = make_images(n, (w, h)) if n != args.images else files
        testing.write_tree(src / "toto" / NIGHT.isoformat(), extra)
        mb = sum(map(len, extra.values())) / 2**20
        del extra
        res = []
        for decode_processes in (0, 2):
            out = subprocess.run([sys.executable, __file__, "--child-ingest", str(n), str(src),
                                  str(decode_processes)],
                                 capture_output=True, text=True, check=True).stdout
            res.append(json.loads(out.strip().splitlines()[-1]))
        mem_rows.append((n, mb, res[0]["peak_mb"], res[1]["peak_mb"], res[1]["worker_peak_mb"]))
        print(f"memory: {n} images, {mb:.1f} MiB: {mem_rows[-1][2:]} MiB", flush=True)

    med = {k: statistics.median(v) for k, v in samples.items()}
    pil2 = med["pil2"]
    ratio = statistics.median(ratios)
    lines = [
        "## Ingestion throughput and memory",
        "",
        f"Command: `{command}` (from the repository root; written by the script).",
        "",
        f"Machine: {os.cpu_count()} cores ({procs} usable), Python {platform.python_version()}, "
        f"Pillow {pil_version}; load average (1/5/15 min) {load_before} before the rate "
        f"rounds, {load_after_rates} after them (other jobs share the machine). "
        f"{args.images} JPEGs {args.size} (q85, {night_mb / args.images * 1024:.0f} KiB each, "
        f"{night_mb:.1f} MiB). Medians of {args.rounds} interleaved rounds.",
        "",
        "| measurement | images/s (median) | min | max | vs PIL 2-process decode "
        "| CPU ms per image (all processes, median) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {names[k]} | {med[k]:.0f} | {min(samples[k]):.0f} | {max(samples[k]):.0f} "
              f"| {med[k] / pil2:.2f} | {statistics.median(cpu_ms[k]):.2f} |" for k in names]
    lines += [f"| ingest, gcp-storage-emulator, {args.workers} fetch+decode threads (one run) "
              f"| {emu:.0f} | | | {emu / pil2:.2f} | |"]
    lines += [
        "",
        f"Ingest (default: {args.workers} fetch+decode threads, local source) / decode-bound "
        f"rate, same round: "
        f"**{ratio:.2f}** median (rounds: {', '.join(f'{x:.2f}' for x in ratios)}); "
        f"target >= 0.8.",
        "",
        "Peak memory of a fresh `ingest_night` process (VmHWM), default threads and with 2 decode "
        "processes (whose own peak RSS counts pages shared with the parent by fork):",
        "",
        "| images in night | night size (MiB) | ingest process, default (MiB) "
        "| ingest process, 2 decode processes (MiB) | each decode process (MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {mb:.1f} | {peak:.0f} | {ppeak:.0f} | {wpeak:.0f} |"
              for n, mb, peak, ppeak, wpeak in mem_rows]
    lines += ["", NOTES.strip()]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        print(f"wrote {write_section(body)}")


if __name__ == "__main__":
    main()
