"""`vidcls extract`: decode each video once, embed T sampled frames, cache fp16 `[T, D]`."""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from vidcls import __version__
from vidcls.config import FeatureConfig
from vidcls.data import VideoItem, discover_videos
from vidcls.errors import VidclsError
from vidcls.features.backbones import backbone_spec, get_backbone
from vidcls.features.cache import FeatureCache
from vidcls.progress import progress_bar
from vidcls.features.video import SampledClip, VideoReadError, read_sampled_frames

SAMPLING = "segment_centres"
DECODE_WORKERS = 2
READ_AHEAD = 8  # decoded clips waiting for the backbone; bounds memory on huge datasets
# Features whose spread across clips is below this carry no information (e.g. a random
# MobileNet's pooled output, ~1e-12, which is 0 once stored as float16).
DEGENERATE_STD = 1e-4


@dataclass
class ExtractSummary:
    cache_dir: Path
    extracted: int = 0
    skipped: int = 0
    frames: int = 0
    seconds: float = 0.0
    failures: list[dict] = field(default_factory=list)
    feature_std: float | None = None

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def degenerate(self) -> bool:
        return self.feature_std is not None and self.extracted > 1 and self.feature_std < DEGENERATE_STD

    def describe(self) -> str:
        lines = [
            f"extracted {self.extracted} clips ({self.frames} frames) in {self.seconds:.1f} s "
            f"= {self.frames_per_second:.0f} frames/s; {self.skipped} already cached; "
            f"{len(self.failures)} failed",
        ]
        lines += [f"  failed: {failure['video']}: {failure['reason']}" for failure in self.failures]
        if self.failures:
            lines.append(f"  (listed in {self.cache_dir / 'failures.jsonl'})")
        if self.degenerate:
            lines.append(
                f"warning: the features hardly vary between clips (std {self.feature_std:.2g}); a model "
                "cannot learn from them. Use pretrained weights, or another backbone with --weights none"
            )
        return "\n".join(lines)


def extract(config: FeatureConfig, progress: bool = False) -> ExtractSummary:
    """Fills `config.cache_dir` with features of every video under `config.data_dir`.

    Clips already in the cache are skipped, so an interrupted run resumes. Videos that
    cannot be read are listed in `failures.jsonl`, never replaced by zeros; the caller
    decides whether failures are fatal (`allow_failures`).
    """
    backbone_spec(config.backbone)  # unknown names fail before any work
    if config.num_frames < 1:
        raise VidclsError(f"Expected --num-frames >= 1; received {config.num_frames}")
    items = discover_videos(config.data_dir)
    backbone = get_backbone(config.backbone, config.weights, config.image_size, config.seed, config.batch_size)
    cache = FeatureCache.create(config.cache_dir, {
        **backbone.fingerprint(),
        "weights_source": config.weights,
        "num_frames": config.num_frames,
        "dtype": "float16",
        "sampling": SAMPLING,
        "vidcls_version": __version__,
    })
    done = {entry["clip_id"] for entry in cache.entries}
    todo = [item for item in items if item.clip_id not in done]
    summary = ExtractSummary(cache_dir=cache.root, skipped=len(items) - len(todo))
    spread = _RunningStd()
    started = time.perf_counter()
    with progress_bar(len(todo), "extract", "clip", enabled=progress) as bar:
        for batch in _decoded_batches(todo, config, backbone.image_size, summary.failures):
            clip_features = np.split(
                backbone.embed(np.concatenate([clip.frames for _, clip in batch])), len(batch)
            )
            for (item, clip), features in zip(batch, clip_features):
                stored = features.astype(np.float16)
                if not np.isfinite(stored).all():
                    raise VidclsError(
                        f"Features of {item.video} overflow float16 (backbone {config.backbone}, "
                        f"weights {config.weights}); these weights are unusable for a float16 cache"
                    )
                cache.write_clip(
                    {"clip_id": item.clip_id, "video": item.video, "label": item.label,
                     "num_frames": config.num_frames, "valid_frames": clip.valid_frames,
                     "total_frames": clip.total_frames},
                    stored,
                )
                spread.add(stored.astype(np.float32).mean(axis=0))
                summary.extracted += 1
                summary.frames += config.num_frames
            bar.update(len(batch))
            bar.set_postfix(failed=len(summary.failures))
    summary.seconds = time.perf_counter() - started
    summary.feature_std = spread.value()
    cache.write_failures(summary.failures)
    return summary


def _decoded_batches(items: list[VideoItem], config: FeatureConfig, image_size: int, failures: list[dict]
                     ) -> Iterator[list[tuple[VideoItem, SampledClip]]]:
    """Decodes in worker threads (OpenCV releases the GIL) while the caller runs the
    backbone, grouping clips until a batch holds at least `batch_size` frames."""

    def decode(item: VideoItem):
        try:
            return item, read_sampled_frames(item.video, config.num_frames, image_size)
        except VideoReadError as error:
            return item, error

    batch: list[tuple[VideoItem, SampledClip]] = []
    with ThreadPoolExecutor(DECODE_WORKERS) as pool:
        for item, result in _bounded_map(pool, decode, items, READ_AHEAD):
            if isinstance(result, VideoReadError):
                failures.append({"clip_id": item.clip_id, "video": item.video, "reason": str(result)})
                continue
            batch.append((item, result))
            if len(batch) * config.num_frames >= config.batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


def _bounded_map(pool, function, items, limit):
    """Like `pool.map`, in order, but with at most `limit` results pending at a time."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= limit:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _RunningStd:
    """Mean over dimensions of the across-clip standard deviation, computed in one pass."""

    def __init__(self):
        self.count, self.total, self.total_squares = 0, 0.0, 0.0

    def add(self, vector: np.ndarray) -> None:
        vector = vector.astype(np.float64)
        self.count += 1
        self.total = self.total + vector
        self.total_squares = self.total_squares + vector**2

    def value(self) -> float | None:
        if self.count < 2:
            return None
        mean = self.total / self.count
        variance = np.maximum(self.total_squares / self.count - mean**2, 0.0)
        return float(np.sqrt(variance).mean())
