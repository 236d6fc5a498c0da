"""Pieces every temporal classifier shares: the frame adapter and the classifier head."""

from __future__ import annotations

import keras

NORMALIZATION_LAYER = "feature_normalization"
# Feature dimensions whose training variance is below this share of the median are constant.
VARIANCE_FLOOR = 1e-6
ADAPT_CHUNK_BYTES = 64 * 2**20
FUSIONS = ("early", "late")
INPUT_TRANSFORMS = ("none", "differences", "features_and_differences", "centred")


def normalize_features(features):
    """Standardises frozen backbone features `[B, T, D]` per dimension (statistics set by
    `adapt_normalization` from the training set).

    Backbone features are far from zero-mean and unit-variance (a random ResNet50's sit
    around 2.4 with a spread of 0.15 across clips); without this nothing trains.
    """
    # float32 even under mixed precision: statistics of large features lose digits in fp16.
    return keras.layers.Normalization(axis=-1, dtype="float32", name=NORMALIZATION_LAYER)(features)


def frame_adapter(x, units: int, dropout: float, suffix: str = ""):
    """Projects each (standardised) frame to `units` (ReLU), then dropout."""
    x = keras.layers.Dense(units, activation="relu", name=f"frame_adapter{suffix}")(x)
    return keras.layers.Dropout(dropout, name=f"adapter_dropout{suffix}")(x)


@keras.saving.register_keras_serializable(package="vidcls")
class FrameTransform(keras.layers.Layer):
    """What the model sees of each frame: its features, how they changed, or both.

    Args:
        mode: "none"; "differences" (x_t - x_{t-1}, zero for the first frame: motion
            alone, the scenery cancels); "features_and_differences" (both, side by side);
            "centred" (x_t minus the clip's mean over its real frames: what changes
            within the clip, not what the scene looks like).
        **kwargs: `name`, `dtype`.

    Call arguments:
        inputs: `[B, T, C]`.
        valid: boolean `[B, T]` (real frames). A repeated frame (a clip shorter than T)
            equals the one before it, so its difference is 0 and the next real frame's
            difference is taken to the last real one.

    Example:
        >>> FrameTransform("differences")(keras.ops.ones((2, 4, 3)), keras.ops.ones((2, 4), "bool")).shape
        (2, 4, 3)
    """

    def __init__(self, mode: str = "none", **kwargs):
        super().__init__(**kwargs)
        check_choice("input_transform", mode, INPUT_TRANSFORMS)
        self.mode = mode

    def call(self, inputs, valid):
        if self.mode == "none":
            return inputs
        if self.mode == "centred":
            weights = keras.ops.expand_dims(keras.ops.cast(valid, inputs.dtype), -1)
            mean = keras.ops.sum(inputs * weights, axis=1, keepdims=True) / keras.ops.maximum(
                keras.ops.sum(weights, axis=1, keepdims=True), 1.0)
            return inputs - mean
        differences = keras.ops.concatenate(
            [keras.ops.zeros_like(inputs[:, :1]), inputs[:, 1:] - inputs[:, :-1]], axis=1)
        if self.mode == "differences":
            return differences
        return keras.ops.concatenate([inputs, differences], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] * 2 if self.mode == "features_and_differences" and input_shape[-1] else input_shape[-1]
        return (*input_shape[:-1], channels)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def frame_streams(features, valid, cache_streams, streams, input_transform: str, fusion: str) -> list[tuple[str, object]]:
    """The per-frame inputs a classifier encodes: `[(suffix, tensor [B, T, C])]`.

    `features` `[B, T, D]` hold the cache's streams side by side (`cache_streams`, equal
    widths; None: one stream). They are standardised, the streams in `streams` (empty:
    all) are kept, and `input_transform` is applied to each. Early fusion gives one
    input (the kept streams side by side, suffix ""), late fusion one per stream
    (suffix "_<stream>"), each encoded on its own and joined after pooling.
    """
    check_choice("fusion", fusion, FUSIONS)
    check_choice("input_transform", input_transform, INPUT_TRANSFORMS)
    x = normalize_features(features)
    layout = list(cache_streams or ["features"])
    chosen = list(streams or layout)
    unknown = [name for name in chosen if name not in layout]
    if unknown or len(set(chosen)) != len(chosen):
        from vidcls.errors import VidclsError

        raise VidclsError(f"Expected model.streams to name distinct streams of the cache, {layout}; received {chosen}")
    width = features.shape[-1] // len(layout)
    parts = [(name, x if len(layout) == 1 else x[..., layout.index(name) * width:(layout.index(name) + 1) * width])
             for name in chosen]
    if fusion == "early" or len(parts) == 1:
        joined = parts[0][1] if len(parts) == 1 else keras.ops.concatenate([part for _, part in parts], axis=-1)
        parts = [("", joined)]
    else:
        parts = [(f"_{name}", part) for name, part in parts]
    return [(suffix, FrameTransform(input_transform, name=f"frame_transform{suffix}")(part, valid)
             if input_transform != "none" else part) for suffix, part in parts]


def fuse(pooled: list):
    """The clip vectors of each input, side by side (late fusion), or the one vector."""
    return pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="fusion")(pooled)


def classifier_head(x, num_classes, dropout: float):
    """Dropout then softmax, kept in float32 so mixed precision does not degrade it.

    `num_classes` is K (one output, `probabilities`) or `{target: K}`: one softmax head
    per target (e.g. verb and noun), returned as a dict the model outputs by name.
    """
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if isinstance(num_classes, dict):
        return {target: keras.layers.Dense(count, activation="softmax", dtype="float32", name=f"{target}_probabilities")(x)
                for target, count in num_classes.items()}
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def check_num_classes(num_classes) -> None:
    """K >= 2, or a non-empty `{target: K >= 2}` with identifier-like target names."""
    from vidcls.errors import VidclsError

    counts = num_classes if isinstance(num_classes, dict) else {"num_classes": num_classes}
    if not counts or any(not isinstance(count, int) or count < 2 for count in counts.values()):
        raise VidclsError(f"Expected at least 2 classes per output; received {num_classes}")
    bad = [name for name in counts if not str(name).replace("_", "").isalnum()]
    if bad:
        raise VidclsError(f"Expected target names of letters, digits and '_' (they name output heads); received {bad}")


def model_inputs(num_frames: int | None, feature_dim: int):
    """The two inputs every classifier takes, and the boolean frame mask derived from them.

    `features` `[B, T, D]`; `mask` `[B, T]`, 1.0 for a real frame and 0.0 for a repeated
    or padded one (a clip shorter than T). The mask is a float so that the exported
    TFLite model has plain float inputs on phones.
    """
    features = keras.Input(shape=(num_frames, feature_dim), name="features")
    mask = keras.Input(shape=(num_frames,), name="mask")
    return features, mask, keras.ops.greater(mask, 0.5)


class TemporalClassifier(keras.Model):
    """Base of vidcls's functional classifiers: keeps the constructor's hyperparameters so
    `get_config` (and `.keras` files, and `rebuild_for_export`) can rebuild the model."""

    def _keep_config(self, **hyperparameters) -> None:
        self._hyperparameters = dict(hyperparameters)
        for key, value in hyperparameters.items():
            setattr(self, key, value)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **self._hyperparameters}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Keras 3.15 fails to build metrics under MultiWorkerMirroredStrategy
        (keras-team/keras#20585); see vidcls.keras_compat.build_from_local_replica."""
        from vidcls.keras_compat import build_from_local_replica

        build_from_local_replica(self, iterator, lambda: super(TemporalClassifier, self)._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch))


def masked_mean(x, valid, suffix: str = ""):
    """Mean over the real frames (`valid` boolean `[B, T]`) of `x` `[B, T, C]`."""
    return keras.layers.GlobalAveragePooling1D(name=f"mean_over_frames{suffix}")(x, mask=valid)


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    from vidcls.errors import VidclsError

    if value not in choices:
        raise VidclsError(f"Expected model.{key} to be one of {', '.join(choices)}; received '{value}'")


def check_positive(**values) -> None:
    from vidcls.errors import VidclsError

    for name, value in values.items():
        if value is None or value < 1:
            raise VidclsError(f"Expected model.{name} >= 1; received {value}")


def check_dropout(dropout: float) -> None:
    from vidcls.errors import VidclsError

    if not 0 <= dropout < 1:
        raise VidclsError(f"Expected model.dropout in [0, 1); received {dropout}")


def adapt_normalization(model, features, batch_size: int = 256) -> None:
    """Sets the model's feature statistics from `features` `[N, T, D]` (an array or
    `PackedRows`), streaming chunks so a large training set is never copied at once."""
    import numpy as np
    import tensorflow as tf

    num_frames, feature_dim = features.shape[1:]
    # Chunks of at most ~64 MB in float32, whatever the feature size.
    batch_size = max(1, min(batch_size, ADAPT_CHUNK_BYTES // (num_frames * feature_dim * 4)))

    def chunks():
        for start in range(0, len(features), batch_size):
            yield np.asarray(features[np.arange(start, min(start + batch_size, len(features)))], np.float32)

    dataset = tf.data.Dataset.from_generator(
        chunks, output_signature=tf.TensorSpec([None, num_frames, feature_dim], tf.float32))
    layer = model.get_layer(NORMALIZATION_LAYER)
    layer.adapt(dataset)
    # A feature that never varies in training (a dead ReLU unit of the backbone) would be
    # divided by ~1e-7: any value it takes later explodes, and int8 export loses all
    # resolution (measured: 25% agreement, 97% with this floor). Scale it like a typical one.
    variance = np.asarray(layer.adapt_variance.numpy())
    typical = float(np.median(variance))
    if typical > 0:
        constant = variance < VARIANCE_FLOOR * typical
        if constant.any():
            layer.adapt_variance.assign(np.where(constant, typical, variance).astype(variance.dtype))
            layer.finalize_state()
