"""Training speed: the seed report's recipe against vidcls's, same model and data.

    python benchmarks/train_bench.py [--work-dir DIR] [--clips 2048] [--videos 240]

Baseline (the seed report): float32, batch 16, `model.fit` on NumPy arrays, no XLA,
Adam 1e-3, the attention-BiLSTM with a rolled loop (keras.layers.LSTM). vidcls: `vidcls
train` with its defaults (tf.data from the cache, AdamW with warmup and cosine decay,
precision auto, the loop unrolled on CPU, batch 32), the same in float32 (what `auto`
adds), and with `--batch-size 128`.

Two measurements, each for all recipes in the same run:
1. samples/s of the median of epochs 2-8 on a synthetic feature cache of `--clips` clips
   (T=16, D=2048), so that per-epoch overheads do not dominate;
2. seconds of training (epochs summed, validation included) until the validation accuracy
   first reaches 0.9 on the synthetic videos (random-init ResNet50 features, classes that
   differ only in time).

Each recipe's training FLOP rate (3x the forward FLOPs per clip x samples/s) is printed
as a fraction of the machine's matmul peak in the format it computes in (peak.py).

Prints one JSON line.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_ACCURACY = 0.9
SPEED_EPOCHS = 8
ACCURACY_EPOCHS = 40
RECIPES = {"vidcls_default": {}, "vidcls_float32": {"train.precision": "float32"}, "vidcls_batch_128": {"train.batch_size": 128}}


def baseline(cache_dir: Path, epochs: int, split_from: Path | None = None) -> dict:
    """The seed report's loop: everything in float32 NumPy arrays, `fit(batch_size=16)`."""
    import keras
    import numpy as np

    from vidcls.config import ModelConfig
    from vidcls.data import load_labelled_features, stratified_split
    from vidcls.features import FeatureCache
    from vidcls.models import adapt_normalization, build_model

    cache = FeatureCache(cache_dir)
    names = sorted({entry["label"] for entry in cache.entries})
    if split_from:  # the same clips as the vidcls run
        splits = json.loads((split_from / "splits.json").read_text())
    else:
        splits = stratified_split([e["clip_id"] for e in cache.entries], [e["label"] for e in cache.entries],
                                  0.15, 0.15, seed=42)
    train, val = (load_labelled_features(cache, splits[name], names) for name in ("train", "val"))
    keras.utils.set_random_seed(42)
    model = build_model(ModelConfig(), num_classes=len(names), feature_dim=cache.feature_shape[1],
                        num_frames=cache.feature_shape[0])
    adapt_normalization(model, train.features)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    history = model.fit([train.features.astype(np.float32), train.masks], np.eye(len(names))[train.labels[:, 0]],
                        validation_data=([val.features.astype(np.float32), val.masks], np.eye(len(names))[val.labels[:, 0]]),
                        batch_size=16, epochs=epochs, verbose=0, callbacks=[timer])
    return {"seconds": timer.seconds, "val_accuracy": history.history["val_accuracy"], "train_clips": train.num_clips}


class EpochTimer:
    """Seconds of each epoch, validation included (a Keras callback)."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._started = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._started)

        return _Timer()


def vidcls_run(cache_dir: Path, run_dir: Path, epochs: int, updates: dict) -> dict:
    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    config = ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "train.epochs": epochs,
                                         "train.early_stopping_patience": epochs, **updates})
    result = train(config, run_dir)
    with (run_dir / "timing.csv").open() as handle:
        seconds = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    with (run_dir / "history.csv").open() as handle:
        accuracy = [float(row["val_accuracy"]) for row in csv.DictReader(handle)]
    precision = json.loads((run_dir / "env.json").read_text())["precision"]
    return {"seconds": seconds, "val_accuracy": accuracy, "precision": precision, "flops_per_clip": result.flops_per_clip}


def speed(result: dict, train_clips: int) -> float:
    """Clips per second of the median epoch after the first (which traces); the median,
    because single epochs on a shared machine vary."""
    later = sorted(result["seconds"][1:])
    return round(train_clips / later[len(later) // 2], 1)


def time_to_target(result: dict) -> float | None:
    elapsed = 0.0
    for seconds, accuracy in zip(result["seconds"], result["val_accuracy"]):
        elapsed += seconds
        if accuracy >= TARGET_ACCURACY:
            return round(elapsed, 1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", help="default: a temporary folder")
    parser.add_argument("--clips", type=int, default=2048, help="clips of the speed cache")
    parser.add_argument("--videos", type=int, default=240, help="synthetic videos of the accuracy run")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vidcls_train_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    for stale in ("speed_runs", "accuracy_runs"):  # a finished run is not trained again: its old timings would be reported
        if (work / stale).is_dir():
            print(f"train_bench: removing the previous runs in {work / stale}", file=sys.stderr)
            shutil.rmtree(work / stale)

    from pipeline_bench import build_cache

    speed_cache = work / "speed_cache"
    if not (speed_cache / "manifest.jsonl").is_file():
        build_cache(speed_cache, args.clips, 2048)
    base = baseline(speed_cache, SPEED_EPOCHS)
    rates = {"baseline": speed(base, base["train_clips"])}
    precisions = {"baseline": "float32"}
    for name, updates in RECIPES.items():
        result = vidcls_run(speed_cache, work / "speed_runs" / name, SPEED_EPOCHS, updates)
        rates[name] = speed(result, base["train_clips"])
        precisions[name], flops_per_clip = result["precision"], result["flops_per_clip"]

    from peak import TRAINING_FLOPS_PER_FORWARD, fraction_of_peak, measure, training_gflops

    formats = {precision.removeprefix("mixed_") for precision in precisions.values()}
    peak = measure(dtypes=sorted(formats))["cpu"]
    fractions = {name: fraction_of_peak(training_gflops(flops_per_clip, rate), peak, precisions[name])
                 for name, rate in rates.items()}

    from vidcls.config import FeatureConfig
    from vidcls.features import extract
    from vidcls.videos import synthesize

    videos, video_cache = work / "videos", work / "video_cache"
    if not videos.is_dir():
        synthesize(videos, num_videos=args.videos, seed=0)
    # Appearance only: these classes differ in colour order, and the baseline reads every
    # cached stream while vidcls's default reads only a motion stream when there is one.
    extract(FeatureConfig(data_dir=str(videos), cache_dir=str(video_cache), backbone="resnet50", weights="none",
                          num_frames=16, image_size=112, batch_size=64, streams=["appearance"]))
    runs = {name: vidcls_run(video_cache, work / "accuracy_runs" / name, ACCURACY_EPOCHS, updates)
            for name, updates in RECIPES.items()}
    runs["baseline"] = baseline(video_cache, ACCURACY_EPOCHS, split_from=work / "accuracy_runs" / "vidcls_default")
    to_target = {name: time_to_target(result) for name, result in runs.items()}
    report = {
        "benchmark": "train", "model": "attention_lstm", "feature_shape": [16, 2048],
        "samples_per_second": rates,
        "ratio_vs_baseline": {name: round(rate / rates["baseline"], 2) for name, rate in rates.items() if name != "baseline"},
        "target_ratio": 3.0,
        "precision": precisions, "training_gflop_per_clip": round(TRAINING_FLOPS_PER_FORWARD * flops_per_clip / 1e9, 4),
        "matmul_peak_gflops": peak, "fraction_of_peak": fractions,
        f"seconds_to_val_accuracy_{TARGET_ACCURACY}": to_target,
        "best_val_accuracy": {name: max(result["val_accuracy"]) for name, result in runs.items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
