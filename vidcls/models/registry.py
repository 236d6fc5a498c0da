"""Model names used on the command line, and building / rebuilding models by name."""

from __future__ import annotations

import inspect
import logging

import keras

from vidcls.config import ModelConfig
from vidcls.errors import VidclsError
from vidcls.keras_compat import flatten_layers
from vidcls.models.attention_lstm import AttentionLSTMClassifier
from vidcls.models.mean_pool import MeanPoolClassifier
from vidcls.models.recurrent import BiLSTMClassifier, GRUClassifier
from vidcls.models.transformer import TransformerClassifier

MODELS = {
    "attention_lstm": AttentionLSTMClassifier,
    "bilstm": BiLSTMClassifier,
    "gru": GRUClassifier,
    "transformer": TransformerClassifier,
    "mean_pool": MeanPoolClassifier,
}
logger = logging.getLogger("vidcls")
# ModelConfig keys that are not hyperparameters of an architecture.
NOT_HYPERPARAMETERS = ("name", "init_from", "lora_rank", "lora_alpha")


def model_class(name: str):
    if name not in MODELS:
        raise VidclsError(f"Unknown model '{name}'; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def build_model(config: ModelConfig, num_classes, feature_dim: int, num_frames: int | None = None,
                unroll_up_to: int = 0, cache_streams: list[str] | None = None):
    """Builds the model `config.name`, passing the config's hyperparameters it accepts.

    `cache_streams` names the streams the features hold side by side (the cache's
    `streams`; None: one), so `model.streams` can select among them.

    A key set away from its default that this model does not use (e.g. `model.num_heads`
    for `bilstm`) is named in a warning: a preset written for one model still serves
    another, but nobody believes a setting took effect when it did not.

    `unroll_up_to` > 0 unrolls a recurrent model's time loop when T is at most that: on
    CPUs an unrolled 16-step LSTM trains ~1.4x faster (measured, attention_lstm, batch 32);
    on GPUs the rolled loop keeps cuDNN kernels available, so the trainer only asks on CPU.

    Raises:
        VidclsError: an unknown name or a bad value.
    """
    cls = model_class(config.name)
    accepted = inspect.signature(cls.__init__).parameters
    defaults = ModelConfig()
    unused = [f"model.{key}={value!r}" for key, value in vars(config).items()
              if key not in accepted and key not in NOT_HYPERPARAMETERS and value != getattr(defaults, key)]
    if unused:
        logger.warning("%s not used by %s (it uses: %s)", ", ".join(unused), config.name,
                       ", ".join(sorted(key for key in vars(config) if key in accepted)))
    hyperparameters = {key: value for key, value in vars(config).items() if key in accepted}
    if "unroll" in accepted and num_frames and num_frames <= unroll_up_to:
        hyperparameters["unroll"] = True
    if cache_streams and list(cache_streams) != ["appearance"]:
        hyperparameters["cache_streams"] = list(cache_streams)
    hyperparameters["streams"] = resolve_streams(config.streams, cache_streams)
    return cls(num_classes=num_classes, feature_dim=feature_dim, num_frames=num_frames,
               name=config.name, **hyperparameters)


def resolve_streams(requested: list[str], cache_streams: list[str] | None) -> list[str] | None:
    """The cached streams a model reads: `model.streams` as given; when it is empty, every
    stream but appearance if the cache has another (a motion stream), else all (None).

    Measured on real surveillance footage in grouped cross-validation (docs/real-footage.md):
    the frame-difference stream alone scores ~0.75, appearance beside it pulls the model back
    towards memorising each scene's look (~0.66-0.68)."""
    if requested:
        return list(requested)
    others = [name for name in cache_streams or [] if name != "appearance"]
    return others if others and len(others) < len(cache_streams) else None


def rebuild_for_export(model, num_frames: int):
    """The same architecture and weights in float32, with fixed T and unrolled recurrence.

    TFLite's converter does not fuse Keras 3 LSTMs; a rolled one needs TensorList ops with
    static shapes it cannot get, so the export graph unrolls the recurrence over T steps.
    """
    config = model.get_config()
    config["num_frames"] = num_frames
    for fixed in ("unroll", "fixed_frames"):  # recurrent models unroll; the transformer fixes T
        if fixed in config:
            config[fixed] = True
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        rebuilt = type(model).from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    rebuilt.set_weights(model.get_weights())
    finalize_layers(rebuilt)
    return rebuilt


def finalize_layers(model) -> None:
    """Makes layers that cache state derived from their variables (Normalization keeps its
    mean and variance as tensors made from them) rebuild it after `set_weights` or
    `assign`; otherwise the copy would still normalise with the statistics it was built with."""
    for layer in flatten_layers(model):
        if hasattr(layer, "finalize_state"):
            layer.finalize_state()


def load_model(path):
    """Loads a `.keras` file written by vidcls (the custom classes are registered here).

    Raises:
        VidclsError: naming the file, when it is missing or does not load (truncated by a
            kill in an older vidcls, hand-edited, or not a model).
    """
    from pathlib import Path

    from vidcls.errors import VidclsError

    if not Path(path).is_file():
        raise VidclsError(f"Model file {path} is missing")
    try:
        return keras.saving.load_model(str(path), compile=False)
    except Exception as error:  # a truncated zip, a bad config: whatever Keras raises
        first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise VidclsError(f"Model file {path} does not load ({type(error).__name__}: {first_line}); "
                          "it is damaged: train again into a new --run-dir") from None
