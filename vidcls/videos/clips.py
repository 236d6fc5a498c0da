"""What a clip is: a video file, or a part of one, with its labels."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClipRange:
    """Which part of a video a clip is: all of it, seconds, or frame indices (end exclusive)."""

    start_sec: float | None = None
    end_sec: float | None = None
    start_frame: int | None = None
    end_frame: int | None = None

    @property
    def whole(self) -> bool:
        return self.start_sec is None and self.start_frame is None


@dataclass(frozen=True)
class VideoItem:
    """One clip to embed: a whole video, or a segment of one (`range`). `verb`/`noun` are
    set for EPIC-style annotations; `group` keeps clips of one source (video, participant,
    scene) together when splitting."""

    clip_id: str
    video: str  # the path as given by the user (data dir or annotations CSV)
    label: str
    verb: str | None = None
    noun: str | None = None
    range: ClipRange = field(default_factory=ClipRange)
    group: str | None = None

    def manifest_fields(self) -> dict:
        """The fields recorded in manifest.jsonl, flat: the required ones, then those set
        (a segment's start and end among them)."""
        fields = {"clip_id": self.clip_id, "video": self.video, "label": self.label, "verb": self.verb,
                  "noun": self.noun, **vars(self.range), "group": self.group}
        return {key: value for key, value in fields.items() if value is not None}
