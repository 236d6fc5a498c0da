"""Starting a model from a trained run: the "train on few frames, then on many" schedule.

A T2-frame model takes every weight of a T1-frame run of the same architecture. Only the
transformer's positional table depends on T; it is resampled linearly from T1 to T2
positions, so a frame keeps the embedding of the moment of the clip it shows.
"""

from __future__ import annotations

import numpy as np

from vidcls.errors import VidclsError
from vidcls.models.registry import finalize_layers
from vidcls.models.transformer import PositionalEmbedding

# Cache fingerprint keys that must agree between the source run and the new cache (the
# frame count may differ: that is the point).
SAME_FEATURES = ("backbone", "weights_checksum", "image_size", "feature_dim", "preprocessing")


def check_source_run(source_dir: str, model_name: str, space: dict, fingerprint: dict):
    """The `RunDir` of `source_dir` if its model can start a `model_name` run with label
    space `space` on a cache with `fingerprint`; a clear error otherwise."""
    from vidcls.run_dir import RunDir

    source = RunDir(source_dir)
    source.require_trained()
    if source.config().model.name != model_name:
        raise VidclsError(f"model.init_from: {source.root} trained a {source.config().model.name}; this run "
                          f"trains a {model_name}; expected the same model")
    if source.label_space() != space:
        raise VidclsError(f"model.init_from: {source.root} predicts {source.label_space()}, but this run's labels "
                          f"are {space}; expected the same targets and classes")
    theirs = source.features()["fingerprint"]
    different = [f"{key}: {theirs.get(key)!r} there, {fingerprint.get(key)!r} here"
                 for key in SAME_FEATURES if theirs.get(key) != fingerprint.get(key)]
    if different:
        raise VidclsError(f"model.init_from: {source.root} was trained on other features ({'; '.join(different)})")
    return source


def transfer_weights(source, target) -> list[str]:
    """Copies every weight of `source` into `target` (same architecture, any T), layer by
    layer by name; returns the layers whose weights were resampled to the new length.

    Raises:
        VidclsError: another architecture, a layer missing from `source`, or a weight whose
            shape differs other than along a positional table's length.
    """
    if type(source) is not type(target):
        raise VidclsError(f"model.init_from holds a {type(source).__name__}; this run builds a {type(target).__name__}")
    resampled = []
    for layer in target.layers:
        if not layer.weights:
            continue
        try:
            origin = source.get_layer(layer.name)
        except ValueError:
            raise VidclsError(f"model.init_from: the source model has no layer '{layer.name}'; "
                              "was it trained with other model settings?") from None
        if len(origin.weights) != len(layer.weights):
            raise VidclsError(f"model.init_from: layer '{layer.name}' has {len(origin.weights)} weights there and "
                              f"{len(layer.weights)} here")
        for mine, theirs in zip(layer.weights, origin.weights):
            value = np.asarray(theirs.numpy())
            if tuple(mine.shape) != value.shape:
                if not isinstance(layer, PositionalEmbedding):
                    raise VidclsError(f"model.init_from: weight '{mine.path}' is {value.shape} there and "
                                      f"{tuple(mine.shape)} here; expected the same model settings")
                value = interpolate_positions(value, mine.shape[0])
                resampled.append(layer.name)
            mine.assign(value)
    finalize_layers(target)
    return resampled


def interpolate_positions(table: np.ndarray, length: int) -> np.ndarray:
    """Resamples a `[T1, C]` positional table to `[length, C]`: position i of the new
    table sits at the same fraction of the clip ((i + 0.5) / length) as in the old one."""
    old = (np.arange(len(table)) + 0.5) / len(table)
    new = (np.arange(length) + 0.5) / length
    return np.stack([np.interp(new, old, column) for column in table.T], axis=1).astype(table.dtype)
