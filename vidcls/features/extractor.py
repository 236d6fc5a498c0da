"""`vidcls extract`: decode each video once, embed T sampled frames, cache fp16 `[T, D]`."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidcls import __version__
from vidcls.config import FeatureConfig
from vidcls.errors import VidclsError
from vidcls.features.backbones import backbone_spec, get_backbone
from vidcls.features.cache import CACHE_FILE, FAILURES_FILE, FeatureCache, read_info, writer_lock
from vidcls.features.encoder import ClipEncoder, check_streams
from vidcls.features.precision import resolve_precision
from vidcls.features.video import SampledClip, VideoReadError, read_clips
from vidcls.progress import progress_bar
from vidcls.videos import VideoItem, discover_videos, read_annotations

logger = logging.getLogger("vidcls")

SAMPLING = "segment_centres"
READ_AHEAD_PER_WORKER = 4  # decoded videos waiting for the backbone; bounds memory
MAX_PENDING_WRITES = 256  # embedded clips waiting for the disk
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
    precision: str = "float32"
    failures_allowed: bool = False  # extract.allow_failures: a cache without the failed videos is accepted

    def to_dict(self) -> dict:
        """JSON-ready: the fields and the derived figures."""
        values = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(self).items()}
        return {**values, "frames_per_second": self.frames_per_second, "degenerate": self.degenerate}

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def degenerate(self) -> bool:
        return self.feature_std is not None and self.extracted > 1 and self.feature_std < DEGENERATE_STD

    def describe(self) -> str:
        lines = [
            f"extracted {self.extracted} clips ({self.frames} frames) in {self.seconds:.1f} s "
            f"= {self.frames_per_second:.0f} frames/s (backbone in {self.precision}); {self.skipped} already cached; "
            f"{len(self.failures)} failed",
        ]
        lines += [f"  failed: {failure['video']}: {failure['reason']}" for failure in self.failures]
        if self.failures:
            lines.append(f"  (listed in {self.cache_dir / FAILURES_FILE})")
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
    check_streams(config.streams, config.difference_gap, config.difference_gain, config.difference_seconds)
    if config.num_frames < 1:
        raise VidclsError(f"Expected --num-frames >= 1; received {config.num_frames}")
    if config.decode_workers < 1:
        raise VidclsError(f"Expected --workers >= 1; received {config.decode_workers}")
    shard_index, shard_count = parse_shard(config.shard)
    if config.annotations:
        items = read_annotations(config.annotations, config.data_dir or None)
    else:
        items = discover_videos(config.data_dir)
    items = shard_items(items, shard_index, shard_count)
    precision = resolve_precision(_resumed_precision(config) or config.precision)
    logger.info("extract: the backbone computes in %s (%s)", precision.name, precision.reason)
    backbone = get_backbone(config.backbone, config.weights, config.image_size, config.seed, config.batch_size,
                            config.grid, precision.name)
    encoder = ClipEncoder(backbone, config.streams, config.difference_gap, config.difference_gain,
                          config.difference_seconds)
    with writer_lock(config.cache_dir, shard_index, shard_count):
        return _extract(config, items, encoder, progress)


def _extract(config: FeatureConfig, items: list[VideoItem], encoder: ClipEncoder, progress: bool) -> ExtractSummary:
    cache = FeatureCache.create(config.cache_dir, overwrite=config.overwrite, info={
        **encoder.fingerprint(),
        "weights_source": config.weights,
        "num_frames": config.num_frames,
        "dtype": "float16",
        "sampling": SAMPLING,
        "vidcls_version": __version__,
    })
    done = {entry["clip_id"] for entry in cache.entries}  # a re-run resumes
    todo = [item for item in items if item.clip_id not in done]
    summary = ExtractSummary(cache_dir=cache.root, skipped=len(items) - len(todo), precision=encoder.backbone.precision,
                             failures_allowed=config.allow_failures)
    spread = _RunningStd()
    started = time.perf_counter()
    # Writes (each fsynced) go to one background thread, in order, so the backbone never
    # waits for the disk; the feature file is always written before its manifest line.
    with progress_bar(len(todo), "extract", "clip", enabled=progress) as bar, \
            ThreadPoolExecutor(1, thread_name_prefix="vidcls-writer") as writer:
        pending: deque = deque()
        for batch in _decoded_batches(todo, config, encoder, summary.failures, bar):
            for (item, clip), stored in zip(batch, encoder.encode([clip for _, clip in batch])):
                if not np.isfinite(stored).all():
                    raise VidclsError(
                        f"Features of {item.video} overflow float16 (backbone {config.backbone}, "
                        f"weights {config.weights}); these weights are unusable for a float16 cache"
                    )
                entry = {**item.manifest_fields(), "num_frames": config.num_frames,
                         "valid_frames": clip.valid_frames, "frame_range": list(clip.frame_range)}
                pending.append(writer.submit(cache.write_clip, entry, stored))
                spread.add(stored.astype(np.float32).mean(axis=0))
                summary.extracted += 1
                summary.frames += config.num_frames
            while len(pending) > MAX_PENDING_WRITES or (pending and pending[0].done()):
                pending.popleft().result()  # re-raises a failed write here
            bar.update(len(batch))
        while pending:
            pending.popleft().result()
    summary.seconds = time.perf_counter() - started
    summary.feature_std = spread.value()
    cache.record_failures(summary.failures, retried={item.video for item in todo})
    return summary


def _resumed_precision(config: FeatureConfig) -> str | None:
    """With --precision auto, an existing cache continues in the format it was filled in
    (caches from before --precision existed are float32), so that resuming on another
    machine, or after this default changed, never mixes formats in one cache."""
    info = Path(config.cache_dir) / CACHE_FILE
    if config.precision != "auto" or config.overwrite or not info.is_file():
        return None
    return read_info(info).get("precision", "float32")  # a damaged cache.json is named here, as create() would


def parse_shard(shard: str) -> tuple[int, int]:
    """`"i/n"` -> `(i, n)` with 0 <= i < n; `""` -> `(0, 1)`."""
    if not shard:
        return 0, 1
    index, _, count = shard.partition("/")
    try:
        index, count = int(index), int(count)
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise VidclsError(f"Expected --shard i/n with 0 <= i < n (e.g. 0/2 and 1/2); received '{shard}'")
    return index, count


def shard_items(items: list[VideoItem], index: int, count: int) -> list[VideoItem]:
    """The clips of every `count`-th video, starting at the `index`-th in sorted order.

    Sharding by video keeps all segments of one video in one process (decoded once), and
    the sorted order makes every process agree on the split without talking to the others.
    """
    if count == 1:
        return items
    videos = sorted({item.video for item in items})
    mine = set(videos[index::count])
    return [item for item in items if item.video in mine]


def _decoded_batches(items: list[VideoItem], config: FeatureConfig, encoder: ClipEncoder, failures: list[dict], bar
                     ) -> Iterator[list[tuple[VideoItem, SampledClip]]]:
    """Decodes in worker threads (OpenCV releases the GIL) while the caller runs the
    backbone, one job per video (all its clips in one pass), grouping clips until a
    batch holds at least `batch_size` images (frames x streams)."""
    jobs: dict[str, list[VideoItem]] = {}
    for item in items:
        jobs.setdefault(item.video, []).append(item)

    def decode(clips: list[VideoItem]):
        ranges = [item.range for item in clips]
        try:
            results = read_clips(clips[0].video, ranges, config.num_frames, encoder.backbone.image_size,
                                 encoder.partner_gap)
        except VideoReadError as error:
            results = [error] * len(clips)
        return list(zip(clips, results))

    batch: list[tuple[VideoItem, SampledClip]] = []
    with ThreadPoolExecutor(config.decode_workers) as pool:
        for decoded in _bounded_map(pool, decode, jobs.values(), READ_AHEAD_PER_WORKER * config.decode_workers):
            for item, result in decoded:
                if isinstance(result, VideoReadError):
                    failures.append({"clip_id": item.clip_id, "video": item.video, "reason": str(result)})
                    bar.update()
                    bar.set_postfix(failed=len(failures))
                    continue
                batch.append((item, result))
                if len(batch) * config.num_frames * len(encoder.streams) >= config.batch_size:
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
