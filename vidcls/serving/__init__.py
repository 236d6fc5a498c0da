"""Serving stage: classify video files with a trained run."""

from vidcls.serving.predictor import Predictor

__all__ = ["Predictor"]
