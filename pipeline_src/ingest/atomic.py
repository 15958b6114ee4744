"""Publishing a directory atomically: built in a temporary sibling, synced, swapped in.

A reader sees the old span or the new one, never half of one; a run that
crashed leaves only temporaries, which the next run under the lock removes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A fresh name next to `path` for building its next version (see remove_temporaries)."""
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def remove_temporaries(path: Path) -> None:
    """Removes what a crashed run left of temporary_sibling(path)."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


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


def swap_in(tmp: Path, dest: Path) -> None:
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
def locked(dest: Path):
    """One writer per span directory; cleans temporaries a crashed run left behind."""
    import fcntl
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock_path = dest.parent / f".{dest.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_temporaries(dest)
        for stale in dest.parent.glob(f".{dest.name}.old-*"):
            if not dest.exists():       # crashed between the two renames: restore
                os.rename(stale, dest)
            else:
                shutil.rmtree(stale, ignore_errors=True)
        yield


def sync_filesystem(path: Path) -> None:
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
