"""HTTP serving under load: one client, then 8 concurrent clients, against `vidcls serve`.

    python benchmarks/serve_bench.py [--run-dir RUN] [--seconds 30] [--clients 8]

Without --run-dir it builds a small run first (synthetic videos, random-init ResNet50 at
112 px, 16 frames, attention-LSTM, 5 epochs). The server runs in its own process on a free
loopback port; clients POST real mp4 files (the synthetic videos, in turn) for the given
time. Prints one JSON line: requests/s, p50/p95 latency and errors for 1 and for N
clients, and the throughput ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_run(work: Path) -> tuple[Path, list[Path]]:
    from vidcls.config import ExperimentConfig, FeatureConfig
    from vidcls.data import synthesize
    from vidcls.features import extract
    from vidcls.training import train

    videos = synthesize(work / "videos", num_videos=40, seed=0).videos
    extract(FeatureConfig(data_dir=str(work / "videos"), cache_dir=str(work / "cache"), backbone="resnet50",
                          weights="none", num_frames=16, image_size=112, batch_size=64))
    train(ExperimentConfig().replace({"data.cache_dir": str(work / "cache"), "train.epochs": 5, "train.batch_size": 8}),
          work / "run")
    return work / "run", videos


def start_server(run_dir: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "vidcls", "serve", "--run-dir", str(run_dir), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not come up")


def load(base: str, videos: list[Path], clients: int, seconds: float) -> dict:
    import httpx

    latencies, errors, lock = [], [], threading.Lock()
    stop = time.monotonic() + seconds

    def client(index: int) -> None:
        with httpx.Client(timeout=120) as session:
            turn = index
            while time.monotonic() < stop:
                video = videos[turn % len(videos)]
                turn += clients
                started = time.perf_counter()
                try:
                    response = session.post(f"{base}/predict", files={"file": (video.name, video.read_bytes(), "video/mp4")})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    (latencies if ok else errors).append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": len(latencies), "errors": len(errors),
            "requests_per_second": round(len(latencies) / elapsed, 2),
            "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1) if latencies else None,
            "p95_ms": round(1000 * float(np.percentile(latencies, 95)), 1) if latencies else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", help="a trained run (default: build a small one)")
    parser.add_argument("--videos", help="folder of videos to send (default: the run's synthetic videos)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidcls_serve_bench_"))
    if args.run_dir:
        run_dir = Path(args.run_dir)
        videos = sorted(Path(args.videos).rglob("*.mp4")) if args.videos else []
        if not videos:
            raise SystemExit("with --run-dir, give --videos DIR (mp4 files to send)")
    else:
        run_dir, videos = build_run(work)
    process, base = start_server(run_dir)
    try:
        single = load(base, videos, 1, args.seconds / 2)
        concurrent = load(base, videos, args.clients, args.seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(json.dumps({
        "benchmark": "serve", "run_dir": str(run_dir), "one_client": single, "concurrent": concurrent,
        "throughput_ratio": round(concurrent["requests_per_second"] / max(single["requests_per_second"], 1e-9), 2),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
