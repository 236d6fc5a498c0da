"""Training inside a container's memory limit: the default budget reads the cgroup."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from vidcls.memory import available_memory, memory_cgroup

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _build_cache(root: Path, gigabytes: float) -> None:
    spec = importlib.util.spec_from_file_location("pipeline_bench", BENCHMARKS / "pipeline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.build_cache(root, int(gigabytes * 1e9 / (bench.NUM_FRAMES * 2048 * 2)), 2048)


def test_available_memory_names_where_the_figure_comes_from():
    memory = available_memory()
    assert memory.bytes > 0
    assert "MemAvailable" in memory.source or "cgroup" in memory.source


@pytest.mark.slow
def test_default_training_fits_inside_a_memory_cgroup(tmp_path):
    """A 0.6 GB cache in a 1 GB cgroup, default flags. Budgeted from /proc/meminfo (the
    host's memory) the features were loaded into RAM and the run was OOM-killed (exit
    137; benchmarks/pipeline_bench.py --cgroup-gb 1 --cache-gb 0.6 shows both)."""
    try:
        directory, enter = memory_cgroup(int(1.0e9), f"vidcls_test_{tmp_path.name}")
    except OSError as error:
        pytest.skip(f"cannot create a memory cgroup here ({error}); needs root and a writable cgroupfs")
    try:
        _build_cache(tmp_path / "cache", 0.6)
        completed = subprocess.run(
            [sys.executable, "-m", "vidcls", "train", "--cache-dir", str(tmp_path / "cache"), "--run-dir",
             str(tmp_path / "run"), "--epochs", "1", "--batch-size", "64"],
            capture_output=True, text=True, preexec_fn=enter)
    finally:
        directory.rmdir()
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "cgroup v1 limit 1.00 GB" in completed.stderr or "cgroup v2 limit 1.00 GB" in completed.stderr
    assert "streaming them from" in completed.stderr
    assert (tmp_path / "run" / "result.json").is_file()
