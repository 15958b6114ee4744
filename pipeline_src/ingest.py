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

A span directory is built in a temporary sibling, synced to disk, and swapped
in with one atomic rename (``renameat2(RENAME_EXCHANGE)`` where the kernel has
it), so a reader sees the old night or the new one, never half of one, and
rerunning a night is idempotent. Objects are fetched, decoded and written by
this process together with worker interpreters (``WorkerPool``, one per extra
CPU) when a tree is large enough to repay their start-up. No Airflow import happens here: the Airflow plugin
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
import os
import random
import re
import shutil
import stat
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
    """A directory; generations are mtime_ns-size, the crc32c is computed on read."""

    threads_per_process = 1      # reading a local file barely waits: one thread per CPU

    def __init__(self, root: os.PathLike | str):
        self.root = Path(root).expanduser().resolve()

    def uri(self, prefix: str = "") -> str:
        return str(self.root / prefix) if prefix else str(self.root)

    def exists(self, prefix: str) -> bool:
        return (self.root / prefix).is_dir()

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Regular files under prefix; links are neither followed nor listed."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        skip = len(str(self.root)) + 1
        out, folders = [], [str(base)]
        while folders:
            try:
                entries = list(os.scandir(folders.pop()))
            except FileNotFoundError:
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    out.append(ObjectInfo(entry.path[skip:].replace(os.sep, "/"),
                                          f"{st.st_mtime_ns}-{st.st_size}", st.st_size))
        return sorted(out, key=lambda o: o.name)

    def read(self, info: ObjectInfo) -> tuple[ObjectInfo, bytes]:
        # Names come from list() (a walk that follows no link): a lexical check and
        # O_NOFOLLOW suffice, without resolving every path again.
        parts = info.name.split("/")
        if info.name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise IngestError(f"refusing to read {info.name!r} outside {self.root}")
        fd = os.open(os.path.join(self.root, info.name),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb", buffering=0) as f:
            data = f.readall()
        return dataclasses.replace(info, crc32c=_b64_crc32c(data)), data


def default_gcs_client(project: Optional[str] = None):
    """A google-cloud-storage client; anonymous against STORAGE_EMULATOR_HOST."""
    from google.cloud import storage
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials
        return storage.Client(project=project or os.environ.get("GOOGLE_CLOUD_PROJECT")
                              or "emerald-emulator", credentials=AnonymousCredentials())
    return storage.Client(project=project)


class GCSStorage:
    """One bucket; lists by prefix, fetches one object at a time, retries transient errors.

    Pickles as bucket, project, credentials and endpoint (never the client's
    connections): a worker process builds its own client from them.
    """

    threads_per_process = 4      # a download mostly waits on the network

    def __init__(self, bucket: str, client=None, retry: RetryPolicy = RetryPolicy(),
                 timeout: float | tuple[float, float] = (10.0, 60.0)):
        self.bucket_name = bucket
        self.client = client if client is not None else default_gcs_client()
        self.bucket = self.client.bucket(bucket)
        self.retry = retry
        self.timeout = timeout

    def __getstate__(self) -> dict:
        connection = getattr(self.client, "_connection", None)
        return {"bucket_name": self.bucket_name, "retry": self.retry, "timeout": self.timeout,
                "project": self.client.project,
                "credentials": getattr(self.client, "_credentials", None),
                "api_endpoint": getattr(connection, "API_BASE_URL", None)}

    def __setstate__(self, state: dict) -> None:
        from google.cloud import storage
        options = None
        if state["api_endpoint"] and not os.environ.get("STORAGE_EMULATOR_HOST"):
            options = {"api_endpoint": state["api_endpoint"]}
        client = storage.Client(project=state["project"], credentials=state["credentials"],
                                client_options=options)
        self.__init__(state["bucket_name"], client=client, retry=state["retry"],
                      timeout=state["timeout"])

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
        return dataclasses.replace(cur, crc32c=cur.crc32c or _b64_crc32c(data)), data


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
    worker_processes: int = 0           # started besides this one (0: this one alone)
    worker_peak_mb: list = dataclasses.field(default_factory=list)
    worker_objects: list = dataclasses.field(default_factory=list)   # fetched by each worker

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


def _sync_filesystem(path: Path) -> None:
    """Flushes the files under `path` to disk before the rename that publishes them.

    The rename is atomic, but without this a crash soon after it could leave
    the new span with empty image files (delayed allocation). One syncfs(2)
    for the whole filesystem costs less than an fsync per file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        import ctypes
        if ctypes.CDLL(None, use_errno=True).syncfs(fd) != 0:
            os.sync()
    except (OSError, AttributeError):
        os.sync()
    finally:
        os.close(fd)


def _write_json(path: Path, obj, sync: bool = True) -> None:
    with open(path, "w") as f:
        json.dump(obj, f)     # no indent: the C encoder, 3x faster on a big night
        if sync:
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


# --------------------------------------------------------------------------- planning

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


# --------------------------------------------------------------------------- one object

def _entry_base(plan: _Plan) -> dict:
    info = plan.info
    return {"object": info.name, "generation": info.generation, "size": info.size,
            "md5": info.md5, "crc32c": info.crc32c, "label": plan.label}


def _size_of(path: Path) -> Optional[int]:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _settle_without_fetching(plan: _Plan, prev_entries: dict, dest: Path,
                             writer: "_ObjectWriter") -> Optional[dict]:
    """The entry of an object decided without reading it (skipped, or unchanged: linked from
    the current span), or None when it has to be fetched."""
    if plan.status == STATUS_SKIPPED:
        return {**_entry_base(plan), "status": STATUS_SKIPPED, "reason": plan.reason}
    info = plan.info
    prev = prev_entries.get(info.name)
    if (prev and prev.get("generation") == info.generation
            and (not info.crc32c or prev.get("crc32c") == info.crc32c)
            and prev.get("file") == plan.file
            and _size_of(dest / prev["file"]) == prev.get("size")):   # not lost or emptied
        writer.link_unchanged(plan.file, dest / prev["file"])
        return {**prev, "status": STATUS_INGESTED, "_unchanged": True}
    return None


class _ObjectWriter:
    """Fetches one planned object, decodes it fully and files it: span or quarantine.

    Picklable, storage included (GCSStorage sends its project and credentials,
    never its connections), so the worker processes run exactly the code the
    in-process threads run, writing into the same temporary directories.
    """

    def __init__(self, storage, tmp: Path, qtmp: Path, max_pixels: int):
        self.storage, self.tmp, self.qtmp, self.max_pixels = storage, tmp, qtmp, max_pixels
        self._dirs: dict[str, Path] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dirs": {}}

    def _span_dir(self, parent_rel: str) -> Path:
        """tmp/parent_rel, created and checked (no link on the way) once per directory."""
        parent = self._dirs.get(parent_rel)
        if parent is None:
            parent = _within(self.tmp, self.tmp / parent_rel if parent_rel else self.tmp)
            parent.mkdir(parents=True, exist_ok=True)
            self._dirs[parent_rel] = parent = _within(self.tmp, parent)
        return parent

    def _span_path(self, rel: str) -> Path:
        parent_rel, _, name = rel.rpartition("/")
        if not name or name in (".", ".."):
            raise IngestError(f"refusing to write {rel!r} in {self.tmp}")
        return self._span_dir(parent_rel) / name

    def link_unchanged(self, rel: str, current: Path) -> None:
        """The current span's file, unchanged at the source, into the new span (no copy)."""
        target = self._span_path(rel)
        try:
            os.link(current, target, follow_symlinks=False)
        except OSError:
            shutil.copy2(current, target, follow_symlinks=False)

    def _write_span_file(self, rel: str, data: bytes) -> None:
        path = self._span_path(rel)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise IngestError(f"refusing to write through a link: {path}") from None
            raise
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _quarantine(self, plan: _Plan, data: bytes, info: ObjectInfo, reason: str) -> None:
        target = _within(self.qtmp, self.qtmp / plan.file)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.with_name(target.name + REASON_SUFFIX).write_text(
            f"object: {info.name}\ngeneration: {info.generation}\n"
            f"source: {self.storage.uri(info.name)}\nreason: {reason}\n")

    def __call__(self, plan: _Plan) -> dict:
        from pipeline_src import images
        info, data = self.storage.read(plan.info)
        entry = {**_entry_base(plan), "md5": info.md5, "crc32c": info.crc32c,
                 "generation": info.generation, "size": len(data), "_bytes": len(data)}
        if plan.status in (STATUS_QUARANTINED, STATUS_HELD):
            self._quarantine(plan, data, info, plan.reason)
            return {**entry, "status": plan.status, "reason": plan.reason,
                    "quarantine_file": plan.file}
        try:
            meta = images.inspect(data, self.max_pixels)
        except images.BadImage as bad:
            self._quarantine(plan, data, info, bad.reason)
            return {**entry, "status": STATUS_QUARANTINED, "reason": bad.reason,
                    "quarantine_file": plan.file}
        self._write_span_file(plan.file, data)
        return {**entry, "status": STATUS_INGESTED, "file": plan.file,
                "format": meta.format, "mode": meta.mode,
                "height": meta.height, "width": meta.width,
                "exif_orientation": meta.exif_orientation,
                "capture_time": meta.capture_time.isoformat() if meta.capture_time else None,
                "brightness": None}   # not measured at ingestion (ExampleGen computes it)


# --------------------------------------------------------------------------- worker processes

PROCESS_MIN_OBJECTS = 64      # fewer objects to fetch: threads in this process
PROCESS_CHUNK = 16            # objects handed to a worker at a time


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers() -> int:
    """Fetch threads when everything runs in this process."""
    return max(2, 2 * usable_cpus())


class WorkerPool:
    """This process plus `processes - 1` fresh interpreters (`python -m
    pipeline_src.ingest_worker`) fetching, decoding and filing objects, so
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
        return [sys.executable, "-S", "-m", "pipeline_src.ingest_worker"]

    def __init__(self, processes: int, explicit: bool = False):
        self.processes = max(1, int(processes))
        self.explicit = explicit          # chosen by the caller: used for any number of objects
        self.procs: list = []
        self.stats: list[dict] = []

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
        package_root = str(Path(__file__).resolve().parent.parent)
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

    def run(self, writer: _ObjectWriter, plans: Sequence[_Plan], threads: int) -> list[dict]:
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
                for i, entry in zip(chunk, _bounded_map(writer, [plans[i] for i in chunk],
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


def _transferable(writer: _ObjectWriter) -> bool:
    import pickle
    try:
        pickle.dumps(writer)
        return True
    except Exception as exc:  # noqa: BLE001 - a storage that cannot travel: threads instead
        log.info("ingesting in this process: %s cannot be sent to a worker (%s)",
                 type(writer.storage).__name__, exc)
        return False


# --------------------------------------------------------------------------- one tree

def ingest_tree(storage, prefix: str, dest: Path, quarantine: Path, *,
                max_pixels: int, known_labels: Sequence[str], unknown_labels: str,
                workers: Optional[int] = None, pool: Optional[WorkerPool] = None,
                release_pool: bool = False, allow_empty: bool = False,
                context: Optional[dict] = None) -> TreeReport:
    """Mirrors storage[prefix] into `dest` (atomically), quarantining bad files.

    Objects to fetch are shared between this process and `pool`'s workers when
    there is a pool and at least PROCESS_MIN_OBJECTS of them (a pool of
    explicitly chosen size: any number), else fetched by `workers` threads
    here. Unchanged objects are hard-linked from the current span, not read.
    """
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
        try:
            writer = _ObjectWriter(storage, tmp, qtmp, max_pixels)
            entries: list = [_settle_without_fetching(p, prev_entries, dest, writer)
                             for p in plans]
            fetch = [i for i, e in enumerate(entries) if e is None]
            to_fetch = [plans[i] for i in fetch]
            use_pool = (pool is not None and to_fetch and
                        (len(to_fetch) >= PROCESS_MIN_OBJECTS or pool.explicit)
                        and _transferable(writer))
            if use_pool:
                fetched = pool.run(writer, to_fetch,
                                   threads=workers or getattr(storage, "threads_per_process", 1))
                if release_pool:
                    pool.release()
            else:
                fetched = list(_bounded_map(writer, to_fetch, workers or default_workers()))
            for i, entry in zip(fetch, fetched):
                entries[i] = entry

            for entry in entries:
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
            _write_json(tmp / MANIFEST_NAME, manifest, sync=False)
            _sync_filesystem(tmp)                           # the images and the manifest
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


def ingest_night(source_uri: str, night, spans_dir, quarantine_dir, *,
                 include_corpus: bool = True, include_night: bool = True,
                 max_pixels: Optional[int] = None,
                 unknown_labels: str = "ingest", known_labels: Sequence[str] = (),
                 storage=None, processes: Optional[int] = None,
                 workers: Optional[int] = None) -> IngestReport:
    """Brings one of Toto's nights (and the corpus) into `spans_dir`; see the module doc.

    `storage` overrides the one `source_uri` implies (the Airflow hook passes a
    GCSStorage built on its own authenticated client); `source_uri` still
    gives the prefix. `include_night=False` ingests the corpus alone: the
    bootstrap night before Toto's first upload.

    `processes`: processes that fetch, decode and write, this one included
    (None or 0: one per usable CPU, for trees with at least
    PROCESS_MIN_OBJECTS objects to fetch; 1: this one alone; N >= 2: N
    whatever the size). `workers`: fetch threads per process (default: the
    storage's `threads_per_process`), or 2 x CPUs when this process works alone.
    """
    from pipeline_src import images

    started = time.monotonic()
    night = _as_date(night)
    if unknown_labels not in UNKNOWN_LABEL_POLICIES:
        raise IngestError(f"unknown_labels {unknown_labels!r} is not one of {UNKNOWN_LABEL_POLICIES}")
    max_pixels = int(max_pixels or images.DEFAULT_MAX_PIXELS)
    if storage is None:
        storage, base = open_storage(source_uri)
    else:
        base = parse_source(source_uri)[2]
    spans_dir, quarantine_dir = Path(spans_dir), Path(quarantine_dir)
    explicit = bool(processes) and int(processes) >= 2
    count = int(processes) if processes else usable_cpus()
    with WorkerPool(count, explicit=explicit) as pool:
        report = _ingest_trees(storage, base, night, spans_dir, quarantine_dir,
                               include_corpus=include_corpus, include_night=include_night,
                               max_pixels=max_pixels, known_labels=tuple(known_labels or ()),
                               unknown_labels=unknown_labels, workers=workers,
                               pool=pool if count >= 2 else None)
    report.worker_processes = len(pool.stats)
    report.worker_peak_mb = [round(s["peak_rss_kb"] / 1024, 1) for s in pool.stats]
    report.worker_objects = [s["objects"] for s in pool.stats]
    report.seconds = round(time.monotonic() - started, 3)
    log.info("ingested night %s: %d new, %d unchanged, %d quarantined, %d examples in %s "
             "(%.1f s, %s)", report.date, report.ingested, report.unchanged,
             len(report.quarantined), report.span_examples, report.span_dir, report.seconds,
             f"with {report.worker_processes} worker processes, peak {report.worker_peak_mb} MiB"
             if report.worker_processes else "in this process alone")
    return report


def _ingest_trees(storage, base: str, night: dt.date, spans_dir: Path, quarantine_dir: Path,
                  *, include_corpus: bool, include_night: bool, **common) -> IngestReport:
    """The corpus tree, then the night's."""
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
            span_examples=0, corpus=corpus_report)
    tree = ingest_tree(storage, night_prefix(base, night), spans_dir / TOTO / night.isoformat(),
                       quarantine_dir / night.isoformat(), release_pool=True,
                       context={"source": TOTO, "night": night.isoformat()}, **common)
    report = IngestReport(
        date=night.isoformat(), source=tree.source_uri, span_dir=tree.span_dir,
        ingested=tree.ingested, unchanged=tree.unchanged, quarantined=tree.quarantined,
        span_examples=tree.span_examples, held=tree.held, skipped=tree.skipped,
        unknown_labels=tree.unknown_labels, labels=tree.labels, listed=tree.listed,
        bytes_read=tree.bytes_read, corpus=corpus_report)
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
    p.add_argument("--processes", type=int,
                   help="processes doing the work, this one included (default: one per CPU "
                        f"for trees of {PROCESS_MIN_OBJECTS}+ objects to fetch; 1: this one)")
    p.add_argument("--workers", type=int, help="fetch threads per process")
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
            known_labels=cfg.data.labels, workers=args.workers,
            processes=args.processes if args.processes is not None else cfg.ingest.processes)
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
