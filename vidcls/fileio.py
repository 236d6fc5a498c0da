"""Atomic file writes and a cross-process lock for files that several processes append to."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path

TEMP_MARKER = ".tmp-"


def temp_name(path: Path) -> Path:
    """A hidden sibling of `path` that names its writer (host and pid), so a later run can
    tell a dead writer's leftover from a live one's work in progress."""
    return path.with_name(f".{path.name}{TEMP_MARKER}{socket.gethostname()}-{os.getpid()}")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    temporary = temp_name(path)
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def atomic_write_json(path: Path, value) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2) + "\n").encode())


def remove_dead_temp_files(directory: Path) -> int:
    """Deletes temp files of this host's writers that no longer run (killed mid-write)."""
    host = socket.gethostname()
    removed = 0
    for path in directory.glob(f".*{TEMP_MARKER}*"):
        writer = path.name.rsplit(TEMP_MARKER, 1)[1]
        writer_host, _, pid = writer.rpartition("-")
        if writer_host == host and pid.isdigit() and not _alive(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock on `path.lock` for read-modify-write of shared files."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
