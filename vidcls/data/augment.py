"""Feature-level augmentation of training batches (NumPy, seeded per epoch).

Each transform keeps the batch shape `[B, T, D]` and moves the frame masks `[B, T]` with
the frames; mixing transforms mix the targets (and sample weights) in the same
proportions, so every target row still sums to 1.
"""

from __future__ import annotations

import numpy as np


def changes_anything(config) -> bool:
    """Whether `config` (an `AugmentConfig`) turns on any transform: every default is off,
    so any field away from its default does. With none on, batches skip augmentation (and
    its float32 round trip) entirely."""
    return config != type(config)()


def augment_batch(features: np.ndarray, masks: np.ndarray, targets: np.ndarray, weights: np.ndarray | None,
                  rng: np.random.Generator, config):
    """Applies the transforms `config` (an `AugmentConfig`) turns on, in a fixed order.

    Returns `(features, masks, targets, weights)`.
    """
    if config.crop_min < 1.0 or config.speed > 0 or config.jitter > 0:
        features, masks = temporal_resample(features, masks, rng, config.crop_min, config.speed, config.jitter)
    if config.noise_std > 0:
        scale = features.std(axis=(0, 1), keepdims=True)
        features = features + rng.standard_normal(features.shape, dtype=np.float32) * (config.noise_std * scale)
    if config.feature_dropout > 0:
        keep = rng.random((features.shape[0], 1, features.shape[2])) >= config.feature_dropout
        features = features * keep
    if config.mixup_alpha > 0:
        features, masks, targets, weights = mixup(features, masks, targets, weights, rng, config.mixup_alpha)
    if config.cutmix_prob > 0 and rng.random() < config.cutmix_prob:
        features, masks, targets, weights = temporal_cutmix(features, masks, targets, weights, rng)
    return features.astype(np.float32), masks.astype(np.float32), targets.astype(np.float32), weights


def temporal_resample(features: np.ndarray, masks: np.ndarray, rng: np.random.Generator, crop_min: float,
                      speed: float, jitter: float) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: a random window of `crop_min`..1 of the clip, played at a random rate in
    [1/(1+speed), 1+speed], each position moved by up to `jitter` frames; frame order is
    kept and positions stay inside the clip. Resampled back to T frames."""
    batch, num_frames = features.shape[:2]
    length = rng.uniform(crop_min, 1.0, size=(batch, 1)) * num_frames
    start = rng.uniform(0, num_frames - length)
    positions = start + np.linspace(0, 1, num_frames)[None] * (length - 1)
    if speed > 0:
        rate = np.exp(rng.uniform(-np.log1p(speed), np.log1p(speed), size=(batch, 1)))
        positions = start + (positions - start) * rate
    if jitter > 0:
        positions = np.sort(positions + rng.uniform(-jitter, jitter, size=positions.shape), axis=1)
    return take_frames(features, masks, positions)


def take_frames(features: np.ndarray, masks: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The frames at (fractional, rounded) `positions` `[B, T]` of each clip, with their
    masks; a position that repeats the one before it is marked as a repeat (mask 0)."""
    num_frames = features.shape[1]
    indices = np.clip(np.round(positions), 0, num_frames - 1).astype(np.int64)
    resampled_masks = np.take_along_axis(masks, indices, axis=1)
    resampled_masks[:, 1:] *= indices[:, 1:] != indices[:, :-1]
    resampled_masks[:, 0] = 1.0
    return np.take_along_axis(features, indices[..., None], axis=1), resampled_masks


def temporal_crops(features: np.ndarray, masks: np.ndarray, count: int, fraction: float):
    """`count` windows of `fraction` of each clip, evenly spaced from its start to its end,
    each resampled back to T frames (the masks mark repeats)."""
    batch, num_frames = features.shape[:2]
    length = max(1.0, fraction * num_frames)
    crops = []
    for start in np.linspace(0, num_frames - length, count):
        positions = np.broadcast_to(start + np.linspace(0, length - 1, num_frames), (batch, num_frames))
        crops.append(take_frames(features, masks, positions))
    return crops


def mixup(features, masks, targets, weights, rng: np.random.Generator, alpha: float):
    """x = l*x + (1-l)*x[perm], same for targets and weights, l ~ Beta(alpha, alpha); a
    frame is real if it is real in either clip."""
    lam = rng.beta(alpha, alpha, size=len(features)).astype(np.float32)
    partner = rng.permutation(len(features))
    mixed = lam[:, None, None] * features + (1 - lam[:, None, None]) * features[partner]
    mixed_targets = lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]
    mixed_weights = None if weights is None else _mix(lam, weights, weights[partner])
    return mixed, np.maximum(masks, masks[partner]), mixed_targets, mixed_weights


def temporal_cutmix(features, masks, targets, weights, rng: np.random.Generator):
    """Replaces a random window of each clip with the same frames of another clip; the
    targets mix in proportion to the frames taken."""
    batch, num_frames = features.shape[:2]
    partner = rng.permutation(batch)
    width = rng.integers(1, num_frames, size=batch)
    start = rng.integers(0, num_frames - width + 1)
    frames = np.arange(num_frames)[None]
    window = (frames >= start[:, None]) & (frames < (start + width)[:, None])
    mixed = np.where(window[..., None], features[partner], features)
    mixed_masks = np.where(window, masks[partner], masks)
    share = (width / num_frames).astype(np.float32)
    mixed_targets = (1 - share)[:, None] * targets + share[:, None] * targets[partner]
    mixed_weights = None if weights is None else _mix(1 - share, weights, weights[partner])
    return mixed, mixed_masks, mixed_targets, mixed_weights


def _mix(share: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """`share * first + (1 - share) * second` per sample; weights are `[B]` or `[B, targets]`."""
    share = share.reshape(-1, *[1] * (first.ndim - 1))
    return share * first + (1 - share) * second
