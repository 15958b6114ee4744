"""Where the objects come from: a local directory or a GCS bucket, behind one interface.

A storage lists a prefix (`list`), names it for messages (`uri`) and reads one
object with its checksum verified (`read`). Both storages pickle, so that a
worker process can read with its own copy.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Optional

from .errors import IngestError, SourceError, TransientError
from .retry import RetryPolicy


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

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Regular files under prefix; links are neither followed nor listed. A missing
        prefix lists nothing; a missing root is an IngestError (a mistyped source)."""
        if not self.root.is_dir():
            raise SourceError(f"source directory {self.root} does not exist: check the source "
                              f"(paths.source, EMERALD_SOURCE, --source)")
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

    def list(self, prefix: str) -> list[ObjectInfo]:
        def listing():
            from google.api_core.exceptions import NotFound
            blobs = self.client.list_blobs(self.bucket_name, prefix=prefix,
                                           retry=None, timeout=self.timeout)
            try:
                return [ObjectInfo(b.name, str(b.generation), int(b.size or 0),
                                   b.md5_hash, b.crc32c) for b in blobs]
            except NotFound:     # listing a prefix finds nothing; only a bucket is not found
                raise SourceError(
                    f"bucket {self.bucket_name!r} does not exist (listing {self.uri(prefix)}): "
                    f"check the source (paths.source, EMERALD_SOURCE, --source)") from None
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
