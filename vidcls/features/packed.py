"""The cache packed into one `.npy` file, read row by row: training past RAM.

Per-clip files cost one open/read/close each, per step, at scale; one packed file costs a
positioned read per row into the batch buffer. Reads go through the page cache rather
than a memory map because mapped pages count towards the process's resident memory
(6 GB read through a map is 6 GB of RSS), while page-cache pages are the kernel's to
reclaim. The pack is built once per cache and rebuilt when the cache's settings, its
manifest or any feature file (size, modification time) changes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError
from vidcls.features.cache import fingerprint_digest
from vidcls.fileio import atomic_write_json, locked, temp_name

PACKED_FILE = "features.npy"
PACKED_INDEX = "index.json"


class PackedRows:
    """Rows `[T, D]` of a packed file, selected by `row_ids`; `rows[indices]` reads them.

    Args:
        path: the packed `.npy` file.
        row_ids: for each of this view's N clips, its row in the file.
    """

    def __init__(self, path: str | Path, row_ids: np.ndarray):
        self.path = Path(path)
        with self.path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            self._offset = handle.tell()
        self._row_shape = tuple(shape[1:])
        self._dtype = np.dtype(dtype)
        self._row_bytes = int(np.prod(self._row_shape)) * self._dtype.itemsize
        self.row_ids = np.asarray(row_ids, dtype=np.int64)
        self._fd = None

    @property
    def shape(self) -> tuple:
        return (len(self.row_ids), *self._row_shape)

    def __len__(self) -> int:
        return len(self.row_ids)

    def __getitem__(self, indices) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        indices = np.atleast_1d(np.asarray(indices))
        out = np.empty((len(indices), *self._row_shape), self._dtype)
        for position, row in enumerate(self.row_ids[indices]):
            buffer = memoryview(out[position]).cast("B")
            read = os.preadv(self._fd, [buffer], self._offset + int(row) * self._row_bytes)
            if read != self._row_bytes:
                raise OSError(f"Short read of row {row} in {self.path}: {read} of {self._row_bytes} bytes")
        return out

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)


def pack_cache(cache, progress: bool = False) -> tuple[Path, dict[str, int]]:
    """Packs every clip of `cache` (a `FeatureCache`) into `packed/features.npy` once.

    Returns the file and `{clip_id: row}`. Each source file is validated as it is read
    (shape and readability, with the error naming the file).
    """
    from vidcls.progress import progress_bar

    directory = cache.packed_dir
    directory.mkdir(exist_ok=True)
    path, index_path = directory / PACKED_FILE, directory / PACKED_INDEX
    digest = _cache_digest(cache)
    with locked(path):
        if index_path.is_file() and path.is_file():
            index = json.loads(index_path.read_text())
            if index.get("digest") == digest:
                return path, {clip_id: row for row, clip_id in enumerate(index["clip_ids"])}
        path.unlink(missing_ok=True)  # stale: its space is needed for the new one
        index_path.unlink(missing_ok=True)
        num_frames, feature_dim = cache.feature_shape
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float16)), "fortran_order": False,
                  "shape": (len(cache.entries), num_frames, feature_dim)}
        needed = len(cache.entries) * num_frames * feature_dim * 2 + 4096
        free = shutil.disk_usage(directory).free
        if needed > free:
            raise VidclsError(f"Packing {cache.root} for streaming needs {_size(needed)} in {directory}; only "
                              f"{_size(free)} is free. Free space there, or raise data.memory_budget_gb to "
                              "hold the features in RAM")
        temporary = temp_name(path)
        try:
            with temporary.open("wb") as handle, progress_bar(len(cache.entries), "pack", "clip", enabled=progress) as bar:
                np.lib.format.write_array_header_1_0(handle, header)
                for entry in cache.entries:
                    handle.write(np.ascontiguousarray(cache.load_features(entry), dtype=np.float16).tobytes())
                    bar.update()
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            raise VidclsError(f"The disk holding {directory} filled up while packing {cache.root} (needs "
                              f"{_size(needed)}); the partial file was removed. Free space there, or raise "
                              "data.memory_budget_gb to hold the features in RAM") from None
        finally:
            temporary.unlink(missing_ok=True)
        clip_ids = [entry["clip_id"] for entry in cache.entries]
        atomic_write_json(index_path, {"digest": digest, "clip_ids": clip_ids})
    return path, {clip_id: row for row, clip_id in enumerate(clip_ids)}


def _cache_digest(cache) -> str:
    """What the packed file must match: the cache's settings, and each clip's id and
    feature file (path, shape, size, modification time). `extract --overwrite` or a
    re-written file changes it, so the pack never serves features the cache no longer has."""
    digest = hashlib.sha256(fingerprint_digest(cache.info).encode())
    for entry in cache.entries:
        path = cache.feature_file(entry)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise VidclsError(f"Feature file {path} listed in {cache.manifest_path} is missing; "
                              "re-run vidcls extract") from None
        digest.update(f"{entry['clip_id']}\0{entry['feature_path']}\0{entry['feature_shape']}\0"
                      f"{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _size(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.1f} MB"
