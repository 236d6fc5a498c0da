"""Batches of cached features for training and evaluation, from RAM or from disk.

One code path serves both: a seeded generator draws each epoch's clip order (full shuffle
or class-balanced), gathers batches of rows from the feature source, augments them
(training only) and hands them to tf.data, which re-slices and prefetches. Python runs
once per few batches, never once per clip file: rows come from one array in RAM, or from
one packed file read with positioned reads when the features do not fit the memory
budget. Rows stay float16 up to the model, whose first layers cast them (NumPy's float16
conversion alone cost 3 ms per batch of 64 x 16 x 2048; a float32 copy made in tf.data
cost ~4 % of a default epoch's CPU time, for the same result to the bit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidcls.data.augment import changes_anything
from vidcls.errors import VidclsError

SAMPLING_MODES = ("shuffle", "balanced")
# Batches per hand-over from Python to tf.data: the hand-over has a fixed cost, so fewer,
# larger ones go faster (measured: 15k samples/s at 1, 22k at 4, 20k at 8).
BATCHES_PER_CHUNK = 4


def check_sampling(mode: str) -> None:
    if mode not in SAMPLING_MODES:
        raise VidclsError(f"Unknown data.sampling '{mode}'; choose one of: {', '.join(SAMPLING_MODES)}")


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """`n / (k * count_c)` per class, as scikit-learn's "balanced"; absent classes get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def explicit_class_weights(weights_by_name: dict, class_names: list[str]) -> np.ndarray:
    """Per-class weights from config, in label order; every class must be given."""
    unknown = sorted(set(weights_by_name) - set(class_names))
    missing = [name for name in class_names if name not in weights_by_name]
    if unknown or missing:
        raise VidclsError(
            f"train.class_weights must give a weight for every class {class_names}; "
            f"unknown: {unknown}, missing: {missing}")
    values = np.array([float(weights_by_name[name]) for name in class_names], np.float32)
    if (values < 0).any():
        raise VidclsError(f"Expected train.class_weights >= 0; received {dict(zip(class_names, values.tolist()))}")
    return values


def focal_alpha_from_frequencies(labels: np.ndarray, num_classes: int) -> list[float]:
    """Focal-loss alpha per class, proportional to 1 / frequency and summing to 1
    (78% / 22% -> [0.22, 0.78]); a class absent from training gets 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    inverse = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return (inverse / inverse.sum()).tolist()


@dataclass
class BatchSource:
    """Yields chunks of `((features float16 [n, T, D], masks [n, T]), targets [n, sum K])`
    (+ weights), n = up to BATCHES_PER_CHUNK batches; `make_dataset` slices them.

    Targets are the one-hot labels of every target side by side (one block of K_t columns
    per target), so augmentation mixes them all in the same proportions;
    `make_dataset` splits them into one tensor per output head.

    Args:
        rows: `[N, T, D]` features with fancy indexing (`rows[indices]`): a NumPy array
            in RAM or a `PackedRows` on disk.
        labels: `[N]` class indices, or `[N, targets]` for several targets.
        num_classes: K, or one K per target.
        batch_size: the global batch size.
        training: shuffle (or balance) every epoch and augment; otherwise in order.
        seed: epoch e uses `seed + e`, so a run is reproducible.
        sample_weights: optional per-sample weights (class weights): `[N]` for every
            target alike, or `[N, targets]`, one per target.
        sampling: "shuffle" (each clip once per epoch) or "balanced" (classes of the first
            target drawn equally often, with replacement, N draws per epoch).
        drop_remainder: drop the last partial batch (needed with several replicas).
        augment: an `AugmentConfig`, applied to training batches only.
        masks: `[N, T]` frame masks (1 = real frame); all ones when None.
        target_names: the output names when there are several targets (`make_dataset`
            then yields targets and weights as `{name: tensor}`).
    """

    rows: object
    labels: np.ndarray
    num_classes: int | list[int]
    batch_size: int
    training: bool
    seed: int = 0
    sample_weights: np.ndarray | None = None
    sampling: str = "shuffle"
    drop_remainder: bool = False
    augment: object | None = None
    masks: np.ndarray | None = None
    target_names: list[str] | None = None

    def __post_init__(self):
        check_sampling(self.sampling)
        self.labels = np.asarray(self.labels).reshape(len(self.labels), -1)
        self.class_counts = [self.num_classes] if isinstance(self.num_classes, int) else list(self.num_classes)
        if len(self.class_counts) != self.labels.shape[1]:
            raise VidclsError(f"Expected one class count per target column: {self.class_counts} for labels of shape "
                              f"{self.labels.shape}")
        if self.target_names is not None and len(self.target_names) != len(self.class_counts):
            raise VidclsError(f"Expected one target name per target: {self.target_names} for {len(self.class_counts)} targets")
        self.targets = np.concatenate([np.eye(count, dtype=np.float32)[self.labels[:, column]]
                                       for column, count in enumerate(self.class_counts)], axis=1)
        if self.masks is None:
            self.masks = np.ones(self.rows.shape[:2], np.float32)
        self.epoch = 0

    @property
    def steps_per_epoch(self) -> int:
        full, partial = divmod(len(self.labels), self.batch_size)
        return full if self.drop_remainder or partial == 0 else full + 1

    def epoch_order(self, epoch: int) -> np.ndarray:
        count = len(self.labels)
        if not self.training:
            return np.arange(count)
        rng = np.random.default_rng(self.seed + epoch)
        if self.sampling == "shuffle":
            return rng.permutation(count)
        first = self.labels[:, 0]
        class_counts = np.bincount(first, minlength=self.class_counts[0])
        probabilities = 1.0 / class_counts[first]
        return rng.choice(count, size=count, replace=True, p=probabilities / probabilities.sum())

    def __call__(self):
        """One epoch, in chunks of whole batches; tf.data calls it again for the next epoch."""
        epoch, self.epoch = self.epoch, self.epoch + 1
        order = self.epoch_order(epoch)[: self.steps_per_epoch * self.batch_size]
        rng = np.random.default_rng((self.seed, epoch, 1))
        chunk_size = BATCHES_PER_CHUNK * self.batch_size
        # Off by default; the float32 round trip alone cost ~15 ms a chunk of 4 x 32 clips.
        augment = self.training and self.augment is not None and changes_anything(self.augment)
        for start in range(0, len(order), chunk_size):
            indices = order[start:start + chunk_size]
            features = np.asarray(self.rows[indices])  # one gather (or one pass of reads) per chunk
            masks, targets = self.masks[indices], self.targets[indices]
            weights = None if self.sample_weights is None else np.asarray(self.sample_weights[indices], np.float32)
            if augment:
                features, masks, targets, weights = self._augment(features, masks, targets, weights, rng)
            inputs = (features, masks)
            yield (inputs, targets) if weights is None else (inputs, targets, weights)

    def _augment(self, features, masks, targets, weights, rng):
        """Augments each batch of the chunk on its own (mixing partners come from the same batch)."""
        from vidcls.data.augment import augment_batch

        parts = []
        for start in range(0, len(features), self.batch_size):
            window = slice(start, start + self.batch_size)
            parts.append(augment_batch(features[window].astype(np.float32), masks[window], targets[window],
                                       None if weights is None else weights[window], rng, self.augment))
        joined_weights = None if weights is None else np.concatenate([part[3] for part in parts])
        return (np.concatenate([part[0] for part in parts]).astype(np.float16),
                np.concatenate([part[1] for part in parts]),
                np.concatenate([part[2] for part in parts]), joined_weights)


def make_dataset(source: BatchSource, keep_in_memory: bool = False):
    """Wraps a `BatchSource` in tf.data with prefetching.

    `keep_in_memory` (a fixed split that is read every epoch, such as validation) keeps the
    float16 batches after the first pass (a second copy of those features in RAM), so
    later passes skip the Python generator: measured on the 2-core CPU, 308 clips of
    [16, 2048] took 55-70 ms per pass from the generator and 3-5 ms from memory, and a
    training epoch reads the validation split twice (Keras's metrics and TensorBoard's
    per-class figures)."""
    import tensorflow as tf

    num_frames, feature_dim = source.rows.shape[1:]
    signature = [(tf.TensorSpec([None, num_frames, feature_dim], tf.float16), tf.TensorSpec([None, num_frames], tf.float32)),
                 tf.TensorSpec([None, sum(source.class_counts)], tf.float32)]
    if source.sample_weights is not None:
        signature.append(tf.TensorSpec([None, *np.shape(source.sample_weights)[1:]], tf.float32))
    dataset = tf.data.Dataset.from_generator(source, output_signature=tuple(signature))
    dataset = dataset.rebatch(source.batch_size)  # chunk boundaries fall on batch boundaries
    if keep_in_memory:
        if source.training:
            raise VidclsError("keep_in_memory is for a fixed split; a training source draws a new order every epoch")
        dataset = dataset.cache()
    names = source.target_names
    bounds = np.cumsum([0, *source.class_counts]).tolist()

    def per_head(inputs, targets, *weights):
        targets = {name: targets[:, bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}
        if weights and len(weights[0].shape) == 2:
            weights = ({name: weights[0][:, i] for i, name in enumerate(names)},)
        return (inputs, targets, *weights)

    # Features stay float16: the model casts them (exactly) where it needs to.
    if names is not None:  # one tensor per output head
        dataset = dataset.map(per_head, num_parallel_calls=tf.data.AUTOTUNE)
    # A known length gives Keras's progress bar its total from the first epoch on.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(source.steps_per_epoch))
    return dataset.prefetch(tf.data.AUTOTUNE)
