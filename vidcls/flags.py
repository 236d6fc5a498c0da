"""Command-line flags that set config keys, built from the config dataclasses: each flag's
type and the default its help shows come from the field, so defaults live in one place
(vidcls/config/sections.py). Used by every command that takes `--config`/`--set`."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from vidcls.config import EXTRACT_SECTION, ExperimentConfig, FeatureConfig, field_types

SECTIONS = {EXTRACT_SECTION: FeatureConfig, **{field.name: field.type for field in dataclasses.fields(ExperimentConfig)}}


@dataclass(frozen=True)
class Flag:
    """`--name` sets the config key `key` ("section.field")."""

    key: str
    help: str = ""
    name: str = ""  # default: the field's name with '-' for '_'
    metavar: str | None = None
    show_default: bool = True
    required: bool = False

    @property
    def dest(self) -> str:
        return (self.name or self.key.partition(".")[2]).replace("-", "_")


EXTRACT_FLAGS = [
    Flag("extract.data_dir", "ROOT/<class>/<video> tree, or the folder --annotations paths are relative to"),
    Flag("extract.annotations", "CSV of clips: path,label (or verb,noun) [,start_sec,end_sec | start_frame,end_frame]"),
    Flag("extract.cache_dir", "where the features go (required, here or in --config)"),
    Flag("extract.backbone", "the frame encoder (the list: below)"),
    Flag("extract.weights", "imagenet | none | PATH to a Keras weights file"),
    Flag("extract.num_frames", "frames sampled uniformly over each video"),
    Flag("extract.image_size", "default: the backbone's native size"),
    Flag("extract.streams", "comma list of images embedded per frame: appearance, frame_difference"),
    Flag("extract.difference_gap", "frame_difference: frames between the two differenced images"),
    Flag("extract.difference_seconds", "frame_difference: the gap in seconds instead (the nearest whole number of "
         "frames at each video's frame rate; 0: use --difference-gap)"),
    Flag("extract.difference_gain", "frame_difference: |difference| x this, clipped to 255"),
    Flag("extract.grid", "pool the last feature map over GRID x GRID cells instead of the whole frame"),
    Flag("extract.precision", "the backbone's number format: auto, float32, bfloat16, float16 (auto: bfloat16 on "
         "CPUs with AMX/AVX512-BF16, float16 on GPUs with tensor cores, else float32)"),
    Flag("extract.batch_size", "images per backbone call"),
    Flag("extract.seed", "initialises the backbone for --weights none"),
    Flag("extract.allow_failures", "exit 0 even if some videos are unreadable"),
    Flag("extract.shard", "embed only every N-th video starting at the I-th, so N processes or machines share "
         "one dataset", metavar="I/N"),
    Flag("extract.overwrite", "delete an existing cache in --cache-dir first"),
    Flag("extract.decode_workers", "video decoding threads", name="workers"),
]
# The flags that make a run's configuration (train, crossval), by argument group.
RUN_FLAGS = {
    "data and model": [
        Flag("data.cache_dir", "the cache written by vidcls extract (or data.cache_dir in --config)"),
        Flag("data.targets", "manifest keys to predict, one output head each: label, or verb,noun for EPIC-style clips"),
        Flag("model.name", "attention_lstm, bilstm, gru, transformer or mean_pool", name="model"),
        Flag("model.init_from", "start from a trained run's weights (same model; any frame count: train on few "
             "frames, then many)", metavar="RUN_DIR"),
    ],
    "optimisation": [
        Flag("train.epochs"), Flag("train.batch_size", "global batch size, split across replicas"),
        Flag("train.learning_rate", "peak rate, after warmup"), Flag("train.weight_decay", "AdamW's decoupled weight decay"),
        Flag("train.warmup_epochs", "linear warmup, then cosine decay to 0"),
        Flag("train.gradient_clip", "global gradient norm clip (0: off)"),
        Flag("train.grad_accum_steps", "average the gradients of N batches per update"),
        Flag("train.early_stopping_patience", "epochs without a better val loss"), Flag("train.seed"),
    ],
    "loss and imbalance": [
        Flag("train.use_focal_loss", "focal loss instead of cross-entropy (hard, rare classes weigh more)"),
        Flag("train.focal_gamma"), Flag("train.focal_alpha"),
        Flag("train.use_class_weights", "balanced class weights, applied as per-sample weights"),
        Flag("train.label_smoothing"),
    ],
    "devices, precision, checkpoints": [
        Flag("train.xla", "compile training steps with XLA"),
        Flag("train.devices", "replicas: the first N GPUs (0: all), or without GPUs N logical CPU devices"),
        Flag("train.deterministic", "deterministic ops: the same --seed gives the same history.csv"),
        Flag("train.checkpoint_every", "also keep checkpoints/epoch_NNN.keras every N epochs", metavar="N"),
    ],
}
FINETUNE_FLAGS = [
    Flag("data.cache_dir", "features of the new domain (same backbone and labels)", required=True),
    Flag("model.lora_alpha", "adapter scale alpha / rank (0: alpha = rank)"),
    Flag("train.epochs"), Flag("train.learning_rate"), Flag("train.batch_size"),
]


def add_flags(parser, flags: list[Flag]) -> None:
    """One argparse option per flag; absent flags are None, so a `--config` file's value
    is not overwritten by a default."""
    for flag in flags:
        section, _, field_name = flag.key.partition(".")
        section_class = _section_class(section)
        expected = field_types(section_class)[field_name]
        if typing.get_origin(expected) in (typing.Union, type(int | None)):
            expected = next(arg for arg in typing.get_args(expected) if arg is not type(None))
        default = _default(section_class, field_name)
        help_text = flag.help
        if flag.show_default and default not in (None, "") and expected is not bool:
            shown = ",".join(default) if isinstance(default, list) else default
            help_text = f"{help_text} (default {shown})" if help_text else f"default {shown}"
        option = "--" + flag.dest.replace("_", "-")
        if expected is bool:
            parser.add_argument(option, dest=flag.dest, action="store_true", default=None, help=help_text)
        else:
            parser.add_argument(option, dest=flag.dest, type=expected if expected in (int, float) else str,
                                metavar=flag.metavar, help=help_text, required=flag.required)


def add_dataclass_flags(parser, options_class) -> None:
    """One option per field of the dataclass `options_class`, whose metadata holds `help`
    (and `metavar`); the default is the field's."""
    types = typing.get_type_hints(options_class)
    for field in dataclasses.fields(options_class):
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=types[field.name],
                            default=field.default, metavar=field.metadata.get("metavar"),
                            help=f"{field.metadata['help']} (default {field.default})")


def flag_values(args: argparse.Namespace, flags: list[Flag]) -> dict[str, Any]:
    """`{"section.field": value}` of the flags given on the command line."""
    return {flag.key: getattr(args, flag.dest) for flag in flags if getattr(args, flag.dest, None) is not None}


def _section_class(section: str):
    if section not in SECTIONS:
        raise ValueError(f"Flag key section '{section}' is not one of {sorted(SECTIONS)}")
    section_class = SECTIONS[section]
    return typing.get_type_hints(ExperimentConfig)[section] if isinstance(section_class, str) else section_class


def _default(section_class, field_name: str):
    field = next(field for field in dataclasses.fields(section_class) if field.name == field_name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
