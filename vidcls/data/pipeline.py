"""tf.data pipelines over cached features held in memory."""

from __future__ import annotations

import numpy as np


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """`n / (k * count_c)` per class, as scikit-learn's "balanced"; absent classes get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def make_dataset(features: np.ndarray, labels: np.ndarray, num_classes: int, batch_size: int,
                 *, training: bool, seed: int = 0, sample_weights: np.ndarray | None = None,
                 drop_remainder: bool = False):
    """Yields `(features float32 [B, T, D], one-hot [B, K])`, plus per-sample weights if given.

    Class weights travel as per-sample weights inside the dataset because Keras's
    `class_weight=` does not work with distributed datasets or multi-output models. The
    training order is a full-epoch shuffle, seeded, different every epoch.
    """
    import tensorflow as tf

    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    columns = (features, one_hot) if sample_weights is None else (features, one_hot, sample_weights.astype(np.float32))
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if training:
        dataset = dataset.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

    def to_float32(x, *rest):
        return (tf.cast(x, tf.float32), *rest)

    return dataset.map(to_float32, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
