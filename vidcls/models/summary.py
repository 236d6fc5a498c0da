"""What a model costs: parameters and FLOPs per clip, logged when training starts."""

from __future__ import annotations

import numpy as np

MATRIX_PRODUCTS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def flops_per_clip(model, num_frames: int) -> int:
    """FLOPs of one clip of `num_frames` frames through `model`: 2 x the multiply-adds of
    every matrix product (dense layers, recurrent gates, attention) in the graph of its
    export rebuild (float32, fixed T, unrolled recurrence, so every time step is counted).
    Elementwise operations (activations, norms, softmax) are left out; they are a few
    percent of these models' work.
    """
    import tensorflow as tf

    from vidcls.models.registry import rebuild_for_export

    rebuilt = rebuild_for_export(model, num_frames)
    feature_dim = rebuilt.input_shape[0][-1]
    function = tf.function(lambda features, mask: rebuilt([features, mask], training=False))
    graph = function.get_concrete_function(tf.TensorSpec([1, num_frames, feature_dim], tf.float32),
                                           tf.TensorSpec([1, num_frames], tf.float32)).graph
    return int(sum(_matrix_product_flops(op) for op in graph.get_operations() if op.type in MATRIX_PRODUCTS))


def _matrix_product_flops(op) -> int:
    first, second = (tensor.shape.as_list() for tensor in op.inputs[:2])
    if None in first or None in second:
        raise ValueError(f"{op.name} has an unknown dimension ({first} x {second}); expected a fixed-size graph")
    if op.type == "MatMul":
        rows = first[1] if op.get_attr("transpose_a") else first[0]
        inner = first[0] if op.get_attr("transpose_a") else first[1]
        columns = second[0] if op.get_attr("transpose_b") else second[1]
        return 2 * rows * inner * columns
    adjoint_a, adjoint_b = op.get_attr("adj_x"), op.get_attr("adj_y")
    rows, inner = (first[-1], first[-2]) if adjoint_a else (first[-2], first[-1])
    columns = second[-2] if adjoint_b else second[-1]
    batch = np.broadcast_shapes(tuple(first[:-2]), tuple(second[:-2]))
    return 2 * int(np.prod(batch, dtype=np.int64)) * rows * inner * columns


def describe_model(model, num_frames: int) -> dict:
    """`{"model", "parameters", "trainable_parameters", "flops_per_clip"}`."""
    trainable = int(sum(np.prod(weight.shape) for weight in model.trainable_weights))
    return {"model": model.name, "parameters": int(model.count_params()), "trainable_parameters": trainable,
            "flops_per_clip": flops_per_clip(model, num_frames)}
