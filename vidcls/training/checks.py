"""Checks that refuse a run before it writes anything, and that refuse to call a run
finished when it is not."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vidcls.config import ExperimentConfig
from vidcls.data import LabelSpace, check_sampling, explicit_class_weights
from vidcls.errors import VidclsError
from vidcls.fileio import csv_number
from vidcls.run_dir import RunDir
from vidcls.training.result import TrainResult

logger = logging.getLogger("vidcls")


def check_settings(config: ExperimentConfig) -> None:
    """Values that are wrong whatever the data."""
    if config.train.epochs < 1 or config.train.batch_size < 1:
        raise VidclsError(f"Expected train.epochs >= 1 and train.batch_size >= 1; received {config.train.epochs} and "
                          f"{config.train.batch_size}")
    if config.model.lora_rank and not config.model.init_from:
        raise VidclsError("model.lora_rank adapts a trained model: set model.init_from (vidcls finetune --from RUN_DIR)")
    if config.model.lora_rank < 0:
        raise VidclsError(f"Expected model.lora_rank >= 0 (0: off); received {config.model.lora_rank}")
    if config.train.checkpoint_every < 0:
        raise VidclsError(f"Expected train.checkpoint_every >= 0 (0: off); received {config.train.checkpoint_every}")
    from vidcls.models import model_class

    model_class(config.model.name)  # unknown names fail before loading data


def check_options(config: ExperimentConfig, space: LabelSpace) -> None:
    """Config values that can only be checked against the data, checked before any file is written."""
    check_sampling(config.data.sampling)
    if config.train.balance_groups and not config.data.group_by:
        raise VidclsError("train.balance_groups weighs each group of clips equally, but data.group_by (--group-by) is "
                          "empty; set it to the manifest key naming each clip's source (e.g. group, video)")
    if config.train.class_weights:
        if not config.train.use_class_weights:
            raise VidclsError("train.class_weights is set but train.use_class_weights is false; set both to use them")
        if len(space) > 1:
            raise VidclsError(f"train.class_weights names the classes of one target, but data.targets is {list(space)}; "
                              "use balanced class weights (train.use_class_weights alone) with several targets")
        explicit_class_weights(config.train.class_weights, next(iter(space.values())))


def check_model(config: ExperimentConfig, space: LabelSpace, cache) -> None:
    """Builds the model once, so a bad hyperparameter or an incompatible --init-from run
    fails before the run directory is written."""
    from vidcls.models import build_model, check_source_run

    counts = [len(names) for names in space.values()]
    num_classes = dict(zip(space, counts)) if len(space) > 1 else counts[0]
    build_model(config.model, num_classes=num_classes, feature_dim=cache.feature_shape[1],
                num_frames=cache.feature_shape[0], cache_streams=cache.info.get("streams"))
    if config.model.init_from:
        check_source_run(config.model.init_from, config.model.name, space, cache.info)


def check_existing_run(run: RunDir, config: ExperimentConfig) -> TrainResult | None:
    """None for a new or interrupted run with this config; the stored result of a finished
    one. Another config in the same directory is an error, not a silent mix of two runs."""
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
        problem = unloadable(run.best_model_path)
        if problem:
            raise VidclsError(f"{run.root} claims to be finished ({run.result_path.name}) but {run.best_model_path} "
                              f"{problem.removeprefix('it ')}; train again into a new --run-dir")
        logger.info("%s is already trained with this configuration; nothing to do", run.root)
        return TrainResult(**{**run.result(), "run_dir": run.root, "already_done": True})
    return None


def unloadable(path: Path) -> str | None:
    """Why the model file at `path` cannot be used, or None when it loads."""
    from vidcls.models import load_model

    if not path.is_file():
        return "it is missing"
    try:
        load_model(path)
    except VidclsError as error:
        return str(error).split("; it is damaged")[0].replace(f"Model file {path} ", "it ")
    return None


def check_finished(run: RunDir, monitor: str) -> None:
    """Refuses to call a run done that is not: a loss that became NaN or infinite (the run
    stopped there), or a best.keras that is missing or does not load."""
    for row in run.history():
        for key in dict.fromkeys(("loss", monitor)):
            value = csv_number(row.get(key))
            if row.get(key) not in (None, "NA") and (value is None or not np.isfinite(value)):
                raise VidclsError(
                    f"Training diverged: {key} is {row[key]} at epoch {row.get('epoch')} ({run.history_path}); the "
                    "run is not finished. Check the features for NaN/inf or lower --learning-rate, then train "
                    "into a new --run-dir")
    problem = unloadable(run.best_model_path)
    if problem:
        raise VidclsError(f"{run.best_model_path}: {problem}; the run is not finished (no result.json written)")
