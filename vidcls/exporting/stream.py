"""`vidcls stream`: the loop a phone app runs, in the LiteRT interpreter.

Frames arrive in time order. Every grid frame (one each frame interval, see
`vidcls.features.windows`) goes through `frame_encoder_<variant>.tflite` once, when it
(and, for a motion stream, its partner frame) has arrived; its feature vector enters a
ring buffer of the last T. Every `step` grid frames the buffer goes through
`head_<variant>.tflite`. Nothing else is kept: memory stays at T feature vectors and a few
frames, however long the video. Everything the loop needs (T, the frame interval, the
image size, the streams, the labels) is read from the .tflite files' own metadata.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError
from vidcls.exporting.tflite_metadata import read_metadata
from vidcls.features import (
    PartnerGap,
    VideoReadError,
    check_readable,
    check_seconds,
    plan_windows,
    segment_centre_indices,
    to_model_frame,
)
from vidcls.serving import scores_of, windows_prediction


class StreamRunner:
    """The streaming pair of one variant, loaded in the LiteRT interpreter with the options
    a phone app uses by default (XNNPACK on).

    Args:
        streaming_dir: `RUN_DIR/export/streaming`.
        variant: float32, float16 or dynamic_int8 (those exported).
        threads: interpreter threads.
        window_sec: the seconds T frames span, when not the exported one (the model then
            sees motion at another speed than it learned).

    Example:
        >>> runner = StreamRunner("runs/demo/export/streaming")
        >>> runner.run("long.mp4", stride_sec=0.5)["events"][0]["label"]
        'clockwise'
    """

    def __init__(self, streaming_dir: str | Path, variant: str = "float32", threads: int = 1,
                 window_sec: float | None = None):
        from ai_edge_litert.interpreter import Interpreter

        directory = Path(streaming_dir)
        paths = {role: directory / f"{role}_{variant}.tflite" for role in ("frame_encoder", "head")}
        missing = [path.name for path in paths.values() if not path.is_file()]
        if missing:
            found = sorted(path.name for path in directory.glob("*.tflite")) if directory.is_dir() else []
            raise VidclsError(f"Expected {', '.join(missing)} in {directory} (written by vidcls export --streaming); "
                              f"found {found or 'no .tflite file'}")
        self.metadata = {role: read_metadata(path) for role, path in paths.items()}
        encoder, head = self.metadata["frame_encoder"], self.metadata["head"]
        if encoder["pair"] != head["pair"]:
            raise VidclsError(f"{paths['frame_encoder']} and {paths['head']} come from different exports "
                              f"({encoder['pair']} vs {head['pair']}); export again")
        self.paths, self.variant = paths, variant
        self.num_frames = int(head["num_frames"])
        self.window_sec = check_seconds("window", float(head["window_sec"]) if window_sec is None else window_sec)
        self.default_stride_sec = float(head.get("default_stride_sec", self.window_sec / 4))
        self.image_size = int(encoder["image_size"])
        self.gap = PartnerGap(int(encoder.get("difference_gap", 0)), float(encoder.get("difference_seconds", 0.0)))
        self.label_space = {target: head["targets"][target] for target in head.get("target_order", head["targets"])}
        self._encoder = Interpreter(model_path=str(paths["frame_encoder"]), num_threads=threads).get_signature_runner()
        self._head = Interpreter(model_path=str(paths["head"]), num_threads=threads).get_signature_runner()

    def encode(self, frame: np.ndarray, partner: np.ndarray | None = None) -> np.ndarray:
        """One RGB uint8 `[S, S, 3]` frame (and its partner) -> its feature vector `[D]`."""
        inputs = {"frame": frame[None]}
        if self.gap:
            inputs["partner_frame"] = partner[None]
        return next(iter(self._encoder(**inputs).values()))[0]

    def classify(self, features: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """`[T, D]` features and `[T]` mask -> `{target: [K]}`."""
        outputs = self._head(features=features[None].astype(np.float32), mask=mask[None].astype(np.float32))
        if len(self.label_space) == 1:
            return {next(iter(self.label_space)): next(iter(outputs.values()))[0]}
        return {target: outputs[target][0] for target in self.label_space}

    def run(self, video: str | Path, stride_sec: float | None = None, on_window=None) -> dict:
        """Streams `video` frame by frame. `on_window(window)` is called as each window is
        scored (`start_sec`, `end_sec`, `label`, `score`, ...). Returns what `vidcls predict
        --window` returns for the same video, plus `latency`: per-frame encoder and
        per-window head milliseconds and the real-time factor (frame interval / work per
        frame interval)."""
        import cv2

        stride_sec = check_seconds("stride", self.default_stride_sec if stride_sec is None else stride_sec)
        try:
            check_readable(Path(video))
        except VideoReadError as error:
            raise VideoReadError(str(error) if str(video) in str(error) else f"{video}: {error}") from None
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            capture.release()
            raise VideoReadError(f"{video}: OpenCV could not open the file (unknown container or codec)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not fps or fps <= 0 or not math.isfinite(fps):
            capture.release()
            raise VideoReadError(f"{video}: the container reports no frame rate, so frame intervals cannot be placed")
        state = _StreamState(self, fps, stride_sec, on_window, self.gap.at(fps, video))
        try:
            index = -1
            while capture.grab():
                index += 1
                ok, frame = capture.retrieve()
                if not ok:
                    raise VideoReadError(f"{video}: frame {index} could not be decoded")
                state.arrive(index, to_model_frame(frame, self.image_size))
        finally:
            capture.release()
        if index < 0:
            raise VideoReadError(f"{video}: no decodable frame (corrupt, truncated or not a video)")
        state.finish(index + 1)
        plan = plan_windows(index + 1, fps, self.num_frames, self.window_sec, stride_sec, self.gap)
        if [int(row[0]) for row in plan.windows] != state.window_starts:
            raise VidclsError(f"internal: streamed windows {state.window_starts} differ from the plan's "
                              f"{[int(row[0]) for row in plan.windows]} for {video}")
        probabilities = {target: np.stack([scores[target] for scores in state.scores]) for target in self.label_space}
        result = windows_prediction(video, plan, probabilities, self.label_space)
        result["variant"] = self.variant
        result["latency"] = state.latency(plan)
        return result


class _StreamState:
    """What the loop keeps between frames: the last few frames (for partners), grid frames
    waiting for their partner, and the ring buffer of T features."""

    def __init__(self, runner: StreamRunner, fps: float, stride_sec: float, on_window, gap: int):
        self.runner, self.fps, self.on_window, self.gap = runner, fps, on_window, gap
        self.interval = runner.window_sec * fps / runner.num_frames
        self.step = max(1, int(round(stride_sec / (runner.window_sec / runner.num_frames))))
        self.frames: deque = deque(maxlen=2 * gap + 1)  # (index, frame): partners before or after
        self.waiting: deque = deque()  # grid frames' source indices, encoded once their partner arrived
        self.buffer: deque = deque(maxlen=runner.num_frames)  # (source index, features)
        self.next_grid, self.encoded = 0, 0
        self.window_starts, self.scores = [], []
        self.encoder_seconds, self.head_seconds = [], []

    def arrive(self, index: int, frame: np.ndarray) -> None:
        self.frames.append((index, frame))
        while math.floor((self.next_grid + 0.5) * self.interval) == index:
            self.waiting.append(index)
            self.next_grid += 1
        while self.waiting and self.waiting[0] + self.gap <= index:
            source = self.waiting.popleft()
            self._encode(source, source + self.gap)

    def finish(self, total: int) -> None:
        """The video ended: partners past the end are the frames `gap` before; a video
        shorter than one window is one window; a tail window ends on the last grid frame."""
        while self.waiting:
            source = self.waiting.popleft()
            self._encode(source, max(source - self.gap, 0))
        self.total = total
        rows = list(self.buffer)
        count, length = self.encoded, self.runner.num_frames
        if count < length:
            self._score([rows[i] for i in segment_centre_indices(count, length)], 0)
        elif not self.window_starts or self.window_starts[-1] + length < count:
            self._score(rows, count - length)

    def _encode(self, source: int, partner: int) -> None:
        frames = dict(self.frames)
        started = time.perf_counter()
        features = self.runner.encode(frames[source], frames[partner] if self.gap else None)
        self.encoder_seconds.append(time.perf_counter() - started)
        self.buffer.append((source, features))
        self.encoded += 1
        first = self.encoded - self.runner.num_frames
        if first >= 0 and first % self.step == 0:
            self._score(list(self.buffer), first)

    def _score(self, rows: list, first: int) -> None:
        sources = np.array([source for source, _ in rows])
        mask = np.concatenate([[True], sources[1:] != sources[:-1]]).astype(np.float32)
        started = time.perf_counter()
        scores = self.runner.classify(np.stack([features for _, features in rows]), mask)
        self.head_seconds.append(time.perf_counter() - started)
        self.window_starts.append(first)
        self.scores.append(scores)
        if self.on_window is not None:
            start = first * self.interval / self.fps
            end = (first + len(rows)) * self.interval / self.fps if self.encoded >= len(rows) else self.total / self.fps
            self.on_window({"start_sec": round(start, 3), "end_sec": round(end, 3),
                            **scores_of(self.runner.label_space, scores)})

    def latency(self, plan) -> dict:
        encoder_ms = 1000 * float(np.mean(self.encoder_seconds))
        head_ms = 1000 * float(np.mean(self.head_seconds))
        work_ms = encoder_ms + head_ms / plan.step  # per frame interval
        return {"encoder_ms_per_frame": round(encoder_ms, 3), "head_ms_per_window": round(head_ms, 3),
                "frame_interval_ms": round(1000 * plan.frame_interval_sec, 3),
                "real_time_factor": round(1000 * plan.frame_interval_sec / work_ms, 2),
                "frames_encoded": len(self.encoder_seconds), "windows": len(self.head_seconds)}
