"""Registry of frozen ImageNet CNNs that embed frames, each with its own preprocessing."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: constructor and preprocessing from `keras.applications`.

    `output_layer` names the layer whose activations are the features (VGG's fc2); when it
    is None the network is cut before its classifier and average-pooled.
    """

    application: str  # class name in keras.applications
    module: str  # keras.applications sub-module holding preprocess_input
    feature_dim: int
    native_size: int
    min_size: int
    preprocessing: str
    output_layer: str | None = None


COMPUTE_PRECISIONS = ("float32", "bfloat16", "float16")
_CAFFE = "caffe: RGB->BGR, ImageNet mean subtracted"
_INSIDE = "none: rescaling is inside the model"

BACKBONES: dict[str, BackboneSpec] = {
    "vgg16": BackboneSpec("VGG16", "vgg16", 4096, 224, 32, _CAFFE, "fc2"),
    "vgg19": BackboneSpec("VGG19", "vgg19", 4096, 224, 32, _CAFFE, "fc2"),
    "vgg16_conv": BackboneSpec("VGG16", "vgg16", 512, 224, 32, _CAFFE),  # pooled block5_pool
    "vgg19_conv": BackboneSpec("VGG19", "vgg19", 512, 224, 32, _CAFFE),
    "resnet50": BackboneSpec("ResNet50", "resnet50", 2048, 224, 32, _CAFFE),
    "efficientnet_b0": BackboneSpec("EfficientNetB0", "efficientnet", 1280, 224, 32, _INSIDE),
    "efficientnet_b3": BackboneSpec("EfficientNetB3", "efficientnet", 1536, 300, 32, _INSIDE),
    "mobilenet_v2": BackboneSpec("MobileNetV2", "mobilenet_v2", 1280, 224, 32, "tf: scaled to [-1, 1]"),
    "mobilenet_v3_small": BackboneSpec("MobileNetV3Small", "mobilenet_v3", 576, 224, 32, _INSIDE),
    "mobilenet_v3_large": BackboneSpec("MobileNetV3Large", "mobilenet_v3", 960, 224, 32, _INSIDE),
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise VidclsError(f"Unknown backbone '{name}'; choose one of: {', '.join(BACKBONES)}")
    return BACKBONES[name]


class Backbone:
    """A frozen CNN that maps uint8 RGB frames `[N, S, S, 3]` to features `[N, D]`.

    Args:
        name: a key of `BACKBONES`.
        weights: `"imagenet"` (through Keras's cache, `~/.keras/models`), `"none"` (random
            initialisation from `seed`, for tests and the offline demo) or a path to a
            Keras weights file for this architecture.
        image_size: square input size; defaults to the backbone's native size.
        seed: initialises the weights reproducibly when `weights="none"`, so that
            `predict` can rebuild exactly the backbone that filled the cache.
        batch_size: frames per inference call; partial batches are padded so the compiled
            function is traced once.
        grid: 1 averages the last feature map over the whole frame; g > 1 averages it over
            g x g cells (D = g * g * channels, cell by cell), so where things are survives.
        precision: the format the network computes in: float32, or bfloat16 / float16
            (weights stay float32 and are cast, preprocessing is float32; see
            `vidcls.features.precision`).

    Example:
        >>> backbone = Backbone("resnet50", weights="none", image_size=112)
        >>> backbone.embed(np.zeros((4, 112, 112, 3), np.uint8)).shape
        (4, 2048)
    """

    def __init__(self, name: str, weights: str = "imagenet", image_size: int | None = None,
                 seed: int = 0, batch_size: int = 64, grid: int = 1, precision: str = "float32"):
        self.spec = backbone_spec(name)
        if precision not in COMPUTE_PRECISIONS:
            raise VidclsError(f"Expected a backbone precision of {', '.join(COMPUTE_PRECISIONS)}; received '{precision}'")
        self.precision = precision
        if grid < 1:
            raise VidclsError(f"Expected --grid (extract.grid) >= 1 (cells per side); received {grid}")
        if grid > 1 and self.spec.output_layer is not None:
            raise VidclsError(f"--grid (extract.grid) pools a convolutional feature map; backbone {name} gives the "
                              f"{self.spec.output_layer} vector. Use {name}_conv, or --grid 1")
        self.grid = grid
        self.name = name
        self.image_size = image_size or self.spec.native_size
        if self.image_size < self.spec.min_size:
            raise VidclsError(
                f"Expected --image-size >= {self.spec.min_size} for backbone {name}; "
                f"received {self.image_size}"
            )
        self.batch_size = batch_size
        self.seed = seed
        self.weights = _normalise_weights(weights)
        self._source = self._build()  # as loaded: what the weights checksum covers
        from vidcls.features.folding import fold_for_inference

        self._model = fold_for_inference(self._source, precision)
        self._embed = self._compile()
        # Trace now, so the first real batch (and extraction's clock) does not pay for it.
        self._embed(np.zeros((batch_size, self.image_size, self.image_size, 3), np.uint8))

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim * self.grid * self.grid

    def fingerprint(self) -> dict:
        """What identifies these features; stored in `cache.json` and checked on reuse."""
        info = {
            "backbone": self.name,
            "weights": self._weights_label(),
            "weights_checksum": self.weights_checksum(),
            "image_size": self.image_size,
            "feature_dim": self.feature_dim,
            "preprocessing": f"keras.applications.{self.spec.module}.preprocess_input ({self.spec.preprocessing})",
            "seed": self.seed,
        }
        if self.grid > 1:  # absent means 1, as in caches written before grids existed
            info["grid"] = self.grid
        if self.precision != "float32":  # absent means float32, as in caches written before --precision
            info["precision"] = self.precision
        return info

    def save_weights(self, path: str | Path) -> None:
        """Writes the weights as loaded (before folding) to a Keras weights file that
        `--weights PATH` takes."""
        self._source.save_weights(str(path))

    def as_float32(self) -> Backbone:
        """This backbone computing in float32, same weights: what a TFLite export holds
        (phones have no bfloat16 kernels, and float16 there is a weights format)."""
        if self.precision == "float32":
            return self
        from vidcls.features.folding import fold_for_inference

        twin = copy.copy(self)  # the loaded network is shared: no second read of the weights
        twin.precision = "float32"
        twin._model = fold_for_inference(self._source, "float32")
        twin._embed = twin._compile()
        return twin

    @property
    def model(self):
        """The Keras model from preprocessed float images to features, batch normalisation
        folded, computing in `precision` (e.g. for an export that puts the backbone in the
        same graph as the classifier: use `as_float32().model` there)."""
        return self._model

    def preprocess(self, images):
        """The backbone's own `keras.applications` preprocessing of float RGB images."""
        import keras

        return getattr(keras.applications, self.spec.module).preprocess_input(images)

    def weights_checksum(self) -> str:
        digest = hashlib.sha256()
        for weight in self._source.weights:
            digest.update(np.asarray(weight.numpy(), dtype=np.float32).tobytes())
        return digest.hexdigest()[:16]

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """Returns float32 features for uint8 RGB frames of shape `[N, S, S, 3]`."""
        expected = (self.image_size, self.image_size, 3)
        if frames.ndim != 4 or frames.shape[1:] != expected:
            raise ValueError(f"Expected frames of shape [N, {', '.join(map(str, expected))}]; received {list(frames.shape)}")
        outputs = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start:start + self.batch_size]
            padded = np.zeros((self.batch_size, *expected), np.uint8)
            padded[: len(chunk)] = chunk
            outputs.append(self._embed(padded).numpy()[: len(chunk)])
        return np.concatenate(outputs) if outputs else np.zeros((0, self.feature_dim), np.float32)

    def _weights_label(self) -> str:
        if self.weights in ("imagenet", "none"):
            return self.weights
        return f"file:{_file_sha256(Path(self.weights))}"

    def _build(self):
        import keras

        constructor = getattr(keras.applications, self.spec.application)
        top = self.spec.output_layer is not None
        kwargs = dict(include_top=top, input_shape=(self.image_size, self.image_size, 3))
        if not top and self.grid == 1:
            kwargs["pooling"] = "avg"
        if self.weights == "none":
            keras.utils.set_random_seed(self.seed)
            model = constructor(weights=None, **kwargs)
        elif self.weights == "imagenet":
            model = self._build_imagenet(constructor, kwargs)
        else:
            model = self._build_from_file(constructor, kwargs)
        if top:
            model = keras.Model(model.input, model.get_layer(self.spec.output_layer).output, name=f"{self.name}_features")
        elif self.grid > 1:
            model = keras.Model(model.input, _grid_pooling(model.output, self.grid), name=f"{self.name}_grid{self.grid}")
        model.trainable = False
        return model

    def _build_imagenet(self, constructor, kwargs):
        try:
            return constructor(weights="imagenet", **kwargs)
        except ValueError as error:
            raise VidclsError(f"Cannot build {self.name} with ImageNet weights at image size {self.image_size}: "
                              f"{error}") from None
        except Exception as error:  # the download failed: offline, proxy, HTTP error
            raise VidclsError(
                f"Could not load ImageNet weights for {self.name}: they are not in Keras's cache "
                f"(~/.keras/models) and the download failed ({type(error).__name__}: {error}). "
                f"Offline, save them once on a machine with internet access, e.g. "
                f"keras.applications.{self.spec.application}(weights='imagenet', include_top="
                f"{self.spec.output_layer is not None}).save_weights('{self.name}.weights.h5'), "
                f"then pass --weights {self.name}.weights.h5 (or use --weights none for a random, "
                f"untrained backbone)"
            ) from None

    def _build_from_file(self, constructor, kwargs):
        path = Path(self.weights)
        if not path.is_file():
            raise VidclsError(f"Weights file {path} does not exist (expected --weights / extract.weights: imagenet, "
                              "none or a path to a weights file)")
        model = constructor(weights=None, **kwargs)
        try:
            model.load_weights(str(path))
        except Exception as error:
            raise VidclsError(
                f"Could not load weights file {path} into {self.name} "
                f"(include_top={kwargs['include_top']}, image size {self.image_size}): {error}"
            ) from None
        return model

    def _compile(self) -> Callable:
        import tensorflow as tf

        model = self._model

        @tf.function(reduce_retracing=True)
        def embed(frames):
            return tf.cast(model(self.preprocess(tf.cast(frames, tf.float32)), training=False), tf.float32)

        return embed


def _grid_pooling(feature_map, grid: int):
    """Averages a `[B, H, W, C]` map over `grid` x `grid` cells (cell i spans rows
    floor(i*H/g) to ceil((i+1)*H/g), so cells of a 7x7 map overlap by a row rather than
    drop one) -> `[B, g*g*C]`, cell by cell in row order."""
    import keras

    height, width = feature_map.shape[1], feature_map.shape[2]
    if height < grid or width < grid:
        raise VidclsError(f"Expected a feature map of at least {grid}x{grid} for --grid (extract.grid) {grid}; the "
                          f"backbone gives {height}x{width} at this image size: use a larger --image-size or a smaller --grid")
    cells = []
    for row in range(grid):
        top, bottom = (row * height) // grid, -(-((row + 1) * height) // grid)
        for column in range(grid):
            left, right = (column * width) // grid, -(-((column + 1) * width) // grid)
            cells.append(keras.ops.mean(feature_map[:, top:bottom, left:right, :], axis=(1, 2)))
    return keras.ops.concatenate(cells, axis=-1)


def _normalise_weights(weights: str) -> str:
    lowered = str(weights).lower()
    return lowered if lowered in ("imagenet", "none") else str(weights)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def get_backbone(name: str, weights: str = "imagenet", image_size: int | None = None,
                 seed: int = 0, batch_size: int = 64, grid: int = 1, precision: str = "float32") -> Backbone:
    """Builds a registered backbone; see `Backbone`."""
    return Backbone(name, weights=weights, image_size=image_size, seed=seed, batch_size=batch_size, grid=grid,
                    precision=precision)
