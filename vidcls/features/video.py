"""Reading videos with OpenCV: the frames that `sampling.py` picks, decoded in one pass."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidcls.errors import VidclsError
from vidcls.features.sampling import PartnerGap, VideoReadError, as_partner_gap, partner_indices, segment_centre_indices
from vidcls.videos import ClipRange


@dataclass(frozen=True)
class SampledClip:
    """`frames` is uint8 RGB `[num_frames, size, size, 3]`.

    `frame_range` is the clip's `[start, end)` in source frames (for a whole video, end is
    the frame count found by decoding); `valid_frames` is how many distinct source frames
    were sampled: fewer than `num_frames` when the clip is shorter than the requested T,
    in which case frames repeat, in order.

    `partner_frames` (when a motion stream asked for them, see `partner_indices`) are the
    frames one `PartnerGap` after each sampled one, same shape as `frames`.
    """

    frames: np.ndarray
    frame_range: tuple[int, int]
    valid_frames: int
    partner_frames: np.ndarray | None = None

    @property
    def total_frames(self) -> int:
        return self.frame_range[1] - self.frame_range[0]


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


@dataclass(frozen=True)
class CountedFrames:
    """What `read_counted` found: the frame count found by decoding, the wanted frames
    (resized RGB uint8 by source index) and how many decoding passes it took (1, or 2 when
    the container's count was wrong)."""

    total: int
    frames: dict[int, np.ndarray]
    passes: int

    def require(self, indices) -> list[np.ndarray]:
        """The frames at `indices`, in order.

        Raises:
            VideoReadError: one of them could not be decoded.
        """
        indices = [int(index) for index in indices]
        missing = sorted(set(indices) - self.frames.keys())
        if missing:
            raise VideoReadError(f"frames {missing[:5]} could not be decoded (the video has {self.total} frames)")
        return [self.frames[index] for index in indices]


def read_counted(path: str | Path, wanted_for, image_size: int) -> CountedFrames:
    """Decodes `path` once, counting its frames and keeping those `wanted_for(total)` names.

    Which frames are wanted depends on the frame count, which only decoding tells
    reliably. The container's count plans the pass; decoding to the end verifies it. When
    the container was wrong and the true plan needs frames this pass skipped, a second
    pass fetches them (the decode-verified fallback), so the result never depends on the
    header.

    Raises:
        VideoReadError: the file is unusable or has no decodable frame.
    """
    path = Path(path)
    check_readable(path)
    capture = _open(path)
    try:
        estimate = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        try:
            planned = set(wanted_for(estimate)) if estimate > 0 else set()
        except VidclsError:  # e.g. too many windows for the header's count: the true count decides
            planned = set()
        decoded: dict[int, np.ndarray] = {}
        total = 0
        while capture.grab():
            if total in planned:
                ok, frame = capture.retrieve()
                if ok:
                    decoded[total] = to_model_frame(frame, image_size)
            total += 1
    finally:
        capture.release()
    if total == 0:
        raise VideoReadError("no decodable frame (corrupt, truncated or not a video)")
    wanted = set(wanted_for(total))
    passes = 1
    if not wanted <= decoded.keys():
        more, _ = _decode(path, wanted - decoded.keys(), image_size)
        decoded.update(more)
        passes = 2
    return CountedFrames(total, {index: decoded[index] for index in wanted if index in decoded}, passes)


def frame_rate(path: str | Path) -> float:
    """The frame rate the container reports.

    Raises:
        VideoReadError: a missing, empty or unopenable file, or no frame rate.
    """
    fps = _container_fps(Path(path))
    if not fps or fps <= 0:
        raise VideoReadError("the container reports no frame rate, so windows in seconds cannot be placed")
    return float(fps)


def read_sampled_frames(path: str | Path, num_frames: int, image_size: int,
                        difference_gap: int | PartnerGap = 0) -> SampledClip:
    """Decodes `path`, keeps `num_frames` frames spread over the whole clip, resizes them
    (and, with a `difference_gap` (frames, or a `PartnerGap`), the partner frame of each,
    see `partner_indices`).

    Raises:
        VideoReadError: the file is missing, empty, unreadable or has no decodable frame.
    """
    result = read_clips(path, [ClipRange()], num_frames, image_size, difference_gap)[0]
    if isinstance(result, VideoReadError):
        raise result
    return result


def read_clips(path: str | Path, ranges: list[ClipRange], num_frames: int, image_size: int,
               difference_gap: int | PartnerGap = 0) -> list[SampledClip | VideoReadError]:
    """Samples every clip of one video in a single decoding pass.

    Long videos with many annotated segments (EPIC-KITCHENS) are decoded once, not once
    per segment. The result holds, per range, the clip or the reason it could not be read.
    With a `difference_gap` (frames, or a `PartnerGap`) each clip also carries the partner
    frame of every sampled frame (`SampledClip.partner_frames`), for a frame-difference
    motion stream.

    Raises:
        VideoReadError: the whole file is unusable (missing, empty, not a video, or no
            frame rate to convert a gap in seconds with).
    """
    path = Path(path)
    fps = _container_fps(path)
    difference_gap = as_partner_gap(difference_gap).at(fps, path)
    if any(clip_range.whole for clip_range in ranges):
        # A whole-video clip's plan needs the frame count: one pass counts and samples.
        counted = read_counted(path, lambda total: _wanted(_plans(ranges, total, fps, num_frames, difference_gap)),
                               image_size)
        plans = _plans(ranges, counted.total, fps, num_frames, difference_gap)
        return [_assemble(plan, counted.frames, counted.total - 1) for plan in plans]
    plans = _plans(ranges, None, fps, num_frames, difference_gap)
    wanted = _wanted(plans)
    decoded, last_decoded = _decode(path, wanted, image_size)
    if not decoded and wanted:
        raise VideoReadError("no decodable frame (corrupt, truncated or not a video)")
    return [_assemble(plan, decoded, last_decoded) for plan in plans]


def _plans(ranges: list[ClipRange], total: int | None, fps: float, num_frames: int, difference_gap: int) -> list:
    return [_plan(clip_range, total, fps, num_frames, difference_gap) for clip_range in ranges]


def _wanted(plans: list) -> set[int]:
    """Every source frame the readable plans sample or pair with."""
    return set().union(*(set(plan[2].tolist()) | set(plan[3].tolist())
                         for plan in plans if not isinstance(plan, VideoReadError)))


def check_readable(path: Path) -> None:
    """Raises VideoReadError saying why `path` cannot be a readable video file: missing,
    a broken or looping link, a directory, not a regular file, empty, or not readable."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise VideoReadError(f"broken symbolic link: {path} -> {os.readlink(path)}" if path.is_symlink()
                             else f"file does not exist: {path}") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise VideoReadError(f"symbolic link loop: {path} resolves to itself") from None
        raise VideoReadError(f"cannot be read: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise VideoReadError("is a directory, not a video file")
    if not stat.S_ISREG(info.st_mode):
        raise VideoReadError("is not a regular file (a device, pipe or socket)")
    if info.st_size == 0:
        raise VideoReadError("file is empty (0 bytes)")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        raise VideoReadError("permission denied: this user may not read the file") from None
    except OSError as error:
        raise VideoReadError(f"cannot be read: {error.strerror}") from None


def _container_fps(path: Path) -> float:
    """The frame rate the container reports (0 when none) of an existing, non-empty file."""
    check_readable(path)
    capture = _open(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return fps


def _plan(clip_range: ClipRange, total: int | None, fps: float, num_frames: int, difference_gap: int = 0):
    """`(start, end, sampled indices, partner indices)` of the clip (no partners without a
    gap), or why it cannot be read."""
    if clip_range.whole:
        start, end = 0, total
    elif clip_range.start_frame is not None:
        start, end = clip_range.start_frame, clip_range.end_frame
    elif fps and fps > 0:
        start = int(round(clip_range.start_sec * fps))
        end = max(start + 1, int(round(clip_range.end_sec * fps)))
    else:
        return VideoReadError("the container reports no frame rate, so seconds cannot be mapped to frames; "
                              "give start_frame/end_frame instead")
    indices = start + segment_centre_indices(end - start, num_frames)
    partners = partner_indices(indices, start, end, difference_gap) if difference_gap > 0 else indices[:0]
    return start, end, indices, partners


def _decode(path: Path, wanted: set[int], image_size: int) -> tuple[dict[int, np.ndarray], int | None]:
    """Decodes sequentially (seeking is frame-inaccurate for many codecs) up to the last
    wanted index, or until the stream ends. Returns the wanted frames and the index of the
    last frame the stream delivered (None: not one)."""
    decoded: dict[int, np.ndarray] = {}
    last = None
    if not wanted:
        return decoded, last
    capture = _open(path)
    try:
        for index in range(max(wanted) + 1):
            if not capture.grab():
                break
            last = index
            if index in wanted:
                ok, frame = capture.retrieve()
                if ok:
                    decoded[index] = to_model_frame(frame, image_size)
    finally:
        capture.release()
    return decoded, last


def _assemble(plan, decoded: dict[int, np.ndarray], last_decoded: int | None) -> SampledClip | VideoReadError:
    if isinstance(plan, VideoReadError):
        return plan
    start, end, indices, partners = plan
    missing = sorted((set(indices.tolist()) | set(partners.tolist())) - decoded.keys())
    if missing:
        ended = last_decoded is not None and missing[-1] > last_decoded
        return VideoReadError(
            f"frames {missing[:5]} of this clip could not be decoded (last decodable frame: {last_decoded}); "
            + ("the segment runs past the end of the video" if ended else "the stream is damaged there")
        )
    return SampledClip(frames=np.stack([decoded[index] for index in indices.tolist()]),
                       frame_range=(int(start), int(end)), valid_frames=len(set(indices.tolist())),
                       partner_frames=np.stack([decoded[index] for index in partners.tolist()]) if len(partners) else None)


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise VideoReadError("OpenCV could not open the file (unknown container or codec)")
    return capture


def to_model_frame(frame_bgr: np.ndarray, image_size: int) -> np.ndarray:
    """A decoded OpenCV frame (BGR) as the backbone sees it: resized to `image_size`
    square (area interpolation), RGB uint8."""
    resized = cv2.resize(frame_bgr, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
