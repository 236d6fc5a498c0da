"""The configuration sections: frozen dataclasses whose fields are the config keys and their
defaults, and the type-checked replacement of keys (`section.key`): an unknown key, or a
value of the wrong type, is a `VidclsError` that names the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from vidcls.errors import VidclsError


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How `vidcls extract` turns videos into cached features."""

    data_dir: str = ""
    annotations: str = ""  # CSV of clips; paths relative to data_dir (or the CSV's folder)
    cache_dir: str = ""
    backbone: str = "resnet50"
    weights: str = "imagenet"
    num_frames: int = 16
    image_size: int | None = None  # None: the backbone's native size
    batch_size: int = 64
    allow_failures: bool = False
    seed: int = 0  # initialises a `weights=none` backbone reproducibly
    shard: str = ""  # "i/n": this process embeds every n-th video, starting at the i-th
    overwrite: bool = False
    decode_workers: int = 2
    # Images embedded per sampled frame, side by side in the cache: appearance (the frame)
    # and/or frame_difference (|frame - the frame difference_gap later| x difference_gain,
    # a motion image: on real footage it carries to unseen scenes, appearance does not).
    streams: list = dataclasses.field(default_factory=lambda: ["appearance", "frame_difference"])
    difference_gap: int = 2
    # > 0: the gap in seconds instead, the nearest whole number of frames at each video's frame
    # rate (at least 1), so motion spans the same time at any frame rate; difference_gap unused.
    difference_seconds: float = 0.0
    difference_gain: float = 4.0
    grid: int = 1  # pool the backbone's last feature map over grid x grid cells (1: the whole frame)
    # The backbone's number format: auto (bfloat16 on CPUs with AMX/AVX512-BF16, float16 on
    # GPUs with tensor cores, else float32), float32, bfloat16 or float16. Part of the cache's
    # fingerprint; predict, serve and export embed as the cache did.
    precision: str = "auto"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where training reads features from and how clips are split."""

    cache_dir: str = ""
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    group_by: str = ""  # manifest key whose clips stay in one split: group, video, participant_id...
    split_file: str = ""  # JSON {"train": [...], "val": [...], "test": [...]} of clip ids or video paths
    memory_budget_gb: float = 0.0  # features held in RAM up to this; beyond, streamed from disk. 0: half the free RAM
    sampling: str = "shuffle"  # "shuffle": each clip once per epoch; "balanced": classes drawn equally often
    # Manifest keys the model predicts, one output head each: ["label"], or ["verb", "noun"]
    # for EPIC-style clips (action = both right).
    targets: list = dataclasses.field(default_factory=lambda: ["label"])


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Feature-level augmentation of training batches; everything off by default."""

    crop_min: float = 1.0  # random window of crop_min..1 of the clip, resampled to T (1.0: off)
    speed: float = 0.0  # play at a random rate in [1/(1+speed), 1+speed]
    jitter: float = 0.0  # move each sampled position by up to this many frames, order kept
    noise_std: float = 0.0  # Gaussian noise, relative to the batch's per-dimension std
    feature_dropout: float = 0.0  # zero each feature dimension of a clip with this probability
    mixup_alpha: float = 0.0  # mixup with lambda ~ Beta(alpha, alpha) (0: off)
    cutmix_prob: float = 0.0  # probability per batch of temporal cutmix


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The temporal classifier."""

    name: str = "attention_lstm"  # attention_lstm | bilstm | gru | transformer | mean_pool
    adapter_units: int = 256
    hidden_units: int = 128  # LSTM/GRU units per direction; the transformer's width
    attention_units: int = 64  # attention_lstm's attention projection
    bidirectional: bool = True  # attention_lstm: BiLSTM or forward LSTM
    dropout: float = 0.3
    num_layers: int = 2  # stacked recurrent layers (bilstm, gru) or encoder blocks (transformer)
    pooling: str = ""  # bilstm/gru: last | mean (default last); transformer: cls | mean (default cls)
    num_heads: int = 4  # transformer attention heads (hidden_units must divide by it)
    mlp_units: int = 256  # transformer MLP width
    stochastic_depth: float = 0.1  # transformer: drop rate of the last block's residual branches
    init_from: str = ""  # a trained run whose weights start this one (e.g. fewer frames); see --init-from
    lora_rank: int = 0  # > 0: fine-tune init_from's model with LoRA adapters of this rank, all else frozen
    lora_alpha: float = 0.0  # LoRA scale alpha / rank (0: alpha = rank)
    # Which cached streams the model reads, e.g. [frame_difference] or [appearance, frame_difference];
    # empty: the cache's motion stream when it has one (it carries to unseen scenes), else all.
    # Several are fused early (side by side per frame) or late (one encoder each, joined after pooling).
    streams: list = dataclasses.field(default_factory=list)
    fusion: str = "early"
    # What each frame's input is: none (features as cached) | differences (x_t - x_{t-1})
    # | features_and_differences | centred (minus the clip's mean).
    input_transform: str = "none"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation, precision and distribution."""

    epochs: int = 30
    batch_size: int = 32  # global: split across replicas
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    gradient_clip: float = 1.0
    label_smoothing: float = 0.0
    use_focal_loss: bool = False
    focal_gamma: float = 2.0
    focal_alpha: float = 0.25
    use_class_weights: bool = False
    class_weights: dict | None = None  # explicit {class: weight}; None: "balanced" when use_class_weights
    focal_alpha_balanced: bool = False  # focal alpha per class from inverse class frequencies
    # Weight each training clip by 1 / (training clips of its data.group_by group), so that
    # every source (scene, camera, participant) counts equally, not in proportion to its clips.
    balance_groups: bool = False
    # auto (mixed_float16 on GPUs with tensor cores, mixed_bfloat16 on CPUs with AMX/AVX512-BF16,
    # else float32) | float32 | mixed_float16 (--mixed-precision) | mixed_bfloat16 (--precision bfloat16)
    precision: str = "auto"
    xla: bool = False  # jit_compile the training step (falls back, with a message, where XLA cannot run)
    grad_accum_steps: int = 1  # apply the averaged gradients of this many batches at once
    early_stopping_patience: int = 10
    seed: int = 42
    deterministic: bool = False  # deterministic TensorFlow ops: the same seed gives the same history.csv
    devices: int = 0  # 0: every GPU (else the CPU); N: the first N GPUs, or N logical CPU devices without GPUs
    checkpoint_every: int = 0  # also keep checkpoints/epoch_NNN.keras every N epochs (0: only best.keras)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a training run; written to `RUN_DIR/config.yaml`."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, updates: dict[str, Any], source: str = "override") -> ExperimentConfig:
        """Returns a copy with `{"section.key": value}` updates applied and type-checked."""
        sections = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        changed: dict[str, dict[str, Any]] = {}
        for dotted, value in updates.items():
            section_name, _, key = dotted.partition(".")
            if section_name not in sections or not key:
                raise VidclsError(
                    f"Unknown config key '{dotted}' in {source}; expected 'section.key' with "
                    f"section one of {sorted(sections)}"
                )
            changed.setdefault(section_name, {})[key] = value
        return dataclasses.replace(
            self, **{name: replace_fields(sections[name], values, name, source) for name, values in changed.items()})


def replace_fields(section, updates: dict[str, Any], section_name: str, source: str):
    """A copy of the dataclass `section` with `{key: value}` updates, each key checked and
    each value coerced to its field's type; errors name `section_name.key` and `source`."""
    types_of = field_types(type(section))
    values = {}
    for key, value in updates.items():
        if key not in types_of:
            raise VidclsError(
                f"Unknown config key '{section_name}.{key}' in {source}; valid keys in "
                f"'{section_name}': {sorted(types_of)}"
            )
        values[key] = _coerce(value, types_of[key], f"{section_name}.{key}", source)
    return dataclasses.replace(section, **values)


def field_types(section_class: type) -> dict[str, Any]:
    hints = typing.get_type_hints(section_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(section_class)}


def _coerce(value: Any, expected: Any, key: str, source: str) -> Any:
    optional = typing.get_origin(expected) in (typing.Union, types.UnionType)
    if optional:
        if value is None:
            return None
        expected = next(arg for arg in typing.get_args(expected) if arg is not type(None))
    if expected in (int, float) and isinstance(value, str):
        # PyYAML (YAML 1.1) reads "3e-4" as a string; accept numbers written that way.
        try:
            value = expected(value)
        except ValueError:
            pass
    if expected is bool and isinstance(value, bool):
        return value
    if expected is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if expected is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    if expected is list and isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]  # --set data.targets=verb,noun
    if expected is list and isinstance(value, (list, tuple)) and all(isinstance(item, str) and item for item in value):
        return list(value)  # may be empty: model.streams=[] means every stream
    if expected is dict and isinstance(value, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()):
        return {str(k): float(v) for k, v in value.items()}
    raise VidclsError(
        f"Expected {expected.__name__} for config key '{key}' in {source}; received {value!r}"
    )
