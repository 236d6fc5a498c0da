"""vidcls: train video action classifiers on cached CNN features, ship them as TFLite.

    import vidcls

    vidcls.extract(data_dir="videos", cache_dir="cache")
    vidcls.train("runs/a", cache_dir="cache", epochs=20)
    vidcls.evaluate("runs/a")
    vidcls.export("runs/a")
    vidcls.Predictor("runs/a").predict("clip.mp4")

Importing this package is cheap: TensorFlow is imported only by the functions that need
it (see `vidcls.api`). vidcls's Keras classes are registered as soon as Keras is imported,
by anyone, so a `.keras` file vidcls wrote loads with plain `keras.saving.load_model`.
"""

from vidcls._keras_hook import register_when_keras_loads

__version__ = "0.1.0"
__all__ = ["Predictor", "__version__", "crossval", "evaluate", "export", "extract", "run_config", "train"]

_API = ("crossval", "evaluate", "export", "extract", "run_config", "train")


def __getattr__(name: str):
    if name in _API:
        from vidcls import api

        return getattr(api, name)
    if name == "Predictor":
        from vidcls.serving import Predictor

        return Predictor
    raise AttributeError(f"module 'vidcls' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


register_when_keras_loads()
