"""Finding labelled videos in a folder-per-class tree (`ROOT/<class>/<video>`)."""

from __future__ import annotations

import re
from pathlib import Path

from vidcls.errors import VidclsError
from vidcls.videos.clips import VideoItem

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})


def discover_videos(data_dir: str | Path) -> list[VideoItem]:
    """Lists `ROOT/<class>/<video>` files, sorted, each with a unique `clip_id`.

    Raises:
        VidclsError: the directory is missing, or holds no class folder with a video.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise VidclsError(f"Data directory {root} does not exist (expected {root}/<class>/<video files>)")
    items = []
    owners: dict[str, Path] = {}
    for class_dir in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        for video in sorted(class_dir.rglob("*")):
            # Anything named like a video is listed, a directory or a broken or looping
            # link too: extraction then records why it is not one (failures.jsonl)
            # instead of it vanishing from the dataset unnoticed.
            if video.suffix.lower() in VIDEO_SUFFIXES and (video.is_file() or video.is_dir() or video.is_symlink()):
                relative = video.relative_to(root)
                clip_id = _clip_id(relative)
                if clip_id in owners:
                    # One id would mean one feature file for both: the second overwrites the first.
                    raise VidclsError(
                        f"{owners[clip_id]} and {video} both get the clip id '{clip_id}' (names are reduced to "
                        "letters, digits, '.', '-' and '_'; folders joined by '__'); rename one of them, or list "
                        "the clips with --annotations and a clip_id column")
                owners[clip_id] = video
                items.append(VideoItem(clip_id=clip_id, video=str(video), label=class_dir.name))
    if not items:
        raise VidclsError(
            f"Data directory {root} holds no videos: expected {root}/<class>/<video> with "
            f"one of the suffixes {', '.join(sorted(VIDEO_SUFFIXES))}"
        )
    return items


def _clip_id(relative: Path) -> str:
    # The suffix is kept so that clip.mp4 and clip.avi in one folder stay distinct.
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "__".join(relative.parts))
