"""`vidcls train`: a temporal classifier on cached features, written to a run directory.

The jobs around the loop live beside it: checks.py (refusing bad runs), splits.py,
budget.py (RAM or streamed features), objectives.py (losses, class weights, optimizer),
history.py (history.csv across resumes), environment.py (env.json), runtime.py (devices,
strategy, precision, XLA), callbacks.py.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from vidcls.config import ExperimentConfig, save_config
from vidcls.data import BatchSource, LabelSpace, build_label_space, label_space_to_json, load_labelled_features, make_dataset
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache
from vidcls.fileio import atomic_write_json
from vidcls.keras_compat import check_private_symbols
from vidcls.run_dir import RunDir
from vidcls.training.budget import features_fit_in_memory
from vidcls.training.checks import check_existing_run, check_finished, check_model, check_options, check_settings
from vidcls.training.environment import write_env
from vidcls.training.history import best_so_far, finished_result, trim_logs
from vidcls.training.objectives import compile_model, sample_weights
from vidcls.training.result import TrainResult
from vidcls.training.splits import clip_groups, load_or_make_splits

logger = logging.getLogger("vidcls")
# On CPU, recurrent models over at most this many frames train with their loop unrolled.
CPU_UNROLL_FRAMES = 64


def train(config: ExperimentConfig, run_dir: str | Path, progress: bool = False) -> TrainResult:
    """Trains `config.model` on `config.data.cache_dir` into `run_dir`.

    Re-running with the same config after a finished run does nothing; after an
    interruption it resumes from the last epoch boundary (`backup/`). A different config
    in an existing run directory is an error rather than a silent mix of two runs.

    Under TF_CONFIG (several workers) the chief writes `run_dir`; every other worker keeps
    its own checkpoints and logs in `run_dir/workers/worker_<i>/`.
    """
    import keras

    from vidcls.training.runtime import resolve_runtime

    previous_policy = keras.config.dtype_policy()
    try:
        config = _keep_stored_precision(RunDir(run_dir), config)
        # First: logical devices and the worker cluster must be set before TensorFlow starts.
        runtime = resolve_runtime(config.train)
        run = RunDir(run_dir)
        if not runtime.is_chief:
            run = RunDir(run.root / "workers" / f"worker_{runtime.worker_index}")
        return _train(config, run, runtime, progress)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _keep_stored_precision(run: RunDir, config: ExperimentConfig) -> ExperimentConfig:
    """With `auto` precision, an existing run continues in the precision it was started
    with (runs from before `auto` was the default stored float32): re-running the same
    command resumes it instead of refusing a changed configuration."""
    if config.train.precision != "auto" or not run.config_path.is_file():
        return config
    stored = run.config().train.precision
    if stored != "auto":
        logger.info("%s was started in %s; continuing in it", run.root, stored)
        return config.replace({"train.precision": stored})
    return config


def _train(config: ExperimentConfig, run: RunDir, runtime, progress: bool) -> TrainResult:
    import keras

    finished = check_existing_run(run, config)
    if finished is not None:
        return finished
    check_settings(config)
    check_private_symbols()  # a Keras upgrade that removed one fails here, by name, not mid-run
    cache = FeatureCache(config.data.cache_dir)
    space = build_label_space(cache.entries, config.data.targets, str(cache.root))
    splits = load_or_make_splits(run, cache, config)
    check_options(config, space)
    check_model(config, space, cache)
    # Written only now: a run refused above leaves nothing that would block a corrected one.
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config_path)
    atomic_write_json(run.splits_path, splits)
    atomic_write_json(run.labels_path, label_space_to_json(space))
    atomic_write_json(run.features_path, {"cache_dir": str(cache.root), "fingerprint": cache.info})
    # The validation split counts twice: its array and tf.data's copy of its batches (_datasets).
    in_memory = features_fit_in_memory(config, cache, len(splits["train"]) + 2 * len(splits["val"]))
    train_set = load_labelled_features(cache, splits["train"], space, in_memory)
    val_set = load_labelled_features(cache, splits["val"], space, in_memory)
    keras.utils.set_random_seed(config.train.seed)
    write_env(run, runtime)
    return _fit(config, run, runtime, train_set, val_set, space, cache, progress)


def _fit(config, run: RunDir, runtime, train_set, val_set, space: LabelSpace, cache: FeatureCache,
         progress: bool) -> TrainResult:
    from vidcls.training.callbacks import AtomicBackupAndRestore

    train_groups = clip_groups(train_set.entries, config.data.group_by, cache.root) if config.train.balance_groups else None
    train_source, train_data, val_data = _datasets(config, runtime, train_set, val_set, space, train_groups)
    with runtime.strategy.scope():
        model, lora = _build(config, runtime, space, cache, train_set.features)
        compile_model(model, config.train, train_set.labels, space, train_source.steps_per_epoch, runtime.jit_compile)
    summary = _log_model(config, model, lora, cache)
    monitor = "val_loss" if val_data is not None else "loss"
    trim_logs(run, AtomicBackupAndRestore.resumed_epoch(run.backup_dir))
    callbacks = _callbacks(config, run, train_source, train_set.num_clips, val_data, val_set, space, monitor, lora)
    started = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=config.train.epochs, callbacks=callbacks, shuffle=False,
              steps_per_epoch=train_source.steps_per_epoch, verbose=_verbosity(progress))
    check_finished(run, monitor)
    result = finished_result(run, time.perf_counter() - started, summary, config)
    atomic_write_json(run.result_path, result.to_dict())
    return result


def _datasets(config: ExperimentConfig, runtime, train_set, val_set, space: LabelSpace, train_groups=None):
    """`(training BatchSource, training dataset, validation dataset or None)`;
    `train_groups`: each training clip's group, for `train.balance_groups`."""
    import numpy as np

    from vidcls.models import INFERENCE_BATCH_SIZE

    counts = [len(names) for names in space.values()]
    target_names = list(space) if len(space) > 1 else None
    batch_size = config.train.batch_size
    train_source = BatchSource(
        rows=train_set.features, labels=train_set.labels, num_classes=counts, batch_size=batch_size, training=True,
        seed=config.train.seed, sample_weights=sample_weights(config.train, train_set.labels, space, train_groups),
        sampling=config.data.sampling, drop_remainder=runtime.replicas > 1, augment=config.augment,
        masks=train_set.masks, target_names=target_names,
    )
    if train_source.steps_per_epoch < 1:
        raise VidclsError(f"Expected at least one full batch: {len(train_set.labels)} training clips, global batch "
                          f"size {batch_size} across {runtime.replicas} replicas")
    val_data = None
    if len(val_set.labels):
        # Read twice an epoch; kept in memory when the features are (the budget counts that copy).
        # Inference only: batches as large as evaluation's are fewer calls (validation and
        # TensorBoard's figures: 308 clips in 0.045 s instead of 0.10-0.11 s at batch 32).
        val_batch_size = max(batch_size, INFERENCE_BATCH_SIZE)
        val_data = make_dataset(BatchSource(val_set.features, val_set.labels, counts, val_batch_size, training=False,
                                            masks=val_set.masks, target_names=target_names),
                                keep_in_memory=isinstance(val_set.features, np.ndarray))
    # One iterator for the whole run (fit's steps_per_epoch ends each epoch): a tf.data
    # iterator over a Python generator, made anew every epoch, stalled that epoch's start by
    # ~1 s in 1-3 of 8 epochs (measured on the 2-core CPU); the source counts its epochs.
    return train_source, make_dataset(train_source).repeat(), val_data


def _build(config: ExperimentConfig, runtime, space: LabelSpace, cache: FeatureCache, train_features):
    """The model (under the strategy's scope), initialised from `model.init_from` or with
    normalisation statistics of the training features; and its LoRA summary, if any."""
    from vidcls.models import adapt_normalization, build_model, load_model, transfer_weights
    from vidcls.training.lora import apply_lora

    counts = [len(names) for names in space.values()]
    num_frames, feature_dim = cache.feature_shape
    model = build_model(config.model, num_classes=dict(zip(space, counts)) if len(space) > 1 else counts[0],
                        feature_dim=feature_dim, num_frames=num_frames, cache_streams=cache.info.get("streams"),
                        unroll_up_to=0 if runtime.gpus else CPU_UNROLL_FRAMES)
    if config.model.init_from:  # its feature statistics too
        source = load_model(RunDir(config.model.init_from).best_model_path)
        resampled = transfer_weights(source, model)
        logger.info("initialised from %s (%d frames)%s", config.model.init_from, source.num_frames or 0,
                    f"; positional table resampled in {', '.join(resampled)}" if resampled else "")
    else:
        adapt_normalization(model, train_features)
    lora = apply_lora(model, config.model.lora_rank, config.model.lora_alpha) if config.model.lora_rank else None
    return model, lora


def _log_model(config: ExperimentConfig, model, lora: dict | None, cache: FeatureCache) -> dict:
    """Logs what is trained (size, cost, streams read) and returns describe_model's summary."""
    from vidcls.models import describe_model
    from vidcls.training.lora import merge_lora

    num_frames = cache.feature_shape[0]
    summary = describe_model(merge_lora(model) if lora else model, num_frames)
    if lora:
        summary["trainable_parameters"] = lora["trainable"]
        logger.info("LoRA rank %d on %d layers: %s trainable parameters of %s (%.2f%%), everything else frozen",
                    config.model.lora_rank, lora["lora_layers"], f"{lora['trainable']:,}", f"{lora['total']:,}",
                    lora["trainable_percent"])
    if cache.info.get("streams"):
        logger.info("the model reads stream(s) %s of the cache's %s", model.streams or cache.info["streams"],
                    cache.info["streams"])
    logger.info("%s: %s parameters (%s trainable), %.1f MFLOPs per clip of %d frames", config.model.name,
                f"{summary['parameters']:,}", f"{summary['trainable_parameters']:,}", summary["flops_per_clip"] / 1e6,
                num_frames)
    return summary


def _callbacks(config: ExperimentConfig, run: RunDir, train_source, train_clips: int, val_data, val_set,
               space: LabelSpace, monitor: str, lora: dict | None) -> list:
    import keras

    from vidcls.training.callbacks import (
        AtomicBackupAndRestore,
        BestCheckpoint,
        EpochSync,
        LearningRateLogger,
        PeriodicCheckpoint,
        ThroughputLogger,
    )
    from vidcls.training.lora import merge_lora
    from vidcls.training.tensorboard_extras import TensorBoardExtras

    train = config.train
    merge = merge_lora if lora else None
    callbacks = [
        EpochSync(train_source),
        LearningRateLogger(),
        # Before the timings are added: history.csv holds only what a seed determines, so
        # --deterministic runs give identical files; seconds and samples/s go to timing.csv.
        keras.callbacks.CSVLogger(str(run.history_path), append=True),
        throughput := ThroughputLogger(min(train_source.steps_per_epoch * train.batch_size, train_clips),
                                       run.timing_path),
        # Before the backup: an epoch counts as done only once its best.keras is saved.
        # After a resume, only a model better than the best so far replaces best.keras.
        BestCheckpoint(run.best_model_path, monitor, merge, best_so_far(run, monitor)),
        AtomicBackupAndRestore(run.backup_dir),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=train.early_stopping_patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(str(run.tensorboard_dir), write_graph=False),
        TensorBoardExtras(run.tensorboard_dir, config, val_data, val_set.labels if val_data is not None else None, space),
    ]
    if train.checkpoint_every:
        callbacks.append(PeriodicCheckpoint(run.checkpoints_dir, train.checkpoint_every, merge))
    # Last: timing.csv's seconds are the whole epoch, every callback's saves and writes included.
    callbacks.append(throughput.closing())
    return callbacks


def _verbosity(progress: bool) -> int:
    """Keras's live progress bar on a terminal, one line per epoch in logs (CI, files)."""
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2
