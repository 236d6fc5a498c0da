"""The temporal half of a factorised video transformer, over frozen per-frame features."""

from __future__ import annotations

import keras
from keras import ops

from vidcls.errors import VidclsError
from vidcls.models.blocks import (
    TemporalClassifier,
    check_choice,
    check_dropout,
    check_num_classes,
    check_positive,
    classifier_head,
    frame_streams,
    fuse,
    masked_mean,
    model_inputs,
)

TRANSFORMER_POOLING = ("cls", "mean")
POSITIONS_LAYER = "positional_embedding"


def sinusoids(shape, dtype=None):
    """`[T, C]` sine / cosine position codes at wavelengths from 2 pi to 10000 x 2 pi."""
    import numpy as np

    length, channels = shape
    rates = 1.0 / 10000 ** (np.arange(0, channels, 2) / channels)
    angles = np.arange(length)[:, None] * rates[None]
    table = np.zeros((length, channels))
    table[:, 0::2] = np.sin(angles)
    table[:, 1::2] = np.cos(angles[:, : channels // 2])
    return ops.convert_to_tensor(table, dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package="vidcls")
class PositionalEmbedding(keras.layers.Layer):
    """Adds a learned embedding per frame position to `[B, T, C]`, for any T <= `max_frames`.

    A model trained on T1 frames can start a T2-frame one: `interpolate_positions`
    resamples the table (see `vidcls.models.transfer`).
    """

    def __init__(self, max_frames: int, **kwargs):
        super().__init__(**kwargs)
        self.max_frames = max_frames

    def build(self, input_shape):
        # Learned, but started from the sinusoids of "Attention is all you need": with a
        # few hundred clips, positions that start near zero never outweigh frame content
        # (measured: 0.44 test accuracy on the time-ordered synthetic set, as mean-pool).
        self.positions = self.add_weight(name="positions", shape=(self.max_frames, input_shape[-1]),
                                         initializer=sinusoids)

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        return inputs + ops.cast(self.positions[None, :length], inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "max_frames": self.max_frames}


@keras.saving.register_keras_serializable(package="vidcls")
class ClassToken(keras.layers.Layer):
    """Prepends a learned token to `[B, T, C]` (-> `[B, T + 1, C]`) whose final state is pooled."""

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]),
                                     initializer=keras.initializers.TruncatedNormal(stddev=0.02))

    def call(self, inputs):
        token = ops.tile(ops.cast(self.token, inputs.dtype), [ops.shape(inputs)[0], 1, 1])
        return ops.concatenate([token, inputs], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])


@keras.saving.register_keras_serializable(package="vidcls")
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch for a whole clip with probability `rate` while training,
    scaling kept branches by 1 / (1 - rate); the identity at inference."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        keep = 1.0 - self.rate
        shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        draw = keras.random.uniform(shape, seed=self.seed_generator, dtype=inputs.dtype)
        return inputs * ops.floor(keep + draw) / keep

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


def encoder_block(x, attention_mask, index: int, hidden_units: int, num_heads: int, mlp_units: int,
                  dropout: float, drop_rate: float, suffix: str = ""):
    """Pre-norm block: x + drop(MHA(LN(x))), then x + drop(MLP(LN(x)))."""
    name = f"block_{index + 1}{suffix}"
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_attention_norm")(x)
    h = keras.layers.MultiHeadAttention(num_heads, key_dim=hidden_units // num_heads, dropout=dropout,
                                        name=f"{name}_attention")(h, h, attention_mask=attention_mask)
    x = x + StochasticDepth(drop_rate, name=f"{name}_attention_drop")(h)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_mlp_norm")(x)
    h = keras.layers.Dense(mlp_units, activation="gelu", name=f"{name}_mlp_1")(h)
    h = keras.layers.Dropout(dropout, name=f"{name}_mlp_dropout")(h)
    h = keras.layers.Dense(hidden_units, name=f"{name}_mlp_2")(h)
    return x + StochasticDepth(drop_rate, name=f"{name}_mlp_drop")(h)


@keras.saving.register_keras_serializable(package="vidcls")
class TransformerClassifier(TemporalClassifier):
    """Frame features -> 2-layer MLP adapter -> + learned positions -> [CLS] -> N pre-norm
    encoder blocks (multi-head attention, MLP, stochastic depth) -> CLS or mean -> softmax.

    The temporal encoder of a factorised video transformer, on frozen spatial features.

    Args:
        num_classes: K, or `{target: K}` for one softmax head per target (verb, noun).
        feature_dim: D, the backbone's feature size.
        num_frames: T: the length of the positional table (clips may be shorter). Required.
        adapter_units: width of the adapter's first layer.
        hidden_units: model width (the adapter's output, attention and residual stream).
        num_layers: encoder blocks.
        num_heads: attention heads; `hidden_units` must divide by it.
        mlp_units: width of each block's MLP.
        stochastic_depth: drop rate of the last block's residual branches (linearly
            smaller for earlier blocks; 0 turns it off).
        pooling: "cls" (the class token's final state) or "mean" (masked mean of frames).
        dropout: rate in the adapter, attention, MLPs and before the classifier.
        fixed_frames: inputs of exactly `num_frames` frames (export); otherwise up to it.
        cache_streams, streams, fusion, input_transform: which of the cached streams the
            model reads and how (see `frame_streams`); late fusion gives each stream its
            own encoder.

    Call arguments:
        inputs: `[features, mask]`: float `[B, T, D]` and float `[B, T]` (1 = real frame);
            masked frames are never attended to and are left out of the mean.

    Example:
        >>> model = TransformerClassifier(num_classes=4, feature_dim=2048, num_frames=16)
        >>> model([keras.ops.zeros((2, 16, 2048)), keras.ops.ones((2, 16))]).shape
        (2, 4)
    """

    def __init__(self, num_classes: int | dict, feature_dim: int, num_frames: int | None = None,
                 adapter_units: int = 256, hidden_units: int = 128, num_layers: int = 2, num_heads: int = 4,
                 mlp_units: int = 256, stochastic_depth: float = 0.1, pooling: str = "", dropout: float = 0.3,
                 fixed_frames: bool = False, cache_streams=None, streams=None, fusion: str = "early",
                 input_transform: str = "none", **kwargs):
        pooling = pooling or "cls"
        if num_frames is None:
            raise VidclsError("The transformer needs num_frames (the length of its positional table); received None")
        check_num_classes(num_classes)
        check_positive(feature_dim=feature_dim, num_frames=num_frames, adapter_units=adapter_units,
                       hidden_units=hidden_units, num_layers=num_layers, num_heads=num_heads, mlp_units=mlp_units)
        if hidden_units % num_heads:
            raise VidclsError(f"Expected model.hidden_units ({hidden_units}) to be a multiple of model.num_heads ({num_heads})")
        check_choice("pooling", pooling, TRANSFORMER_POOLING)
        check_dropout(dropout)
        if not 0 <= stochastic_depth < 1:
            raise VidclsError(f"Expected model.stochastic_depth in [0, 1); received {stochastic_depth}")
        # Any length up to num_frames while training; export fixes the input to num_frames.
        features, mask, valid = model_inputs(num_frames if fixed_frames else None, feature_dim)
        pooled = []
        for suffix, x in frame_streams(features, valid, cache_streams, streams, input_transform, fusion):
            x = keras.layers.Dense(adapter_units, activation="gelu", name=f"frame_adapter{suffix}")(x)
            x = keras.layers.Dropout(dropout, name=f"adapter_dropout{suffix}")(x)
            x = keras.layers.Dense(hidden_units, name=f"frame_adapter_2{suffix}")(x)
            x = PositionalEmbedding(num_frames, name=f"{POSITIONS_LAYER}{suffix}")(x)
            attended = valid
            if pooling == "cls":
                x = ClassToken(name=f"class_token{suffix}")(x)
                attended = ops.concatenate([ops.ones_like(valid[:, :1]), valid], axis=1)
            # [B, T, T]: every query attends to the real frames (and the class token) only.
            attention_mask = ops.logical_and(ops.expand_dims(attended, 1), ops.expand_dims(ops.ones_like(attended), 2))
            for index in range(num_layers):
                x = encoder_block(x, attention_mask, index, hidden_units, num_heads, mlp_units, dropout,
                                  stochastic_depth * (index + 1) / num_layers, suffix)
            x = keras.layers.LayerNormalization(epsilon=1e-6, name=f"final_norm{suffix}")(x)
            pooled.append(x[:, 0] if pooling == "cls" else masked_mean(x, attended, suffix))
        outputs = classifier_head(fuse(pooled), num_classes, dropout)
        super().__init__(inputs=[features, mask], outputs=outputs, **kwargs)
        self._keep_config(num_classes=num_classes, feature_dim=feature_dim, num_frames=num_frames,
                          adapter_units=adapter_units, hidden_units=hidden_units, num_layers=num_layers,
                          num_heads=num_heads, mlp_units=mlp_units, stochastic_depth=stochastic_depth,
                          pooling=pooling, dropout=dropout, fixed_frames=fixed_frames, cache_streams=cache_streams,
                          streams=streams, fusion=fusion, input_transform=input_transform)
