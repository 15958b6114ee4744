"""The layout's fixed names and file names made safe.

Planning names every file before anything is fetched, and the writer checks
again that each path stays inside its directory: both use the rules here.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import re
import unicodedata
from pathlib import Path

from pipeline_src.names import CORPUS_DIR as CORPUS, TOTO_DIR as TOTO  # noqa: F401
from pipeline_src.names import UPLOADS_COMPLETE_MARKER as MARKER_NAME  # noqa: F401

from .errors import IngestError

REASON_SUFFIX = ".reason.txt"

_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


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
    # A base replaced by a symlink after this cached resolve makes within()
    # refuse (the candidate resolves elsewhere), never wrongly accept.
    return os.path.realpath(base)


def within(base: Path, candidate: Path) -> Path:
    """Raises unless `candidate` stays inside `base` (belt and braces after safe_name)."""
    real_base = _resolved_base(str(base))
    resolved = os.path.realpath(candidate)
    if os.path.commonpath([real_base, resolved]) != real_base:
        raise IngestError(f"refusing to write outside {base}: {candidate}")
    return candidate


def join_prefix(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/")) + "/"


def night_prefix(base_prefix: str, night: dt.date | str) -> str:
    return join_prefix(base_prefix, TOTO, str(night))
