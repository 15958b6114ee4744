"""Ingestion: one night of Toto's uploads (and the curated corpus) into a pipeline span.

Source layout (a local directory or ``gs://BUCKET/PREFIX``)::

    {source}/toto/{YYYY-MM-DD}/{label}/{name}     one night of camera uploads
    {source}/corpus/{label}/{name}                the curated corpus (`emerald synth`)

Span layout (what ExampleGen reads)::

    {spans}/toto/{YYYY-MM-DD}/{label}/{safe_name}
    {spans}/toto/{YYYY-MM-DD}/_manifest.json
    {spans}/corpus/{label}/{safe_name}
    {spans}/corpus/_manifest.json

Bad files go to ``{quarantine}/{YYYY-MM-DD}/`` (``{quarantine}/corpus/``) with a
``.reason.txt`` next to each. Every listed object is accounted for as ingested,
unchanged (same generation and checksum as the span already holds), quarantined
(held unknown labels included) or skipped (the ``_SUCCESS`` marker, folder
placeholders).

A span directory is built in a temporary sibling and swapped in with one
atomic rename (``renameat2(RENAME_EXCHANGE)`` where the kernel has it), so a
reader sees the old night or the new one, never half of one, and rerunning a
night is idempotent. No Airflow import happens here: the Airflow plugin
(``plugins/emerald_gcs``) and the ``emerald ingest`` command share this code.
"""
from __future__ import annotations

import base64
import concurrent.futures as cf
import contextlib
import dataclasses
import datetime as dt
import errno
import functools
import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import re
import shutil
import time
import unicodedata
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

log = logging.getLogger(__name__)

TOTO = "toto"
CORPUS = "corpus"
MANIFEST_NAME = "_manifest.json"
MARKER_NAME = "_SUCCESS"
MANIFEST_VERSION = 1
DECODER_VERSION = 1           # bump when images.decode/inspect change what they accept
REASON_SUFFIX = ".reason.txt"
LABEL_NOT_IN_SCHEMA = "label not in schema"
UNKNOWN_LABEL_POLICIES = ("ingest", "hold")

STATUS_INGESTED = "ingested"
STATUS_QUARANTINED = "quarantined"
STATUS_HELD = "held"
STATUS_SKIPPED = "skipped"

_SAFE_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class IngestError(RuntimeError):
    """A permanent failure: the night cannot be ingested. The message names the object."""


class TransientError(RuntimeError):
    """A failure worth retrying (checksum mismatch, throttling, 5xx, timeouts)."""


# --------------------------------------------------------------------------- names

def safe_name(name: str) -> str:
    """A file name that cannot leave its directory, derived deterministically from `name`.

    Path separators, `.`/`..`, control characters, spaces and non-ASCII are
    flattened to `_`; whenever the result differs from `name`, a short hash of
    the original is appended so two different objects never share a file.
    """
    norm = unicodedata.normalize("NFKC", name).replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".", "..")]
    cleaned = _UNSAFE_CHARS.sub("_", "__".join(parts)).lstrip("._-")
    stem, ext = os.path.splitext(cleaned)
    if len(ext) > 10:
        stem, ext = cleaned, ""
    stem = stem[:100]
    result = stem + ext
    if result != name or not stem:
        digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        result = f"{stem or 'object'}-{digest}{ext}"
    return result


@functools.lru_cache(maxsize=256)
def _resolved_base(base: str) -> str:
    # A base replaced by a symlink after this cached resolve makes _within
    # refuse (the candidate resolves elsewhere), never wrongly accept.
    return os.path.realpath(base)


def _within(base: Path, candidate: Path) -> Path:
    """Raises unless `candidate` stays inside `base` (belt and braces after safe_name)."""
    real_base = _resolved_base(str(base))
    resolved = os.path.realpath(candidate)
    if os.path.commonpath([real_base, resolved]) != real_base:
        raise IngestError(f"refusing to write outside {base}: {candidate}")
    return candidate


# --------------------------------------------------------------------------- retry

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (TransientError, TimeoutError, ConnectionError)):
        return True
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code in _TRANSIENT_STATUS:
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and status in _TRANSIENT_STATUS:
        return True
    mod = type(exc).__module__
    name = type(exc).__name__
    if mod.startswith(("requests", "urllib3")) and name in {
            "ConnectionError", "Timeout", "ReadTimeout", "ConnectTimeout",
            "ChunkedEncodingError", "ProtocolError", "ReadTimeoutError",
            "NewConnectionError", "RemoteDisconnected", "IncompleteRead"}:
        return True
    if mod.startswith("google.auth") and name == "TransportError":
        return True
    if mod.startswith("http.client") and name in {"RemoteDisconnected", "IncompleteRead"}:
        return True
    return False


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 7
    initial_seconds: float = 0.2
    max_seconds: float = 10.0
    multiplier: float = 2.0

    def call(self, fn: Callable, what: str, sleep: Callable[[float], None] = time.sleep):
        delay = self.initial_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except IngestError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                if not is_transient(exc):
                    raise IngestError(f"{what}: permanent error: {type(exc).__name__}: {exc}") from exc
                if attempt == self.attempts:
                    raise IngestError(
                        f"{what}: still failing after {attempt} attempts: "
                        f"{type(exc).__name__}: {exc}") from exc
                wait = min(self.max_seconds, delay) * (0.5 + random.random() / 2)
                log.warning("%s: transient %s (%s); retry %d/%d in %.2fs",
                            what, type(exc).__name__, exc, attempt, self.attempts - 1, wait)
                sleep(wait)
                delay *= self.multiplier


# --------------------------------------------------------------------------- storage

@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    name: str                 # full object name (local: path relative to the root, '/'-separated)
    generation: str
    size: int
    md5: Optional[str] = None     # base64, as GCS reports it
    crc32c: Optional[str] = None  # base64 big-endian, as GCS reports it


def _b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _b64_crc32c(data: bytes) -> str:
    import google_crc32c  # shipped with google-cloud-storage; cheap C extension
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


class LocalStorage:
    """A directory; generations are mtime_ns-size, checksums are computed on read."""

    def __init__(self, root: os.PathLike | str):
        self.root = Path(root).expanduser().resolve()

    def uri(self, prefix: str = "") -> str:
        return str(self.root / prefix) if prefix else str(self.root)

    def _path(self, name: str) -> Path:
        return _within(self.root, self.root / name)

    def exists(self, prefix: str) -> bool:
        return (self.root / prefix).is_dir()

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        out = []
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames.sort()
            for fname in sorted(filenames):
                path = Path(dirpath) / fname
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue
                if not path.is_file() or path.is_symlink():
                    continue
                rel = path.relative_to(self.root).as_posix()
                out.append(ObjectInfo(rel, f"{st.st_mtime_ns}-{st.st_size}", st.st_size))
        return sorted(out, key=lambda o: o.name)

    def read(self, info: ObjectInfo) -> tuple[ObjectInfo, bytes]:
        with open(self._path(info.name), "rb", buffering=0) as f:
            data = f.readall()
        return dataclasses.replace(info, md5=_b64_md5(data), crc32c=_b64_crc32c(data)), data


def default_gcs_client(project: Optional[str] = None):
    """A google-cloud-storage client; anonymous against STORAGE_EMULATOR_HOST."""
    from google.cloud import storage
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials
        return storage.Client(project=project or os.environ.get("GOOGLE_CLOUD_PROJECT")
                              or "emerald-emulator", credentials=AnonymousCredentials())
    return storage.Client(project=project)


class GCSStorage:
    """One bucket; lists by prefix, fetches one object at a time, retries transient errors."""

    def __init__(self, bucket: str, client=None, retry: RetryPolicy = RetryPolicy(),
                 timeout: float | tuple[float, float] = (10.0, 60.0)):
        self.bucket_name = bucket
        self.client = client if client is not None else default_gcs_client()
        self.bucket = self.client.bucket(bucket)
        self.retry = retry
        self.timeout = timeout

    def uri(self, prefix: str = "") -> str:
        return f"gs://{self.bucket_name}/{prefix}"

    def exists(self, prefix: str) -> bool:
        def first():
            it = self.client.list_blobs(self.bucket_name, prefix=prefix, max_results=1,
                                        retry=None, timeout=self.timeout)
            return any(True for _ in it)
        return self.retry.call(first, f"listing {self.uri(prefix)}")

    def list(self, prefix: str) -> list[ObjectInfo]:
        def listing():
            blobs = self.client.list_blobs(self.bucket_name, prefix=prefix,
                                           retry=None, timeout=self.timeout)
            return [ObjectInfo(b.name, str(b.generation), int(b.size or 0),
                               b.md5_hash, b.crc32c) for b in blobs]
        return sorted(self.retry.call(listing, f"listing {self.uri(prefix)}"),
                      key=lambda o: o.name)

    def read(self, info: ObjectInfo) -> tuple[ObjectInfo, bytes]:
        what = f"object {self.uri(info.name)}#{info.generation}"
        current = [info]

        def fetch():
            from google.api_core.exceptions import NotFound
            cur = current[0]
            blob = self.bucket.blob(cur.name, generation=int(cur.generation) if cur.generation else None)
            try:
                data = blob.download_as_bytes(checksum=None, retry=None, timeout=self.timeout)
            except NotFound:
                # Replaced (new generation) or deleted since the listing: look again.
                fresh = self.bucket.get_blob(cur.name, retry=None, timeout=self.timeout)
                if fresh is None:
                    raise IngestError(f"{what}: deleted during ingestion") from None
                current[0] = ObjectInfo(fresh.name, str(fresh.generation), int(fresh.size or 0),
                                        fresh.md5_hash, fresh.crc32c)
                raise TransientError(f"{what}: replaced by generation {fresh.generation}") from None
            if cur.crc32c and _b64_crc32c(data) != cur.crc32c:
                raise TransientError(f"{what}: crc32c mismatch ({len(data)} bytes received)")
            if not cur.crc32c and cur.md5 and _b64_md5(data) != cur.md5:
                raise TransientError(f"{what}: md5 mismatch ({len(data)} bytes received)")
            return data

        data = self.retry.call(fetch, what)
        cur = current[0]
        return dataclasses.replace(cur, md5=cur.md5 or _b64_md5(data),
                                   crc32c=cur.crc32c or _b64_crc32c(data)), data


def parse_source(source_uri: str) -> tuple[str, str, str]:
    """('gs', bucket, prefix) or ('file', root, '')."""
    if source_uri.startswith("gs://"):
        rest = source_uri[len("gs://"):]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise IngestError(f"no bucket in {source_uri!r}")
        return "gs", bucket, prefix.strip("/")
    if source_uri.startswith("file://"):
        source_uri = source_uri[len("file://"):]
    return "file", source_uri, ""


def open_storage(source_uri: str, client=None):
    """(storage, base prefix) for a local path or gs:// URI."""
    kind, where, prefix = parse_source(source_uri)
    if kind == "gs":
        return GCSStorage(where, client=client), prefix
    return LocalStorage(where), ""


def join_prefix(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/")) + "/"


def night_prefix(base_prefix: str, night: dt.date | str) -> str:
    return join_prefix(base_prefix, TOTO, str(night))


def night_uri(source_uri: str, night: dt.date | str) -> str:
    return source_uri.rstrip("/") + f"/{TOTO}/{night}/"


# --------------------------------------------------------------------------- reports

@dataclasses.dataclass
class TreeReport:
    """One span directory (a night or the corpus)."""
    span_dir: str
    source_uri: str
    listed: int = 0
    ingested: int = 0
    unchanged: int = 0
    quarantined: list = dataclasses.field(default_factory=list)   # [{"object", "reason"}]
    held: int = 0
    skipped: list = dataclasses.field(default_factory=list)       # [{"object", "reason"}]
    span_examples: int = 0
    unknown_labels: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)
    bytes_read: int = 0

    def accounted(self) -> int:
        return self.ingested + self.unchanged + len(self.quarantined) + len(self.skipped)


@dataclasses.dataclass
class IngestReport:
    date: str
    source: str
    span_dir: str
    ingested: int
    unchanged: int
    quarantined: list
    span_examples: int
    held: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    unknown_labels: dict = dataclasses.field(default_factory=dict)
    labels: dict = dataclasses.field(default_factory=dict)
    listed: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    corpus: Optional[dict] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)


# --------------------------------------------------------------------------- atomic dirs

def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _swap_in(tmp: Path, dest: Path) -> None:
    """Puts the finished `tmp` at `dest`, atomically; the old `dest` is removed."""
    if dest.exists():
        if _exchange(tmp, dest):
            shutil.rmtree(tmp)
            return
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)


@contextlib.contextmanager
def _locked(dest: Path):
    """One writer per span directory; cleans temporaries a crashed run left behind."""
    import fcntl
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.parent / f".{dest.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in dest.parent.glob(f".{dest.name}.old-*"):
            if not dest.exists():       # crashed between the two renames: restore
                os.rename(stale, dest)
            else:
                shutil.rmtree(stale, ignore_errors=True)
        yield


def _write_json(path: Path, obj) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())


def load_manifest(span_dir: os.PathLike | str) -> Optional[dict]:
    path = Path(span_dir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        log.warning("unreadable manifest %s: everything will be fetched again", path)
        return None


# --------------------------------------------------------------------------- one tree

@dataclasses.dataclass
class _Plan:
    info: ObjectInfo
    rel: str
    label: Optional[str]
    file: Optional[str]         # label/safe_name inside the span
    status: str                 # what the plan already decided, or "" to fetch and decode
    reason: str = ""


def _plan_objects(objects: Sequence[ObjectInfo], prefix: str, known_labels: Sequence[str],
                  unknown_labels: str) -> list[_Plan]:
    plans, used = [], set()
    for info in objects:
        rel = info.name[len(prefix):]
        if not rel or rel.endswith("/"):
            plans.append(_Plan(info, rel, None, None, STATUS_SKIPPED, "folder placeholder"))
            continue
        if rel == MARKER_NAME:
            plans.append(_Plan(info, rel, None, None, STATUS_SKIPPED, "completion marker"))
            continue
        parts = rel.split("/")
        if len(parts) < 2:
            plans.append(_Plan(info, rel, None, f"_no_label/{safe_name(rel)}", STATUS_QUARANTINED,
                               "not in a label folder"))
            continue
        label, name = parts[0], "/".join(parts[1:])
        if not _SAFE_LABEL.match(label):
            plans.append(_Plan(info, rel, None, f"_bad_label/{safe_name(rel)}", STATUS_QUARANTINED,
                               f"unsafe label folder name {label!r}"))
            continue
        fname = safe_name(name)
        if (label, fname) in used:
            stem, ext = os.path.splitext(fname)
            fname = f"{stem}-{hashlib.sha1(rel.encode()).hexdigest()[:10]}{ext}"
        used.add((label, fname))
        if known_labels and label not in known_labels and unknown_labels == "hold":
            plans.append(_Plan(info, rel, label, f"{label}/{fname}", STATUS_HELD,
                               LABEL_NOT_IN_SCHEMA))
            continue
        plans.append(_Plan(info, rel, label, f"{label}/{fname}", ""))
    return plans


def _bounded_map(fn, items: Iterable, workers: int) -> Iterator:
    """Like Executor.map, in order, but never more than 2*workers items in flight."""
    if workers <= 1:
        for item in items:
            yield fn(item)
        return
    window = 2 * workers
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
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


# --------------------------------------------------------------------------- decoding

def _decode_job(data: bytes, max_pixels: int):
    """images.inspect as (ImageInfo, None) or (None, BadImage reason); picklable either way."""
    from pipeline_src import images
    try:
        return images.inspect(data, max_pixels), None
    except images.BadImage as bad:
        return None, bad.reason


def _decode_worker(conn, max_pixels: int) -> None:
    """A decode process: bytes in, (ImageInfo, reason) or ("error", exception) out; b"" ends it."""
    import signal
    # Not the parent's handlers (Airflow's SIGTERM handler calls on_kill); Ctrl-C is the parent's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        if not data:
            return
        try:
            result = ("ok", _decode_job(data, max_pixels))
        except Exception as exc:  # noqa: BLE001 - re-raised in the parent (MemoryError too)
            result = ("error", exc)
        try:
            conn.send(result)
        except Exception as exc:  # noqa: BLE001 - an unpicklable exception
            conn.send(("error", RuntimeError(f"decode worker: {type(exc).__name__}: {exc}")))


class _Decoder:
    """Runs images.inspect in the calling (fetch) thread, or on `processes` worker processes.

    In-thread is the default: images.inspect spends ~80 % of its time in
    Pillow's decoder with the GIL released, and on the shared 2-core bench
    machine it beat the process pool, whose pipes and forked workers cost
    ~0.6 ms more CPU per image (BENCHMARKS.md). The pool stays as an
    option (`decode_processes` >= 2) for machines where the GIL-held part
    limits threads. There a fetch thread takes an idle worker, writes the bytes
    down its pipe and blocks (GIL released) on the verdict, so in-flight work
    stays bounded by the fetch window. Plain pipes, no executor:
    ProcessPoolExecutor's feeder and manager threads cost more than the
    hashing and writing of the image (measured: over 1 ms per image). The workers
    are forked from the thread that creates the decoder, before any fetch
    thread exists, and only ever decode bytes. Fewer than 2 processes (or no
    fork on this platform): in-thread decoding.
    """

    def __init__(self, processes: int, max_pixels: int):
        import queue
        self.max_pixels = max_pixels
        self.procs: list = []
        self.idle: "queue.Queue" = queue.Queue()
        if processes < 2 or "fork" not in mp.get_all_start_methods():
            return
        ctx = mp.get_context("fork")
        try:
            for _ in range(processes):
                parent_conn, child_conn = ctx.Pipe(duplex=True)
                proc = ctx.Process(target=_decode_worker, args=(child_conn, max_pixels),
                                   name="emerald-decode", daemon=True)
                proc.start()
                child_conn.close()
                self.procs.append((proc, parent_conn))
                self.idle.put(parent_conn)
        except BaseException:
            self.close()
            raise

    def __call__(self, data: bytes, max_pixels: int):
        if not self.procs:
            return _decode_job(data, max_pixels)
        assert max_pixels == self.max_pixels
        if not data:             # b"" stops a worker; an empty file is decided here
            return _decode_job(data, max_pixels)
        conn = self.idle.get()
        try:
            conn.send_bytes(data)
            kind, value = conn.recv()
        except (EOFError, OSError) as exc:
            # the worker died (OOM-killed?): its pipe stays out of the idle queue
            raise RuntimeError(f"a decode worker died: {type(exc).__name__}: {exc}") from None
        self.idle.put(conn)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        for proc, conn in self.procs:
            try:
                conn.send_bytes(b"")
            except (OSError, ValueError):
                pass
        for proc, conn in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
            conn.close()
        self.procs = []

    def __enter__(self) -> "_Decoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ingest_tree(storage, prefix: str, dest: Path, quarantine: Path, *,
                max_pixels: int, known_labels: Sequence[str] = (),
                unknown_labels: str = "ingest", workers: int = 4,
                decode_processes: Optional[int] = None,
                allow_empty: bool = False, context: dict | None = None) -> TreeReport:
    """Mirrors every object under `prefix` into span dir `dest`; idempotent and atomic.

    `workers` threads fetch and fully decode each image with images.inspect;
    `decode_processes` >= 2 moves the decoding to that many forked processes.
    """
    from pipeline_src import images  # noqa: F401 - loaded before the decode workers fork

    dest = Path(dest)
    quarantine = Path(quarantine)
    report = TreeReport(span_dir=str(dest), source_uri=storage.uri(prefix))
    settings = {"max_pixels": int(max_pixels), "decoder_version": DECODER_VERSION}

    with _locked(dest):
        for stale in quarantine.parent.glob(f".{quarantine.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        objects = storage.list(prefix)
        report.listed = len(objects)
        previous = load_manifest(dest) or {}
        prev_entries = {}
        if previous.get("settings") == settings:
            prev_entries = {e["object"]: e for e in previous.get("objects", [])
                            if e.get("status") == STATUS_INGESTED}
        if not objects:
            if previous.get("example_count"):
                raise IngestError(
                    f"{report.source_uri} lists no objects but {dest} holds "
                    f"{previous['example_count']} examples: refusing to empty the span")
            if not allow_empty:
                raise IngestError(f"no objects under {report.source_uri}")
            return report

        plans = _plan_objects(objects, prefix, known_labels, unknown_labels)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        qtmp = quarantine.with_name(f".{quarantine.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        quarantine.parent.mkdir(parents=True, exist_ok=True)
        entries: list[dict] = []
        try:
            def put_quarantine(plan: _Plan, data: bytes, info: ObjectInfo, reason: str):
                target = _within(qtmp, qtmp / plan.file)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                target.with_name(target.name + REASON_SUFFIX).write_text(
                    f"object: {info.name}\ngeneration: {info.generation}\n"
                    f"source: {storage.uri(info.name)}\nreason: {reason}\n")

            checked_dirs: dict[str, Path] = {}

            def write_span_file(rel: str, data: bytes) -> None:
                """tmp/rel, written without following a link; each directory checked once."""
                parent_rel, _, name = rel.rpartition("/")
                parent = checked_dirs.get(parent_rel)
                if parent is None:
                    parent = _within(tmp, tmp / parent_rel if parent_rel else tmp)
                    parent.mkdir(parents=True, exist_ok=True)
                    checked_dirs[parent_rel] = parent = _within(tmp, parent)   # no link now
                if not name or name in (".", ".."):
                    raise IngestError(f"refusing to write {rel!r} in {tmp}")
                try:
                    fd = os.open(parent / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                                 | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        raise IngestError(f"refusing to write through a link: {parent / name}") from None
                    raise
                with open(fd, "wb") as f:
                    f.write(data)

            def work(plan: _Plan) -> dict:
                info = plan.info
                base = {"object": info.name, "generation": info.generation, "size": info.size,
                        "md5": info.md5, "crc32c": info.crc32c, "label": plan.label}
                if plan.status == STATUS_SKIPPED:
                    return {**base, "status": STATUS_SKIPPED, "reason": plan.reason}
                prev = prev_entries.get(info.name)
                if (prev and prev.get("generation") == info.generation
                        and (not info.crc32c or prev.get("crc32c") == info.crc32c)
                        and prev.get("file") == plan.file
                        and (dest / prev["file"]).is_file()):
                    target = _within(tmp, tmp / plan.file)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        os.link(dest / prev["file"], target)
                    except OSError:
                        shutil.copy2(dest / prev["file"], target)
                    return {**prev, "status": STATUS_INGESTED, "_unchanged": True}
                info, data = storage.read(info)
                base.update(md5=info.md5, crc32c=info.crc32c, generation=info.generation,
                            size=len(data))
                if plan.status in (STATUS_QUARANTINED, STATUS_HELD):
                    put_quarantine(plan, data, info, plan.reason)
                    return {**base, "status": plan.status, "reason": plan.reason,
                            "quarantine_file": plan.file, "_bytes": len(data)}
                meta, bad_reason = decoder(data, max_pixels)
                if bad_reason is not None:
                    put_quarantine(plan, data, info, bad_reason)
                    return {**base, "status": STATUS_QUARANTINED, "reason": bad_reason,
                            "quarantine_file": plan.file, "_bytes": len(data)}
                write_span_file(plan.file, data)
                return {**base, "status": STATUS_INGESTED, "file": plan.file,
                        "format": meta.format, "mode": meta.mode,
                        "height": meta.height, "width": meta.width,
                        "exif_orientation": meta.exif_orientation,
                        "capture_time": meta.capture_time.isoformat() if meta.capture_time else None,
                        # not measured at ingestion (ExampleGen computes it): None
                        "brightness": (None if meta.brightness is None
                                       else round(meta.brightness, 6)),
                        "_bytes": len(data)}

            needs_decoding = any(not p.status for p in plans)
            with _Decoder(int(decode_processes or 0) if needs_decoding else 0,
                          max_pixels) as decoder, \
                    contextlib.closing(_bounded_map(work, plans, workers)) as results:
                for entry in results:
                    report.bytes_read += entry.pop("_bytes", 0)
                    unchanged = entry.pop("_unchanged", False)
                    status = entry["status"]
                    if status == STATUS_INGESTED:
                        if unchanged:
                            report.unchanged += 1
                        else:
                            report.ingested += 1
                        report.labels[entry["label"]] = report.labels.get(entry["label"], 0) + 1
                        if known_labels and entry["label"] not in known_labels:
                            report.unknown_labels[entry["label"]] = \
                                report.unknown_labels.get(entry["label"], 0) + 1
                    elif status == STATUS_SKIPPED:
                        report.skipped.append({"object": entry["object"], "reason": entry["reason"]})
                    else:
                        if status == STATUS_HELD:
                            report.held += 1
                        report.quarantined.append({"object": entry["object"], "reason": entry["reason"]})
                    entries.append(entry)

            report.span_examples = report.ingested + report.unchanged
            assert report.accounted() == report.listed, (report.accounted(), report.listed)
            manifest = {
                "version": MANIFEST_VERSION,
                **(context or {}),
                "source_uri": report.source_uri,
                "settings": settings,
                "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "example_count": report.span_examples,
                "counts": {"listed": report.listed, "ingested": report.ingested,
                           "unchanged": report.unchanged,
                           "quarantined": len(report.quarantined) - report.held,
                           "held": report.held, "skipped": len(report.skipped)},
                "labels": report.labels,
                "unknown_labels": report.unknown_labels,
                "objects": entries,
            }
            _write_json(tmp / MANIFEST_NAME, manifest)
            # Quarantine first: the span's manifest is the commit point.
            if report.quarantined:
                _write_json(qtmp / "_quarantine.json",
                            {**(context or {}), "source_uri": report.source_uri,
                             "objects": report.quarantined})
                _swap_in(qtmp, quarantine)
            elif quarantine.exists():
                shutil.rmtree(quarantine)
            _swap_in(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(qtmp, ignore_errors=True)
    return report


# --------------------------------------------------------------------------- a night

def _as_date(night) -> dt.date:
    if isinstance(night, dt.datetime):
        return night.date()
    if isinstance(night, dt.date):
        return night
    try:
        return dt.date.fromisoformat(str(night)[:10])
    except ValueError:
        raise IngestError(f"night {night!r} is not a YYYY-MM-DD date") from None


def default_workers() -> int:
    return max(2, 2 * (os.cpu_count() or 1))


def ingest_night(source_uri: str, night, spans_dir, quarantine_dir, *,
                 include_corpus: bool = True, include_night: bool = True,
                 max_pixels: Optional[int] = None,
                 unknown_labels: str = "ingest", known_labels: Sequence[str] = (),
                 storage=None, workers: Optional[int] = None,
                 decode_processes: Optional[int] = None) -> IngestReport:
    """Brings one of Toto's nights (and the corpus) into `spans_dir`; see the module doc.

    `storage` overrides the one `source_uri` implies (the Airflow hook passes a
    GCSStorage built on its own authenticated client); `source_uri` still
    gives the prefix. `include_night=False` ingests the corpus alone: the
    bootstrap night before Toto's first upload. `workers` threads fetch and
    decode; `decode_processes` >= 2 decodes in that many processes instead.
    """
    from pipeline_src import images

    started = time.monotonic()
    night = _as_date(night)
    if unknown_labels not in UNKNOWN_LABEL_POLICIES:
        raise IngestError(f"unknown_labels {unknown_labels!r} is not one of {UNKNOWN_LABEL_POLICIES}")
    max_pixels = int(max_pixels or images.DEFAULT_MAX_PIXELS)
    workers = int(workers or default_workers())
    if storage is None:
        storage, base = open_storage(source_uri)
    else:
        base = parse_source(source_uri)[2]
    spans_dir, quarantine_dir = Path(spans_dir), Path(quarantine_dir)
    known = tuple(known_labels or ())
    common = dict(max_pixels=max_pixels, known_labels=known, unknown_labels=unknown_labels,
                  workers=workers, decode_processes=decode_processes)

    corpus_report = None
    if include_corpus:
        corpus = ingest_tree(storage, join_prefix(base, CORPUS), spans_dir / CORPUS,
                             quarantine_dir / CORPUS, allow_empty=True,
                             context={"source": CORPUS, "night": CORPUS}, **common)
        corpus_report = dataclasses.asdict(corpus)
    if not include_night:
        return IngestReport(
            date=night.isoformat(), source=join_prefix(base, CORPUS),
            span_dir=str(spans_dir / CORPUS), ingested=0, unchanged=0, quarantined=[],
            span_examples=0, seconds=round(time.monotonic() - started, 3),
            corpus=corpus_report)
    tree = ingest_tree(storage, night_prefix(base, night), spans_dir / TOTO / night.isoformat(),
                       quarantine_dir / night.isoformat(),
                       context={"source": TOTO, "night": night.isoformat()}, **common)
    report = IngestReport(
        date=night.isoformat(), source=tree.source_uri, span_dir=tree.span_dir,
        ingested=tree.ingested, unchanged=tree.unchanged, quarantined=tree.quarantined,
        span_examples=tree.span_examples, held=tree.held, skipped=tree.skipped,
        unknown_labels=tree.unknown_labels, labels=tree.labels, listed=tree.listed,
        bytes_read=tree.bytes_read, seconds=round(time.monotonic() - started, 3),
        corpus=corpus_report)
    log.info("ingested night %s: %d new, %d unchanged, %d quarantined, %d examples in %s",
             report.date, report.ingested, report.unchanged, len(report.quarantined),
             report.span_examples, report.span_dir)
    return report


# --------------------------------------------------------------------------- CLI

def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ingest", help="bring one of Toto's nights (and the corpus) into the spans directory",
        description="Runs the same code as the Airflow IngestNightOperator, without Airflow.")
    p.add_argument("--source", help="local path or gs://bucket/prefix (default: paths.source)")
    p.add_argument("--date", required=True, help="the night, YYYY-MM-DD")
    p.add_argument("--spans", help="spans directory (default: paths.spans)")
    p.add_argument("--quarantine", help="quarantine directory (default: paths.quarantine)")
    p.add_argument("--no-corpus", action="store_true", help="skip the corpus/ tree")
    p.add_argument("--max-pixels", type=int, help="default: ingest.max_pixels")
    p.add_argument("--unknown-labels", choices=UNKNOWN_LABEL_POLICIES,
                   help="default: ingest.unknown_labels")
    p.add_argument("--workers", type=int, help=f"parallel fetch+decode (default {default_workers()})")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    import sys
    from pipeline_src.config import load_config

    cfg = load_config()
    try:
        night = dt.date.fromisoformat(args.date)
    except ValueError:
        print(f"emerald ingest: --date {args.date!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        report = ingest_night(
            args.source or cfg.paths.source, night,
            args.spans or cfg.paths.spans, args.quarantine or cfg.paths.quarantine,
            include_corpus=not args.no_corpus,
            max_pixels=args.max_pixels or cfg.ingest.max_pixels,
            unknown_labels=args.unknown_labels or cfg.ingest.unknown_labels,
            known_labels=cfg.data.labels, workers=args.workers)
    except IngestError as exc:
        print(f"emerald ingest: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(report.to_json())
    else:
        print(f"night {report.date}: {report.ingested} ingested, {report.unchanged} unchanged, "
              f"{len(report.quarantined)} quarantined, {report.span_examples} examples "
              f"in {report.span_dir}")
        for q in report.quarantined:
            print(f"  quarantined {q['object']}: {q['reason']}")
    return 0
