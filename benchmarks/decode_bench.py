"""Decoding: one pass per video (count and sample together) vs the two passes it replaced.

vidcls needs a video's frame count to place T segment centres over it, and containers'
counts are often wrong, so the count comes from decoding. Until this benchmark's change,
`extract` decoded every video twice: a counting `grab()` pass, then a sampling pass up to
the last sampled frame. Now one pass plans with the container's count, decodes to the end
(which verifies the count) and retrieves the planned frames; only where the container was
wrong does a second pass fetch what the true plan needs.

On the same videos, in one process, alternating the two paths video by video (so drifts
in machine load hit both alike): seconds per video of each, their ratio, and how many
videos needed the fallback pass. Prints one JSON line. No fraction of the matmul peak:
decoding is entropy decoding and motion compensation in FFmpeg, not matrix arithmetic, so
its yardstick is the old path measured beside it.

    python benchmarks/decode_bench.py [--data-dir ../shared/data/fight_surv] [--num-frames 16] [--size 224]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from vidcls.features.sampling import partner_indices, segment_centre_indices
from vidcls.features.video import _decode, count_frames, read_counted


def wanted_for(num_frames: int, gap: int):
    """The frames extraction reads for a whole-video clip: T centres and their partners."""
    def wanted(total: int) -> set[int]:
        indices = segment_centre_indices(total, num_frames)
        return {*indices.tolist(), *partner_indices(indices, 0, total, gap).tolist()}
    return wanted


def two_passes(video: Path, wanted, size: int) -> dict:
    """The replaced path: count by decoding, then decode again up to the last wanted frame."""
    total = count_frames(video)
    frames, _ = _decode(video, wanted(total), size)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fight_surv"))
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--gap", type=int, default=2, help="partner-frame gap of the motion stream (0: none)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--videos", type=int, default=0, help="at most this many videos (0: all)")
    args = parser.parse_args()

    cv2.setNumThreads(1)  # extraction decodes one video per worker thread
    videos = sorted(Path(args.data_dir).rglob("*.mp4")) + sorted(Path(args.data_dir).rglob("*.avi"))
    videos = videos[: args.videos] if args.videos else videos
    if not videos:
        raise SystemExit(f"no .mp4 or .avi under {args.data_dir}")
    wanted = wanted_for(args.num_frames, args.gap)
    seconds = {"two_passes": [], "one_pass": []}
    fallbacks, frames, sizes = 0, [], set()
    for video in videos:
        started = time.perf_counter()
        old = two_passes(video, wanted, args.size)
        seconds["two_passes"].append(time.perf_counter() - started)
        started = time.perf_counter()
        counted = read_counted(video, wanted, args.size)
        seconds["one_pass"].append(time.perf_counter() - started)
        if sorted(old) != sorted(counted.frames) or any(not np.array_equal(old[i], counted.frames[i]) for i in old):
            raise SystemExit(f"{video}: the one-pass read differs from the two-pass read")
        fallbacks += counted.passes - 1
        frames.append(counted.total)
        capture = cv2.VideoCapture(str(video))
        sizes.add(f"{int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}")
        capture.release()
    old, new = float(np.mean(seconds["two_passes"])), float(np.mean(seconds["one_pass"]))
    print(json.dumps({
        "benchmark": "decode", "videos": len(videos), "frames_per_video": [min(frames), int(np.median(frames)), max(frames)],
        "sizes": sorted(sizes), "num_frames": args.num_frames, "gap": args.gap, "image_size": args.size,
        "two_passes_ms_per_video": round(1000 * old, 1), "one_pass_ms_per_video": round(1000 * new, 1),
        "speedup": round(old / new, 2), "fallback_passes": fallbacks, "identical_frames": True,
        "fraction_of_peak": None,  # no matmuls: see the docstring
        "machine": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
