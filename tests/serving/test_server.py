"""`vidcls serve` started for real on a free loopback port and called with a real HTTP client."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import write_corrupt_video

IDLE_TIMEOUT = 2


@pytest.fixture(scope="module")
def upload_tmp(tmp_path_factory):
    """The server's TMPDIR: where its uploads land, to check none is left behind."""
    return tmp_path_factory.mktemp("server_tmp")


@pytest.fixture(scope="module")
def server(trained_run, upload_tmp):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "vidcls", "serve", "--run-dir", str(trained_run), "--port", str(port),
         "--max-upload-mb", "1", "--idle-timeout", str(IDLE_TIMEOUT), "--max-concurrent", "3", "--max-windows", "50"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(upload_tmp)})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-3000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        process.kill()
        raise AssertionError("server did not answer /healthz within 180 s")
    yield base
    process.terminate()
    process.wait(timeout=30)


def _upload(base, path, content_type="video/mp4", name=None, **params):
    with open(path, "rb") as handle:
        return httpx.post(f"{base}/predict", params=params, timeout=120,
                          files={"file": (name or path.name, handle, content_type)})


def test_a_good_video_gets_the_predictors_answer(server, video_dir, trained_run):
    from vidcls.serving import Predictor

    video = next((video_dir / "grow").iterdir())
    response = _upload(server, video)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Predictor(trained_run).predict(video)
    assert body["label"] == expected["label"] and body["video"] == video.name
    assert body["probabilities"] == pytest.approx(expected["probabilities"], abs=1e-5)
    windows = _upload(server, video, window=0.5).json()
    assert windows["windows"] and windows["events"]
    metadata = httpx.get(f"{server}/metadata").json()
    assert metadata["labels"] == {"label": ["blue_to_red", "grow", "red_to_blue", "shrink"]} and metadata["num_frames"] == 8


def test_bad_uploads_get_clear_answers_and_the_server_stays_up(server, tmp_path, video_dir):
    corrupt = _upload(server, write_corrupt_video(tmp_path / "bad.mp4"))
    assert corrupt.status_code == 422 and "could not be decoded as a video" in corrupt.json()["detail"]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert _upload(server, empty).status_code == 422
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(1_500_000))
    too_large = _upload(server, big)
    assert too_large.status_code == 413 and "over the limit of 1000000 bytes" in too_large.json()["detail"]
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    wrong = _upload(server, text, content_type="text/plain")
    assert wrong.status_code == 415 and "Expected a video upload" in wrong.json()["detail"]
    assert _upload(server, text, content_type="application/octet-stream").status_code == 415  # no video suffix
    assert httpx.post(f"{server}/predict", timeout=30).status_code == 422  # no file field
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    good = _upload(server, next((video_dir / "grow").iterdir()))  # and it still classifies
    assert good.status_code == 200 and good.json()["label"], good.text


def _raw(base, head: bytes) -> socket.socket:
    """A socket to the server with `head` (request line, headers, maybe some body) sent."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(head)
    return sock


def _status(sock) -> int:
    reply = b""
    while b"\r\n" not in reply:
        data = sock.recv(4096)
        if not data:
            break
        reply += data
    return int(reply.split(b" ", 2)[1]) if reply else 0


def _form_head(boundary=b"xyz", name=b"clip.mp4", extra_headers=b"", content_length=None):
    headers = (b"POST /predict HTTP/1.1\r\nHost: x\r\n"
               b"Content-Type: multipart/form-data; boundary=" + boundary + b"\r\n" + extra_headers
               + (b"Content-Length: %d\r\n" % content_length if content_length is not None else b"") + b"\r\n")
    part = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + name
            + b"\"\r\nContent-Type: video/mp4\r\n\r\n")
    return headers, part


def test_a_huge_declared_length_is_refused_before_reading(server):
    headers, part = _form_head(content_length=10**12)
    started = time.monotonic()
    with _raw(server, headers + part + b"short") as sock:
        assert _status(sock) == 413
    assert time.monotonic() - started < IDLE_TIMEOUT  # at once, not after waiting for 1 TB


def test_a_chunked_upload_is_cut_off_at_the_limit(server, upload_tmp):
    headers, part = _form_head(extra_headers=b"Transfer-Encoding: chunked\r\n")
    chunk = os.urandom(256 * 1024)
    with _raw(server, headers + b"%x\r\n" % len(part) + part + b"\r\n") as sock:
        sent = 0
        try:
            while sent < 50 * 2**20:  # far more than the 1 MB limit: the server must stop us
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status = _status(sock) if sent < 50 * 2**20 else None
    # What the client got into the socket: the server's ~1 MB plus what the kernel's
    # buffers on both ends absorb (a few MB on loopback), far below the 50 MB offered.
    assert sent < 16 * 2**20, f"the server took {sent} bytes of a 1 MB-limited upload"
    assert status in (413, 0)  # 413, or the connection closed right after it
    assert not any(upload_tmp.rglob("upload*")), "the partial upload was left on disk"


def test_a_stalled_upload_times_out_and_slots_are_bounded(server):
    headers, part = _form_head(content_length=500_000)
    stalled = [_raw(server, headers + part + b"x" * 1000) for _ in range(3)]  # --max-concurrent 3
    time.sleep(0.5)
    busy = httpx.post(f"{server}/predict", files={"file": ("a.mp4", b"x" * 100, "video/mp4")}, timeout=30)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1" and "upload slots" in busy.text
    started = time.monotonic()
    statuses = [_status(sock) for sock in stalled]
    assert statuses == [408, 408, 408] and time.monotonic() - started < IDLE_TIMEOUT + 5
    for sock in stalled:
        sock.close()
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}


def test_uploads_together_never_take_more_than_the_upload_disk(server):
    """1 MB per upload, 2 MB for all at once: two stalled 0.9 MB uploads leave no room."""
    headers, part = _form_head(content_length=1_000_000)
    holding = [_raw(server, headers + part + b"x" * 900_000) for _ in range(2)]
    time.sleep(1.0)
    refused = httpx.post(f"{server}/predict", files={"file": ("a.mp4", os.urandom(500_000), "video/mp4")}, timeout=30)
    assert refused.status_code == 503 and "upload space" in refused.text and refused.headers["retry-after"] == "1"
    assert [_status(sock) for sock in holding] == [408, 408]
    for sock in holding:
        sock.close()
    assert httpx.get(f"{server}/metadata").json()["upload_disk_bytes_peak"] <= 2_000_000


def test_bad_parameters_and_names_get_4xx_never_500(server, video_dir, real_videos):
    video = next((video_dir / "grow").iterdir())
    recording = min(real_videos.glob("*.mp4"), key=lambda path: path.stat().st_size)
    many = _upload(server, recording, window=0.5, stride=1e-9)  # one window per frame: hundreds
    assert many.status_code == 422 and "at most 50 are allowed" in many.text, many.text
    for params, message in (({"window": "inf"}, "finite"), ({"window": "nan"}, "finite"),
                            ({"stride": 1}, "stride needs window")):
        response = _upload(server, video, **params)
        assert response.status_code == 422 and message in response.text, (params, response.text)
    for name in ("clip\x00.mp4", "clip." + "m" * 300, "../../etc/passwd.mp4", "\u00e9t\u00e9.mp4"):
        response = _upload(server, video, name=name)
        assert response.status_code == 200, (name, response.text)
        assert "\x00" not in response.json()["video"] and len(response.json()["video"]) <= 255
    not_multipart = httpx.post(f"{server}/predict", content=video.read_bytes(), headers={"content-type": "video/mp4"})
    assert not_multipart.status_code == 422 and "multipart/form-data" in not_multipart.text


def test_concurrent_requests_get_the_same_answers_as_one_at_a_time(server, video_dir):
    from concurrent.futures import ThreadPoolExecutor

    videos = sorted(video_dir.rglob("*.mp4"))[:3]  # three clients: --max-concurrent 3
    alone = [_upload(server, video).json() for video in videos]
    with ThreadPoolExecutor(len(videos)) as pool:
        together = [response.json() for response in pool.map(lambda video: _upload(server, video), videos)]
    for single, concurrent in zip(alone, together):
        assert concurrent["label"] == single["label"]
        assert concurrent["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)


def test_the_upload_limit_is_exact(server, tmp_path):
    """1 MB limit: 1,000,000 bytes are taken (and fail to decode), one more is refused."""
    at_limit, over = tmp_path / "at.mp4", tmp_path / "over.mp4"
    at_limit.write_bytes(os.urandom(1_000_000))
    over.write_bytes(os.urandom(1_000_001))
    assert _upload(server, at_limit).status_code == 422
    refused = _upload(server, over)
    assert refused.status_code == 413 and "over the limit of 1000000 bytes" in refused.text
