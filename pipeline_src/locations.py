"""Where small state files live: a local folder, or a gs:// prefix, behind pathlib's methods.

Reports, alert markers and late-upload records are a few small JSON and HTML
files per night. On Cloud Composer they must be in a bucket, where every pod
and the webserver can read them; locally they are a folder. `location()` gives
a `pathlib.Path` for a folder and a universal-pathlib `UPath` (fsspec's gcsfs,
which honours STORAGE_EMULATOR_HOST) for gs://: both have `/`, `read_text`,
`write_text`, `exists`, `iterdir` and `mkdir`, so callers write one code path.
TF and TFX artifacts go through tf.io.gfile instead; this module imports
neither, so the webserver and the DAG file stay light.
"""
from __future__ import annotations

import os
from pathlib import Path


def is_remote(uri: "str | os.PathLike") -> bool:
    return "://" in str(uri)


def location(uri: "str | os.PathLike") -> Path:
    """A Path for a local folder or file; a UPath (a Path subclass) for gs://."""
    if isinstance(uri, Path) and is_remote(uri):
        return uri                     # already a location: str(Path("gs://b")) loses a '/'
    text = os.fspath(uri)
    if text.startswith("gs://"):
        from upath import UPath        # here: only a gs:// location pays for fsspec

        # Against an emulator, anonymous (as ingest.sources' client): gcsfs would otherwise
        # look for credentials and probe the GCE metadata server (169.254.169.254).
        anonymous = {"token": "anon"} if os.environ.get("STORAGE_EMULATOR_HOST") else {}
        return UPath(text, **anonymous)
    if is_remote(text):
        raise ValueError(f"{text!r}: only local paths and gs:// are supported")
    return Path(text)


def write_text_atomically(path: Path, text: str) -> None:
    """Readers see the old content or the new, never half: locally a temporary file
    renamed over the old; on GCS a single upload (an object appears whole)."""
    path = location(path)
    if is_remote(path):
        path.write_text(text)
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
