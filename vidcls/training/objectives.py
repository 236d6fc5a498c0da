"""What training minimises and how: losses (cross-entropy or focal), class weights,
the optimizer and its schedule, the metrics."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from vidcls.config import TrainConfig
from vidcls.data import LabelSpace, balanced_class_weights, explicit_class_weights, focal_alpha_from_frequencies
from vidcls.errors import VidclsError

logger = logging.getLogger("vidcls")


def compile_model(model, config: TrainConfig, labels: np.ndarray, space: LabelSpace, steps_per_epoch: int,
                  jit_compile: bool) -> None:
    """Compiles `model` with one loss and accuracy per target (`labels`: the training
    clips' class indices `[N, targets]`, for balanced focal alphas)."""
    losses = [loss(config, labels[:, column], len(names)) for column, names in enumerate(space.values())]
    multi_task = len(space) > 1
    model.compile(
        optimizer=optimizer(config, steps_per_epoch),
        loss=dict(zip(space, losses)) if multi_task else losses[0],
        metrics=({target: [accuracy()] for target in space} if multi_task else [accuracy()]),
        jit_compile=jit_compile,
    )


def optimizer(config: TrainConfig, steps_per_epoch: int):
    """AdamW (`FusedAdamW`: Keras's arithmetic in fewer ops) with linear warmup to
    `learning_rate`, then cosine decay to zero."""
    import keras

    from vidcls.models import FusedAdamW

    total_steps = max(steps_per_epoch * config.epochs, 1)
    warmup_steps = min(config.warmup_epochs * steps_per_epoch, total_steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
        decay_steps=max(total_steps - warmup_steps, 1),
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    return FusedAdamW(
        learning_rate=schedule, weight_decay=config.weight_decay,
        global_clipnorm=config.gradient_clip if config.gradient_clip > 0 else None,
        # Keras counts the schedule in batches either way; the update is the mean over the batches.
        gradient_accumulation_steps=config.grad_accum_steps if config.grad_accum_steps > 1 else None,
    )


def accuracy():
    import keras

    return keras.metrics.CategoricalAccuracy(name="accuracy")


def sample_weights(config: TrainConfig, labels: np.ndarray, space: LabelSpace,
                   groups: list[str] | None = None) -> np.ndarray | None:
    """Class weights, times group weights with `balance_groups`, as the per-sample weights
    the dataset carries (see make_dataset): `[N]`, or `[N, targets]` (each target's own
    class weights) with several targets. `groups` is each training clip's source."""
    by_class = _class_weights(config, labels, space)
    if not config.balance_groups:
        return by_class
    if groups is None or len(groups) != len(labels):
        raise VidclsError(f"train.balance_groups needs the group of each of the {len(labels)} training clips; "
                          f"received {None if groups is None else len(groups)}")
    by_group, sizes = balanced_group_weights(groups), Counter(groups).values()
    logger.info("group weights: %d groups of %d-%d training clips, weights %.3g-%.3g", len(sizes), min(sizes),
                max(sizes), by_group.min(), by_group.max())
    if by_class is None:
        return by_group
    return by_class * (by_group if by_class.ndim == 1 else by_group[:, None])


def balanced_group_weights(groups: list[str]) -> np.ndarray:
    """`1 / (clips of the clip's group)`, scaled to a mean of 1: every group weighs the same
    in the loss, whatever its number of clips.

    Example:
        >>> balanced_group_weights(["a", "a", "a", "b"]).tolist()
        [0.5, 0.5, 0.5, 1.5]
    """
    counts = Counter(groups)
    weights = np.array([1.0 / counts[group] for group in groups], np.float32)
    return weights / weights.mean()


def _class_weights(config: TrainConfig, labels: np.ndarray, space: LabelSpace) -> np.ndarray | None:
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


def loss(config: TrainConfig, labels: np.ndarray, num_classes: int):
    import keras

    if config.use_focal_loss:
        alpha = focal_alpha_from_frequencies(labels, num_classes) if config.focal_alpha_balanced else config.focal_alpha
        return keras.losses.CategoricalFocalCrossentropy(
            alpha=alpha, gamma=config.focal_gamma, label_smoothing=config.label_smoothing)
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
