"""Clips listed in an annotations CSV: whole videos, or segments of long videos.

Columns (header required, order free):
- `path` (or `video`): the video file, relative to the CSV's folder unless a data dir is given;
- `label`, or `verb` and `noun` (EPIC-KITCHENS style; the label is then `verb/noun`);
- optionally `start_sec`,`end_sec` or `start_frame`,`end_frame` (end exclusive) for a segment;
- optionally `clip_id` (or `narration_id`); otherwise one is made from the path and the row.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from vidcls.errors import VidclsError
from vidcls.videos.clips import ClipRange, VideoItem

PATH_COLUMNS = ("path", "video")
ID_COLUMNS = ("clip_id", "narration_id")
KNOWN_COLUMNS = {*PATH_COLUMNS, *ID_COLUMNS, "label", "verb", "noun", "start_sec", "end_sec",
                 "start_frame", "end_frame", "participant_id", "video_id", "group"}


def read_annotations(csv_path: str | Path, data_dir: str | Path | None = None) -> list[VideoItem]:
    """Parses `csv_path` into clips; every error names the file, row and column.

    Raises:
        VidclsError: missing file or columns, an empty table, a bad number, an empty or
            inverted segment, a duplicate clip id.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise VidclsError(f"Annotations file {path} does not exist")
    root = Path(data_dir) if data_dir else path.parent
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip() for name in reader.fieldnames or []]
            _check_columns(path, columns)
            rows = [{key.strip(): (value or "").strip() for key, value in row.items() if key} for row in reader]
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise VidclsError(f"Annotations file {path} is not UTF-8 text: byte 0x{error.object[error.start]:02x} on line "
                          f"{line} cannot be decoded; save it as UTF-8 (CSV UTF-8 in spreadsheet programs)") from None
    if not rows:
        raise VidclsError(f"Annotations file {path} has a header but no rows")
    items = [_item(path, number, row, root) for number, row in enumerate(rows, start=2)]
    seen: dict[str, int] = {}
    for number, item in enumerate(items, start=2):
        if item.clip_id in seen:
            raise VidclsError(f"Duplicate clip id '{item.clip_id}' in {path} (rows {seen[item.clip_id]} and {number})")
        seen[item.clip_id] = number
    return items


def _check_columns(path: Path, columns: list[str]) -> None:
    if not any(name in columns for name in PATH_COLUMNS):
        raise VidclsError(f"Expected a 'path' (or 'video') column in {path}; found columns {columns}")
    if "label" not in columns and not {"verb", "noun"} <= set(columns):
        raise VidclsError(f"Expected a 'label' column, or 'verb' and 'noun' columns, in {path}; found columns {columns}")
    for pair in (("start_sec", "end_sec"), ("start_frame", "end_frame")):
        if (pair[0] in columns) != (pair[1] in columns):
            raise VidclsError(f"Expected both {pair[0]} and {pair[1]} in {path}; found only one of them")
    unknown = sorted(set(columns) - KNOWN_COLUMNS)
    if unknown:
        raise VidclsError(f"Unknown column(s) {unknown} in {path}; known columns: {sorted(KNOWN_COLUMNS)}")


def _item(path: Path, number: int, row: dict, root: Path) -> VideoItem:
    video_field = next(name for name in PATH_COLUMNS if name in row)
    video = row[video_field]
    if not video:
        raise VidclsError(f"Row {number} of {path} has an empty '{video_field}'")
    verb, noun = row.get("verb") or None, row.get("noun") or None
    label = row.get("label") or (f"{verb}/{noun}" if verb and noun else "")
    if not label:
        raise VidclsError(f"Row {number} of {path} has no label (expected 'label', or 'verb' and 'noun')")
    start_sec, end_sec = _number(path, number, row, "start_sec", float), _number(path, number, row, "end_sec", float)
    start_frame, end_frame = _number(path, number, row, "start_frame", int), _number(path, number, row, "end_frame", int)
    for start, end, unit in ((start_sec, end_sec, "sec"), (start_frame, end_frame, "frame")):
        if (start is None) != (end is None):
            raise VidclsError(f"Row {number} of {path}: expected both start_{unit} and end_{unit}, or neither")
        if start is not None and not 0 <= start < end:
            raise VidclsError(f"Row {number} of {path}: expected 0 <= start_{unit} < end_{unit}; received {start} and {end}")
    if start_sec is not None and start_frame is not None:
        raise VidclsError(f"Row {number} of {path} gives both seconds and frames; use one")
    explicit_id = next((row[name] for name in ID_COLUMNS if row.get(name)), None)
    clip_id = _sanitise(explicit_id) if explicit_id else _derived_id(video, number, start_sec, start_frame)
    return VideoItem(
        clip_id=clip_id, video=str(root / video), label=label, verb=verb, noun=noun,
        range=ClipRange(start_sec, end_sec, start_frame, end_frame),
        group=row.get("group") or row.get("participant_id") or row.get("video_id") or None,
    )


def _number(path: Path, number: int, row: dict, column: str, kind):
    text = row.get(column, "")
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise VidclsError(f"Row {number} of {path}: expected {kind.__name__} in column '{column}'; received {text!r}") from None
    if not math.isfinite(value):
        raise VidclsError(f"Row {number} of {path}: expected a finite number in column '{column}'; received {text!r}")
    return value


def _derived_id(video: str, number: int, start_sec, start_frame) -> str:
    stem = _sanitise(str(Path(video).with_suffix("")).replace("/", "__"))
    if start_sec is None and start_frame is None:
        return stem
    return f"{stem}__row{number:06d}"


def _sanitise(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
