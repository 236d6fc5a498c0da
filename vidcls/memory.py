"""How much memory this process may still use: the machine's, or its container's.

Inside a container `/proc/meminfo` shows the host's memory, not the container's limit
(measured: a 3 GB memory cgroup on a host with tens of GB free; a training run budgeted
from meminfo loaded a 4.6 GB cache and was OOM-killed). The limit lives in the memory
cgroup: `memory.max` and `memory.current` (cgroup v2), `memory.limit_in_bytes` and
`memory.usage_in_bytes` (v1). A limit set on any ancestor cgroup applies too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages, ~2**63 bytes).
UNLIMITED = 2**60


@dataclass(frozen=True)
class AvailableMemory:
    bytes: float  # what this process may still allocate
    source: str  # where the figure comes from, for the log

    def describe(self) -> str:
        return f"{self.bytes / 1e9:.2f} GB available ({self.source})"


def available_memory() -> AvailableMemory:
    """The smaller of the machine's available memory and the memory cgroup's headroom
    (its limit minus what it holds, page cache that can be dropped excepted)."""
    machine = AvailableMemory(_meminfo_available(), "MemAvailable in /proc/meminfo")
    limits = [limit for limit in (_cgroup_v2(), _cgroup_v1()) if limit is not None]
    return min([machine, *limits], key=lambda memory: memory.bytes)


def _meminfo_available() -> float:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path for `controller` (v1), or the unified one (None: v2)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return None


def _ancestors(mount: Path, path: str) -> list[Path]:
    """`mount/path` and its parents up to `mount` that exist. In a cgroup namespace the
    path may not exist under the mount, which then is the process's own cgroup."""
    directory = mount / path.lstrip("/")
    chain = []
    while True:
        if directory.is_dir():
            chain.append(directory)
        if directory == mount or mount not in directory.parents:
            break
        directory = directory.parent
    return chain or ([mount] if mount.is_dir() else [])


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text in ("", "max") else int(text)


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _headroom(chain: list[Path], limit_file: str, usage_file: str, inactive_key: str, label: str
              ) -> AvailableMemory | None:
    limits = [(limit, directory) for directory in chain
              if (limit := _read_number(directory / limit_file)) is not None and limit < UNLIMITED]
    if not limits:
        return None
    limit, where = min(limits, key=lambda pair: pair[0])
    usage = _read_number(chain[0] / usage_file) or 0
    reclaimable = _stat_value(chain[0] / "memory.stat", inactive_key)  # page cache the kernel drops first
    held = max(usage - reclaimable, 0)
    return AvailableMemory(float(max(limit - held, 0)),
                           f"{label} limit {limit / 1e9:.2f} GB in {where / limit_file}, {held / 1e9:.2f} GB in use")


def _cgroup_v2() -> AvailableMemory | None:
    path = _own_cgroup(None)
    if path is None or not (CGROUP_ROOT / "cgroup.controllers").is_file():
        return None
    return _headroom(_ancestors(CGROUP_ROOT, path), "memory.max", "memory.current", "inactive_file", "cgroup v2")


def _cgroup_v1() -> AvailableMemory | None:
    path = _own_cgroup("memory")
    mount = CGROUP_ROOT / "memory"
    if path is None or not mount.is_dir():
        return None
    return _headroom(_ancestors(mount, path), "memory.limit_in_bytes", "memory.usage_in_bytes",
                     "total_inactive_file", "cgroup v1")


def memory_cgroup(limit_bytes: int, name: str):
    """A new memory cgroup under this process's own, limited to `limit_bytes`, for running
    a child process in (tests and benchmarks: how vidcls behaves inside a container).

    Returns `(directory, preexec_fn)`: pass `preexec_fn` to `subprocess` so the child
    starts inside the cgroup; remove `directory` (rmdir) when the child has ended.

    Raises:
        OSError: cgroups cannot be created here (not root, read-only cgroupfs).
    """
    version = 1 if _own_cgroup("memory") is not None and (CGROUP_ROOT / "memory").is_dir() else 2
    if version == 1:
        parent, limit_file = CGROUP_ROOT / "memory" / _own_cgroup("memory").lstrip("/"), "memory.limit_in_bytes"
    else:
        parent, limit_file = CGROUP_ROOT / (_own_cgroup(None) or "/").lstrip("/"), "memory.max"
    directory = parent / name
    directory.mkdir(exist_ok=True)
    try:
        (directory / limit_file).write_text(str(int(limit_bytes)))
        if version == 1 and (directory / "memory.memsw.limit_in_bytes").exists():
            try:  # no escape into swap, as in a container with swap off
                (directory / "memory.memsw.limit_in_bytes").write_text(str(int(limit_bytes)))
            except OSError:
                pass
    except OSError:
        directory.rmdir()
        raise
    procs = directory / "cgroup.procs"

    def enter():
        procs.write_text(str(os.getpid()))

    return directory, enter


def cgroup_peak_bytes(directory: Path) -> int | None:
    """The most memory the cgroup at `directory` ever held (v1 max_usage, v2 memory.peak)."""
    for name in ("memory.max_usage_in_bytes", "memory.peak"):
        value = _read_number(Path(directory) / name)
        if value is not None:
            return value
    return None
