"""LoRA fine-tuning: low-rank adapters on a trained model's dense and attention layers.

`apply_lora` adds Keras 3's adapters (`enable_lora`) to every Dense and EinsumDense layer
(frame adapter, attention projections, MLPs, classifier heads) and freezes every other
weight, biases included. `merge_lora` folds the adapters back (W + alpha/r A B) into a
plain model of the same class, which saves, loads and exports like any other.
"""

from __future__ import annotations

import numpy as np

from vidcls.errors import VidclsError
from vidcls.keras_compat import base_kernel, flatten_layers

LORA_VARIABLES = ("lora_kernel_a", "lora_kernel_b")


def _lora_layers(model) -> list:
    import keras

    return [layer for layer in flatten_layers(model)
            if isinstance(layer, (keras.layers.Dense, keras.layers.EinsumDense)) and layer.built]


def apply_lora(model, rank: int, alpha: float = 0.0) -> dict:
    """Adds rank-`rank` adapters (scale `alpha / rank`; alpha 0 means rank) and freezes
    everything else. Returns `{"lora_layers", "trainable", "total", "trainable_percent"}`:
    adapter parameters, and their share of the model's parameters without adapters.

    Raises:
        VidclsError: a rank below 1, or a model without dense layers.
    """
    if rank < 1:
        raise VidclsError(f"Expected model.lora_rank >= 1; received {rank}")
    layers = _lora_layers(model)
    if not layers:
        raise VidclsError(f"{model.name} has no dense or attention layer to adapt with LoRA")
    for layer in layers:
        layer.enable_lora(rank, lora_alpha=alpha or rank)
    for variable in model.trainable_variables:
        if not variable.path.endswith(LORA_VARIABLES):
            variable.trainable = False
    trainable = int(sum(np.prod(variable.shape) for variable in model.trainable_variables))
    # The share is of the model as it ships (adapters merged): the same count `vidcls train` reports.
    total = int(sum(np.prod(variable.shape) for variable in model.weights if not variable.path.endswith(LORA_VARIABLES)))
    return {"lora_layers": len(layers), "trainable": trainable, "total": total,
            "trainable_percent": round(100.0 * trainable / total, 3)}


def merge_lora(model):
    """A plain copy of `model` (same class and config, no adapters) whose dense kernels are
    the adapted ones, W + alpha/r A B; every other weight is copied as is."""
    from vidcls.models import finalize_layers

    merged_values = {}
    for layer in _lora_layers(model):
        if getattr(layer, "lora_enabled", False):
            merged_values[base_kernel(layer).path] = _merged_kernel(layer)
    plain = type(model).from_config(model.get_config())
    sources = {variable.path: variable for variable in model.weights if not variable.path.endswith(LORA_VARIABLES)}
    for variable in plain.weights:
        if variable.path not in sources:
            raise VidclsError(f"Cannot merge LoRA: weight '{variable.path}' has no counterpart in the adapted model")
        variable.assign(merged_values.get(variable.path, np.asarray(sources[variable.path].numpy())))
    finalize_layers(plain)
    return plain


def _merged_kernel(layer) -> np.ndarray:
    """W + alpha/r A B in float32, the variables' own format. Not `layer.kernel`: under a
    mixed policy Keras computes that in the compute dtype, which rounds all of W to
    bfloat16 (or float16) and makes the merged update full-rank noise."""
    a, b = (np.asarray(variable.numpy(), np.float32) for variable in (layer.lora_kernel_a, layer.lora_kernel_b))
    base = np.asarray(base_kernel(layer).numpy(), np.float32)
    return base + np.float32(layer.lora_alpha / layer.lora_rank) * np.matmul(a, b)
