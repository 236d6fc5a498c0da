"""Serving stage: classify video files with a trained run (`Predictor`), and the HTTP API
over it (`serve`, `create_app`, with `Limits`; FastAPI is loaded when one of them is first named)."""

from vidcls.serving.limits import Limits
from vidcls.serving.predictor import Prediction, Predictor, merge_events, scores_of, windows_prediction

__all__ = ["Limits", "Prediction", "Predictor", "create_app", "merge_events", "scores_of", "serve", "windows_prediction"]


def __getattr__(name: str):
    if name in ("create_app", "serve"):
        from vidcls.serving import server

        return getattr(server, name)
    raise AttributeError(f"module 'vidcls.serving' has no attribute '{name}'")
