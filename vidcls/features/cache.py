"""The feature cache on disk: cache.json, manifest.jsonl, failures.jsonl, features/*.npy."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError
from vidcls.fileio import (
    TEMP_MARKER,
    atomic_write_bytes,
    atomic_write_json,
    drop_partial_last_line,
    locked,
    remove_dead_temp_files,
)

CACHE_FILE = "cache.json"
MANIFEST_FILE = "manifest.jsonl"
FAILURES_FILE = "failures.jsonl"
FEATURES_DIR = "features"
PACKED_DIR = "packed"
CHECKSUM_KEY = "fingerprint_sha256"
# cache.json keys that describe a cache without changing its features.
NOT_FINGERPRINT = frozenset({"vidcls_version", "weights_source", CHECKSUM_KEY})
REQUIRED_KEYS = ("backbone", "num_frames", "feature_dim")

logger = logging.getLogger("vidcls")


class FeatureCache:
    """Reads and writes one feature cache directory (see docs/architecture.md).

    Args:
        cache_dir: the directory `vidcls extract` wrote.

    Example:
        >>> cache = FeatureCache("cache")
        >>> features = cache.load_features(cache.entries[0])  # float16 [T, D]
    """

    def __init__(self, cache_dir: str | Path):
        self.root = Path(cache_dir)
        info_path = self.info_path
        if not info_path.is_file():
            raise VidclsError(
                f"{self.root} is not a feature cache: {info_path} is missing "
                "(create one with `vidcls extract --data-dir DIR --cache-dir DIR`)"
            )
        self.info: dict = read_info(info_path)
        self.entries: list[dict] = _unique_entries(_read_jsonl(self.manifest_path), self.manifest_path)
        self._manifest_read_to = 0  # bytes of the manifest this process has seen (see write_clip)
        self._clip_ids = {entry["clip_id"] for entry in self.entries}

    # Every file name of a cache (the directory contract, docs/architecture.md).
    info_path = property(lambda self: self.root / CACHE_FILE)
    manifest_path = property(lambda self: self.root / MANIFEST_FILE)
    failures_path = property(lambda self: self.root / FAILURES_FILE)
    features_dir = property(lambda self: self.root / FEATURES_DIR)
    packed_dir = property(lambda self: self.root / PACKED_DIR)

    @property
    def feature_shape(self) -> tuple[int, int]:
        return (int(self.info["num_frames"]), int(self.info["feature_dim"]))

    @classmethod
    def create(cls, cache_dir: str | Path, info: dict, overwrite: bool = False) -> FeatureCache:
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
            existing = read_info(info_path)
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
            atomic_write_json(info_path, {**info, CHECKSUM_KEY: fingerprint_digest(info)})
        (root / FEATURES_DIR).mkdir(parents=True, exist_ok=True)
        remove_dead_temp_files(root / FEATURES_DIR)
        with locked(root / MANIFEST_FILE):
            drop_partial_last_line(root / MANIFEST_FILE)
        return cls(root)

    def has_clip(self, clip_id: str) -> bool:
        """Whether `clip_id` is recorded, by this process or by another writing the same
        cache (a shard, or a second `extract` into it)."""
        with locked(self.manifest_path):
            self._catch_up()
        return clip_id in self._clip_ids

    def write_clip(self, entry: dict, features: np.ndarray) -> bool:
        """Stores one clip's float16 `[T, D]` features, then records it in the manifest.

        Returns False, writing no manifest line, when another process recorded the clip
        first (two writers on one cache): a clip is listed once, whatever runs at once.
        """
        if features.shape != (expected := self.feature_shape):
            raise ValueError(f"Expected features of shape {list(expected)}; received {list(features.shape)} for clip "
                             f"{entry['clip_id']}")
        if self.has_clip(entry["clip_id"]):
            return False
        relative = f"{FEATURES_DIR}/{entry['clip_id']}.npy"
        buffer = io.BytesIO()
        np.save(buffer, features.astype(np.float16), allow_pickle=False)
        atomic_write_bytes(self.root / relative, buffer.getvalue())
        record = {**entry, "feature_path": relative, "feature_shape": list(expected)}
        manifest_path = self.manifest_path
        with locked(manifest_path):
            self._catch_up()
            if entry["clip_id"] in self._clip_ids:
                return False  # recorded by the other writer while this one embedded it
            with manifest_path.open("a") as manifest:
                manifest.write(json.dumps(record) + "\n")
                manifest.flush()
                os.fsync(manifest.fileno())
                self._manifest_read_to = manifest.tell()
        self.entries.append(record)
        self._clip_ids.add(entry["clip_id"])
        return True

    def _catch_up(self) -> None:
        """Reads the manifest lines appended since this process last looked (call under
        the manifest lock)."""
        path = self.manifest_path
        if not path.is_file():
            return
        with path.open("rb") as handle:
            handle.seek(self._manifest_read_to)
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.decode().splitlines():
            if line.strip():
                record = json.loads(line)
                if record["clip_id"] not in self._clip_ids:
                    self._clip_ids.add(record["clip_id"])
                    self.entries.append(record)
        self._manifest_read_to += len(complete)

    def record_failures(self, failures: Iterable[dict], retried: set[str]) -> None:
        """Replaces the failures of the videos this run tried (`retried`) with `failures`,
        keeping those other processes (shards) recorded for other videos."""
        path = self.failures_path
        with locked(path):
            kept = [failure for failure in _read_jsonl(path) if failure["video"] not in retried]
            lines = "".join(json.dumps(failure) + "\n" for failure in [*kept, *failures])
            atomic_write_bytes(path, lines.encode())

    def feature_file(self, entry: dict) -> Path:
        """The `.npy` file of a manifest entry, which must lie inside the cache's features/."""
        relative = str(entry.get("feature_path", ""))
        path = self.root / relative
        inside = self.features_dir.resolve()
        if not relative or Path(relative).is_absolute() or inside not in path.resolve().parents:
            raise VidclsError(
                f"Clip {entry.get('clip_id')!r} in {self.manifest_path} has feature_path {relative!r}; expected "
                f"a file inside {self.features_dir} (a path leading elsewhere is not followed)")
        return path

    def load_features(self, entry: dict) -> np.ndarray:
        """Loads one clip's features, checking shape, dtype and finiteness against `cache.json`."""
        path = self.feature_file(entry)
        if not path.is_file():
            raise VidclsError(f"Feature file {path} listed in {self.manifest_path} is missing; re-run vidcls extract")
        try:
            features = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise VidclsError(f"Feature file {path} is unreadable ({error}); delete it and re-run vidcls extract") from None
        if features.shape != self.feature_shape:
            raise VidclsError(
                f"Expected features of shape {list(self.feature_shape)} for backbone "
                f"{self.info['backbone']}; received {list(features.shape)} in {path}"
            )
        expected_dtype = np.dtype(self.info.get("dtype", "float16"))
        if features.dtype != expected_dtype:
            raise VidclsError(f"Expected {expected_dtype} features (cache.json's dtype) in {path}; received "
                              f"{features.dtype}. Delete the file and re-run vidcls extract")
        finite = np.isfinite(features)
        if not finite.all():
            raise VidclsError(f"Feature file {path} holds {int(finite.size - finite.sum())} NaN/inf value(s); "
                              "a model cannot train on them. Delete the file and re-run vidcls extract")
        return features

    def load_all(self, entries: list[dict]) -> np.ndarray:
        """Stacks the features of `entries` into one float16 array `[N, T, D]`."""
        stacked = np.empty((len(entries), *self.feature_shape), np.float16)
        for row, entry in enumerate(entries):
            stacked[row] = self.load_features(entry)
        return stacked


@contextlib.contextmanager
def writer_lock(cache_dir: str | Path, shard_index: int = 0, shard_count: int = 1):
    """Held by `vidcls extract` while it writes `cache_dir`: one unsharded writer at a
    time, or any number of shards, each shard once. A second writer is refused at once
    rather than embedding every clip again (two unsharded writers listed each clip twice).

    Raises:
        VidclsError: another process holds a conflicting lock.
    """
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    sharded = shard_count > 1
    handles = []
    try:
        for name, mode in [(".writers.lock", fcntl.LOCK_SH if sharded else fcntl.LOCK_EX),
                           *([(f".shard-{shard_index}-of-{shard_count}.lock", fcntl.LOCK_EX)] if sharded else [])]:
            handle = open(root / name, "a")
            handles.append(handle)
            try:
                fcntl.flock(handle.fileno(), mode | fcntl.LOCK_NB)
            except BlockingIOError:
                what = f"shard {shard_index}/{shard_count} of" if sharded and name.startswith(".shard") else ""
                raise VidclsError(
                    f"Another vidcls extract is writing {what or 'to'} the cache {root}. Wait for it to finish; to "
                    "extract in parallel, give each process its own --shard i/n") from None
        yield
    finally:
        for handle in handles:
            handle.close()  # releases its lock


def fingerprint_digest(info: dict) -> str:
    """SHA-256 of the keys of `info` that fix what the features are."""
    kept = {key: value for key, value in info.items() if key not in NOT_FINGERPRINT}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def read_info(path: Path) -> dict:
    """cache.json, checked: JSON, an object with the required keys, and the settings it
    was written with (a hand edit, e.g. of the backbone, would describe other features
    than the files hold)."""
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise VidclsError(f"{path} is not valid JSON ({error}); it is damaged: re-run vidcls extract --overwrite") from None
    if not isinstance(info, dict) or any(key not in info for key in REQUIRED_KEYS):
        raise VidclsError(f"Expected {path} to hold an object with keys {list(REQUIRED_KEYS)}; received "
                          f"{sorted(info) if isinstance(info, dict) else type(info).__name__}")
    stored = info.get(CHECKSUM_KEY)
    if stored is not None and stored != fingerprint_digest(info):
        raise VidclsError(
            f"{path} was edited after extraction: its settings (backbone {info.get('backbone')!r}, ...) no longer "
            f"match the checksum {CHECKSUM_KEY} written with the features, so they may describe other features "
            "than the files hold. Restore it, or re-extract with vidcls extract --overwrite")
    return info


def _unique_entries(entries: list[dict], path: Path) -> list[dict]:
    """The manifest with each clip once. Two writers on one cache (before vidcls refused
    that) listed clips twice, which put them in train and test at once; the copies of a
    clip are the same clip and are merged with a warning. Copies that disagree (one id for
    two videos) cannot be merged and are refused."""
    unique: dict[str, dict] = {}
    duplicates = 0
    for entry in entries:
        clip_id = entry.get("clip_id")
        if clip_id not in unique:
            unique[clip_id] = entry
            continue
        duplicates += 1
        first = unique[clip_id]
        if (first.get("video"), first.get("label")) != (entry.get("video"), entry.get("label")):
            raise VidclsError(
                f"Clip id {clip_id!r} appears twice in {path} for different clips ({first.get('video')} labelled "
                f"{first.get('label')!r}; {entry.get('video')} labelled {entry.get('label')!r}): one feature file "
                "overwrote the other. Re-extract into a new --cache-dir")
    if duplicates:
        logger.warning("%s lists %d clip(s) more than once (two extract processes wrote it); each is used once",
                       path, duplicates)
    return list(unique.values())


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
    shutil.rmtree(root / PACKED_DIR, ignore_errors=True)  # the old features, packed
    features = root / FEATURES_DIR
    if features.is_dir():
        for path in features.iterdir():
            if path.suffix == ".npy" or TEMP_MARKER in path.name:
                path.unlink()
