"""Streaming on a phone's terms: one frame encoded per frame interval vs the end-to-end
model re-run on all T frames every stride.

In one process, on a run trained on the demo's features (random-init ResNet50 at 112 px,
T=16) or on `--run-dir` (e.g. the fight recipe on real VGG16 weights):
  (a) baseline: `model_end_to_end_float32.tflite` (T frames in, backbone inside) invoked
      once per stride, as an app without streaming would;
  (b) `vidcls export --streaming` for each variant, run by `vidcls stream`'s loop
      (LiteRT, default options, 1 and 4 threads): per-frame encoder and per-window head
      latency, real-time factor, agreement with `vidcls predict --window`, file sizes;
and the backbone FLOPs per stride of each path (the ratio is T / frames per stride). The
encoder's FLOP rate is printed as a fraction of the machine's float32 matmul peak (peak.py,
all cores; LiteRT computes in float32, with int8 kernels for dynamic-range weights).
Then the loop on the six real recordings and (with `--fight-clips N`) real fight clips.
Prints one JSON line per measurement and a markdown table.

    python benchmarks/stream_bench.py [--videos 48] [--window 2] [--stride 0.5]
    python benchmarks/stream_bench.py --run-dir RUN --fight-clips 16 --variants float32,float16,dynamic
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak


def demo_run(work: Path, videos: int) -> Path:
    """The demo's features and attention-LSTM, smaller (synthetic 2-s clips)."""
    from vidcls.config import ExperimentConfig, FeatureConfig
    from vidcls.demo import DEMO_FEATURES
    from vidcls.features import extract
    from vidcls.training import train
    from vidcls.videos import synthesize

    run = work / "run"
    if not (run / "result.json").exists():
        synthesize(work / "videos", num_videos=videos, seed=0)
        extract(FeatureConfig(data_dir=str(work / "videos"), cache_dir=str(work / "cache"), **DEMO_FEATURES))
        train(ExperimentConfig().replace({"data.cache_dir": str(work / "cache"), "train.epochs": 15,
                                          "train.batch_size": 16}), run)
    return run


def end_to_end_per_stride(run: Path, repeats: int = 5) -> dict:
    """(a): ms per invocation of the end-to-end model (one per stride without streaming)."""
    from ai_edge_litert.interpreter import Interpreter

    from vidcls.exporting import export_end_to_end

    entry = export_end_to_end(run, videos=2)
    path = run / "export" / entry["path"]
    result = {}
    for threads in (1, 4):
        runner = Interpreter(model_path=str(path), num_threads=threads).get_signature_runner()
        inputs = {name: np.zeros(shape, np.uint8 if "frames" in name else np.float32)
                  for name, shape in entry["inputs"].items()}
        inputs["mask"][:] = 1
        runner(**inputs)
        started = time.perf_counter()
        for _ in range(repeats):
            runner(**inputs)
        result[str(threads)] = 1000 * (time.perf_counter() - started) / repeats
    return {"ms_per_stride": result, "size_bytes": entry["size_bytes"], "agreement_with_predict": entry["top1_agreement"]}


def stream_videos(run: Path, variant: str, videos: list[Path], stride: float) -> dict:
    """`vidcls stream` on `videos`: agreement with `predict --window` and latency."""
    from vidcls.exporting import StreamRunner
    from vidcls.serving import Predictor

    predictor = Predictor(run)
    runner = StreamRunner(run / "export" / "streaming", variant, threads=1)
    windows = agree = 0
    diff, factors, encoder_ms = 0.0, [], []
    for video in videos:
        got = runner.run(video, stride)
        want = predictor.predict_windows(video, runner.window_sec, stride, max_windows=0)
        for a, b in zip(got["windows"], want["windows"]):
            windows += 1
            agree += a["label"] == b["label"]
            diff = max(diff, max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in b["probabilities"]))
        factors.append(got["latency"]["real_time_factor"])
        encoder_ms.append(got["latency"]["encoder_ms_per_frame"])
    return {"videos": len(videos), "windows": windows, "top1_agreement": agree / max(windows, 1),
            "max_abs_diff": diff, "encoder_ms_per_frame": float(np.mean(encoder_ms)),
            "real_time_factor_min": float(np.min(factors)), "real_time_factor_mean": float(np.mean(factors))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="/tmp/vidcls_stream_bench")
    parser.add_argument("--run-dir", help="a trained run (default: train the demo's model on --videos synthetic clips)")
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--window", type=float, default=2.0, help="seconds T frames span")
    parser.add_argument("--stride", type=float, default=0.5)
    parser.add_argument("--variants", default="float32,float16,dynamic")
    parser.add_argument("--fight-clips", type=int, default=0, help="also stream this many real fight clips")
    args = parser.parse_args()

    from vidcls.exporting import export, export_streaming, parse_quantize
    from vidcls.run_dir import RunDir

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    run = Path(args.run_dir) if args.run_dir else demo_run(work, args.videos)
    variants = parse_quantize(args.variants)
    export(run)
    started = time.perf_counter()
    streaming = export_streaming(run, variants, window_sec=args.window, stride_sec=args.stride)
    print(json.dumps({"export_streaming_seconds": round(time.perf_counter() - started, 1)}), flush=True)
    baseline = end_to_end_per_stride(run)
    fingerprint = RunDir(run).features()["fingerprint"]
    num_frames = int(fingerprint["num_frames"])
    step = max(1, round(args.stride / (args.window / num_frames)))
    e2e_streams = len(fingerprint.get("streams", ["appearance"]))
    flops_ratio = num_frames * e2e_streams / (step * len(streaming["streams"]))
    print(json.dumps({"baseline_end_to_end": baseline, "frames_per_stride": step,
                      "backbone_flops_ratio": flops_ratio}), flush=True)
    from peak import backbone_gflop_per_frame, fraction_of_peak, measure_in_child

    encoder_gflop = backbone_gflop_per_frame(fingerprint) * len(streaming["streams"])  # per frame, every stream
    peak = measure_in_child(dtypes=["float32"])["cpu"]
    rows = []
    for entry in streaming["variants"]:
        work_ms = {threads: entry["encoder_ms_per_frame"][threads] * step + entry["head_ms_per_window"][threads]
                   for threads in ("1", "4")}
        row = {**entry, "ms_per_stride": work_ms,
               "speedup_vs_end_to_end": {t: baseline["ms_per_stride"][t] / work_ms[t] for t in work_ms},
               "encoder_fraction_of_float32_peak": {
                   t: fraction_of_peak(encoder_gflop * 1000 / entry["encoder_ms_per_frame"][t], peak, "float32")
                   for t in ("1", "4")}}
        rows.append(row)
        print(json.dumps({"variant": row}), flush=True)
    from vidcls.videos import VIDEO_SUFFIXES

    real = sorted(path for path in (SHARED / "real_videos").glob("*") if path.suffix.lower() in VIDEO_SUFFIXES)
    real_rows = {}
    for entry in streaming["variants"]:
        if real:
            real_rows[("real recordings", entry["name"])] = stream_videos(run, entry["name"], real, args.stride)
        if args.fight_clips:
            clips = sorted((SHARED / "fight_surv").glob("*/*.mp4"))
            picked = [clips[i] for i in np.linspace(0, len(clips) - 1, args.fight_clips).astype(int)]
            real_rows[("fight clips", entry["name"])] = stream_videos(run, entry["name"], picked, args.stride)
    for (where, name), values in real_rows.items():
        print(json.dumps({"where": where, "variant": name, **values}), flush=True)

    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores; run {run}; window {args.window} s, "
          f"T={num_frames}, stride {args.stride} s ({step} frames); streams {streaming['streams']}")
    print(f"baseline: end-to-end float32 ({baseline['size_bytes'] / 1e6:.1f} MB) every stride: "
          f"{baseline['ms_per_stride']['1']:.1f} ms (1 thread), {baseline['ms_per_stride']['4']:.1f} ms (4 threads); "
          f"backbone FLOPs per stride, end-to-end / streaming: {flops_ratio:.1f}x; encoder {encoder_gflop:.2f} "
          f"GFLOP per frame, float32 matmul peak {peak['float32']} GFLOP/s\n")
    print("| variant | encoder + head size | encoder ms/frame (1 / 4 threads) | encoder fraction of peak (1 / 4) | "
          "head ms/window | real time (1 / 4 threads) | ms per stride vs end-to-end (1 thread) | "
          "top-1 vs predict --window | max abs diff prob |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        size = (row["size_bytes"]["frame_encoder"] + row["size_bytes"]["head"]) / 1e6
        print(f"| {row['name']} | {size:.1f} MB | {row['encoder_ms_per_frame']['1']:.1f} / "
              f"{row['encoder_ms_per_frame']['4']:.1f} | {row['encoder_fraction_of_float32_peak']['1']} / "
              f"{row['encoder_fraction_of_float32_peak']['4']} | {row['head_ms_per_window']['1']:.2f} | "
              f"{row['real_time_factor']['1']:.1f}x / {row['real_time_factor']['4']:.1f}x | "
              f"{row['ms_per_stride']['1']:.1f} ({row['speedup_vs_end_to_end']['1']:.1f}x faster) | "
              f"{row['top1_agreement']:.3f} ({row['windows']} windows) | {row['max_abs_diff']:.1e} |")
    if real_rows:
        print("\n| videos | variant | windows | top-1 vs predict --window | max abs diff prob | encoder ms/frame | "
              "real time (min / mean) |")
        print("|---|---|---|---|---|---|---|")
        for (where, name), v in real_rows.items():
            print(f"| {where} ({v['videos']}) | {name} | {v['windows']} | {v['top1_agreement']:.3f} | "
                  f"{v['max_abs_diff']:.1e} | {v['encoder_ms_per_frame']:.1f} | {v['real_time_factor_min']:.1f}x / "
                  f"{v['real_time_factor_mean']:.1f}x |")


if __name__ == "__main__":
    main()
