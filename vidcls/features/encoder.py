"""From sampled frames to one clip's cached features: every stream through the backbone.

A stream is one kind of image per sampled frame:

- `appearance`: the frame itself (what the scene looks like);
- `frame_difference`: |frame - the frame `difference_gap` frames later| x `difference_gain`,
  clipped to 255: a motion image, bright where something moved and black where nothing
  did, whatever the scenery. Through the same frozen backbone it gives motion features
  that carry to scenes never seen in training far better than appearance does (measured
  on real surveillance footage, see docs/real-footage.md).

The cached row of a frame is the backbone's features of each stream, side by side, in
the order the streams are listed: `[T, D x streams]`. Models select and fuse the streams
(`model.streams`, `model.fusion`).
"""

from __future__ import annotations

import math

import numpy as np

from vidcls.errors import VidclsError
from vidcls.features.sampling import PartnerGap

STREAMS = ("appearance", "frame_difference")
DEFAULT_STREAMS = ("appearance",)


def check_streams(streams, difference_gap: int, difference_gain: float, difference_seconds: float = 0.0
                  ) -> tuple[str, ...]:
    """The stream names as a tuple, checked.

    Raises:
        VidclsError: an unknown or repeated stream, or a bad gap or gain.
    """
    streams = tuple(streams)
    unknown = [name for name in streams if name not in STREAMS]
    if not streams or unknown or len(set(streams)) != len(streams):
        raise VidclsError(f"Expected --streams (extract.streams) to list distinct streams of {', '.join(STREAMS)}; "
                          f"received {list(streams)}")
    if difference_gap < 1:
        raise VidclsError(f"Expected --difference-gap (extract.difference_gap) >= 1 frame; received {difference_gap}")
    if difference_gain <= 0:
        raise VidclsError(f"Expected --difference-gain (extract.difference_gain) > 0; received {difference_gain}")
    if not (difference_seconds >= 0 and math.isfinite(difference_seconds)):
        raise VidclsError("Expected --difference-seconds (extract.difference_seconds) >= 0 (0: the gap is "
                          f"--difference-gap frames); received {difference_seconds}")
    return streams


def difference_images(frames: np.ndarray, partner_frames: np.ndarray, gain: float) -> np.ndarray:
    """uint8 `min(gain * |partner - frame|, 255)`, channel by channel."""
    difference = np.abs(partner_frames.astype(np.int16) - frames.astype(np.int16)).astype(np.float32)
    return np.minimum(difference * gain, 255.0).astype(np.uint8)


class ClipEncoder:
    """Embeds sampled clips into cache rows: each stream's images through one backbone.

    Args:
        backbone: a `Backbone`.
        streams: names from `STREAMS`, in cache order.
        difference_gap: frames between the two images of a `frame_difference`.
        difference_gain: the factor on |difference| before clipping to 255.
        difference_seconds: > 0: the gap in seconds instead (`PartnerGap`).

    Example:
        >>> encoder = ClipEncoder(get_backbone("resnet50", "none", 32), ("appearance", "frame_difference"))
        >>> clip = read_sampled_frames("clip.mp4", 8, 32, encoder.partner_gap)
        >>> encoder.encode([clip])[0].shape
        (8, 4096)
    """

    def __init__(self, backbone, streams=DEFAULT_STREAMS, difference_gap: int = 1, difference_gain: float = 4.0,
                 difference_seconds: float = 0.0):
        self.backbone = backbone
        self.streams = check_streams(streams, difference_gap, difference_gain, difference_seconds)
        self._gap = difference_gap
        self.difference_gain = difference_gain
        self.difference_seconds = float(difference_seconds)

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim * len(self.streams)

    @property
    def partner_gap(self) -> PartnerGap:
        """How clips must be read: each sampled frame's partner, in frames or seconds
        (false: no stream needs partners)."""
        if "frame_difference" not in self.streams:
            return PartnerGap()
        return PartnerGap(seconds=self.difference_seconds) if self.difference_seconds else PartnerGap(self._gap)

    def fingerprint(self) -> dict:
        """The backbone's fingerprint, with the streams when they are not appearance alone
        (and the gap in effect: `difference_gap` frames or `difference_seconds`)."""
        info = dict(self.backbone.fingerprint())
        if self.streams != DEFAULT_STREAMS:
            info.update(feature_dim=self.feature_dim, streams=list(self.streams), stream_dim=self.backbone.feature_dim)
            gap = self.partner_gap
            if gap.seconds:
                info.update(difference_seconds=gap.seconds, difference_gain=self.difference_gain)
            elif gap:
                info.update(difference_gap=gap.frames, difference_gain=self.difference_gain)
        return info

    def images(self, clip) -> np.ndarray:
        """uint8 `[streams x T, S, S, 3]`: each stream's images of one clip, stream by stream."""
        parts = []
        for stream in self.streams:
            if stream == "appearance":
                parts.append(clip.frames)
            else:
                if clip.partner_frames is None:
                    raise VidclsError("The frame_difference stream needs the clip's partner frames; read it with "
                                      f"difference_gap={self._gap}")
                parts.append(difference_images(clip.frames, clip.partner_frames, self.difference_gain))
        return np.concatenate(parts)

    def encode(self, clips: list) -> list[np.ndarray]:
        """float16 `[T, D x streams]` per clip, from one backbone pass over all their images."""
        if not clips:
            return []
        num_frames = len(clips[0].frames)
        features = self.backbone.embed(np.concatenate([self.images(clip) for clip in clips]))
        rows = []
        for per_clip in np.split(features, len(clips)):
            by_stream = np.split(per_clip, len(self.streams))  # each [T, D]
            rows.append(np.concatenate(by_stream, axis=1).astype(np.float16).reshape(num_frames, self.feature_dim))
        return rows


STREAM_KEYS = ("feature_dim", "streams", "stream_dim", "difference_gap", "difference_gain", "difference_seconds")


def stream_subset(fingerprint: dict, streams) -> tuple[dict, np.ndarray] | None:
    """A cache's fingerprint as if it had been extracted with only `streams`, and the
    columns of its rows that hold them, in `streams`' order; None when the cache lacks one.

    Every stream is embedded alone (one backbone pass per image), so a stream's columns
    equal what a cache of fewer streams holds: a model trained on the frame-difference
    stream alone can be scored on a cache that also holds appearance.
    """
    cached = list(fingerprint.get("streams", DEFAULT_STREAMS))
    if any(name not in cached for name in streams):
        return None
    width = int(fingerprint.get("stream_dim", fingerprint["feature_dim"]))
    subset = {key: value for key, value in fingerprint.items() if key not in STREAM_KEYS}
    subset["feature_dim"] = width
    if tuple(streams) != DEFAULT_STREAMS:
        subset.update(feature_dim=width * len(streams), streams=list(streams), stream_dim=width)
        if "frame_difference" in streams:
            subset.update({key: fingerprint[key] for key in ("difference_gap", "difference_seconds", "difference_gain")
                           if key in fingerprint})
    columns = np.concatenate([np.arange(width) + cached.index(name) * width for name in streams])
    return subset, columns


def encoder_from_fingerprint(fingerprint: dict, weights: str | None = None, batch_size: int = 64) -> ClipEncoder:
    """The encoder that filled a cache, rebuilt from its `cache.json` (the backbone with the
    same weights, image size, grid, seed and number format; the same streams); `weights` overrides where
    the backbone's weights file is now.

    Raises:
        VidclsError: the rebuilt backbone's weights differ from those that filled the cache.
    """
    from vidcls.features.backbones import get_backbone

    source = weights or fingerprint.get("weights_source") or fingerprint["weights"]
    backbone = get_backbone(fingerprint["backbone"], source, fingerprint["image_size"], fingerprint.get("seed", 0),
                            batch_size=batch_size, grid=int(fingerprint.get("grid", 1)),
                            precision=fingerprint.get("precision", "float32"))
    if backbone.weights_checksum() != fingerprint["weights_checksum"]:
        raise VidclsError(
            f"The {fingerprint['backbone']} weights loaded from {source!r} differ from those that built the "
            f"training cache (checksum {backbone.weights_checksum()}, expected {fingerprint['weights_checksum']}); "
            "pass the original weights with --weights")
    return ClipEncoder(backbone, fingerprint.get("streams", DEFAULT_STREAMS),
                       int(fingerprint.get("difference_gap", 1)), float(fingerprint.get("difference_gain", 4.0)),
                       float(fingerprint.get("difference_seconds", 0.0)))
