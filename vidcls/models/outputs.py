"""Reading a model's outputs the same way in every stage (evaluation, training callbacks,
export parity checks, serving)."""

from __future__ import annotations

import numpy as np


def outputs_by_target(outputs, space) -> dict[str, np.ndarray]:
    """A model's output (an array, or a dict with one head per target) as
    `{target: float64 [N, K]}`, in the order of the label space `space` (target -> class names)."""
    if not isinstance(outputs, dict):
        outputs = {next(iter(space)): outputs}
    return {target: np.asarray(outputs[target], dtype=np.float64) for target in space}
