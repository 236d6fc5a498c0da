"""Input pipeline: throughput against the training step, and memory past the budget.

1. Throughput: samples/s of the pipeline alone (from RAM, and streamed from the packed
   file) vs samples/s of the default model's training step on the same batch shape.
   Target: pipeline / step >= 10 (the input side is never the bottleneck). The step's
   training FLOP rate is printed as a fraction of the float32 matmul peak (peak.py); the
   pipeline itself does no arithmetic worth counting (it copies batches).
2. Memory: a real one-epoch `vidcls train` over a cache at least twice the memory budget,
   in a fresh process, reporting its peak RSS. Target: peak RSS < budget + 1 GB.
3. Container (`--cgroup-gb G`, needs root): the same one-epoch training, default flags,
   inside a real memory cgroup of G GB, twice: budgeted as before this fix (half of
   /proc/meminfo, which ignores the cgroup) and by today's default (the cgroup's
   headroom). Reports each exit code (137: OOM-killed), whether it streamed, and the
   cgroup's peak. Target: the default completes; a cache larger than G shows the gap.

Prints one JSON line.

    python benchmarks/pipeline_bench.py [--cache-gb 4.5] [--budget-gb 2] [--skip-memory]
    python benchmarks/pipeline_bench.py --cgroup-gb 3 --cache-gb 4.6 --skip-memory
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak

import numpy as np  # noqa: E402

NUM_FRAMES = 16
CLASSES = ("calm", "fight")


def build_cache(root: Path, num_clips: int, feature_dim: int, seed: int = 0) -> None:
    """A cache in the real on-disk format, written fast (no fsync: it is a fixture)."""
    from vidcls.fileio import atomic_write_json

    features_dir = root / "features"
    features_dir.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(len(CLASSES), NUM_FRAMES, feature_dim)).astype(np.float16)
    lines = []
    for index in range(num_clips):
        label = index % 5 != 0  # 80% / 20%, as imbalanced as the violence data we target
        clip_id = f"clip_{index:07d}"
        features = base[int(label)] + rng.normal(scale=0.5, size=(NUM_FRAMES, feature_dim)).astype(np.float16)
        np.save(features_dir / f"{clip_id}.npy", features, allow_pickle=False)
        lines.append(json.dumps({"clip_id": clip_id, "video": f"{clip_id}.mp4", "label": CLASSES[int(label)],
                                 "num_frames": NUM_FRAMES, "feature_path": f"features/{clip_id}.npy",
                                 "feature_shape": [NUM_FRAMES, feature_dim]}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    atomic_write_json(root / "cache.json", {"backbone": "synthetic", "weights": "none", "num_frames": NUM_FRAMES,
                                            "image_size": 0, "feature_dim": feature_dim, "dtype": "float16"})


def samples_per_second(dataset, epochs: int) -> float:
    count, started = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in dataset:
            count += int(batch[1].shape[0])  # targets [B, K]
    return count / (time.perf_counter() - started)


def throughput(work: Path, batch_size: int, feature_dim: int) -> dict:
    import keras

    from vidcls.config import ModelConfig
    from vidcls.data import BatchSource, load_labelled_features, make_dataset
    from vidcls.features import FeatureCache
    from vidcls.models import build_model, describe_model

    cache_dir = work / "small"
    build_cache(cache_dir, 2048, feature_dim)
    cache = FeatureCache(cache_dir)
    clip_ids = [entry["clip_id"] for entry in cache.entries]
    rates = {}
    for name, in_memory in (("ram", True), ("packed_stream", False)):
        data = load_labelled_features(cache, clip_ids, list(CLASSES), in_memory=in_memory)
        dataset = make_dataset(BatchSource(data.features, data.labels, len(CLASSES), batch_size, training=True, seed=0))
        samples_per_second(dataset, 1)  # warm: tf.data start-up, page cache
        rates[name] = samples_per_second(dataset, 5)

    model = build_model(ModelConfig(), num_classes=len(CLASSES), feature_dim=feature_dim)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(batch_size, NUM_FRAMES, feature_dim)).astype(np.float32)
    y = np.eye(len(CLASSES), dtype=np.float32)[np.arange(batch_size) % 2]
    mask = np.ones((batch_size, NUM_FRAMES), np.float32)
    for _ in range(3):
        model.train_on_batch([x, mask], y)
    steps, started = 20, time.perf_counter()
    for _ in range(steps):
        model.train_on_batch([x, mask], y)
    step_rate = steps * batch_size / (time.perf_counter() - started)
    from peak import fraction_of_peak, measure_in_child, training_gflops

    flops_per_clip = describe_model(model, NUM_FRAMES)["flops_per_clip"]
    peak = measure_in_child(dtypes=["float32"])["cpu"]
    return {
        "model": "attention_lstm", "batch_size": batch_size, "feature_shape": [NUM_FRAMES, feature_dim],
        "train_step_samples_per_s": round(step_rate, 1),
        "train_step_fraction_of_float32_peak": fraction_of_peak(training_gflops(flops_per_clip, step_rate), peak, "float32"),
        "matmul_peak_gflops": peak,
        "pipeline_ram_samples_per_s": round(rates["ram"], 1),
        "pipeline_packed_samples_per_s": round(rates["packed_stream"], 1),
        "ratio_ram": round(rates["ram"] / step_rate, 1),
        "ratio_packed": round(rates["packed_stream"] / step_rate, 1),
    }


def memory(work: Path, cache_gb: float, budget_gb: float, feature_dim: int, batch_size: int) -> dict:
    clip_bytes = NUM_FRAMES * feature_dim * 2
    num_clips = int(cache_gb * 1e9 / clip_bytes)
    cache_dir = work / "big"
    started = time.perf_counter()
    build_cache(cache_dir, num_clips, feature_dim)
    build_seconds = time.perf_counter() - started
    child = subprocess.run(
        [sys.executable, __file__, "--child-train", str(cache_dir), str(work / "run"), str(budget_gb), str(batch_size)],
        capture_output=True, text=True)
    if child.returncode != 0:
        raise SystemExit(f"training child failed:\n{child.stderr[-3000:]}")
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "cache_gb": round(num_clips * clip_bytes / 1e9, 2), "clips": num_clips, "budget_gb": budget_gb,
        "cache_build_seconds": round(build_seconds, 1), **figures,
        "peak_rss_below_budget_plus_1gb": figures["peak_rss_gb"] < budget_gb + 1,
    }


def container(work: Path, cache_gb: float, cgroup_gb: float, feature_dim: int, batch_size: int) -> dict:
    """One epoch in a memory cgroup of `cgroup_gb`: the meminfo budget vs the default."""
    from vidcls.memory import _meminfo_available, cgroup_peak_bytes, memory_cgroup

    clip_bytes = NUM_FRAMES * feature_dim * 2
    num_clips = int(cache_gb * 1e9 / clip_bytes)
    cache_dir = work / "container"
    build_cache(cache_dir, num_clips, feature_dim)
    rows = {}
    meminfo_budget_gb = _meminfo_available() / 2 / 1e9
    for name, budget_gb in (("meminfo_budget_before", meminfo_budget_gb), ("default_cgroup_aware", 0.0)):
        shutil.rmtree(cache_dir / "packed", ignore_errors=True)
        directory, enter = memory_cgroup(int(cgroup_gb * 1e9), f"vidcls_bench_{os.getpid()}_{name}")
        started = time.perf_counter()
        try:
            child = subprocess.run([sys.executable, __file__, "--child-train", str(cache_dir), str(work / f"run_{name}"),
                                    str(budget_gb), str(batch_size)], capture_output=True, text=True, preexec_fn=enter)
            peak = cgroup_peak_bytes(directory)
        finally:
            directory.rmdir()
        budget_lines = [line for line in child.stderr.splitlines() if "memory budget" in line]
        rows[name] = {"exit_code": child.returncode if child.returncode >= 0 else 128 - child.returncode,
                      "oom_killed": child.returncode in (-9, 137), "seconds": round(time.perf_counter() - started, 1),
                      "cgroup_peak_gb": round(peak / 1e9, 3) if peak else None,
                      "budget_gb": round(budget_gb, 2) if budget_gb else None,
                      "log": budget_lines[0].split("vidcls: ", 1)[-1] if budget_lines else None,
                      **(json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else {})}
    return {"cache_gb": round(num_clips * clip_bytes / 1e9, 2), "cgroup_gb": cgroup_gb, **rows}


def child_train(cache_dir: str, run_dir: str, budget_gb: str, batch_size: str) -> None:
    """One epoch of the real training command, in this fresh process."""
    import logging

    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    handler = logging.StreamHandler()  # the budget the run chose, on stderr as the CLI says it
    handler.setFormatter(logging.Formatter("vidcls: %(message)s"))
    logging.getLogger("vidcls").addHandler(handler)
    logging.getLogger("vidcls").setLevel(logging.INFO)
    config = ExperimentConfig().replace({
        "data.cache_dir": cache_dir, "data.memory_budget_gb": float(budget_gb), "train.epochs": 1,
        "train.batch_size": int(batch_size), "train.warmup_epochs": 0})
    started = time.perf_counter()
    result = train(config, run_dir)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    streamed = (Path(cache_dir) / "packed" / "features.npy").is_file()
    print(json.dumps({"peak_rss_gb": round(peak_kb * 1024 / 1e9, 3), "streamed_from_packed_file": streamed,
                      "train_epoch_seconds_incl_packing": round(seconds, 1), "epochs_run": result.epochs_run}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-train":
        child_train(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-gb", type=float, default=4.5)
    parser.add_argument("--budget-gb", type=float, default=2.0)
    parser.add_argument("--feature-dim", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--cgroup-gb", type=float, help="also train inside a real memory cgroup this large (root)")
    parser.add_argument("--work-dir", help="where to build the caches (default: a temporary folder)")
    args = parser.parse_args()

    import tensorflow as tf

    with tempfile.TemporaryDirectory(dir=args.work_dir) as work:
        report = {"benchmark": "pipeline", "throughput": throughput(Path(work), args.batch_size, args.feature_dim)}
        if not args.skip_memory:
            report["memory"] = memory(Path(work), args.cache_gb, args.budget_gb, args.feature_dim, args.batch_size)
        if args.cgroup_gb:
            report["container"] = container(Path(work), args.cache_gb, args.cgroup_gb, args.feature_dim, args.batch_size)
    report["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                         "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
