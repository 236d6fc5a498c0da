"""The feature cache on disk: cache.json, manifest.jsonl, failures.jsonl, features/*.npy."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from vidcls.errors import VidclsError
from vidcls.fileio import TEMP_MARKER, atomic_write_bytes, atomic_write_json, locked, remove_dead_temp_files

CACHE_FILE = "cache.json"
MANIFEST_FILE = "manifest.jsonl"
FAILURES_FILE = "failures.jsonl"
FEATURES_DIR = "features"
# cache.json keys that describe a cache without changing its features.
NOT_FINGERPRINT = frozenset({"vidcls_version", "weights_source"})


class FeatureCache:
    """Reads and writes one feature cache directory (see ARCHITECTURE.md).

    Args:
        cache_dir: the directory `vidcls extract` wrote.

    Example:
        >>> cache = FeatureCache("cache")
        >>> features = cache.load_features(cache.entries[0])  # float16 [T, D]
    """

    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir)
        info_path = self.root / CACHE_FILE
        if not info_path.is_file():
            raise VidclsError(
                f"{self.root} is not a feature cache: {info_path} is missing "
                "(create one with `vidcls extract --data-dir DIR --cache-dir DIR`)"
            )
        self.info: dict = json.loads(info_path.read_text())
        self.entries: list[dict] = _read_jsonl(self.root / MANIFEST_FILE)

    @property
    def feature_shape(self) -> tuple[int, int]:
        return (int(self.info["num_frames"]), int(self.info["feature_dim"]))

    @classmethod
    def create(cls, cache_dir: str | Path, info: dict, overwrite: bool = False) -> "FeatureCache":
        """Opens `cache_dir` for writing features fingerprinted by `info`.

        A new directory is initialised; an existing cache must carry the same fingerprint,
        otherwise its features would silently mix with incompatible ones. `overwrite`
        deletes an existing cache's files first. Several processes (`--shard`) may open
        the same cache: the manifest is appended to under a lock.
        """
        root = Path(cache_dir)
        info_path = root / CACHE_FILE
        if overwrite and info_path.is_file():
            _delete_cache_files(root)
        if info_path.is_file():
            existing = json.loads(info_path.read_text())
            differences = {
                key: (existing.get(key), value)
                for key, value in info.items()
                if key not in NOT_FINGERPRINT and existing.get(key) != value
            }
            if differences:
                described = "; ".join(
                    f"{key}: cache has {old!r}, this run wants {new!r}"
                    for key, (old, new) in differences.items()
                )
                raise VidclsError(
                    f"The cache in {root} was built with other settings ({described}). "
                    "Use another --cache-dir, or --overwrite to delete and rebuild this one"
                )
        else:
            (root / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
            atomic_write_json(info_path, info)
        (root / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
        remove_dead_temp_files(root / FEATURES_DIR)
        with locked(root / MANIFEST_FILE):
            _drop_partial_last_line(root / MANIFEST_FILE)
        return cls(root)

    def write_clip(self, entry: dict, features: np.ndarray) -> None:
        """Stores one clip's float16 `[T, D]` features, then records it in the manifest."""
        expected = self.feature_shape
        if features.shape != expected:
            raise ValueError(f"Expected features of shape {list(expected)}; received {list(features.shape)} for clip {entry['clip_id']}")
        relative = f"{FEATURES_DIR}/{entry['clip_id']}.npy"
        buffer = io.BytesIO()
        np.save(buffer, features.astype(np.float16), allow_pickle=False)
        atomic_write_bytes(self.root / relative, buffer.getvalue())
        record = {**entry, "feature_path": relative, "feature_shape": list(expected)}
        manifest_path = self.root / MANIFEST_FILE
        with locked(manifest_path), manifest_path.open("a") as manifest:
            manifest.write(json.dumps(record) + "\n")
            manifest.flush()
            os.fsync(manifest.fileno())
        self.entries.append(record)

    def record_failures(self, failures: Iterable[dict], retried: set[str]) -> None:
        """Replaces the failures of the videos this run tried (`retried`) with `failures`,
        keeping those other processes (shards) recorded for other videos."""
        path = self.root / FAILURES_FILE
        with locked(path):
            kept = [failure for failure in _read_jsonl(path) if failure["video"] not in retried]
            lines = "".join(json.dumps(failure) + "\n" for failure in [*kept, *failures])
            atomic_write_bytes(path, lines.encode())

    def load_features(self, entry: dict) -> np.ndarray:
        """Loads one clip's features, checking the shape against `cache.json`."""
        path = self.root / entry["feature_path"]
        if not path.is_file():
            raise VidclsError(f"Feature file {path} listed in {self.root / MANIFEST_FILE} is missing; re-run vidcls extract")
        try:
            features = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise VidclsError(f"Feature file {path} is unreadable ({error}); delete it and re-run vidcls extract") from None
        if features.shape != self.feature_shape:
            raise VidclsError(
                f"Expected features of shape {list(self.feature_shape)} for backbone "
                f"{self.info['backbone']}; received {list(features.shape)} in {path}"
            )
        return features

    def load_all(self, entries: list[dict]) -> np.ndarray:
        """Stacks the features of `entries` into one float16 array `[N, T, D]`."""
        stacked = np.empty((len(entries), *self.feature_shape), np.float16)
        for row, entry in enumerate(entries):
            stacked[row] = self.load_features(entry)
        return stacked


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break  # a run killed while appending; that clip is simply extracted again
            raise VidclsError(f"Line {number} of {path} is not valid JSON: {line[:80]!r}") from None
    return records


def _delete_cache_files(root: Path) -> None:
    for name in (CACHE_FILE, MANIFEST_FILE, FAILURES_FILE):
        (root / name).unlink(missing_ok=True)
    features = root / FEATURES_DIR
    if features.is_dir():
        for path in features.iterdir():
            if path.suffix == ".npy" or TEMP_MARKER in path.name:
                path.unlink()


def _drop_partial_last_line(path: Path) -> None:
    """Removes a line left unfinished by a killed run, so the next append starts clean."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        atomic_write_bytes(path, data[: data.rfind(b"\n") + 1])
