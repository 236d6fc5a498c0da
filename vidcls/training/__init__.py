"""Training stage: strategy, precision, XLA, losses, schedules, callbacks and `train()`;
cross-validation and sweeps built on it.

Importing this package imports neither TensorFlow nor KerasTuner (`vidcls train` must place
its logical devices before TensorFlow starts); `run_sweep` loads KerasTuner when first named.
"""

from vidcls.training.crossval import CrossvalResult, crossval, make_folds
from vidcls.training.runtime import normalise_precision
from vidcls.training.trainer import TrainResult, train

__all__ = [
    "CrossvalResult", "SweepResult", "TrainResult", "crossval", "make_folds", "normalise_precision", "read_sweep",
    "run_sweep", "train"
]


def __getattr__(name: str):
    if name in ("run_sweep", "read_sweep", "SweepResult"):
        from vidcls.training import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'vidcls.training' has no attribute '{name}'")
