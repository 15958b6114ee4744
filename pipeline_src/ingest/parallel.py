"""Fetching in parallel: threads in this process, and worker processes beside it.

Decoding is bound by the GIL, so a large tree is shared between this process
and fresh interpreters (WorkerPool, `python -S -m pipeline_src.ingest.worker`),
each running `threads` fetch threads; a small one is fetched by threads here
alone. "Worker" always means a process; fetch threads are "threads".
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from .errors import IngestError
from .planning import Plan
from .writer import ObjectWriter

log = logging.getLogger(__package__)     # "pipeline_src.ingest": one logger for the package

PROCESS_MIN_OBJECTS = 64      # fewer objects to fetch: threads in this process
PROCESS_CHUNK = 16            # objects handed to a worker at a time


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """Fetch threads when everything runs in this process."""
    return max(2, 2 * usable_cpus())


def bounded_map(fn, items: Iterable, threads: int) -> Iterator:
    """Like Executor.map, in order, but never more than 2*threads items in flight."""
    if threads <= 1:
        for item in items:
            yield fn(item)
        return
    window = 2 * threads
    with cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest") as pool:
        pending = []
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for fut in pending:
                fut.cancel()


def _transferable(writer: ObjectWriter) -> bool:
    import pickle
    try:
        pickle.dumps(writer)
        return True
    except Exception as exc:  # noqa: BLE001 - a storage that cannot travel: threads instead
        log.info("ingesting in this process: %s cannot be sent to a worker (%s)",
                 type(writer.storage).__name__, exc)
        return False


class WorkerPool:
    """This process plus `processes - 1` fresh interpreters (`python -S -m
    pipeline_src.ingest.worker`) fetching, decoding and filing objects, so
    decoding is not bounded by one GIL.

    Exec'd, not forked: the task process may hold threads (Airflow's) or
    TensorFlow, and a worker needs nothing of its state. Objects go out in
    chunks of PROCESS_CHUNK to whichever process is free (this one starts at
    once, a worker as soon as it has booted) and only manifest entries come
    back, so each holds at most 2 x threads images and a slow one does not hold
    up the rest. Workers start on first use and serve the corpus and the
    night; `close()` collects each worker's peak memory (`stats`).
    """

    @staticmethod
    def command() -> list[str]:
        import sys
        # -S: no site processing (.pth files, ~40 ms); PYTHONPATH carries the result.
        return [sys.executable, "-S", "-m", "pipeline_src.ingest.worker"]

    @classmethod
    def for_processes(cls, processes: Optional[int]) -> "WorkerPool":
        """The pool for ingest_night's `processes`: None or 0, one process per usable CPU
        (for trees of PROCESS_MIN_OBJECTS+ objects to fetch); N >= 2: N whatever the size."""
        explicit = bool(processes) and int(processes) >= 2
        return cls(int(processes) if processes else usable_cpus(), explicit=explicit)

    def __init__(self, processes: int, explicit: bool = False):
        self.processes = max(1, int(processes))
        self.explicit = explicit          # chosen by the caller: used for any number of objects
        self.procs: list = []
        self.stats: list[dict] = []

    def shares(self, writer: ObjectWriter, objects: int) -> bool:
        """Whether `objects` objects to fetch go to the workers too: there are workers, enough
        objects to repay their start-up (any number for an explicit size), and `writer`
        can be sent to them."""
        return (self.processes >= 2 and objects > 0
                and (objects >= PROCESS_MIN_OBJECTS or self.explicit) and _transferable(writer))

    def _start(self) -> None:
        import subprocess
        import sys
        import threading
        if self.procs or self.processes < 2:
            return
        env = dict(os.environ)
        # This process's import path, as site and Airflow built it (dags and plugins
        # folders), led by the directory this very pipeline_src was imported from
        # (an editable install finds it through a hook that -S skips).
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            dict.fromkeys([package_root] + [p for p in sys.path if p]))
        try:
            for _ in range(self.processes - 1):
                proc = subprocess.Popen(
                    self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=env, close_fds=True)
                proc.stderr_tail = []
                proc.forwarder = threading.Thread(target=self._forward_stderr, args=(proc,),
                                                  name=f"ingest-worker-{proc.pid}-log", daemon=True)
                proc.forwarder.start()
                self.procs.append(proc)
        except BaseException:
            self.close(kill=True)
            raise

    @staticmethod
    def _forward_stderr(proc) -> None:
        """The worker's log lines into this process's log (Airflow's task log)."""
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            proc.stderr_tail = (proc.stderr_tail + [line])[-20:]
            level = logging.WARNING if line.startswith(("WARNING", "ERROR", "Traceback")) \
                else logging.INFO
            log.log(level, "ingest worker %d: %s", proc.pid, line)

    def _died(self, proc, doing: str) -> IngestError:
        try:
            code = proc.wait(timeout=5)
        except Exception:  # noqa: BLE001
            code = None
        proc.forwarder.join(timeout=2)
        tail = "\n".join(proc.stderr_tail[-5:])
        return IngestError(f"ingest worker {proc.pid} died (exit code {code}) {doing}"
                           + (f"; its last words:\n{tail}" if tail else ""))

    def run(self, writer: ObjectWriter, plans: Sequence[Plan], threads: int) -> list[dict]:
        """writer(plan) for every plan; entries in the order of `plans`."""
        import pickle
        import threading
        self._start()
        setup = pickle.dumps(("writer", writer, threads), protocol=pickle.HIGHEST_PROTOCOL)
        results: list = [None] * len(plans)
        chunks = iter([range(i, min(i + PROCESS_CHUNK, len(plans)))
                       for i in range(0, len(plans), PROCESS_CHUNK)])
        lock = threading.Lock()
        failures: list[BaseException] = []

        def next_chunk():
            with lock:
                return None if failures else next(chunks, None)

        def drive(proc) -> None:
            sent_setup = False
            try:
                while (chunk := next_chunk()) is not None:
                    doing = f"on {plans[chunk[0]].info.name} and {len(chunk) - 1} more"
                    try:
                        if not sent_setup:
                            proc.stdin.write(setup)
                            sent_setup = True
                        pickle.dump(("chunk", [plans[i] for i in chunk]), proc.stdin,
                                    protocol=pickle.HIGHEST_PROTOCOL)
                        proc.stdin.flush()
                        reply = pickle.load(proc.stdout)
                    except (EOFError, OSError, pickle.UnpicklingError):
                        raise self._died(proc, doing) from None
                    if reply[0] == "error":
                        _, exc, trace = reply
                        log.error("ingest worker %d failed %s:\n%s", proc.pid, doing, trace)
                        raise exc
                    for i, entry in zip(chunk, reply[1]):
                        results[i] = entry
            except BaseException as exc:  # noqa: BLE001 - re-raised by run()
                failures.append(exc)

        drivers = [threading.Thread(target=drive, args=(proc,), daemon=True,
                                    name=f"ingest-driver-{proc.pid}") for proc in self.procs]
        for t in drivers:
            t.start()
        try:
            while (chunk := next_chunk()) is not None:          # this process's share
                for i, entry in zip(chunk, bounded_map(writer, [plans[i] for i in chunk],
                                                       threads)):
                    results[i] = entry
        except BaseException as exc:
            failures.append(exc)
        for t in drivers:
            t.join()
        if failures:
            self.close(kill=True)
            raise failures[0]
        return results

    def release(self) -> None:
        """Tells the workers to finish (without waiting): they exit while this process
        writes the manifest and syncs; `close()` collects them."""
        import pickle
        for proc in self.procs:
            if not getattr(proc, "stopping", False):
                try:
                    pickle.dump(("stop",), proc.stdin)
                    proc.stdin.flush()
                    proc.stopping = True
                except OSError:
                    proc.kill()

    def close(self, kill: bool = False) -> None:
        import pickle
        if not kill:
            self.release()
        for proc in self.procs:
            if kill or not getattr(proc, "stopping", False):
                proc.kill()
                continue
            try:
                self.stats.append(pickle.load(proc.stdout)[1])
            except (EOFError, OSError, pickle.UnpicklingError):
                proc.kill()
        for proc in self.procs:
            for stream in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a stuck worker: no mercy
                proc.kill()
                proc.wait()
            proc.forwarder.join(timeout=2)
            with contextlib.suppress(OSError):
                proc.stderr.close()
        self.procs = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)
