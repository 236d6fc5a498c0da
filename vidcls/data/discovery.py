"""Finding labelled videos in a folder-per-class tree (`ROOT/<class>/<video>`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vidcls.errors import VidclsError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})


@dataclass(frozen=True)
class VideoItem:
    clip_id: str
    video: str  # the path as found under the data dir given by the user
    label: str


def discover_videos(data_dir: str | Path) -> list[VideoItem]:
    """Lists `ROOT/<class>/<video>` files, sorted, each with a unique `clip_id`.

    Raises:
        VidclsError: the directory is missing, or holds no class folder with a video.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise VidclsError(f"Data directory {root} does not exist (expected {root}/<class>/<video files>)")
    items = []
    for class_dir in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        for video in sorted(class_dir.rglob("*")):
            if video.is_file() and video.suffix.lower() in VIDEO_SUFFIXES:
                relative = video.relative_to(root)
                items.append(VideoItem(clip_id=_clip_id(relative), video=str(video), label=class_dir.name))
    if not items:
        raise VidclsError(
            f"Data directory {root} holds no videos: expected {root}/<class>/<video> with "
            f"one of the suffixes {', '.join(sorted(VIDEO_SUFFIXES))}"
        )
    return items


def _clip_id(relative: Path) -> str:
    # The suffix is kept so that clip.mp4 and clip.avi in one folder stay distinct.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(relative.parts))
