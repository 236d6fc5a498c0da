"""Stacked bidirectional recurrent classifiers: the ResNet50 + BiLSTM recipe, and its GRU twin."""

from __future__ import annotations

import keras

from vidcls.models.blocks import (
    TemporalClassifier,
    check_choice,
    check_dropout,
    check_num_classes,
    check_positive,
    classifier_head,
    frame_adapter,
    frame_streams,
    fuse,
    masked_mean,
    model_inputs,
)
from vidcls.models.lstm import LSTM

RECURRENT_POOLING = ("last", "mean")


def bidirectional(cell: str, units: int, x, valid, return_sequences: bool, unroll: bool, name: str):
    """A forward and a backward `cell` ("lstm" or "gru") layer over `x`, concatenated.

    Not `keras.layers.Bidirectional`: with unroll=True and a mask (Keras 3.15) it
    misaligns the backward sequence in time, so an exported model would disagree with the
    trained one. A `go_backwards` layer flipped back is exact both ways. Masked frames are
    skipped in both directions; with `return_sequences=False` each direction returns its
    state after its last real frame.
    """
    layer = {"lstm": LSTM, "gru": keras.layers.GRU}[cell]
    forward = layer(units, return_sequences=return_sequences, unroll=unroll, name=name)(x, mask=valid)
    backward = layer(units, return_sequences=return_sequences, go_backwards=True, unroll=unroll,
                     name=f"{name}_backward")(x, mask=valid)
    if return_sequences:
        backward = keras.ops.flip(backward, axis=1)
    return keras.ops.concatenate([forward, backward], axis=-1)


class _StackedRecurrentClassifier(TemporalClassifier):
    """Frame features -> Dense adapter -> `num_layers` bidirectional layers -> last or mean -> softmax."""

    cell = ""

    def __init__(self, num_classes: int | dict, feature_dim: int, num_frames: int | None = None,
                 adapter_units: int = 256, hidden_units: int = 128, num_layers: int = 2, pooling: str = "",
                 dropout: float = 0.3, unroll: bool = False, cache_streams=None, streams=None, fusion: str = "early",
                 input_transform: str = "none", **kwargs):
        pooling = pooling or "last"
        check_num_classes(num_classes)
        check_positive(feature_dim=feature_dim, adapter_units=adapter_units, hidden_units=hidden_units,
                       num_layers=num_layers)
        check_choice("pooling", pooling, RECURRENT_POOLING)
        check_dropout(dropout)
        features, mask, valid = model_inputs(num_frames, feature_dim)
        pooled = []
        for suffix, x in frame_streams(features, valid, cache_streams, streams, input_transform, fusion):
            x = frame_adapter(x, adapter_units, dropout, suffix)
            for layer in range(num_layers):
                last_layer = layer == num_layers - 1
                x = bidirectional(self.cell, hidden_units, x, valid,
                                  return_sequences=not (last_layer and pooling == "last"), unroll=unroll,
                                  name=f"{self.cell}_{layer + 1}{suffix}")
            pooled.append(masked_mean(x, valid, suffix) if pooling == "mean" else x)
        outputs = classifier_head(fuse(pooled), num_classes, dropout)
        super().__init__(inputs=[features, mask], outputs=outputs, **kwargs)
        self._keep_config(num_classes=num_classes, feature_dim=feature_dim, num_frames=num_frames,
                          adapter_units=adapter_units, hidden_units=hidden_units, num_layers=num_layers,
                          pooling=pooling, dropout=dropout, unroll=unroll, cache_streams=cache_streams,
                          streams=streams, fusion=fusion, input_transform=input_transform)


@keras.saving.register_keras_serializable(package="vidcls")
class BiLSTMClassifier(_StackedRecurrentClassifier):
    """Frame features -> Dense adapter -> stacked BiLSTM -> last state or masked mean -> softmax.

    Args:
        num_classes: K, or `{target: K}` for one softmax head per target (verb, noun).
        feature_dim: D, the backbone's feature size.
        num_frames: T, or None for any length. Export fixes it.
        adapter_units: width of the per-frame Dense adapter.
        hidden_units: LSTM units per direction.
        num_layers: stacked bidirectional layers.
        pooling: "last" (each direction's state after its last real frame) or "mean"
            (masked mean of the top layer's states).
        dropout: rate after the adapter and before the classifier.
        unroll: unroll the recurrence over T steps; export needs it.
        cache_streams, streams, fusion, input_transform: which of the cached streams the
            model reads and how (see `frame_streams`).

    Call arguments:
        inputs: `[features, mask]`: float `[B, T, D]` and float `[B, T]` (1 = real frame).

    Example:
        >>> model = BiLSTMClassifier(num_classes=2, feature_dim=2048, num_frames=16)
        >>> model([keras.ops.zeros((2, 16, 2048)), keras.ops.ones((2, 16))]).shape
        (2, 2)
    """

    cell = "lstm"


@keras.saving.register_keras_serializable(package="vidcls")
class GRUClassifier(_StackedRecurrentClassifier):
    """`BiLSTMClassifier` with GRU cells: fewer parameters, often as accurate on short clips.

    Takes the same arguments as `BiLSTMClassifier`.
    """

    cell = "gru"
