"""Callbacks vidcls adds to Keras's: learning rate and throughput per epoch, the epoch for
the batch source, periodic checkpoints, and TensorBoard's hparams, and per epoch the
validation split's per-class recall, confusion matrix (an image) and PR curves.

LearningRateLogger must run before CSVLogger and TensorBoard in the callback list, which
then record the learning rate like any metric.
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import keras
import numpy as np

from vidcls.keras_compat import set_initial_epoch


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `learning_rate`, the optimizer's rate at the end of the epoch, to the logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class ThroughputLogger(keras.callbacks.Callback):
    """Adds `epoch_seconds` and `samples_per_second` (training samples only) to the logs,
    so TensorBoard shows them; these cover training and validation. `closing()` is the
    callback to put last: it appends the epoch's whole wall-clock time, the checkpoints
    and TensorBoard writes of every callback before it included, to `path` (timing.csv),
    which is what an epoch really costs.

    Args:
        num_samples: training samples seen per epoch.
        path: the CSV file, one row per epoch.
    """

    def __init__(self, num_samples: int, path: Path):
        super().__init__()
        self.num_samples = num_samples
        self.path = Path(path)
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds, rate = self._elapsed()
        if logs is not None:
            logs["epoch_seconds"] = seconds
            logs["samples_per_second"] = rate

    def closing(self) -> keras.callbacks.Callback:
        """The callback that writes timing.csv's row; the last of the list."""
        return _ThroughputRow(self)

    def _elapsed(self) -> tuple[float, float]:
        seconds = time.perf_counter() - self._started
        return seconds, self.num_samples / seconds if seconds > 0 else 0.0

    def write_row(self, epoch: int) -> None:
        seconds, rate = self._elapsed()
        new = not self.path.is_file()
        with self.path.open("a", newline="") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(["epoch", "epoch_seconds", "samples_per_second"])
            writer.writerow([epoch, f"{seconds:.4f}", f"{rate:.1f}"])


class _ThroughputRow(keras.callbacks.Callback):
    def __init__(self, logger: ThroughputLogger):
        super().__init__()
        self.logger = logger

    def on_epoch_end(self, epoch, logs=None):
        self.logger.write_row(epoch)


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


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Saves the model as `directory/epoch_NNN.keras` after every `every`-th epoch
    (written to a temporary name, then renamed, so a kill never leaves half a file).
    `transform` turns the training model into the one to save (LoRA: the merged model)."""

    def __init__(self, directory: Path, every: int, transform=None):
        super().__init__()
        self.directory = Path(directory)
        self.every = every
        self.transform = transform

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        _save_atomically(self.transform(self.model) if self.transform else self.model,
                         self.directory / f"epoch_{epoch + 1:03d}.keras")


class BestCheckpoint(keras.callbacks.Callback):
    """Keras's ModelCheckpoint(save_best_only=True), but atomic: the model is written to a
    temporary name and renamed, so a kill mid-save leaves the previous best.keras whole
    (Keras writes it in place: a kill left a truncated file that every later command
    failed on). A non-finite value never counts as better.

    Place it before the backup callback: a kill during this save then leaves the epoch
    unrecorded by the backup, so the resumed run trains it again and saves it.

    Args:
        path: best.keras.
        monitor: the logged value to minimise (val_loss, or loss without validation).
        transform: turns the training model into the one to save (LoRA: the merged model).
        initial: the best value so far (a resumed run), or None.
    """

    def __init__(self, path: Path, monitor: str, transform=None, initial: float | None = None):
        super().__init__()
        self.path, self.monitor, self.transform = Path(path), monitor, transform
        self.best = float("inf") if initial is None else initial

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(float(value)) and float(value) < self.best:
            self.best = float(value)
            _save_atomically(self.transform(self.model) if self.transform else self.model, self.path)


def _save_atomically(model, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    with open(partial, "rb") as handle:  # on disk before the rename makes it the one
        os.fsync(handle.fileno())
    partial.replace(path)


IMAGE_SECONDS = 30.0  # at most one confusion-matrix picture per this many seconds (and the last epoch's)


class TensorBoardExtras(keras.callbacks.Callback):
    """Writes the run's hyperparameters (HParams dashboard) when training starts, and after
    every epoch, for each target on the validation split: per-class recall (Scalars), the
    confusion matrix as a picture (Images) and, for two classes, the precision-recall curve
    of each class (PR Curves).

    The picture is drawn after the first epoch, then at most every `IMAGE_SECONDS`, and
    after the last epoch trained: drawing it takes ~0.1 s (matplotlib), which was 7 % of
    a 1.5-s epoch when drawn every time. The recall scalars are there for every epoch.

    Args:
        log_dir: the run's tensorboard/ folder.
        config: the `ExperimentConfig`.
        val_data: the validation dataset (in clip order), or None.
        val_labels: `[N, targets]` class indices of the validation clips.
        space: `{target: class names}`.
    """

    def __init__(self, log_dir: Path, config, val_data, val_labels: np.ndarray | None, space: dict):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.config = config
        self.val_data = val_data
        self.val_labels = val_labels
        self.space = space
        self._writer = None
        self._infer = None
        self._last_image = -float("inf")
        self._pending_images: list = []  # the newest epoch's pictures, if not drawn yet

    def on_train_begin(self, logs=None):
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hparams

        with tf.summary.create_file_writer(str(self.log_dir / "hparams")).as_default():
            hparams.hparams(_flat_hyperparameters(self.config.to_dict()), trial_id=str(self.log_dir.parent))

    def on_epoch_end(self, epoch, logs=None):
        if self.val_data is None:
            return
        import tensorflow as tf

        from vidcls.models import outputs_by_target

        outputs = outputs_by_target(self._predict(), self.space)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.log_dir / "validation_per_class"))
        self._pending_images = []
        with self._writer.as_default(step=epoch):
            for column, (target, names) in enumerate(self.space.items()):
                suffix = "" if len(self.space) == 1 else f"_{target}"
                probabilities, truth = outputs[target], self.val_labels[:, column]
                predicted = probabilities.argmax(axis=1)
                for index, name in enumerate(names):
                    members = truth == index
                    if members.any():
                        tf.summary.scalar(f"recall{suffix}/{name}", float(np.mean(predicted[members] == index)))
                self._pending_images.append((f"confusion_matrix{suffix}", truth, predicted, names, epoch))
                if len(names) == 2:
                    _write_pr_curves(f"pr_curve{suffix}", truth, probabilities, names, epoch)
            last_epoch = epoch + 1 >= (self.params or {}).get("epochs", 0)
            if last_epoch or time.perf_counter() - self._last_image >= IMAGE_SECONDS:
                self._draw_pending()
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            with self._writer.as_default():  # stopped early: the last epoch's picture
                self._draw_pending()
            self._writer.close()

    def _draw_pending(self) -> None:
        for tag, truth, predicted, names, epoch in self._pending_images:
            _write_confusion_image(tag, truth, predicted, names, epoch)
        self._pending_images = []
        self._last_image = time.perf_counter()

    def _predict(self):
        """The model's outputs on the validation clips, through one compiled inference
        function. Not `model.predict`: called between epochs it stalled the start of the
        next epoch by ~0.5 s (median, measured on the 2-core CPU with 1,433 training clips:
        a quarter of the epoch), and took longer itself (0.33 vs 0.23 s per epoch)."""
        import tensorflow as tf

        if self._infer is None:
            model = self.model
            self._infer = tf.function(lambda inputs: model(inputs, training=False))
        batches = [self._infer(batch[0]) for batch in self.val_data]
        return tf.nest.map_structure(lambda *parts: np.concatenate([np.asarray(part) for part in parts]), *batches)


def _write_confusion_image(tag: str, truth: np.ndarray, predicted: np.ndarray, names: list[str], epoch: int) -> None:
    import tensorflow as tf

    from vidcls.evaluation import confusion_png

    counts = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(counts, (truth, predicted), 1)
    png = confusion_png(counts, names, f"validation, epoch {epoch + 1}", dpi=100)
    tf.summary.image(tag, tf.image.decode_png(png, channels=3)[None], step=epoch)


def _write_pr_curves(tag: str, truth: np.ndarray, probabilities: np.ndarray, names: list[str], epoch: int) -> None:
    """One curve per class, that class taken as the positive one (TensorBoard's PR Curves)."""
    import tensorflow as tf
    from tensorboard.plugins.pr_curve import summary as pr_curve

    for index, name in enumerate(names):
        proto = pr_curve.pb(f"{tag}/{name}", labels=truth == index,
                            predictions=np.clip(probabilities[:, index], 0.0, 1.0).astype(np.float32), num_thresholds=101)
        tf.summary.experimental.write_raw_pb(proto.SerializeToString(), step=epoch)


def _flat_hyperparameters(config: dict) -> dict:
    """`{"train.learning_rate": 0.001, ...}` with values TensorBoard accepts (lists and
    mappings as JSON text; unset values left out)."""
    flat = {}
    for section, values in config.items():
        for key, value in values.items():
            if value is None:
                continue
            flat[f"{section}.{key}"] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    return flat


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras's BackupAndRestore, made safe against a kill at any instant.

    Keras overwrites one weights file in place and then its epoch file: a SIGKILL during
    the write leaves a truncated file that cannot be resumed from (measured: "truncated
    file: eof = 96"), and one between the two writes pairs new weights with the old epoch.
    Here each backup is a new file `epoch_NNNN.weights.h5`, written under a temporary name
    and renamed; then `training_metadata.json` is replaced atomically to point at it; only
    then are older backups deleted. Whatever instant the kill hits, the metadata names a
    complete file of the epoch it records.

    Args:
        backup_dir: the run's backup/ folder.
    """

    def __init__(self, backup_dir: Path):
        super().__init__(str(backup_dir), double_checkpoint=False)

    @staticmethod
    def resumed_epoch(backup_dir: Path) -> int:
        """The epoch a run in `backup_dir` resumes at (0 without a backup)."""
        metadata = Path(backup_dir) / "training_metadata.json"
        return int(json.loads(metadata.read_text())["epoch"]) if metadata.is_file() else 0

    def _save_model(self):
        from vidcls.fileio import atomic_write_json

        directory = Path(self.backup_dir)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"epoch_{self._current_epoch:04d}.weights.h5"
        partial = directory / f".partial_{name}"
        self.model.save_weights(str(partial), overwrite=True)
        partial.replace(directory / name)
        atomic_write_json(Path(self._training_metadata_path),
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen, "weights": name})
        for older in directory.glob("*epoch_*.weights.h5"):
            if older.name != name:
                older.unlink(missing_ok=True)

    def _load_model(self):
        metadata = Path(self._training_metadata_path)
        if not metadata.is_file():
            return
        state = json.loads(metadata.read_text())
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its slots are in the file too
        self.model.load_weights(str(Path(self.backup_dir) / state["weights"]))
        set_initial_epoch(self.model, state["epoch"])  # as Keras's own callback tells fit() where to start
