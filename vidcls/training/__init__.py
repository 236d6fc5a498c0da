"""Training stage: strategy, precision, XLA, losses, schedules, callbacks and `train()`."""

from vidcls.training.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
