"""Feature extraction throughput: naive loop vs inference ceiling vs `vidcls extract`.

On the same videos and backbone, in one process:
  (a) naive: decode each video sequentially (every frame, as the keras.io CNN-RNN example
      does), sample T, call `model.predict` once per video (the keras.io example itself
      calls it once per frame; that loop is also timed, on a sixth of the videos);
  (b) ceiling: the backbone alone on in-memory uint8 batches (no decoding at all), in
      float32 as loaded (the path before batch normalisation folding and --precision),
      folded in float32, and folded in the `--precision` extraction uses (auto: bfloat16
      on CPUs with AMX/AVX512-BF16);
  (c) vidcls extract: parallel decoding overlapped with batched compiled inference.
Prints one JSON line with frames/s of each, the ratios, and each ceiling's achieved
GFLOP/s as a fraction of the machine's matmul peak in its format (benchmarks/peak.py).

    python benchmarks/extract_bench.py [--videos 48] [--backbone mobilenet_v2] [--image-size 224] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/peak.py

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def naive(videos: list[Path], backbone, num_frames: int, image_size: int) -> float:
    """Frames/s of the per-video loop: full decode, resize, sample, one predict per video."""
    import keras

    preprocess = getattr(keras.applications, backbone.spec.module).preprocess_input
    model = backbone._source  # as loaded, unfolded, float32: what the example runs
    model.predict(np.zeros((num_frames, image_size, image_size, 3), np.float32), verbose=0)  # warm up
    started = time.perf_counter()
    for video in videos:
        frames = _decode_all(video, image_size)
        picked = np.linspace(0, len(frames) - 1, num_frames).astype(int)
        batch = preprocess(np.stack([frames[i] for i in picked]).astype(np.float32))
        model.predict(batch, verbose=0)
    return len(videos) * num_frames / (time.perf_counter() - started)


def keras_io_per_frame(videos: list[Path], backbone, num_frames: int, image_size: int) -> float:
    """Frames/s of the keras.io CNN-RNN example's own loop: one `predict` per frame."""
    import keras

    preprocess = getattr(keras.applications, backbone.spec.module).preprocess_input
    model = backbone._source  # as loaded, unfolded, float32: what the example runs
    started = time.perf_counter()
    for video in videos:
        frames = _decode_all(video, image_size)
        for index in np.linspace(0, len(frames) - 1, num_frames).astype(int):
            model.predict(preprocess(frames[index][None].astype(np.float32)), verbose=0)
    return len(videos) * num_frames / (time.perf_counter() - started)


def _decode_all(video: Path, image_size: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(frame, (image_size, image_size)), cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def ceiling(embed, batch_size: int, total_frames: int, image_size: int) -> float:
    """Frames/s of batched compiled inference (`embed`) on frames already in memory."""
    frames = np.random.default_rng(0).integers(0, 255, (batch_size, image_size, image_size, 3), dtype=np.uint8)
    embed(frames)  # trace once
    batches = max(1, total_frames // batch_size)
    started = time.perf_counter()
    for _ in range(batches):
        embed(frames)
    return batches * batch_size / (time.perf_counter() - started)


def unfolded_float32(backbone):
    """The backbone as loaded (batch normalisation unfolded, float32), compiled as vidcls
    compiled it before folding."""
    import tensorflow as tf

    @tf.function
    def embed(frames):
        return backbone._source(backbone.preprocess(tf.cast(frames, tf.float32)), training=False)

    return lambda frames: embed(frames).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--skip-naive", action="store_true", help="only the ceilings and vidcls extract")
    args = parser.parse_args()

    import tensorflow as tf

    from vidcls.config import FeatureConfig
    from vidcls.features import extract, get_backbone
    from vidcls.videos import synthesize

    with tempfile.TemporaryDirectory() as work:
        videos = synthesize(Path(work) / "videos", num_videos=args.videos, seed=0).videos
        from peak import fraction_of_peak, measure, model_flops

        from vidcls.features.precision import resolve_precision

        precision = resolve_precision(args.precision).name
        backbone = get_backbone(args.backbone, weights="none", image_size=args.image_size, batch_size=args.batch_size)
        fast = backbone if precision == "float32" else get_backbone(
            args.backbone, weights="none", image_size=args.image_size, batch_size=args.batch_size, precision=precision)
        total = args.videos * args.num_frames
        naive_fps = per_frame_fps = None
        if not args.skip_naive:
            naive_fps = naive(videos, backbone, args.num_frames, args.image_size)
            per_frame_fps = keras_io_per_frame(videos[: max(4, args.videos // 6)], backbone, args.num_frames, args.image_size)
        ceilings = {
            "float32_unfolded": ceiling(unfolded_float32(backbone), args.batch_size, total, args.image_size),
            "float32_folded": ceiling(backbone.embed, args.batch_size, total, args.image_size),
            f"{precision}_folded": ceiling(fast.embed, args.batch_size, total, args.image_size),
        }
        summary = extract(FeatureConfig(
            data_dir=str(Path(work) / "videos"), cache_dir=str(Path(work) / "cache"), backbone=args.backbone,
            weights="none", num_frames=args.num_frames, image_size=args.image_size, batch_size=args.batch_size,
            decode_workers=args.workers, precision=precision, streams=["appearance"]))
        if summary.failures or summary.extracted != args.videos:
            raise SystemExit(f"extraction incomplete: {summary.describe()}")
        vidcls_fps = summary.frames_per_second
        gflop_per_frame = model_flops(backbone._source) / 1e9
        peak = measure(dtypes=sorted({"float32", precision}))["cpu"]

    ceiling_fps = ceilings[f"{precision}_folded"]
    print(json.dumps({
        "benchmark": "extract",
        "backbone": args.backbone, "image_size": args.image_size, "num_frames": args.num_frames, "precision": precision,
        "videos": args.videos, "frames": total, "batch_size": args.batch_size, "workers": args.workers,
        "gflop_per_frame": round(gflop_per_frame, 2), "matmul_peak_gflops": peak,
        "ceilings_frames_per_s": {name: round(value, 1) for name, value in ceilings.items()},
        "ceilings_fraction_of_peak": {
            name: fraction_of_peak(value * gflop_per_frame, peak, name.split("_")[0]) for name, value in ceilings.items()},
        "fast_over_float32_unfolded": round(ceiling_fps / ceilings["float32_unfolded"], 2),
        "naive_frames_per_s": naive_fps and round(naive_fps, 1),
        "keras_io_per_frame_predict_frames_per_s": per_frame_fps and round(per_frame_fps, 1),
        "vidcls_frames_per_s": round(vidcls_fps, 1),
        "vidcls_over_ceiling": round(vidcls_fps / ceiling_fps, 3),
        "vidcls_over_naive": naive_fps and round(vidcls_fps / naive_fps, 2),
        "vidcls_over_keras_io_per_frame": per_frame_fps and round(vidcls_fps / per_frame_fps, 2),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))},
    }))


if __name__ == "__main__":
    main()
