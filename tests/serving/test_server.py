"""`vidcls serve` started for real on a free loopback port and called with a real HTTP client."""

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import write_corrupt_video


@pytest.fixture(scope="module")
def server(trained_run):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "vidcls", "serve", "--run-dir", str(trained_run), "--port", str(port),
         "--max-upload-mb", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
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


def test_bad_uploads_get_clear_answers_and_the_server_stays_up(server, tmp_path):
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
