"""Reading videos with OpenCV and sampling frames uniformly over the whole clip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidcls.errors import VidclsError


class VideoReadError(VidclsError):
    """A video could not be used; the message is the reason recorded in failures.jsonl."""


@dataclass(frozen=True)
class SampledClip:
    """`frames` is uint8 RGB `[num_frames, size, size, 3]`.

    `total_frames` is the count found by decoding; `valid_frames` is how many distinct
    source frames were sampled (fewer than `num_frames` when the video is shorter than
    the requested T, in which case frames repeat).
    """

    frames: np.ndarray
    total_frames: int
    valid_frames: int


def segment_centre_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """TSN-style uniform sampling: the centre frame of each of `num_frames` equal segments.

    Covers the whole video rather than its first `num_frames` frames. A video shorter than
    `num_frames` gets repeated indices, in order.
    """
    if total_frames < 1:
        raise ValueError(f"Expected total_frames >= 1; received {total_frames}")
    segment = total_frames / num_frames
    indices = np.floor(segment * (np.arange(num_frames) + 0.5)).astype(np.int64)
    return np.clip(indices, 0, total_frames - 1)


def count_frames(path: Path) -> int:
    """Counts frames by decoding: CAP_PROP_FRAME_COUNT is often wrong for real files."""
    capture = _open(path)
    try:
        total = 0
        while capture.grab():
            total += 1
    finally:
        capture.release()
    return total


def read_sampled_frames(path: str | Path, num_frames: int, image_size: int) -> SampledClip:
    """Decodes `path`, keeps `num_frames` frames spread over the whole clip, resizes them.

    Raises:
        VideoReadError: the file is missing, empty, unreadable or has no decodable frame.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"file does not exist: {path}")
    if path.stat().st_size == 0:
        raise VideoReadError("file is empty (0 bytes)")
    total = count_frames(path)
    if total == 0:
        raise VideoReadError("no decodable frame (corrupt, truncated or not a video)")
    indices = segment_centre_indices(total, num_frames)
    wanted = set(indices.tolist())
    decoded: dict[int, np.ndarray] = {}
    capture = _open(path)
    try:
        for index in range(indices[-1] + 1):
            if not capture.grab():
                break
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    decoded[index] = _to_model_frame(frame, image_size)
    finally:
        capture.release()
    missing = sorted(wanted - decoded.keys())
    if missing:
        raise VideoReadError(
            f"frames {missing[:5]} of {total} could not be decoded on the second pass "
            "(the file changed or its stream is damaged)"
        )
    frames = np.stack([decoded[index] for index in indices.tolist()])
    return SampledClip(frames=frames, total_frames=total, valid_frames=len(wanted))


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError("OpenCV could not open the file (unknown container or codec)")
    return capture


def _to_model_frame(frame_bgr: np.ndarray, image_size: int) -> np.ndarray:
    resized = cv2.resize(frame_bgr, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
