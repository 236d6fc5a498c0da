"""Windows over a long video, defined once for `predict --window`, `serve` and `stream`.

A window of `window_sec` seconds holds T frames, the centres of T equal segments, as a
training clip does. Consecutive windows share frames: the video is sampled on one *frame
grid*, grid frame k being source frame `floor((k + 0.5) * interval)` with `interval =
window_sec * fps / T` source frames (the frame interval: `window_sec / T` seconds). A
window is T consecutive grid frames; windows start every `step = round(stride_sec /
frame interval)` grid frames (the stride snaps to whole frame intervals), and, when the
video goes on past the last full window, one more window ends on the last grid frame (the
tail). A video shorter than one window is one window: its grid frames spread over T rows
as a short training clip's are, repeats masked. A phone encodes each grid frame once, when
it arrives, into a ring buffer of T features, and runs the classifier every `step` frames;
`vidcls predict --window` decodes and encodes each grid frame once and scores the same
windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vidcls.errors import VidclsError
from vidcls.features.sampling import PartnerGap, as_partner_gap, partner_indices, segment_centre_indices


@dataclass(frozen=True)
class WindowPlan:
    """Where a video's windows are.

    `frames` are the grid frames' source indices `[G]`, `partners` each one's partner frame
    for a motion stream (empty without one), `windows` one row per window: the grid
    positions of its T frames `[W, T]`; `masks` `[W, T]` is 1 where a window's frame is a
    new source frame, 0 where it repeats the one before (a window shorter than T frames).
    """

    fps: float
    total_frames: int
    window_sec: float
    stride_sec: float
    interval: float
    step: int
    frames: np.ndarray
    partners: np.ndarray
    windows: np.ndarray
    masks: np.ndarray

    @property
    def frame_interval_sec(self) -> float:
        return self.interval / self.fps

    def source_frames(self) -> set[int]:
        """Every source frame the plan reads: grid frames and their partners."""
        return {*self.frames.tolist(), *self.partners.tolist()}

    def times(self, window: int) -> tuple[float, float]:
        """`(start_sec, end_sec)` of a window: its frames' segments, within the video."""
        if len(self.frames) < self.windows.shape[1]:  # a video shorter than one window: all of it
            return 0.0, round(self.total_frames / self.fps, 3)
        first, last = int(self.windows[window][0]), int(self.windows[window][-1])
        start = first * self.interval / self.fps
        end = min((last + 1) * self.interval, self.total_frames) / self.fps
        return round(start, 3), round(end, 3)


def check_seconds(name: str, value) -> float:
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise VidclsError(f"Expected --{name} to be a positive finite number of seconds; received {value}")
    return float(value)


def plan_windows(total_frames: int, fps: float, num_frames: int, window_sec: float, stride_sec: float,
                 difference_gap: int | PartnerGap = 0, max_windows: int = 0) -> WindowPlan:
    """The frame grid and the windows on it (see the module's docstring).

    Raises:
        VidclsError: a window or stride that is not a positive finite number of seconds,
            or more than `max_windows` windows (0: no bound).
    """
    window_sec, stride_sec = check_seconds("window", window_sec), check_seconds("stride", stride_sec)
    if total_frames < 1 or not fps > 0:
        raise VidclsError(f"Expected a video with frames and a frame rate; received {total_frames} frames at {fps} fps")
    difference_gap = as_partner_gap(difference_gap).at(fps)
    interval = window_sec * fps / num_frames
    count = max(1, math.ceil(total_frames / interval - 0.5))
    frames = np.minimum(np.floor((np.arange(count) + 0.5) * interval).astype(np.int64), total_frames - 1)
    step = max(1, int(round(stride_sec / (window_sec / num_frames))))
    if count < num_frames:
        windows = segment_centre_indices(count, num_frames)[None]
    else:
        starts = list(range(0, count - num_frames + 1, step))
        if starts[-1] + num_frames < count:
            starts.append(count - num_frames)
        if max_windows and len(starts) > max_windows:
            shortest = (count - num_frames) * interval / fps / max(max_windows - 2, 1)
            raise VidclsError(
                f"window {window_sec} s every {stride_sec} s makes {len(starts)} windows of this "
                f"{total_frames / fps:.1f}-s video; at most {max_windows} are allowed: use a stride of at least "
                f"{shortest:.3g} s")
        windows = np.asarray(starts)[:, None] + np.arange(num_frames)[None]
    sources = frames[windows]
    masks = np.concatenate([np.ones((len(windows), 1), bool), sources[:, 1:] != sources[:, :-1]], axis=1)
    partners = partner_indices(frames, 0, total_frames, difference_gap) if difference_gap > 0 else frames[:0]
    return WindowPlan(fps=float(fps), total_frames=int(total_frames), window_sec=window_sec, stride_sec=stride_sec,
                      interval=interval, step=step, frames=frames, partners=partners, windows=windows,
                      masks=masks.astype(np.float32))
