"""Additive attention pooling over time."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="vidcls")
class AttentionPooling(keras.layers.Layer):
    """Pools `[B, T, C]` to `[B, C]` with learned additive (Bahdanau) attention weights.

    score_t = v . tanh(W h_t + b); weights = softmax over the frames; the output is the
    weighted sum of h_t. Padded frames (mask False) get zero weight.

    Args:
        units: size of the hidden attention projection.
        **kwargs: standard layer arguments.

    Call arguments:
        inputs: `[B, T, C]` frame states.
        mask: optional boolean `[B, T]`, True for real frames.

    Example:
        >>> pooled = AttentionPooling(64)(keras.ops.ones((2, 16, 256)))  # [2, 256]
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        self.projection = self.add_weight(name="projection", shape=(channels, self.units), initializer="glorot_uniform")
        self.projection_bias = self.add_weight(name="projection_bias", shape=(self.units,), initializer="zeros")
        self.score_vector = self.add_weight(name="score_vector", shape=(self.units, 1), initializer="glorot_uniform")

    def call(self, inputs, mask=None):
        hidden = ops.tanh(ops.matmul(inputs, self.projection) + self.projection_bias)
        scores = ops.squeeze(ops.matmul(hidden, self.score_vector), axis=-1)
        # Softmax in float32: under mixed_float16 the exponentials would lose precision.
        scores = ops.cast(scores, "float32")
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
        weights = ops.cast(ops.softmax(scores, axis=-1), inputs.dtype)
        return ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
