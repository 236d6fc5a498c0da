"""`vidcls train`: a temporal classifier on cached features, written to a run directory."""

from __future__ import annotations

import csv
import json
import logging
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcls import __version__
from vidcls.config import ExperimentConfig, TrainConfig, save_config
from vidcls.data import (
    BatchSource, LabelSpace, balanced_class_weights, build_label_space, check_sampling, explicit_class_weights,
    focal_alpha_from_frequencies, label_space_to_json, load_labelled_features, make_dataset, read_split_file,
    stratified_split,
)
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache
from vidcls.fileio import atomic_write_json, atomic_writer, csv_number
from vidcls.run_dir import RunDir

logger = logging.getLogger("vidcls")
# On CPU, recurrent models over at most this many frames train with their loop unrolled.
CPU_UNROLL_FRAMES = 64


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_val_loss: float | None
    best_val_accuracy: float | None
    seconds: float
    parameters: int
    trainable_parameters: int | None = None
    flops_per_clip: int | None = None
    initialised_from: str | None = None
    already_done: bool = False

    def to_dict(self) -> dict:
        return {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(self).items()}


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
        # First: logical devices and the worker cluster must be set before TensorFlow starts.
        runtime = resolve_runtime(config.train)
        run = RunDir(run_dir)
        if not runtime.is_chief:
            run = RunDir(run.root / "workers" / f"worker_{runtime.worker_index}")
        return _train(config, run, runtime, progress)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(config: ExperimentConfig, run: RunDir, runtime, progress: bool) -> TrainResult:
    import keras

    finished = _check_existing_run(run, config)
    if finished is not None:
        return finished
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise VidclsError(f"Expected train.epochs >= 1 and train.batch_size >= 1; received {config.train.epochs} and {config.train.batch_size}")
    if config.model.lora_rank and not config.model.init_from:
        raise VidclsError("model.lora_rank adapts a trained model: set model.init_from (vidcls finetune --from RUN_DIR)")
    if config.model.lora_rank < 0:
        raise VidclsError(f"Expected model.lora_rank >= 0 (0: off); received {config.model.lora_rank}")
    if config.train.checkpoint_every < 0:
        raise VidclsError(f"Expected train.checkpoint_every >= 0 (0: off); received {config.train.checkpoint_every}")
    from vidcls.models import model_class

    model_class(config.model.name)  # unknown names fail before loading data
    cache = FeatureCache(config.data.cache_dir)
    space = build_label_space(cache.entries, config.data.targets, str(cache.root))
    splits = _load_or_make_splits(run, cache, config)
    _check_options(config, space)
    _check_model(config, space, cache)
    # Written only now: a run refused above leaves nothing that would block a corrected one.
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config_path)
    atomic_write_json(run.splits_path, splits)
    atomic_write_json(run.labels_path, label_space_to_json(space))
    atomic_write_json(run.features_path, {"cache_dir": str(cache.root), "fingerprint": cache.info})
    in_memory = _fits_in_memory(config, cache, len(splits["train"]) + len(splits["val"]))
    train_set = load_labelled_features(cache, splits["train"], space, in_memory)
    val_set = load_labelled_features(cache, splits["val"], space, in_memory)
    keras.utils.set_random_seed(config.train.seed)
    _write_env(run, runtime)
    return _fit(config, run, runtime, train_set, val_set, space, cache, progress)


def _fit(config, run, runtime, train_set, val_set, space: LabelSpace, cache: FeatureCache, progress) -> TrainResult:
    import keras

    from vidcls.models import adapt_normalization, build_model
    from vidcls.models import describe_model
    from vidcls.training.callbacks import (
        AtomicBackupAndRestore, BestCheckpoint, EpochSync, LearningRateLogger, PeriodicCheckpoint,
        TensorBoardExtras, ThroughputLogger,
    )
    from vidcls.training.lora import apply_lora, merge_lora

    train_config: TrainConfig = config.train
    feature_shape = cache.feature_shape
    multi_task = len(space) > 1
    class_counts = [len(names) for names in space.values()]
    target_names = list(space) if multi_task else None
    train_source = BatchSource(
        rows=train_set.features, labels=train_set.labels, num_classes=class_counts,
        batch_size=train_config.batch_size, training=True, seed=train_config.seed,
        sample_weights=_sample_weights(train_config, train_set.labels, space),
        sampling=config.data.sampling, drop_remainder=runtime.replicas > 1, augment=config.augment,
        masks=train_set.masks, target_names=target_names,
    )
    steps_per_epoch = train_source.steps_per_epoch
    if steps_per_epoch < 1:
        raise VidclsError(f"Expected at least one full batch: {len(train_set.labels)} training clips, global batch size {train_config.batch_size} across {runtime.replicas} replicas")
    train_data = make_dataset(train_source)
    has_val = len(val_set.labels) > 0
    val_data = make_dataset(BatchSource(val_set.features, val_set.labels, class_counts, train_config.batch_size,
                                        training=False, masks=val_set.masks, target_names=target_names)) if has_val else None

    with runtime.strategy.scope():
        num_classes = dict(zip(space, class_counts)) if multi_task else class_counts[0]
        model = build_model(config.model, num_classes=num_classes, feature_dim=feature_shape[1], num_frames=feature_shape[0],
                            unroll_up_to=0 if runtime.gpus else CPU_UNROLL_FRAMES, cache_streams=cache.info.get("streams"))
        if config.model.init_from:
            _initialise_from(model, config.model.init_from)  # its feature statistics too
        else:
            adapt_normalization(model, train_set.features)
        lora = apply_lora(model, config.model.lora_rank, config.model.lora_alpha) if config.model.lora_rank else None
        losses = [_loss(train_config, train_set.labels[:, column], count) for column, count in enumerate(class_counts)]
        model.compile(
            optimizer=_optimizer(train_config, steps_per_epoch),
            loss=dict(zip(space, losses)) if multi_task else losses[0],
            metrics=({target: [_accuracy()] for target in space} if multi_task else [_accuracy()]),
            jit_compile=runtime.jit_compile,
        )
    summary = describe_model(merge_lora(model) if lora else model, feature_shape[0])
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
                feature_shape[0])
    monitor = "val_loss" if has_val else "loss"
    _trim_logs(run, AtomicBackupAndRestore.resumed_epoch(run.backup_dir))
    best_so_far = _best_so_far(run, monitor)
    callbacks = [
        EpochSync(train_source),
        LearningRateLogger(),
        # Before the timings are added: history.csv holds only what a seed determines, so
        # --deterministic runs give identical files; seconds and samples/s go to timing.csv.
        keras.callbacks.CSVLogger(str(run.history_path), append=True),
        ThroughputLogger(min(steps_per_epoch * train_config.batch_size, train_set.num_clips), run.timing_path),
        # Before the backup: an epoch counts as done only once its best.keras is saved.
        # After a resume, only a model better than the best so far replaces best.keras.
        BestCheckpoint(run.best_model_path, monitor, merge_lora if lora else None, best_so_far),
        AtomicBackupAndRestore(run.backup_dir),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=train_config.early_stopping_patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(str(run.tensorboard_dir), write_graph=False),
        TensorBoardExtras(run.tensorboard_dir, config, val_data, val_set.labels if has_val else None, space),
    ]
    if train_config.checkpoint_every:
        callbacks.append(PeriodicCheckpoint(run.checkpoints_dir, train_config.checkpoint_every,
                                            merge_lora if lora else None))
    started = time.perf_counter()
    model.fit(train_data, validation_data=val_data, epochs=train_config.epochs,
              callbacks=callbacks, shuffle=False, verbose=_verbosity(progress))
    _check_finished(run, monitor)
    result = _result(run, time.perf_counter() - started, summary, config.model.init_from or None)
    atomic_write_json(run.result_path, result.to_dict())
    return result


def _trim_logs(run: RunDir, resume_epoch: int) -> None:
    """Keeps only the history.csv and timing.csv rows of epochs before `resume_epoch`: a
    kill after an epoch's row was written but before its backup would otherwise leave
    that epoch twice once it is trained again."""
    for path in (run.history_path, run.timing_path):
        if not path.is_file():
            continue
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames, list(reader)
        kept = [row for row in rows if csv_number(row.get("epoch")) is not None and int(row["epoch"]) < resume_epoch]
        if len(kept) == len(rows):
            continue
        logger.info("%s: dropping %d row(s) of epochs from %d on, which are trained again", path.name,
                    len(rows) - len(kept), resume_epoch)
        with atomic_writer(path, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)


def _best_so_far(run: RunDir, monitor: str) -> float | None:
    """The best `monitor` value in history.csv (a resumed run), or None (a new one, or
    one whose best.keras is missing or does not load: any epoch then replaces it)."""
    if not run.history_path.is_file():
        return None
    problem = _unloadable(run.best_model_path)
    if problem:
        logger.warning("%s: %s; the next epoch's model replaces it", run.best_model_path, problem)
        return None
    with run.history_path.open() as handle:
        values = [csv_number(row.get(monitor)) for row in csv.DictReader(handle)]
    values = [value for value in values if value is not None]
    return min(values) if values else None


def _unloadable(path: Path) -> str | None:
    """Why the model file at `path` cannot be used, or None when it loads."""
    from vidcls.models import load_model

    if not path.is_file():
        return "it is missing"
    try:
        load_model(path)
    except VidclsError as error:
        return str(error).split("; it is damaged")[0].replace(f"Model file {path} ", "it ")
    return None


def _check_finished(run: RunDir, monitor: str) -> None:
    """Refuses to call a run done that is not: a loss that became NaN or infinite (the run
    stopped there), or a best.keras that is missing or does not load."""
    with run.history_path.open() as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in dict.fromkeys(("loss", monitor)):
            value = csv_number(row.get(key))
            if row.get(key) not in (None, "NA") and (value is None or not np.isfinite(value)):
                raise VidclsError(
                    f"Training diverged: {key} is {row[key]} at epoch {row.get('epoch')} ({run.history_path}); the "
                    "run is not finished. Check the features for NaN/inf or lower --learning-rate, then train "
                    "into a new --run-dir")
    problem = _unloadable(run.best_model_path)
    if problem:
        raise VidclsError(f"{run.best_model_path}: {problem}; the run is not finished (no result.json written)")


def _optimizer(config: TrainConfig, steps_per_epoch: int):
    """AdamW with linear warmup to `learning_rate`, then cosine decay to zero."""
    import keras

    total_steps = max(steps_per_epoch * config.epochs, 1)
    warmup_steps = min(config.warmup_epochs * steps_per_epoch, total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    return keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay,
        global_clipnorm=config.gradient_clip if config.gradient_clip > 0 else None,
        # Keras counts the schedule in batches either way; the update is the mean over the batches.
        gradient_accumulation_steps=config.grad_accum_steps if config.grad_accum_steps > 1 else None,
    )


def _accuracy():
    import keras

    return keras.metrics.CategoricalAccuracy(name="accuracy")


def _sample_weights(config: TrainConfig, labels: np.ndarray, space: LabelSpace) -> np.ndarray | None:
    """Class weights, as the per-sample weights the dataset carries (see make_dataset):
    `[N]`, or `[N, targets]` (each target's own class weights) with several targets."""
    if not config.use_class_weights:
        return None
    columns = []
    for column, (target, class_names) in enumerate(space.items()):
        if config.class_weights:
            weights = explicit_class_weights(config.class_weights, class_names)
        else:
            weights = balanced_class_weights(labels[:, column], len(class_names))
        logger.info("class weights of %s: %s", target, dict(zip(class_names, np.round(weights, 3).tolist())))
        columns.append(weights[labels[:, column]])
    return columns[0] if len(columns) == 1 else np.stack(columns, axis=1)


def _loss(config: TrainConfig, labels: np.ndarray, num_classes: int):
    import keras

    if config.use_focal_loss:
        alpha = focal_alpha_from_frequencies(labels, num_classes) if config.focal_alpha_balanced else config.focal_alpha
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=alpha, gamma=config.focal_gamma, label_smoothing=config.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)


def _check_options(config: ExperimentConfig, space: LabelSpace) -> None:
    """Config values that can only be checked against the data, checked before any file is written."""
    check_sampling(config.data.sampling)
    if config.train.class_weights:
        if not config.train.use_class_weights:
            raise VidclsError("train.class_weights is set but train.use_class_weights is false; set both to use them")
        if len(space) > 1:
            raise VidclsError(f"train.class_weights names the classes of one target, but data.targets is {list(space)}; "
                              "use balanced class weights (train.use_class_weights alone) with several targets")
        explicit_class_weights(config.train.class_weights, next(iter(space.values())))


def _check_model(config: ExperimentConfig, space: LabelSpace, cache: FeatureCache) -> None:
    """Builds the model once, so a bad hyperparameter or an incompatible --init-from run
    fails before the run directory is written."""
    from vidcls.models import build_model
    from vidcls.models import check_source_run

    counts = [len(names) for names in space.values()]
    num_classes = dict(zip(space, counts)) if len(space) > 1 else counts[0]
    build_model(config.model, num_classes=num_classes, feature_dim=cache.feature_shape[1],
                num_frames=cache.feature_shape[0], cache_streams=cache.info.get("streams"))
    if config.model.init_from:
        check_source_run(config.model.init_from, config.model.name, space, cache.info)


def _initialise_from(model, source_dir: str) -> None:
    from vidcls.models import load_model, transfer_weights
    from vidcls.run_dir import RunDir

    source = load_model(RunDir(source_dir).best_model_path)
    resampled = transfer_weights(source, model)
    logger.info("initialised from %s (%d frames)%s", source_dir, source.num_frames or 0,
                f"; positional table resampled in {', '.join(resampled)}" if resampled else "")


def _fits_in_memory(config: ExperimentConfig, cache: FeatureCache, num_clips: int) -> bool:
    """Whether the train and val features fit `data.memory_budget_gb` (0: half of what
    this process may still use, the container's memory limit included)."""
    from vidcls.memory import available_memory

    needed = num_clips * int(np.prod(cache.feature_shape)) * 2  # float16
    if config.data.memory_budget_gb:
        budget, source = config.data.memory_budget_gb * 1e9, "data.memory_budget_gb"
    else:
        available = available_memory()
        budget, source = available.bytes / 2, f"half of {available.describe()}"
    logger.info("memory budget for features: %.2f GB (%s); they need %.2f GB", budget / 1e9, source, needed / 1e9)
    if needed <= budget:
        return True
    logger.info("features need %.2f GB, over the %.2f GB memory budget: streaming them from %s/packed",
                needed / 1e9, budget / 1e9, cache.root)
    return False


def _load_or_make_splits(run: RunDir, cache: FeatureCache, config: ExperimentConfig) -> dict:
    if run.splits_path.is_file():
        return run.splits()  # resuming: the same clips as before
    clip_ids = [entry["clip_id"] for entry in cache.entries]
    if config.data.split_file:
        splits = read_split_file(config.data.split_file, clip_ids, [entry["video"] for entry in cache.entries])
        left_out = len(clip_ids) - sum(len(ids) for ids in splits.values())
        if left_out:
            logger.info("%d cached clip(s) are in no split of %s and are not used", left_out, config.data.split_file)
    else:
        groups = None
        if config.data.group_by:
            missing = [entry["clip_id"] for entry in cache.entries if config.data.group_by not in entry]
            if missing:
                raise VidclsError(
                    f"data.group_by is '{config.data.group_by}' but {len(missing)} clip(s) of {cache.root} have no such "
                    f"manifest key (first: {missing[0]}); keys of that clip: {sorted(cache.entries[0])}")
            groups = [str(entry[config.data.group_by]) for entry in cache.entries]
        # Stratified by the first target (the label; the verb of verb + noun).
        splits = stratified_split(clip_ids, [str(entry[config.data.targets[0]]) for entry in cache.entries],
                                  config.data.val_fraction, config.data.test_fraction, config.train.seed, groups)
    return splits


def _check_existing_run(run: RunDir, config: ExperimentConfig) -> TrainResult | None:
    if not run.config_path.is_file():
        return None
    stored = run.config().to_dict()
    wanted = config.to_dict()
    differences = [
        f"{section}.{key}: run has {stored[section][key]!r}, asked {value!r}"
        for section, values in wanted.items() for key, value in values.items()
        if stored[section][key] != value
    ]
    if differences:
        raise VidclsError(
            f"{run.root} already holds a run with another configuration ({'; '.join(differences)}). "
            "Use a new --run-dir"
        )
    if run.result_path.is_file():
        problem = _unloadable(run.best_model_path)
        if problem:
            raise VidclsError(f"{run.root} claims to be finished ({run.result_path.name}) but {run.best_model_path} "
                              f"{problem.removeprefix('it ')}; train again into a new --run-dir")
        logger.info("%s is already trained with this configuration; nothing to do", run.root)
        return TrainResult(**{**json.loads(run.result_path.read_text()), "run_dir": run.root, "already_done": True})
    return None


def _result(run: RunDir, seconds: float, summary: dict, initialised_from: str | None) -> TrainResult:
    # history.csv, not fit()'s return value: after a resume it holds every epoch.
    with run.history_path.open() as handle:
        rows = list(csv.DictReader(handle))
    validated = [row for row in rows if csv_number(row.get("val_loss")) is not None]  # CSVLogger writes NA without val
    best = min(validated, key=lambda row: float(row["val_loss"])) if validated else None
    return TrainResult(
        run_dir=run.root,
        epochs_run=len(rows),
        best_val_loss=float(best["val_loss"]) if best else None,
        best_val_accuracy=_val_accuracy(best) if best else None,
        seconds=seconds,
        parameters=summary["parameters"],
        trainable_parameters=summary["trainable_parameters"],
        flops_per_clip=summary["flops_per_clip"],
        initialised_from=initialised_from,
    )


def _val_accuracy(row: dict) -> float | None:
    """`val_accuracy`; with several targets, the mean of `val_<target>_accuracy`."""
    if "val_accuracy" in row:
        return csv_number(row["val_accuracy"])
    values = [csv_number(value) for key, value in row.items() if key.startswith("val_") and key.endswith("_accuracy")]
    values = [value for value in values if value is not None]
    return float(np.mean(values)) if values else None


def _verbosity(progress: bool) -> int:
    """Keras's live progress bar on a terminal, one line per epoch in logs (CI, files)."""
    if not progress:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _write_env(run: RunDir, runtime) -> None:
    import keras
    import tensorflow as tf

    atomic_write_json(run.env_path, {
        "vidcls": __version__,
        "git_commit": _git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "devices": [device.name for device in tf.config.list_logical_devices()],
        **runtime.describe(),
    })


def _git_commit() -> str | None:
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                   timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None
