"""`vidcls serve`: the trained run behind an HTTP API (FastAPI, served by uvicorn).

    POST /predict   multipart form, field `file`: a video -> labels and scores
                    (?window=SECONDS&stride=SECONDS: sliding windows and events)
    GET  /healthz   {"status": "ok"} while the server can take requests
    GET  /metadata  labels, frames per clip, backbone, model, request limits

Bad uploads are answered, never fatal: 413 over the size limit, 415 for a content type
that is not a video, 422 for a file that cannot be decoded or parameters out of bounds,
408 for a body that arrives too slowly, 503 when every upload slot or the server's upload
disk space is taken; each with a message that says what was expected and what was received.

Limits hold while the body streams in, not after: the upload is parsed as it arrives
(Starlette's form parser would first spool the whole body to disk, however large), a
declared Content-Length over the limit is refused before one byte is read, a chunked
body is counted and dropped the moment it passes the limit, and a body that stalls is cut
off. The client's file name is only echoed back, never used to build a path.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# At module level: the endpoints' annotations are resolved from these globals.
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool

from vidcls.errors import VidclsError
from vidcls.serving.limits import Limits
from vidcls.videos import VIDEO_SUFFIXES

logger = logging.getLogger("vidcls")

# Browsers and curl send these for video files; octet-stream for "unknown binary".
VIDEO_TYPES = ("video/", "application/octet-stream")
# Multipart boundaries, part headers and small form fields on top of the file itself.
FORM_OVERHEAD_BYTES = 64 * 1024
MAX_FIELD_BYTES = 1024
MAX_NAME_CHARS = 255  # of the file name echoed back
# On a refusal mid-body: the server closes the connection instead of reading the rest.
CLOSE = {"Connection": "close"}


class _DiskBudget:
    """Bytes of uploads on disk across requests (the event loop is one thread: no lock)."""

    def __init__(self, capacity: int):
        self.capacity, self.used, self.peak = capacity, 0, 0

    def take(self, count: int) -> None:
        if self.used + count > self.capacity:
            raise _Refused(503, f"Uploads in progress hold {self.used} bytes of the server's {self.capacity}-byte "
                                "upload space; retry shortly")
        self.used += count
        self.peak = max(self.peak, self.used)

    def release(self, count: int) -> None:
        self.used -= count


def create_app(run_dir: str | Path, max_upload_mb: float | None = None, weights: str | None = None,
               limits: Limits | None = None):
    """The FastAPI application serving `run_dir` (loaded once, at creation)."""
    from vidcls.features import VideoReadError
    from vidcls.serving.predictor import Predictor

    limits = limits or Limits(**({"max_upload_mb": max_upload_mb} if max_upload_mb is not None else {}))
    predictor = Predictor(run_dir, weights=weights)
    limit = limits.max_upload_bytes
    # One clip at a time through the backbone and classifier: TensorFlow already uses
    # every core for one, and parallel calls would only contend for memory. Decoding
    # happens outside the lock, so a long video never stalls the others' inference.
    model_lock = threading.Lock()
    slots = asyncio.Semaphore(limits.max_concurrent)
    disk = _DiskBudget(limits.max_disk_bytes)
    app = FastAPI(title="vidcls", description=f"Video classification with the run {predictor.run_dir}")

    def classify(path: Path, window: float | None, stride: float | None) -> dict:
        if window:
            read = predictor.read_windows(path, window, stride or window, limits.max_windows)
            with model_lock:
                return predictor.classify_windows(read)
        clip = predictor.read(path)
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
                "max_upload_bytes": limit, "max_windows": limits.max_windows,
                "idle_timeout_sec": limits.idle_timeout, "upload_timeout_sec": limits.upload_timeout,
                "max_concurrent_uploads": limits.max_concurrent, "max_upload_disk_bytes": disk.capacity,
                "upload_disk_bytes_peak": disk.peak,
                **{key: fingerprint.get(key) for key in ("backbone", "weights", "image_size", "feature_dim", "sampling")}}

    @app.post("/predict", openapi_extra=_UPLOAD_SCHEMA)
    async def predict(request: Request,
                      window: float | None = Query(None, gt=0, allow_inf_nan=False,
                                                   description="seconds per sliding window"),
                      stride: float | None = Query(None, gt=0, allow_inf_nan=False,
                                                   description="seconds between windows (default: the window)")):
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit + FORM_OVERHEAD_BYTES):
            raise HTTPException(413, f"Upload of {declared} bytes (Content-Length) is over the limit of {limit} bytes",
                                headers=CLOSE)
        if stride is not None and window is None:
            raise HTTPException(422, "stride needs window (the window length in seconds)")
        if slots.locked():
            raise HTTPException(503, f"All {limits.max_concurrent} upload slots are busy; retry shortly",
                                headers={"Retry-After": "1"})
        async with slots:
            with tempfile.TemporaryDirectory(prefix="vidcls_upload_") as folder:
                state = _FormState(Path(folder), limit, disk)
                try:
                    upload = await _receive_upload(request, state, limits)
                    result = await run_in_threadpool(classify, upload.path, window, stride)
                except VideoReadError as error:
                    raise HTTPException(422, f"'{upload.name}' could not be decoded as a video: {error}") from None
                except VidclsError as error:
                    raise HTTPException(422, str(error)) from None
                finally:
                    disk.release(state.size)
        result["video"] = upload.name
        return result

    return app


_UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary", "description": "the video"}}}}}}}


@dataclass
class _Upload:
    path: Path
    name: str  # the client's file name, for the answer only
    size: int


async def _receive_upload(request: Request, state: _FormState, limits: Limits) -> _Upload:
    """Streams the multipart body into `state`'s folder, enforcing the size, disk and time
    limits as the bytes arrive.

    Raises:
        HTTPException: 413 over the limit, 408 too slow, 415 not a video, 422 a malformed
            form, no `file` field, or an empty file.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise HTTPException(422, "Expected a multipart/form-data body with the video in a field named 'file'; "
                                 f"received content type '{request.headers.get('content-type', '')}'")
    limit = limits.max_upload_bytes
    parser = MultipartParser(options[b"boundary"], state.callbacks())
    received = 0
    started = time.monotonic()
    stream = request.stream().__aiter__()
    try:
        while True:
            remaining = limits.upload_timeout - (time.monotonic() - started)
            if remaining <= 0:
                raise HTTPException(408, f"The upload took longer than {limits.upload_timeout:g} s; it was dropped",
                                    headers=CLOSE)
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), min(limits.idle_timeout, remaining))
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise HTTPException(408, f"The upload stalled: no data for {min(limits.idle_timeout, remaining):g} s "
                                         f"after {received} bytes; it was dropped", headers=CLOSE) from None
            received += len(chunk)
            if received > limit + FORM_OVERHEAD_BYTES:
                raise HTTPException(413, f"Upload is over the limit of {limit} bytes", headers=CLOSE)
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except _Refused as refused:
        retry = {"Retry-After": "1"} if refused.status == 503 else {}
        raise HTTPException(refused.status, refused.message, headers={**CLOSE, **retry}) from None
    except HTTPException:
        raise
    except Exception as error:  # python-multipart's parse errors
        raise HTTPException(422, f"Malformed multipart body ({type(error).__name__}: {error})", headers=CLOSE) from None
    finally:
        state.close()
    if state.path is None or not state.done:
        raise HTTPException(422, "Expected the video in a multipart form field named 'file'; none was received")
    if state.size == 0:
        raise HTTPException(422, f"'{state.name}' is empty (0 bytes); expected a video file")
    return _Upload(state.path, state.name, state.size)


class _Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _FormState:
    """python-multipart callbacks: the `file` part goes to disk, other small fields are
    skipped, and nothing past the limit is written."""

    def __init__(self, folder: Path, limit: int, disk: _DiskBudget):
        self.folder, self.limit, self.disk = folder, limit, disk
        self.path: Path | None = None
        self.name = ""
        self.size = 0
        self.done = False
        self._headers: dict[bytes, bytes] = {}
        self._field, self._value = b"", b""
        self._handle = None
        self._other_bytes = 0

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end}

    def _part_begin(self):
        self._headers, self._field, self._value = {}, b"", b""

    def _header_field(self, data, start, end):
        self._field += data[start:end]

    def _header_value(self, data, start, end):
        self._value += data[start:end]

    def _header_end(self):
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field, self._value = b"", b""

    def _headers_finished(self):
        from python_multipart.multipart import parse_options_header

        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition.get(b"name") != b"file" or self.path is not None:
            return  # another field: its bytes are counted, not kept
        name = disposition.get(b"filename", b"").decode("utf-8", "replace")
        self.name = "".join(character for character in name if character.isprintable())[:MAX_NAME_CHARS]
        content_type = self._headers.get(b"content-type", b"").decode("latin-1").lower()
        suffix = Path(self.name).suffix.lower()
        if not content_type.startswith(VIDEO_TYPES) or (content_type.startswith("application/")
                                                        and suffix not in VIDEO_SUFFIXES):
            raise _Refused(415, f"Expected a video upload (content type video/*, or a video file name such as "
                                f"clip.mp4); received content type '{content_type}' for '{self.name}'")
        # The name on disk is ours; only a known video suffix is kept (OpenCV uses it as a hint).
        self.path = self.folder / f"upload{suffix if suffix in VIDEO_SUFFIXES else '.mp4'}"
        self._handle = self.path.open("wb")

    def _part_data(self, data, start, end):
        if self._handle is None:
            self._other_bytes += end - start
            if self._other_bytes > MAX_FIELD_BYTES * 16:
                raise _Refused(413, "Form fields other than 'file' are over their limit")
            return
        if self.size + end - start > self.limit:
            raise _Refused(413, f"Upload is over the limit of {self.limit} bytes")
        self.disk.take(end - start)
        self.size += end - start  # released by the caller once the request ends
        self._handle.write(data[start:end])

    def _part_end(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None
            self.done = True

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200.0,
          weights: str | None = None, limits: Limits | None = None) -> None:
    """Serves `run_dir` until interrupted."""
    import uvicorn

    limits = limits or Limits(max_upload_mb=max_upload_mb)
    app = create_app(run_dir, weights=weights, limits=limits)
    logger.info("serving %s on http://%s:%d (POST /predict, GET /healthz, GET /metadata); uploads up to %g MB, "
                "%d windows, %d at once, %g s idle / %g s total", run_dir, host, port, limits.max_upload_mb,
                limits.max_windows, limits.max_concurrent, limits.idle_timeout, limits.upload_timeout)
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=limits.max_concurrent * 4 + 16,
                timeout_keep_alive=5, h11_max_incomplete_event_size=64 * 1024)
