"""Feature extraction throughput: naive loop vs inference ceiling vs `vidcls extract`.

On the same videos and backbone, in one process:
  (a) naive: decode each video sequentially (every frame, as the keras.io CNN-RNN example
      does), sample T, call `model.predict` once per video (the keras.io example itself
      calls it once per frame; that loop is also timed, on a sixth of the videos);
  (b) ceiling: the backbone alone on in-memory uint8 batches (no decoding at all);
  (c) vidcls extract: parallel decoding overlapped with batched compiled inference.
Prints one JSON line with frames/s of each and the ratios c/b and c/a.

    python benchmarks/extract_bench.py [--videos 48] [--backbone mobilenet_v2] [--image-size 224]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def naive(videos: list[Path], backbone, num_frames: int, image_size: int) -> float:
    """Frames/s of the per-video loop: full decode, resize, sample, one predict per video."""
    import keras

    preprocess = getattr(keras.applications, backbone.spec.module).preprocess_input
    model = backbone._model
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
    model = backbone._model
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


def ceiling(backbone, total_frames: int, image_size: int) -> float:
    """Frames/s of batched compiled inference on frames already in memory."""
    frames = np.random.default_rng(0).integers(0, 255, (backbone.batch_size, image_size, image_size, 3), dtype=np.uint8)
    backbone.embed(frames)  # trace once
    batches = max(1, total_frames // backbone.batch_size)
    started = time.perf_counter()
    for _ in range(batches):
        backbone.embed(frames)
    return batches * backbone.batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--backbone", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    from vidcls.config import FeatureConfig
    from vidcls.videos import synthesize
    from vidcls.features import extract, get_backbone

    with tempfile.TemporaryDirectory() as work:
        videos = synthesize(Path(work) / "videos", num_videos=args.videos, seed=0).videos
        backbone = get_backbone(args.backbone, weights="none", image_size=args.image_size, batch_size=args.batch_size)
        total = args.videos * args.num_frames
        naive_fps = naive(videos, backbone, args.num_frames, args.image_size)
        per_frame_fps = keras_io_per_frame(videos[: max(4, args.videos // 6)], backbone, args.num_frames, args.image_size)
        ceiling_fps = ceiling(backbone, total, args.image_size)
        summary = extract(FeatureConfig(
            data_dir=str(Path(work) / "videos"), cache_dir=str(Path(work) / "cache"), backbone=args.backbone,
            weights="none", num_frames=args.num_frames, image_size=args.image_size, batch_size=args.batch_size,
            decode_workers=args.workers))
        if summary.failures or summary.extracted != args.videos:
            raise SystemExit(f"extraction incomplete: {summary.describe()}")
        vidcls_fps = summary.frames_per_second

    print(json.dumps({
        "benchmark": "extract",
        "backbone": args.backbone, "image_size": args.image_size, "num_frames": args.num_frames,
        "videos": args.videos, "frames": total, "batch_size": args.batch_size, "workers": args.workers,
        "naive_frames_per_s": round(naive_fps, 1),
        "keras_io_per_frame_predict_frames_per_s": round(per_frame_fps, 1),
        "ceiling_frames_per_s": round(ceiling_fps, 1),
        "vidcls_frames_per_s": round(vidcls_fps, 1),
        "vidcls_over_ceiling": round(vidcls_fps / ceiling_fps, 3),
        "vidcls_over_naive": round(vidcls_fps / naive_fps, 2),
        "vidcls_over_keras_io_per_frame": round(vidcls_fps / per_frame_fps, 2),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "gpus": len(tf.config.list_physical_devices("GPU"))},
    }))


if __name__ == "__main__":
    main()
