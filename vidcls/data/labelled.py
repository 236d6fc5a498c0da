"""Labelled features from a cache: the arrays a run trains and evaluates on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidcls.data.tasks import LabelSpace, encode_labels
from vidcls.errors import VidclsError
from vidcls.features import PackedRows, pack_cache, sampled_frame_mask


@dataclass(frozen=True)
class LabelledFeatures:
    clip_ids: list[str]
    features: object  # float16 [N, T, D]: a NumPy array, or PackedRows read from disk
    labels: np.ndarray  # int64 [N, targets], indices into each target's class list
    masks: np.ndarray  # float32 [N, T]: 1 for a real frame, 0 for a repeat in a short clip
    entries: list[dict]  # the clips' manifest entries, in the same order

    @property
    def num_clips(self) -> int:
        return len(self.clip_ids)


def load_labelled_features(cache, clip_ids: list[str], space: LabelSpace | list[str],
                           in_memory: bool = True) -> LabelledFeatures:
    """The cached features of `clip_ids`, with labels mapped to indices.

    `space` is the run's label space (target -> class names), or a plain class list for
    the manifest's `label`.

    `in_memory` loads them into one array; otherwise they are read from the cache's packed
    file batch by batch (built on first use), so RAM use does not grow with the dataset.

    Raises:
        VidclsError: a clip id not in the cache, or a label missing from the label space.
    """
    by_id = {entry["clip_id"]: entry for entry in cache.entries}
    missing = [clip_id for clip_id in clip_ids if clip_id not in by_id]
    if missing:
        raise VidclsError(
            f"{len(missing)} clip(s) of the split are not in the cache {cache.root} "
            f"(first: {missing[:3]}); was the run trained on another cache?"
        )
    entries = [by_id[clip_id] for clip_id in clip_ids]
    labels = encode_labels(entries, space if isinstance(space, dict) else {"label": list(space)})
    if in_memory:
        features = cache.load_all(entries)
    else:
        path, rows = pack_cache(cache)
        features = PackedRows(path, np.array([rows[clip_id] for clip_id in clip_ids], dtype=np.int64))
    num_frames = cache.feature_shape[0]
    masks = np.stack([sampled_frame_mask(_source_frames(entry, num_frames), num_frames) for entry in entries]) \
        if entries else np.zeros((0, num_frames), np.float32)
    return LabelledFeatures(clip_ids=list(clip_ids), features=features, labels=labels, masks=masks,
                            entries=entries)


def _source_frames(entry: dict, num_frames: int) -> int:
    """How many source frames the clip had: its frame range, else T (all frames real)."""
    if "frame_range" in entry:
        start, end = entry["frame_range"]
        return end - start
    return int(entry.get("total_frames", num_frames))
