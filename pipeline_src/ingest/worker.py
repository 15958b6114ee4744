"""One ingestion worker process: `python -S -m pipeline_src.ingest.worker` (started by
pipeline_src.ingest.parallel.WorkerPool, never by hand).

Speaks pickles over stdin/stdout, one message at a time:

    ("writer", ObjectWriter, threads)  the tree being ingested; no reply
    ("chunk", [Plan, ...])             -> ("done", [entry, ...]) or ("error", exc, traceback)
    ("stop",)                          -> ("stats", {"peak_rss_kb", "objects"}), then exits

Logs go to stderr, which the parent forwards into its own log (Airflow's task log).

Run with -m, this module comes after its package, pipeline_src.ingest, which
imports the standard library alone at import time (Pillow comes with the
first image, through pipeline_src.images). The package must not import this
module itself: runpy would find it already imported and warn.
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback

from .parallel import bounded_map


def _die_with_parent() -> None:
    """SIGKILL when the parent dies, even by SIGKILL (Linux); elsewhere stdin's EOF ends us."""
    try:
        import ctypes
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:           # the parent died before prctl took effect
        os._exit(1)


def peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM), in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception that cannot travel: its text does
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def main() -> int:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                                    # a stray print must not corrupt a reply
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")

    requests = sys.stdin.buffer
    writer, threads, objects = None, 1, 0
    while True:
        try:
            message = pickle.load(requests)
        except EOFError:
            return 0
        kind = message[0]
        if kind == "writer":
            _, writer, threads = message
            continue
        if kind == "stop":
            reply = ("stats", {"peak_rss_kb": peak_rss_kb(), "objects": objects})
        else:
            try:
                entries = list(bounded_map(writer, message[1], threads))
                objects += len(entries)
                reply = ("done", entries)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails
                reply = ("error", _picklable(exc), traceback.format_exc())
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()
        if kind == "stop":
            return 0


if __name__ == "__main__":
    sys.exit(main())
