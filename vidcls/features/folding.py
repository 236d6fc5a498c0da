"""Inference copies of frozen backbones: batch normalisation folded into the convolution
before it, and the whole network in the number format extraction asked for.

A frozen batch normalisation is a per-channel affine map, `y = (x - mean) * s + beta` with
`s = gamma / sqrt(variance + epsilon)`; after a convolution it is the same convolution with
its kernel scaled by `s` per output channel and bias `(bias - mean) * s + beta`. Folding
removes ResNet50's 53 normalisation layers and their memory traffic: in bfloat16 they
were the bottleneck, because Keras computes normalisation in float32 and casts around
each one (measured on ResNet50 at 224 px, 2-core AMX CPU: 33 frames/s in bfloat16
unfolded, 148 folded; float32 26 -> 38). The folded network computes the same function
(float32: max relative difference ~1e-6).
"""

from __future__ import annotations

import keras
import numpy as np

FOLDABLE = ("Conv2D", "DepthwiseConv2D")


def fold_for_inference(model, precision: str = "float32"):
    """A copy of the frozen functional `model` with every batch normalisation that alone
    reads a convolution's output folded into that convolution, every layer computing in
    `precision` (float32, or bfloat16 / float16 with float32 weights)."""
    import keras

    pairs = _convolution_normalisation_pairs(model)
    folded_names = {normalisation.name for normalisation in pairs.values()}
    policy = "float32" if precision == "float32" else f"mixed_{precision}"

    def clone(layer):
        if layer.name in folded_names:
            return _Folded(name=layer.name, dtype=policy)
        config = layer.get_config()
        if isinstance(layer, keras.layers.Layer):  # not the bare operations (x + 3) of some functional graphs
            config["dtype"] = policy
        if layer.name in pairs:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in folded_names or not layer.weights:
            continue
        target = copy.get_layer(layer.name)
        if layer.name in pairs:
            target.set_weights(_folded_weights(layer, pairs[layer.name]))
        else:
            target.set_weights(layer.get_weights())
    copy.trainable = False
    return copy


def _convolution_normalisation_pairs(model) -> dict:
    """`{convolution name: the BatchNormalization layer that alone reads its output}`, from
    the functional graph as `get_config()` describes it (each layer's inbound tensors name
    the layer that made them)."""
    readers: dict[str, list[str]] = {}
    for entry in model.get_config()["layers"]:
        for source in _sources(entry.get("inbound_nodes", [])):
            readers.setdefault(source, []).append(entry["name"])
    layers = {layer.name: layer for layer in model.layers}  # not the bare operations (x + 3) some graphs hold
    pairs = {}
    for layer in model.layers:
        if type(layer).__name__ not in FOLDABLE or len(readers.get(layer.name, [])) != 1:
            continue
        reader = layers.get(readers[layer.name][0])
        if isinstance(reader, keras.layers.BatchNormalization) and reader.axis in (-1, [-1], 3, [3]):
            pairs[layer.name] = reader
    return pairs


def _sources(value) -> list[str]:
    """Names of the layers whose output tensors appear anywhere in a serialised call."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        return [name for item in value.values() for name in _sources(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _sources(item)]
    return []


def _folded_weights(convolution, normalisation) -> list[np.ndarray]:
    """`[kernel, bias]` of `convolution` followed by the frozen `normalisation`."""
    gamma = normalisation.gamma.numpy() if normalisation.scale else 1.0
    beta = normalisation.beta.numpy() if normalisation.center else 0.0
    scale = gamma / np.sqrt(normalisation.moving_variance.numpy() + normalisation.epsilon)
    if type(convolution).__name__ == "DepthwiseConv2D":  # [h, w, channels, multiplier]: output channel c * m + k
        kernel = convolution.kernel.numpy()
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = convolution.kernel.numpy() * scale
    bias = convolution.bias.numpy() if convolution.use_bias else 0.0
    return [kernel, (bias - normalisation.moving_mean.numpy()) * scale + beta]


class _Folded(keras.layers.Layer):
    """Where a folded batch normalisation was: passes its input on."""

    def call(self, inputs, training=None, mask=None):
        return inputs
