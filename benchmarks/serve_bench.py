"""HTTP serving under load: one client, then 8 concurrent clients, against `vidcls serve`.

    python benchmarks/serve_bench.py [--run-dir RUN] [--seconds 30] [--clients 8]
    python benchmarks/serve_bench.py --abuse [--seconds 60] [--max-upload-mb 5]

Without --run-dir it builds a small run first (synthetic videos, random-init ResNet50 at
112 px, 16 frames, attention-LSTM, 5 epochs). The server runs in its own process on a free
loopback port; clients POST real mp4 files (the synthetic videos, in turn) for the given
time. Prints one JSON line: requests/s, p50/p95 latency and errors for 1 and for N
clients, the throughput ratio, and the backbone's FLOP rate at that throughput (T frames x
streams per request) as a fraction of the machine's matmul peak in the cache's number
format (peak.py, measured after the server has stopped).

--abuse: N clients mix good videos with hostile requests for the given time: oversized
uploads (declared and chunked), stalled and slow bodies, malformed forms, files that are
not videos, extreme window parameters, hostile file names. Reports requests by kind and
status, 5xx (must be 0), the server's peak RSS and the peak disk use of its upload folder
(must stay under 2x the upload limit), and the good requests' p50 latency against a clean
run of the same length (the ratio).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # peak


def build_run(work: Path) -> tuple[Path, list[Path]]:
    from vidcls.config import ExperimentConfig, FeatureConfig
    from vidcls.features import extract
    from vidcls.training import train
    from vidcls.videos import synthesize

    videos = synthesize(work / "videos", num_videos=40, seed=0).videos
    extract(FeatureConfig(data_dir=str(work / "videos"), cache_dir=str(work / "cache"), backbone="resnet50",
                          weights="none", num_frames=16, image_size=112, batch_size=64))
    train(ExperimentConfig().replace({"data.cache_dir": str(work / "cache"), "train.epochs": 5, "train.batch_size": 8}),
          work / "run")
    return work / "run", videos


def start_server(run_dir: Path, *flags: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "vidcls", "serve", "--run-dir", str(run_dir), "--port", str(port),
                                *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **(env or {})})
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


ABUSE_KINDS = ("good", "declared_oversized", "chunked_oversized", "stalled", "slow_drip", "not_multipart",
               "garbage_form", "not_a_video", "corrupt_video", "window_inf", "tiny_stride", "hostile_name")


def _raw_request(base: str, head: bytes, body_chunks, pause: float = 0.0) -> str:
    """Sends `head`, then each chunk (pausing between), and returns the status or how the
    connection ended."""
    host, port = base.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(head)
            for chunk in body_chunks:
                if pause:
                    time.sleep(pause)
                sock.sendall(chunk)
            reply = sock.recv(64)
            return reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "closed"
    except (BrokenPipeError, ConnectionResetError):
        return "closed_by_server"
    except TimeoutError:
        return "client_timeout"


def _abuse_request(kind: str, base: str, video: Path, long_video: Path, limit: int, rng) -> str:
    import httpx

    boundary = b"bench"
    part = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n")
    form_type = b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n"
    if kind == "declared_oversized":
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + form_type + b"Content-Length: %d\r\n\r\n" % (limit * 3)
        return _raw_request(base, head + part, [os.urandom(65536)] * 4)
    if kind == "chunked_oversized":
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + form_type + b"Transfer-Encoding: chunked\r\n\r\n"
        chunk = os.urandom(256 * 1024)
        return _raw_request(base, head + b"%x\r\n" % len(part) + part + b"\r\n",
                            [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * (limit * 3 // len(chunk)))
    if kind == "stalled":
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + form_type + b"Content-Length: 100000\r\n\r\n"
        return _raw_request(base, head + part + b"x" * 100, [])
    if kind == "slow_drip":  # a byte now and then: never idle long enough, cut by the total timeout
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\n" + form_type + b"Content-Length: 100000\r\n\r\n"
        return _raw_request(base, head + part, [b"x"] * 8, pause=1.0)
    files = {"file": (video.name, video.read_bytes(), "video/mp4")}
    params = {}
    if kind == "not_multipart":
        return str(httpx.post(f"{base}/predict", content=video.read_bytes(), headers={"content-type": "video/mp4"},
                              timeout=120).status_code)
    if kind == "garbage_form":
        return str(httpx.post(f"{base}/predict", content=os.urandom(5000), timeout=120,
                              headers={"content-type": "multipart/form-data; boundary=zz"}).status_code)
    if kind == "not_a_video":
        files = {"file": ("notes.txt", b"hello", "text/plain")}
    elif kind == "corrupt_video":
        files = {"file": ("broken.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(20000), "video/mp4")}
    elif kind == "window_inf":
        params = {"window": "inf"}
    elif kind == "tiny_stride":
        files = {"file": (long_video.name, long_video.read_bytes(), "video/mp4")}
        params = {"window": 0.5, "stride": 1e-9}
    elif kind == "hostile_name":
        files = {"file": ("\x00../" + "x" * 300 + ".mp4\x00." + "y" * 300, video.read_bytes(), "video/mp4")}
    return str(httpx.post(f"{base}/predict", files=files, params=params, timeout=120).status_code)


def abuse(run_dir: Path, videos: list[Path], clients: int, seconds: float, max_upload_mb: float) -> dict:
    """Clean load, then the hostile mix, against one server with a watched upload folder."""
    import httpx

    upload_dir = Path(tempfile.mkdtemp(prefix="vidcls_abuse_tmp_"))
    flags = ["--max-upload-mb", str(max_upload_mb), "--idle-timeout", "2", "--upload-timeout", "5",
             "--max-concurrent", str(clients), "--max-windows", "100"]
    process, base = start_server(run_dir, *flags, env={"TMPDIR": str(upload_dir)})
    limit = int(max_upload_mb * 1e6)
    peak_disk, watching = [0], [True]

    def size_of(directory) -> int:
        total = 0
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        total += size_of(entry.path) if entry.is_dir() else entry.stat().st_size
                    except FileNotFoundError:
                        pass  # a request's folder, deleted as it ended
        except FileNotFoundError:
            pass
        return total

    def watch_disk():
        while watching[0]:
            peak_disk[0] = max(peak_disk[0], size_of(upload_dir))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch_disk, daemon=True)
    watcher.start()
    long_video = _long_video(upload_dir.parent / f"{upload_dir.name}_long.mp4")
    try:
        clean = load(base, videos, clients, seconds / 3)
        outcomes, good_latencies, lock = [], [], threading.Lock()
        stop = time.monotonic() + seconds

        def client(index: int) -> None:
            rng = np.random.default_rng(index)
            while time.monotonic() < stop:
                kind = ABUSE_KINDS[int(rng.integers(len(ABUSE_KINDS)))]
                video = videos[int(rng.integers(len(videos)))]
                started = time.perf_counter()
                try:
                    status = _abuse_request(kind, base, video, long_video, limit, rng)
                except Exception as error:  # the client's view of a failure is a result too
                    status = f"client_error:{type(error).__name__}"
                with lock:
                    outcomes.append((kind, status))
                    if kind == "good" and status == "200":
                        good_latencies.append(time.perf_counter() - started)

        threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        alive = process.poll() is None
        peak_rss_kb = _peak_rss_kb(process.pid)
        server_disk_peak = httpx.get(f"{base}/metadata", timeout=30).json()["upload_disk_bytes_peak"]
    finally:
        watching[0] = False
        process.terminate()
        process.wait(timeout=30)
    by_kind: dict[str, dict[str, int]] = {}
    for kind, status in outcomes:
        by_kind.setdefault(kind, {}).setdefault(status, 0)
        by_kind[kind][status] += 1
    server_errors = sum(1 for _, status in outcomes if status.startswith("5") and status != "503")
    abuse_p50 = float(np.percentile(good_latencies, 50)) if good_latencies else None
    return {
        "seconds": seconds, "clients": clients, "max_upload_bytes": limit, "requests": len(outcomes),
        "by_kind": by_kind, "status_5xx_except_503": server_errors,
        "busy_503": sum(1 for _, status in outcomes if status == "503"),
        "server_alive_after": alive, "server_peak_rss_mb": round(peak_rss_kb / 1024, 1) if peak_rss_kb else None,
        "peak_upload_disk_mb": round(peak_disk[0] / 1e6, 2),  # sampled from outside every few ms
        "peak_upload_disk_vs_limit": round(peak_disk[0] / limit, 2),
        "server_counted_upload_disk_peak_mb": round(server_disk_peak / 1e6, 2),  # every byte, as the server wrote it
        "clean_good_p50_ms": clean["p50_ms"], "abuse_good_p50_ms": round(1000 * abuse_p50, 1) if abuse_p50 else None,
        "good_p50_ratio_abuse_vs_clean": round(1000 * abuse_p50 / clean["p50_ms"], 2) if abuse_p50 and clean["p50_ms"] else None,
        "pass": server_errors == 0 and alive and max(peak_disk[0], server_disk_peak) <= 2 * limit,
    }


def _long_video(path: Path, seconds: float = 20.0, fps: int = 25, size: int = 96) -> Path:
    """A 20-s mp4 of moving noise: the target of the tiny-stride requests (one window per
    frame would be ~500 windows)."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size, size))
    rng = np.random.default_rng(0)
    for _ in range(int(seconds * fps)):
        writer.write(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    writer.release()
    return path


def _peak_rss_kb(pid: int) -> int | None:
    """VmHWM: the process's peak resident memory so far (Linux)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", help="a trained run (default: build a small one)")
    parser.add_argument("--videos", help="folder of videos to send (default: the run's synthetic videos)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--abuse", action="store_true", help="the hostile mix (see above) instead of plain load")
    parser.add_argument("--max-upload-mb", type=float, default=5.0, help="the server's upload limit with --abuse")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vidcls_serve_bench_"))
    if args.run_dir:
        run_dir = Path(args.run_dir)
        videos = sorted(Path(args.videos).rglob("*.mp4")) if args.videos else []
        if not videos:
            raise SystemExit("with --run-dir, give --videos DIR (mp4 files to send)")
    else:
        run_dir, videos = build_run(work)
    if args.abuse:
        report = abuse(run_dir, videos, args.clients, args.seconds, args.max_upload_mb)
        print(json.dumps({"benchmark": "serve_abuse", "run_dir": str(run_dir), **report,
                          "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}))
        return
    process, base = start_server(run_dir)
    try:
        single = load(base, videos, 1, args.seconds / 2)
        concurrent = load(base, videos, args.clients, args.seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    from peak import backbone_gflop_per_frame, fraction_of_peak, measure_in_child

    from vidcls.run_dir import RunDir

    fingerprint = RunDir(run_dir).features()["fingerprint"]
    precision = fingerprint.get("precision", "float32")
    gflop_per_request = (backbone_gflop_per_frame(fingerprint) * int(fingerprint["num_frames"])
                         * len(fingerprint.get("streams", ["appearance"])))
    peak = measure_in_child(dtypes=[precision])["cpu"]
    print(json.dumps({
        "benchmark": "serve", "run_dir": str(run_dir), "one_client": single, "concurrent": concurrent,
        "throughput_ratio": round(concurrent["requests_per_second"] / max(single["requests_per_second"], 1e-9), 2),
        "backbone_gflop_per_request": round(gflop_per_request, 2), "precision": precision, "matmul_peak_gflops": peak,
        "fraction_of_peak": {name: fraction_of_peak(gflop_per_request * load["requests_per_second"], peak, precision)
                             for name, load in (("one_client", single), ("concurrent", concurrent))},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
