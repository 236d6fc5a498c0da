"""env.json: what a run ran on (versions, commit, devices, strategy)."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numpy as np

from vidcls import __version__
from vidcls.fileio import atomic_write_json
from vidcls.run_dir import RunDir


def write_env(run: RunDir, runtime) -> None:
    import keras
    import tensorflow as tf

    atomic_write_json(run.env_path, {
        "vidcls": __version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "devices": [device.name for device in tf.config.list_logical_devices()],
        **runtime.describe(),
    })


def git_commit() -> str | None:
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                   timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None
