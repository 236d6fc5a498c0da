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


def drop_partial_last_line(path: Path) -> None:
    """Removes a line left unfinished by a killed run (an append-only log such as the
    cache manifest or timing.csv), so the next append starts on a line of its own."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write_bytes(path, data[: data.rfind(b"\n") + 1])


@contextlib.contextmanager
def atomic_writer(path: Path, newline: str | None = None):
    """A text file handle whose contents replace `path` only when the block ends without
    an error: a kill or an exception midway leaves the old file (or none), never half a file."""
    temporary = temp_name(path)
    try:
        with temporary.open("w", newline=newline) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


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


def claim_directory(out: Path, spec_name: str, spec: dict, what: str, differs: str = "",
                    hint: str = "resume it with the same settings or choose another --out-dir") -> None:
    """Makes `out` the home of one `what` (a sweep, a cross-validation) described by
    `spec`, kept in `out/spec_name`: a new or empty directory is claimed; one holding the
    same spec is resumed; one holding another spec, or other files, is refused.

    Raises:
        VidclsError: naming the keys of `spec` that differ (`differs`, e.g. " from FILE",
            says what the new spec came from).
    """
    from vidcls.errors import VidclsError

    out.mkdir(parents=True, exist_ok=True)
    spec = json.loads(json.dumps(spec, default=str))
    path = out / spec_name
    if path.is_file():
        held = json.loads(path.read_text())
        if held != spec:
            changed = sorted(key for key in set(held) | set(spec) if held.get(key) != spec.get(key))
            raise VidclsError(f"{out} holds another {what} (it differs{differs} in {changed}); {hint}")
    elif any(out.iterdir()):
        raise VidclsError(f"--out-dir {out} is not empty and holds no {what}; choose an empty or new directory")
    else:
        atomic_write_json(path, spec)


def csv_number(text: str | None) -> float | None:
    """A number of a CSV cell, or None for an empty, missing or non-numeric one (CSVLogger
    writes val_* as NA in a run without validation)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
