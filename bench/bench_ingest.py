"""Ingestion throughput and memory against the raw PIL decode rate of the same files.

    .venv/bin/python bench/bench_ingest.py [--images 400] [--size 640x480] [--memory 200,800,1600]

Prints a Markdown table (bench/ingest_results.md holds the last run). Rates:
  * PIL load, 1 and 2 processes: Image.open(BytesIO(data)).load() - the raw decode bound;
  * images.decode, 2 processes: what ingestion must do per image (EXIF, RGB, brightness);
  * ingest local: ingest_night from a local directory (threads);
  * ingest emulator: from gcp-storage-emulator (its Python server shares the 2 cores).
Peak memory: max RSS of a fresh process ingesting nights of growing size.
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import resource
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


def ingest_rate(source: str, spans: Path, n: int, workers: int) -> float:
    from pipeline_src import ingest
    t = time.perf_counter()
    report = ingest.ingest_night(source, NIGHT, spans, spans.parent / "q", include_corpus=False,
                                 workers=workers)
    elapsed = time.perf_counter() - t
    assert report.ingested == n, report
    return n / elapsed


def child_memory(n: int, size: str) -> None:
    """Runs in a fresh process: writes a night of n images, ingests it, prints max RSS."""
    w, h = map(int, size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="emerald-bench-mem-"))
    from emerald_gcs import testing
    files = make_images(n, (w, h))
    testing.write_tree(tmp / "src" / "toto" / NIGHT.isoformat(), files)
    night_mb = sum(map(len, files.values())) / 2**20
    del files
    import gc
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from pipeline_src import ingest
    ingest.ingest_night(str(tmp / "src"), NIGHT, tmp / "spans", tmp / "q", include_corpus=False)
    # maxrss never goes down: measure growth from a baseline taken before generating images
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"n": n, "night_mb": round(night_mb, 1), "rss_before_mb": round(before, 1),
                      "peak_mb": round(after, 1)}))


def child_memory_ingest_only(n: int, src: str) -> None:
    from pipeline_src import ingest
    tmp = Path(tempfile.mkdtemp(prefix="emerald-bench-mem-"))
    report = ingest.ingest_night(src, NIGHT, tmp / "spans", tmp / "q", include_corpus=False)
    assert report.ingested == n
    print(json.dumps({"peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--memory", default="200,800,1600")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--child-ingest", nargs=2, metavar=("N", "SRC"))
    args = ap.parse_args()
    if args.child_ingest:
        child_memory_ingest_only(int(args.child_ingest[0]), args.child_ingest[1])
        return

    from emerald_gcs import testing
    from pipeline_src import ingest
    w, h = map(int, args.size.split("x"))
    files = make_images(args.images, (w, h))
    datas = list(files.values())
    night_mb = sum(map(len, datas)) / 2**20
    tmp = Path(tempfile.mkdtemp(prefix="emerald-bench-"))
    testing.write_tree(tmp / "src" / "toto" / NIGHT.isoformat(), files)

    rows = []
    pil1 = rate(_pil_load, datas, 1)
    pil2 = rate(_pil_load, datas, 2)
    dec2 = rate(_emerald_decode, datas, 2)
    rows += [("PIL load, 1 process", pil1), ("PIL load, 2 processes (decode bound)", pil2),
             ("images.decode, 2 processes", dec2)]
    local = {}
    for workers in (1, 2, args.workers):
        local[workers] = ingest_rate(str(tmp / "src"), tmp / f"spans-l{workers}", args.images, workers)
        rows.append((f"ingest, local source, {workers} thread(s)", local[workers]))
    with testing.gcs_emulator() as url:
        os.environ["STORAGE_EMULATOR_HOST"] = url
        client = testing.anonymous_client()
        client.create_bucket("bench")
        testing.upload_tree(client, "bench", f"cam/toto/{NIGHT}", files)
        emu = ingest_rate("gs://bench/cam", tmp / "spans-emu", args.images, args.workers)
        rows.append((f"ingest, gcp-storage-emulator, {args.workers} threads", emu))
        os.environ.pop("STORAGE_EMULATOR_HOST")

    mem_rows = []
    for n in map(int, args.memory.split(",")):
        src = tmp / f"mem{n}"
        extra = make_images(n, (w, h)) if n != args.images else files
        testing.write_tree(src / "toto" / NIGHT.isoformat(), extra)
        mb = sum(map(len, extra.values())) / 2**20
        out = subprocess.run([sys.executable, __file__, "--child-ingest", str(n), str(src)],
                             capture_output=True, text=True, check=True).stdout
        mem_rows.append((n, mb, json.loads(out.strip().splitlines()[-1])["peak_mb"]))

    best = max(local.values())
    lines = [
        f"Machine: {os.cpu_count()} cores; {args.images} JPEGs {args.size} "
        f"(q85, {night_mb / args.images * 1024:.0f} KiB each, {night_mb:.1f} MiB).",
        "",
        "| measurement | images/s | vs PIL 2-process decode |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {r:.0f} | {r / pil2:.2f} |" for name, r in rows]
    lines += ["", f"Best local ingest / decode-bound rate: **{best / pil2:.2f}** (target >= 0.8).", "",
              "| images in night | night size (MiB) | peak RSS of ingest process (MiB) |",
              "|---:|---:|---:|"]
    lines += [f"| {n} | {mb:.1f} | {peak:.0f} |" for n, mb, peak in mem_rows]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
