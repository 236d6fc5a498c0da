"""`vidcls serve`: the trained run behind an HTTP API (FastAPI, served by uvicorn).

    POST /predict   multipart form, field `file`: a video -> labels and scores
                    (?window=SECONDS&stride=SECONDS: sliding windows and events)
    GET  /healthz   {"status": "ok"} while the server can take requests
    GET  /metadata  labels, frames per clip, backbone, model: what the service expects

Bad uploads are answered, never fatal: 413 over the size limit, 415 for a content type
that is not a video, 422 for a file that cannot be decoded, each with a message that says
what was expected and what was received.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

# At module level: the endpoints' annotations are resolved from these globals.
from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

logger = logging.getLogger("vidcls")

CHUNK_BYTES = 1 << 20
# Browsers and curl send these for video files; octet-stream for "unknown binary".
VIDEO_TYPES = ("video/", "application/octet-stream")
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}


def create_app(run_dir: str | Path, max_upload_mb: float = 200.0, weights: str | None = None):
    """The FastAPI application serving `run_dir` (loaded once, at creation)."""
    from vidcls.errors import VidclsError
    from vidcls.features import VideoReadError
    from vidcls.serving.predictor import Predictor

    predictor = Predictor(run_dir, weights=weights)
    limit = int(max_upload_mb * 1e6)
    # One clip at a time through the backbone and classifier: TensorFlow already uses
    # every core for one, and parallel calls would only contend for memory.
    model_lock = threading.Lock()
    app = FastAPI(title="vidcls", description=f"Video classification with the run {predictor.run_dir}")

    def classify(path: Path, window: float | None, stride: float | None) -> dict:
        if window:
            with model_lock:
                return predictor.predict_windows(path, window, stride or window)
        clip = predictor.read(path)  # decoding overlaps another request's inference
        with model_lock:
            return predictor.classify(clip)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/metadata")
    def metadata():
        fingerprint = predictor.fingerprint
        return {"run_dir": str(predictor.run_dir), "labels": predictor.label_space,
                "num_frames": predictor.num_frames, "model": predictor.model.name,
                "max_upload_bytes": limit,
                **{key: fingerprint.get(key) for key in ("backbone", "weights", "image_size", "feature_dim", "sampling")}}

    @app.post("/predict")
    async def predict(request: Request, file: UploadFile = File(...),
                      window: float | None = Query(None, gt=0, description="seconds per sliding window"),
                      stride: float | None = Query(None, gt=0, description="seconds between windows")):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit + CHUNK_BYTES:
            raise HTTPException(413, f"Upload of {int(declared)} bytes is over the limit of {limit} bytes")
        suffix = Path(file.filename or "").suffix.lower()
        content_type = (file.content_type or "").lower()
        if not content_type.startswith(VIDEO_TYPES) or (content_type.startswith("application/") and suffix not in VIDEO_SUFFIXES):
            raise HTTPException(415, f"Expected a video upload (content type video/*, or a video file name such as "
                                     f"clip.mp4); received content type '{file.content_type}' for '{file.filename}'")
        with tempfile.TemporaryDirectory(prefix="vidcls_upload_") as folder:
            path = Path(folder) / f"upload{suffix or '.mp4'}"
            size = 0
            with path.open("wb") as handle:
                while chunk := await file.read(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"Upload is over the limit of {limit} bytes")
                    handle.write(chunk)
            if size == 0:
                raise HTTPException(422, f"'{file.filename}' is empty (0 bytes); expected a video file")
            try:
                result = await run_in_threadpool(classify, path, window, stride)
            except VideoReadError as error:
                raise HTTPException(422, f"'{file.filename}' could not be decoded as a video: {error}") from None
            except VidclsError as error:
                raise HTTPException(422, str(error)) from None
        result["video"] = file.filename
        return result

    return app


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200.0,
          weights: str | None = None) -> None:
    """Serves `run_dir` until interrupted."""
    import uvicorn

    app = create_app(run_dir, max_upload_mb=max_upload_mb, weights=weights)
    logger.info("serving %s on http://%s:%d (POST /predict, GET /healthz, GET /metadata)", run_dir, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning")
