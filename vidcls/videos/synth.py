"""A labelled set of real encoded videos whose classes differ only in time.

Each pair of classes shows the same kind of frames in a different order: a shape that
grows or shrinks, a shape whose colour shifts from blue to red or from red to blue.
(Rotation direction was tried and dropped: features from a randomly initialised backbone,
which the offline demo must use, carry almost none of it; linear probes scored 0.58.) Averaging a clip's frames
therefore cannot tell the members of a pair apart; a temporal model can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidcls.errors import VidclsError
from vidcls.progress import progress_bar

SYNTH_CLASSES = ("grow", "shrink", "blue_to_red", "red_to_blue")
# The same classes as EPIC-style (verb, noun) pairs, for multi-target runs: the noun (what
# changes) is visible in any frame, the verb (which way) only in the order of frames.
SYNTH_VERB_NOUN = {"grow": ("increase", "size"), "shrink": ("decrease", "size"),
                   "blue_to_red": ("increase", "redness"), "red_to_blue": ("decrease", "redness")}
VERB_NOUN_CSV = "verb_noun.csv"
FRAME_SIZE = 128
FPS = 24.0


@dataclass(frozen=True)
class SynthResult:
    out_dir: Path
    videos: list[Path]


def synthesize(out_dir: str | Path, num_videos: int = 240, seed: int = 0,
               progress: bool = False) -> SynthResult:
    """Writes `num_videos` mp4 files as `out_dir/<class>/<class>_<i>.mp4`, balanced, and
    `out_dir/verb_noun.csv` labelling the same files by verb and noun (`SYNTH_VERB_NOUN`).

    Args:
        out_dir: created if missing.
        num_videos: total across the classes (at least one per class).
        seed: the same seed writes the same videos.
        progress: show a progress bar.
    """
    if num_videos < len(SYNTH_CLASSES):
        raise VidclsError(f"Expected --num-videos >= {len(SYNTH_CLASSES)} (one per class: {', '.join(SYNTH_CLASSES)}); "
                          f"received {num_videos}")
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    videos = []
    with progress_bar(num_videos, "synth", "video", enabled=progress) as bar:
        for index in range(num_videos):
            label = SYNTH_CLASSES[index % len(SYNTH_CLASSES)]
            path = root / label / f"{label}_{index:04d}.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_video(path, _render(label, rng))
            videos.append(path)
            bar.update()
    rows = [f"{video.relative_to(root).as_posix()},{','.join(SYNTH_VERB_NOUN[video.parent.name])}\n" for video in videos]
    (root / VERB_NOUN_CSV).write_text("path,verb,noun\n" + "".join(rows))
    return SynthResult(out_dir=root, videos=videos)


def _render(label: str, rng: np.random.Generator) -> list[np.ndarray]:
    num_frames = int(rng.integers(24, 41))
    background = rng.integers(0, 70, size=3)
    centre = rng.uniform(0.35, 0.65, size=2) * FRAME_SIZE
    square = bool(rng.integers(0, 2))
    progress = np.linspace(0.0, 1.0, num_frames)
    if label in ("grow", "shrink"):
        colour = rng.integers(150, 256, size=3)
        colours = np.repeat(colour[None], num_frames, axis=0)
        small, large = rng.uniform(4, 10), rng.uniform(26, 42)
        sizes = small + (large - small) * (progress if label == "grow" else progress[::-1])
    else:
        blue = np.array([rng.uniform(180, 255), rng.uniform(0, 90), rng.uniform(0, 60)])  # BGR
        red = np.array([rng.uniform(0, 60), rng.uniform(0, 90), rng.uniform(180, 255)])
        start, end = (blue, red) if label == "blue_to_red" else (red, blue)
        colours = start + (end - start) * progress[:, None]
        sizes = np.full(num_frames, rng.uniform(14, 30))
    frames = []
    for colour, size in zip(colours, sizes):
        frame = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
        frame[:] = background
        _draw_shape(frame, centre, size, square, tuple(int(c) for c in colour))
        noise = rng.normal(0, 6, size=frame.shape)
        frames.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return frames


def _draw_shape(frame: np.ndarray, centre: np.ndarray, size: float, square: bool, colour: tuple) -> None:
    x, y, r = int(round(centre[0])), int(round(centre[1])), int(round(size))
    if square:
        cv2.rectangle(frame, (x - r, y - r), (x + r, y + r), colour, thickness=-1)
    else:
        cv2.circle(frame, (x, y), r, colour, thickness=-1)


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (FRAME_SIZE, FRAME_SIZE))
    if not writer.isOpened():
        raise VidclsError(f"OpenCV cannot write mp4v video to {path}")
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        writer.release()
