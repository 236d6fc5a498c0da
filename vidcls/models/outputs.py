"""Reading a model's outputs the same way in every stage (evaluation, training callbacks,
export parity checks, serving)."""

from __future__ import annotations

import numpy as np

INFERENCE_BATCH_SIZE = 256  # clips per inference call: evaluation, serving, training's validation


def outputs_by_target(outputs, space) -> dict[str, np.ndarray]:
    """A model's output (an array, or a dict with one head per target) as
    `{target: float64 [N, K]}`, in the order of the label space `space` (target -> class names)."""
    if not isinstance(outputs, dict):
        outputs = {next(iter(space)): outputs}
    return {target: np.asarray(outputs[target], dtype=np.float64) for target in space}


def predict(model, inputs: list, batch_size: int = INFERENCE_BATCH_SIZE):
    """`model.predict(inputs)` without `predict`'s `tf.function`, for evaluation, export
    checks and serving: `model.predict` traces one per loaded model (and per video, in a
    server), and from the sixth in a process (a crossval's folds) TensorFlow warns of
    "excessive retracing" on every call. The inputs here are small, so the layers run
    eagerly, in batches of `batch_size`; the results are `predict`'s (same ops, inference
    mode).

    Returns:
        NumPy arrays in the structure of the model's outputs (an array, or a dict per target).
    """
    import keras

    count = len(inputs[0])
    pieces = [model([np.asarray(x[start:start + batch_size]) for x in inputs], training=False)
              for start in range(0, count, batch_size)]
    return keras.tree.map_structure(lambda *parts: np.concatenate([np.asarray(part) for part in parts]), *pieces)
