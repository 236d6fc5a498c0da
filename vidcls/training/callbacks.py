"""Callbacks that add the learning rate and throughput to each epoch's logs.

They must run before CSVLogger and TensorBoard in the callback list, which then record
the added keys like any metric.
"""

from __future__ import annotations

import time

import keras


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `learning_rate`, the optimizer's rate at the end of the epoch, to the logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class ThroughputLogger(keras.callbacks.Callback):
    """Adds `epoch_seconds` and `samples_per_second` (training samples only) to the logs.

    Args:
        num_samples: training samples seen per epoch.
    """

    def __init__(self, num_samples: int):
        super().__init__()
        self.num_samples = num_samples
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            seconds = time.perf_counter() - self._started
            logs["epoch_seconds"] = seconds
            logs["samples_per_second"] = self.num_samples / seconds if seconds > 0 else 0.0


class EpochSync(keras.callbacks.Callback):
    """Tells the training batch source which epoch starts, so that a run resumed by
    BackupAndRestore at epoch k draws epoch k's order, as an uninterrupted run would.

    Args:
        source: the `BatchSource` feeding `fit`.
    """

    def __init__(self, source):
        super().__init__()
        self.source = source

    def on_epoch_begin(self, epoch, logs=None):
        self.source.epoch = epoch
