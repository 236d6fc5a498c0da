"""Every temporal model on the same synthetic cache: accuracy, size, cost and speed.

    python benchmarks/models_bench.py [--work-dir DIR] [--epochs 30] [--videos 240] [--precision auto]

Synthetic videos whose classes differ only in the order of frames (grow / shrink,
blue -> red / red -> blue) are embedded once with a random-init ResNet50 at 16 frames and
at 8 frames. Each model trains on the 16-frame cache with the same recipe; the table has
test accuracy, parameters, FLOPs per clip, training samples/s (the median epoch after the
first, which includes tracing) and that training FLOP rate as a fraction of the machine's
matmul peak in the format the run computed in (peak.py). Then frame-count transfer: a transformer trained on 8 frames
starts a 16-frame one (`--init-from`), which is compared with the from-scratch 16-frame
transformer on how many epochs each needs to reach the from-scratch run's best
validation accuracy.

Prints one JSON line; writes models_bench.json and models_bench.md in the work dir.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak

MODELS = ("attention_lstm", "bilstm", "gru", "transformer", "mean_pool")
# Appearance only: these classes differ in the order of frames whose |differences| are the
# same both ways, so the motion stream (the default model input when cached) cannot tell them
# apart; this benchmark asks which models see order.
FEATURES = dict(backbone="resnet50", weights="none", image_size=112, batch_size=64, streams=["appearance"])


def build_caches(work: Path, videos: int) -> dict[int, Path]:
    from vidcls.config import FeatureConfig
    from vidcls.features import extract
    from vidcls.videos import synthesize

    video_dir = work / "videos"
    if not video_dir.is_dir():
        synthesize(video_dir, num_videos=videos, seed=0)
    caches = {}
    for frames in (16, 8):
        caches[frames] = work / f"cache_{frames}"
        extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(caches[frames]), num_frames=frames, **FEATURES))
    return caches


def train_and_score(cache: Path, run_dir: Path, name: str, epochs: int, **extra) -> dict:
    from vidcls.config import ExperimentConfig
    from vidcls.evaluation import evaluate
    from vidcls.training import train

    config = ExperimentConfig().replace({
        "data.cache_dir": str(cache), "model.name": name, "train.epochs": epochs, "train.batch_size": 16,
        # Every run sees every epoch, so epochs-to-accuracy can be compared.
        "train.early_stopping_patience": epochs, **extra})
    result = train(config, run_dir)
    with (run_dir / "history.csv").open() as handle:
        history = list(csv.DictReader(handle))
    with (run_dir / "timing.csv").open() as handle:
        timing = list(csv.DictReader(handle))
    rates = sorted(float(row["samples_per_second"]) for row in timing[1:]) or [float(timing[0]["samples_per_second"])]
    return {
        "model": name,
        "test_accuracy": round(evaluate(run_dir, "test")["accuracy"], 4),
        "best_val_accuracy": result.best_val_accuracy,
        "parameters": result.parameters,
        "mflops_per_clip": round(result.flops_per_clip / 1e6, 2),
        "train_samples_per_s": round(rates[len(rates) // 2], 1),
        "flops_per_clip": result.flops_per_clip,
        "precision": json.loads((run_dir / "env.json").read_text())["precision"],
        "train_seconds": round(result.seconds, 1),
        "val_accuracy_by_epoch": [float(row["val_accuracy"]) for row in history],
    }


def epochs_to_reach(curve: list[float], target: float) -> int | None:
    """1-based epoch at which `curve` first reaches `target`, or None."""
    return next((epoch for epoch, value in enumerate(curve, start=1) if value >= target - 1e-9), None)


def markdown(rows: list[dict], transfer: dict) -> str:
    lines = ["| model | test accuracy | parameters | MFLOPs / clip | precision | train samples/s | fraction of peak |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['test_accuracy']:.3f} | {row['parameters']:,} | "
                     f"{row['mflops_per_clip']:.1f} | {row['precision']} | {row['train_samples_per_s']:.0f} | "
                     f"{row['fraction_of_peak']} |")
    lines += ["", f"Frame-count transfer (transformer, 8 -> 16 frames): target = from-scratch best val accuracy "
              f"{transfer['target_val_accuracy']:.3f}; epochs to reach it: from scratch "
              f"{transfer['epochs_from_scratch']}, from the 8-frame run {transfer['epochs_with_init_from']} "
              f"(test accuracy {transfer['init_from_test_accuracy']:.3f})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", help="where videos, caches and runs go (default: a temporary folder)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--videos", type=int, default=240)
    parser.add_argument("--precision", default="auto", help="train.precision of every run: auto, float32, bfloat16, ...")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vidcls_models_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    caches = build_caches(work, args.videos)
    from vidcls.training import normalise_precision

    precision = {"train.precision": normalise_precision(args.precision)}
    runs = work / f"runs_{args.precision}"
    if runs.exists():  # a finished run is not trained again: a reused work dir would report old timings
        shutil.rmtree(runs)
    rows = [train_and_score(caches[16], runs / name, name, args.epochs, **precision) for name in MODELS]
    scratch = next(row for row in rows if row["model"] == "transformer")
    short = train_and_score(caches[8], runs / "transformer_8", "transformer", args.epochs, **precision)
    warm = train_and_score(caches[16], runs / "transformer_16_from_8", "transformer", args.epochs,
                           **{"model.init_from": str(runs / "transformer_8")}, **precision)
    target = max(scratch["val_accuracy_by_epoch"])
    transfer = {
        "target_val_accuracy": target,
        "epochs_from_scratch": epochs_to_reach(scratch["val_accuracy_by_epoch"], target),
        "epochs_with_init_from": epochs_to_reach(warm["val_accuracy_by_epoch"], target),
        "init_from_test_accuracy": warm["test_accuracy"],
        "eight_frame_test_accuracy": short["test_accuracy"],
    }
    transfer["fewer_epochs"] = (transfer["epochs_with_init_from"] is not None
                                and transfer["epochs_with_init_from"] < transfer["epochs_from_scratch"])
    from peak import fraction_of_peak, measure_in_child, training_gflops

    peak = measure_in_child(dtypes=sorted({row["precision"].removeprefix("mixed_") for row in rows}))["cpu"]
    for row in rows:
        row["fraction_of_peak"] = fraction_of_peak(training_gflops(row["flops_per_clip"], row["train_samples_per_s"]),
                                                   peak, row["precision"])
    mean_pool = next(row for row in rows if row["model"] == "mean_pool")["test_accuracy"]
    report = {
        "benchmark": "models", "videos": args.videos, "epochs": args.epochs, "models": rows, "transfer": transfer,
        "temporal_margin_over_mean_pool": {row["model"]: round(row["test_accuracy"] - mean_pool, 4)
                                           for row in rows if row["model"] != "mean_pool"},
        "matmul_peak_gflops": peak, "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    from vidcls.fileio import atomic_write_bytes, atomic_write_json

    atomic_write_json(work / "models_bench.json", report)
    atomic_write_bytes(work / "models_bench.md", markdown(rows, transfer).encode())
    print(markdown(rows, transfer), file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
