"""The TSN-style baseline: the average of adapted frame features, blind to frame order."""

from __future__ import annotations

import keras

from vidcls.models.blocks import (
    TemporalClassifier,
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


@keras.saving.register_keras_serializable(package="vidcls")
class MeanPoolClassifier(TemporalClassifier):
    """Frame features -> Dense adapter -> mean over frames -> softmax.

    Args:
        num_classes: K, or `{target: K}` for one softmax head per target (verb, noun).
        feature_dim: D, the backbone's feature size.
        num_frames: T, or None for any length.
        adapter_units: width of the per-frame Dense adapter.
        dropout: rate after the adapter and before the classifier.
        cache_streams, streams, fusion, input_transform: which of the cached streams the
            model reads and how (see `frame_streams`).
        **kwargs: `name`, `trainable`.

    Call arguments:
        inputs: `[features, mask]`: float `[B, T, D]` and float `[B, T]` (1 = real frame);
            the mean is over real frames only.

    Example:
        >>> model = MeanPoolClassifier(num_classes=4, feature_dim=2048)
        >>> model([keras.ops.zeros((2, 16, 2048)), keras.ops.ones((2, 16))]).shape
        (2, 4)
    """

    def __init__(self, num_classes: int | dict, feature_dim: int, num_frames: int | None = None,
                 adapter_units: int = 256, dropout: float = 0.3, cache_streams=None, streams=None,
                 fusion: str = "early", input_transform: str = "none", **kwargs):
        check_num_classes(num_classes)
        check_positive(feature_dim=feature_dim, adapter_units=adapter_units)
        check_dropout(dropout)
        features, mask, valid = model_inputs(num_frames, feature_dim)
        pooled = [masked_mean(frame_adapter(x, adapter_units, dropout, suffix), valid, suffix)
                  for suffix, x in frame_streams(features, valid, cache_streams, streams, input_transform, fusion)]
        outputs = classifier_head(fuse(pooled), num_classes, dropout)
        super().__init__(inputs=[features, mask], outputs=outputs, **kwargs)
        self._keep_config(num_classes=num_classes, feature_dim=feature_dim, num_frames=num_frames,
                          adapter_units=adapter_units, dropout=dropout, cache_streams=cache_streams, streams=streams,
                          fusion=fusion, input_transform=input_transform)
