"""The machine's measured matrix-multiply peak, per number format, as TensorFlow reaches it.

Every other benchmark states its achieved FLOP rate as a fraction of these figures, so a
ratio between two code paths also says how far both are from what the hardware does.

A square `n x n` matmul inside a `tf.function`, repeated for `--seconds`, on each device
kind present (the CPU always; each GPU when TensorFlow sees one), for float32, bfloat16 and
float16. The best of a few timed rounds counts (the peak, not the average under load).
On CPUs with AMX or AVX512-BF16 (see `lscpu`), oneDNN runs bfloat16 several times faster
than float32; float16 matmuls have no fast CPU kernel.

    python benchmarks/peak.py [--size 2048] [--seconds 2]

Prints one JSON line: `{"cpu": {"float32": GFLOP/s, ...}, "gpu:0": {...}, ...}`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DTYPES = ("float32", "bfloat16", "float16")
ROUNDS = 3


def matmul_gflops(dtype: str, device: str = "/cpu:0", size: int = 2048, seconds: float = 2.0) -> float:
    """The best GFLOP/s of `ROUNDS` timed rounds of `size`-square matmuls of `dtype`."""
    import tensorflow as tf

    with tf.device(device):
        a = tf.cast(tf.random.normal((size, size), seed=1), dtype)
        b = tf.cast(tf.random.normal((size, size), seed=2), dtype)

        @tf.function
        def repeat(a, b, times):
            total = tf.zeros((size, size), dtype)
            for _ in tf.range(times):
                total += tf.matmul(a, b)
            return total

        repeat(a, b, tf.constant(1)).numpy()  # trace and warm up
        started = time.perf_counter()
        repeat(a, b, tf.constant(1)).numpy()
        per_call = max(time.perf_counter() - started, 1e-4)
        times = max(1, int(seconds / ROUNDS / per_call))
        best = 0.0
        for _ in range(ROUNDS):
            started = time.perf_counter()
            repeat(a, b, tf.constant(times)).numpy()
            best = max(best, 2 * size**3 * times / (time.perf_counter() - started) / 1e9)
    return best


def measure(size: int = 2048, seconds: float = 2.0, dtypes=DTYPES) -> dict[str, dict[str, float]]:
    """`{device: {dtype: GFLOP/s}}` for the CPU and every GPU TensorFlow sees."""
    import tensorflow as tf

    devices = {"cpu": "/cpu:0"}
    devices.update({f"gpu:{index}": f"/gpu:{index}" for index, _ in enumerate(tf.config.list_physical_devices("GPU"))})
    return {name: {dtype: round(matmul_gflops(dtype, device, size, seconds), 1) for dtype in dtypes}
            for name, device in devices.items()}


def model_flops(model) -> int:
    """Multiply-adds x 2 of one input through a Keras CNN's convolutions and dense layers
    (what the matmul peak measures; elementwise work is not counted)."""
    flops = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D", "Dense"):
            kernel = layer.kernel.shape
            out = layer.output.shape  # [1?, H, W, C] or [1?, units]
            positions = out[1] * out[2] if kind != "Dense" else 1
            if kind == "DepthwiseConv2D":
                flops += 2 * positions * out[-1] * kernel[0] * kernel[1]
            else:
                flops += 2 * positions * int(np.prod(kernel))
    return int(flops)


def fraction_of_peak(gflops: float, peak: dict[str, float], dtype: str) -> float:
    """`gflops` as a fraction of the measured peak of `dtype` (3 decimals); `dtype` may be a
    Keras policy name (mixed_bfloat16 computes in bfloat16)."""
    return round(gflops / peak[dtype.removeprefix("mixed_")], 3)


# A training step costs ~3x the forward pass (the backward pass ~2x).
TRAINING_FLOPS_PER_FORWARD = 3


def training_gflops(flops_per_clip: int, samples_per_second: float) -> float:
    """The FLOP rate of training at `samples_per_second` clips whose forward pass costs
    `flops_per_clip` (result.json's `flops_per_clip`)."""
    return TRAINING_FLOPS_PER_FORWARD * flops_per_clip * samples_per_second / 1e9


def backbone_gflop_per_frame(fingerprint: dict) -> float:
    """Forward GFLOPs of one image through a cache's backbone (from its cache.json; the
    architecture, image size and grid decide it, not the weights)."""
    from vidcls.features import get_backbone

    backbone = get_backbone(fingerprint["backbone"], weights="none", image_size=fingerprint.get("image_size"),
                            grid=int(fingerprint.get("grid", 1)))
    return model_flops(backbone._source) / 1e9


def measure_in_child(dtypes=DTYPES, seconds: float = 2.0) -> dict[str, dict[str, float]]:
    """`measure()` in a fresh process, for a caller that must not start TensorFlow itself
    (gpu_bench fixes devices per row) or whose own threads would disturb the timing."""
    import subprocess
    import sys

    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import peak; "
            f"print(json.dumps(peak.measure(seconds={seconds}, dtypes={list(dtypes)!r})))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def cpu_flags() -> list[str]:
    """The CPU's matrix-relevant instruction sets (from /proc/cpuinfo on Linux)."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split(":")[1].split()
    except (OSError, StopIteration):
        return []
    return sorted(flag for flag in flags if flag.startswith(("amx", "avx512_bf16", "avx512_fp16", "avx512f")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=2.0, help="per device and number format")
    args = parser.parse_args()
    print(json.dumps({"benchmark": "peak", "matmul_size": args.size, "gflops": measure(args.size, args.seconds),
                      "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
                      "machine": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
