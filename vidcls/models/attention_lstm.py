"""The default temporal classifier: (Bi)LSTM states pooled by additive attention."""

from __future__ import annotations

import keras

from vidcls.models.attention_pooling import AttentionPooling
from vidcls.models.blocks import (
    TemporalClassifier,
    check_dropout,
    check_num_classes,
    check_positive,
    classifier_head,
    frame_adapter,
    frame_streams,
    fuse,
    model_inputs,
)
from vidcls.models.lstm import LSTM
from vidcls.models.recurrent import bidirectional as bidirectional_layers


@keras.saving.register_keras_serializable(package="vidcls")
class AttentionLSTMClassifier(TemporalClassifier):
    """Frame features -> Dense adapter -> (Bi)LSTM -> attention pooling -> softmax.

    Args:
        num_classes: K, or `{target: K}` for one softmax head per target (verb, noun).
        feature_dim: D, the backbone's feature size.
        num_frames: T, or None for any length. Export fixes it.
        adapter_units: width of the per-frame Dense adapter.
        hidden_units: LSTM units (per direction).
        attention_units: size of the attention projection.
        bidirectional: a backward LSTM beside the forward one (BiLSTM).
        dropout: rate after the adapter and before the classifier.
        unroll: unroll the LSTM over T steps; export needs it (TFLite builtin ops only).
        cache_streams, streams, fusion, input_transform: which of the cached streams the
            model reads and how (see `frame_streams`); by default every stream, early
            fusion, features as cached.
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: `[features, mask]`: float `[B, T, D]` and float `[B, T]` (1 = real frame).
            Masked frames are skipped by the LSTM and get no attention.

    Example:
        >>> model = AttentionLSTMClassifier(num_classes=4, feature_dim=2048, num_frames=16)
        >>> model([keras.ops.zeros((2, 16, 2048)), keras.ops.ones((2, 16))]).shape
        (2, 4)
    """

    def __init__(self, num_classes: int | dict, feature_dim: int, num_frames: int | None = None,
                 adapter_units: int = 256, hidden_units: int = 128, attention_units: int = 64,
                 bidirectional: bool = True, dropout: float = 0.3, unroll: bool = False, cache_streams=None,
                 streams=None, fusion: str = "early", input_transform: str = "none", **kwargs):
        check_num_classes(num_classes)
        check_positive(feature_dim=feature_dim, adapter_units=adapter_units,
                       hidden_units=hidden_units, attention_units=attention_units)
        check_dropout(dropout)
        features, mask, valid = model_inputs(num_frames, feature_dim)
        pooled = []
        for suffix, x in frame_streams(features, valid, cache_streams, streams, input_transform, fusion):
            x = frame_adapter(x, adapter_units, dropout, suffix)
            if bidirectional:
                states = bidirectional_layers("lstm", hidden_units, x, valid, return_sequences=True, unroll=unroll,
                                              name=f"lstm{suffix}")
            else:
                states = LSTM(hidden_units, return_sequences=True, unroll=unroll, name=f"lstm{suffix}")(x, mask=valid)
            pooled.append(AttentionPooling(attention_units, name=f"attention_pooling{suffix}")(states, mask=valid))
        outputs = classifier_head(fuse(pooled), num_classes, dropout)
        super().__init__(inputs=[features, mask], outputs=outputs, **kwargs)
        self._keep_config(num_classes=num_classes, feature_dim=feature_dim, num_frames=num_frames,
                          adapter_units=adapter_units, hidden_units=hidden_units, attention_units=attention_units,
                          bidirectional=bidirectional, dropout=dropout, unroll=unroll, cache_streams=cache_streams,
                          streams=streams, fusion=fusion, input_transform=input_transform)
