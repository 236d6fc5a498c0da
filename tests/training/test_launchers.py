"""The Slurm launcher builds one TF_CONFIG per task from the job's nodes (no Slurm here:
`scontrol`, `srun` and `vidcls` are stand-ins that print what they receive)."""

import json
import os
import subprocess
from pathlib import Path

LAUNCHER = Path(__file__).resolve().parents[2] / "launchers" / "slurm_train.sbatch"


def _stand_in(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_slurm_launcher_gives_each_task_its_worker_index(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in(bin_dir, "scontrol", 'printf "gpu-node-01\\ngpu-node-02\\n"\n')
    # srun: the job step on both nodes, as Slurm would start it (task ids 0 and 1).
    _stand_in(bin_dir, "srun", 'for task in 0 1; do SLURM_PROCID=$task "$@"; done\n')
    _stand_in(bin_dir, "vidcls", 'echo "$TF_CONFIG|$*"\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-node-[01-02]"}
    completed = subprocess.run(["bash", str(LAUNCHER), "--cache-dir", "/shared/c", "--run-dir", "/shared/r"],
                               capture_output=True, text=True, env=env, check=True)
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 2
    for index, line in enumerate(lines):
        tf_config, arguments = line.split("|")
        assert json.loads(tf_config) == {"cluster": {"worker": ["gpu-node-01:23456", "gpu-node-02:23456"]},
                                         "task": {"type": "worker", "index": index}}
        assert arguments == "train --cache-dir /shared/c --run-dir /shared/r"
