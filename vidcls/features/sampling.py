"""Which source frames a clip reads: the centre of each of T equal segments, and, for a
frame difference, each one's partner a fixed gap (in frames or seconds) later."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError


class VideoReadError(VidclsError):
    """A video could not be used; the message is the reason recorded in failures.jsonl."""


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


@dataclass(frozen=True)
class PartnerGap:
    """How far after a sampled frame its partner (the other image of a frame difference) is.

    `frames` source frames, or, with `seconds` > 0, a gap fixed in time: the whole number
    of frames nearest `seconds` at each video's frame rate, at least 1, an exact half
    rounding down (0.1 s: 1 frame up to 15 frames/s, 2 up to 25, 3 up to 35). The same
    motion then spans the same time in footage of any frame rate. False when it is no gap
    at all (no stream needs partners).

    Example:
        >>> PartnerGap(seconds=0.1).at(29.97), PartnerGap(seconds=0.1).at(25.0), PartnerGap(2).at(10.0)
        (3, 2, 2)
    """

    frames: int = 0
    seconds: float = 0.0

    def __bool__(self) -> bool:
        return self.frames > 0 or self.seconds > 0

    def at(self, fps: float, video: str | Path = "") -> int:
        """The gap in frames of a video at `fps` frames/s (`video` names it in errors).

        Raises:
            VideoReadError: a gap in seconds, and the video reports no frame rate.
        """
        if not self.seconds:
            return self.frames
        if not (fps and fps > 0 and math.isfinite(fps)):
            where = f"{video}: " if video else ""
            raise VideoReadError(f"{where}the container reports no frame rate ({fps}), so a difference gap of "
                                 f"{self.seconds} s cannot be converted to frames; extract with --difference-gap "
                                 "FRAMES instead")
        return max(1, math.ceil(fps * self.seconds - 0.5))


def as_partner_gap(gap: int | PartnerGap) -> PartnerGap:
    """`gap` as a PartnerGap (an int is a gap in frames)."""
    return gap if isinstance(gap, PartnerGap) else PartnerGap(int(gap))


def partner_indices(indices: np.ndarray, start: int, end: int, gap: int) -> np.ndarray:
    """The frame `gap` frames after each sampled index, inside `[start, end)`; at the end of
    a clip the one `gap` frames before it (a frame difference is the same either way). A
    clip of a single frame is its own partner: it shows no motion."""
    after = indices + gap
    return np.where(after < end, after, np.maximum(indices - gap, start))


def sampled_frame_mask(num_source_frames: int, num_frames: int) -> np.ndarray:
    """float32 `[num_frames]`: 1 where the sampled frame is new, 0 where it repeats the
    previous one (a clip shorter than T). All ones when the clip has >= T frames."""
    indices = segment_centre_indices(max(int(num_source_frames), 1), num_frames)
    return np.concatenate([[True], indices[1:] != indices[:-1]]).astype(np.float32)
