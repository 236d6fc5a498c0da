"""The seed report's multi-GPU table as one command: what each training option adds.

    python benchmarks/gpu_bench.py [--work-dir DIR] [--clips 4096] [--epochs 4] [--devices N]
                                   [--set model.KEY=VALUE ...]

Rows, each a real `vidcls train` in its own process (devices and precision are fixed when
TensorFlow starts), on one synthetic cache (T=16, D=2048, the default attention-BiLSTM):

1. baseline: 1 device, float32, batch 16;
2. all devices: MirroredStrategy over every GPU, float32, global batch 32;
3. + mixed_float16, global batch 64;
4. + XLA.

samples/s is training clips / the median epoch's seconds (epochs after the first, which
traces; as train_bench.py), read from each run's timing.csv; what actually ran (replicas,
precision, XLA) from its env.json, so a row that had to fall back says so. Each row's ratio
is to the baseline of this run, and its training FLOP rate is a fraction of the measured
matmul peak of the devices it used in the format it computed in (peak.py, in a child
process: on GPUs the per-GPU peak x replicas; logical CPU devices share the CPU's peak).

On a machine without GPUs the rows run on `--devices` logical CPU devices (default 2), so
the table checks every path but measures nothing a GPU would: mixed_float16 is emulated on
CPU (~30x slower here: use --clips 512), and XLA is turned off with several CPU replicas
(the row shows it).

Prints one JSON line; writes gpu_bench.json and gpu_bench.md in the work dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # pipeline_bench.build_cache, peak, train_bench.speed

from train_bench import speed  # noqa: E402

FEATURE_DIM = 2048
# (name, all devices, precision, global batch, XLA): each row adds one option to the one above.
ROWS = (
    ("baseline", False, "float32", 16, False),
    ("all_devices", True, "float32", 32, False),
    ("mixed_float16", True, "mixed_float16", 64, False),
    ("xla", True, "mixed_float16", 64, True),
)


def visible_gpus() -> int:
    """GPUs TensorFlow sees, asked in a child process so this one never starts TensorFlow."""
    probe = "import tensorflow as tf; print(len(tf.config.list_physical_devices('GPU')))"
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return int(completed.stdout.strip().splitlines()[-1])


def run_row(cache: Path, run_dir: Path, devices: int, precision: str, batch_size: int, xla: bool, epochs: int,
            overrides: list[str]) -> dict:
    """Trains one row in a fresh process; returns its throughput and what really ran."""
    command = [sys.executable, "-m", "vidcls", "train", "--cache-dir", str(cache), "--run-dir", str(run_dir),
               "--epochs", str(epochs), "--batch-size", str(batch_size), "--precision", precision,
               "--devices", str(devices), "--set", f"train.early_stopping_patience={epochs}"]
    command += ["--xla"] if xla else []
    for override in overrides:
        command += ["--set", override]
    completed = subprocess.run(command, capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"row {run_dir.name} failed ({' '.join(command)}):\n{completed.stderr[-3000:]}")
    with (run_dir / "timing.csv").open() as handle:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    with (run_dir / "history.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    train_clips = len(json.loads((run_dir / "splits.json").read_text())["train"])
    env = json.loads((run_dir / "env.json").read_text())
    return {
        "samples_per_second": speed({"seconds": seconds}, train_clips),
        "replicas": env["replicas"], "precision": env["precision"], "xla": env["xla"],
        "global_batch": batch_size, "final_loss": losses[-1], "notes": env.get("notes", []),
        "flops_per_clip": json.loads((run_dir / "result.json").read_text())["flops_per_clip"],
    }


def markdown(report: dict) -> str:
    lines = [f"Devices: {report['devices']} ({report['device_kind']}); {report['clips']} clips, "
             f"{report['epochs']} epochs; samples/s over epochs 2-{report['epochs']}.", "",
             "| row | replicas | precision | global batch | XLA | samples/s | vs baseline | fraction of peak |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in report["rows"].items():
        lines.append(f"| {name} | {row['replicas']} | {row['precision']} | {row['global_batch']} | "
                     f"{'on' if row['xla'] else 'off'} | {row['samples_per_second']:,} | {row['ratio_vs_baseline']}x | "
                     f"{row['fraction_of_peak']} |")
    notes = sorted({note for row in report["rows"].values() for note in row["notes"]})
    return "\n".join(lines + ([""] + [f"- {note}" for note in notes] if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", help="default: a temporary folder")
    parser.add_argument("--clips", type=int, default=4096, help="clips of the synthetic cache")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per row (the first is not timed)")
    parser.add_argument("--devices", type=int, default=0,
                        help="devices of the multi-device rows: 0 = every GPU, or 2 logical CPU devices without GPUs")
    parser.add_argument("--feature-dim", type=int, default=FEATURE_DIM)
    parser.add_argument("--peak-seconds", type=float, default=2.0, help="timing of each matmul peak (peak.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every row, e.g. model.hidden_units=64")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error(f"--epochs must be at least 2 (the first epoch traces and is not timed); received {args.epochs}")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vidcls_gpu_bench_"))
    work.mkdir(parents=True, exist_ok=True)

    from peak import fraction_of_peak, measure_in_child, training_gflops
    from pipeline_bench import build_cache

    cache = work / "cache"
    if not (cache / "manifest.jsonl").is_file():
        build_cache(cache, args.clips, args.feature_dim)
    gpus = visible_gpus()
    devices = args.devices or gpus or 2
    rows = {}
    for name, all_devices, precision, batch_size, xla in ROWS:
        run_dir = work / "runs" / name
        if run_dir.exists():  # a rerun of the same work dir measures anew
            shutil.rmtree(run_dir)
        rows[name] = run_row(cache, run_dir, devices if all_devices else 1, precision, batch_size, xla, args.epochs,
                             args.set)
    baseline = rows["baseline"]["samples_per_second"]
    peak = measure_in_child(dtypes=sorted({row["precision"].removeprefix("mixed_") for row in rows.values()}),
                            seconds=args.peak_seconds)
    for row in rows.values():
        row["ratio_vs_baseline"] = round(row["samples_per_second"] / baseline, 2)
        device_peak = {dtype: value * row["replicas"] for dtype, value in peak["gpu:0"].items()} if gpus else peak["cpu"]
        row["fraction_of_peak"] = fraction_of_peak(training_gflops(row["flops_per_clip"], row["samples_per_second"]),
                                                   device_peak, row["precision"])
    report = {
        "benchmark": "gpu", "devices": devices, "device_kind": "GPU" if gpus else "logical CPU devices",
        "clips": args.clips, "epochs": args.epochs, "overrides": args.set, "rows": rows, "matmul_peak_gflops": peak,
        "machine": {"cpus": os.cpu_count(), "gpus": gpus, "platform": platform.platform(),
                    "python": platform.python_version()},
    }
    from vidcls.fileio import atomic_write_bytes, atomic_write_json

    atomic_write_json(work / "gpu_bench.json", report)
    atomic_write_bytes(work / "gpu_bench.md", markdown(report).encode())
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
