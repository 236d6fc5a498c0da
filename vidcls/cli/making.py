"""`vidcls synth | extract | train | crossval | finetune | sweep | demo`: the commands that
make videos, features and models. Parsing and printing only."""

from __future__ import annotations

import argparse
import sys

from vidcls.cli.output import add_json_flag, json_output, print_result
from vidcls.errors import VidclsError
from vidcls.flags import EXTRACT_FLAGS, FINETUNE_FLAGS, RUN_FLAGS, add_flags, flag_values


def add_synth(commands) -> None:
    command = commands.add_parser("synth", help="write a labelled set of synthetic videos whose classes differ in time")
    command.add_argument("out_dir", metavar="OUT_DIR")
    command.add_argument("--num-videos", type=int, default=240, help="videos in all, spread evenly over the classes")
    command.add_argument("--seed", type=int, default=0, help="the same seed writes the same videos")
    command.set_defaults(handler=_synth)


def _synth(args) -> int:
    from vidcls.videos import SYNTH_CLASSES, synthesize

    result = synthesize(args.out_dir, num_videos=args.num_videos, seed=args.seed, progress=not args.quiet)
    print(f"wrote {len(result.videos)} videos in {len(SYNTH_CLASSES)} classes ({', '.join(SYNTH_CLASSES)}) to {result.out_dir}")
    return 0


def add_extract(commands) -> None:
    from vidcls.features import BACKBONES

    command = commands.add_parser("extract", help="decode videos and cache backbone features as .npy",
                                  epilog=f"backbones: {', '.join(BACKBONES)}")
    command.add_argument("--config", help="YAML file whose `extract:` section sets these keys (a recipe, e.g. "
                         "configs/fight_surveillance.yaml)")
    command.add_argument("--set", action="append", default=[], metavar="extract.KEY=VALUE",
                         help="override a key, e.g. --set extract.grid=2 (repeatable)")
    add_flags(command, EXTRACT_FLAGS)
    add_json_flag(command, "the summary")
    command.set_defaults(handler=_extract)


def _extract(args) -> int:
    from vidcls import api

    flags = {key.partition(".")[2]: value for key, value in flag_values(args, EXTRACT_FLAGS).items()}
    with json_output(args):
        summary = api.extract(args.config, overrides=args.set, progress=not args.quiet, **flags)
    print_result(args, summary)
    if summary.failures and not summary.failures_allowed:
        print(f"vidcls extract: error: {len(summary.failures)} video(s) could not be read "
              "(see above); pass --allow-failures to accept a cache without them", file=sys.stderr)
        return 1
    return 0


def add_train(commands) -> None:
    command = commands.add_parser("train", help="train a temporal classifier on a feature cache")
    command.add_argument("--run-dir", required=True,
                         help="where the run goes; the same command on a finished run does nothing, on an interrupted "
                              "one it resumes")
    command.add_argument("--resume", action="store_true",
                         help="continue the interrupted run in --run-dir with its own config.yaml (no other flags needed)")
    _add_run_flags(command)
    add_json_flag(command, "the result")
    command.set_defaults(handler=_train)


def _add_run_flags(command) -> None:
    command.add_argument("--config", help="YAML file with data/model/train/augment sections")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override any config key, e.g. --set train.weight_decay=1e-3 (repeatable)")
    for title, flags in RUN_FLAGS.items():
        add_flags(command.add_argument_group(title), flags)
    precision = command.add_argument_group("precision")
    precision.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                           help="mixed_float16 (pays off on GPUs; slower on CPU)")
    precision.add_argument("--precision", help="auto | float32 | float16 | bfloat16 (mixed_float16 / mixed_bfloat16); "
                           "auto: float16 on GPUs with tensor cores, bfloat16 on CPUs with AMX/AVX512-BF16, else "
                           "float32 (default)")


def _run_settings(args) -> dict:
    """`{"section.key": value}` of the flags of RUN_FLAGS and the precision flags given."""
    flags = {key: value for flags in RUN_FLAGS.values() for key, value in flag_values(args, flags).items()}
    if args.mixed_precision is not None:
        if args.precision is not None:
            raise VidclsError("Expected --mixed-precision / --no-mixed-precision or --precision, not both")
        flags["train.precision"] = "mixed_float16" if args.mixed_precision else "float32"
    if args.precision is not None:
        flags["train.precision"] = args.precision
    return flags


def _train(args) -> int:
    from vidcls import api

    with json_output(args):
        result = api.train(args.run_dir, args.config, resume=args.resume, overrides=args.set, progress=not args.quiet,
                           **_run_settings(args))
    print_result(args, result)
    return 0


def add_crossval(commands) -> None:
    command = commands.add_parser(
        "crossval", help="K-fold cross-validation (stratified; grouped by a manifest key): mean ± std, out-of-fold report")
    command.add_argument("--out-dir", required=True, help="one run directory per fold, summary.md, crossval.json")
    command.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    command.add_argument("--group-by", metavar="KEY",
                         help="manifest key whose clips stay in one fold, e.g. group, video, participant_id "
                              "(default: data.group_by)")
    command.add_argument("--repeats", type=int, default=1, metavar="R",
                         help="R different fold assignments (and training seeds), pooled (default 1)")
    command.add_argument("--fold-seed", type=int, help="seed of the first fold assignment (default: train.seed)")
    command.add_argument("--no-baseline", action="store_true",
                         help="skip the logistic-regression baseline on the same folds")
    _add_run_flags(command)
    add_json_flag(command, "the summary (crossval.json)")
    command.set_defaults(handler=_crossval)


def _crossval(args) -> int:
    from vidcls import api

    with json_output(args):
        result = api.crossval(args.out_dir, args.config, folds=args.folds, group_by=args.group_by, repeats=args.repeats,
                              fold_seed=args.fold_seed, baseline=not args.no_baseline, overrides=args.set,
                              progress=not args.quiet, **_run_settings(args))
    print_result(args, result)
    return 0


def add_finetune(commands) -> None:
    command = commands.add_parser("finetune", help="adapt a trained run to new data with LoRA (everything else frozen)")
    command.add_argument("--from", dest="source", required=True, metavar="RUN_DIR", help="the trained run to adapt")
    command.add_argument("--run-dir", required=True, help="where the adapted run goes")
    command.add_argument("--lora-rank", type=int, default=8, help="adapter rank (default 8; model.lora_rank)")
    add_flags(command, FINETUNE_FLAGS)
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override any config key of the source run, e.g. --set train.weight_decay=0 (repeatable)")
    command.set_defaults(handler=_finetune)


def _finetune(args) -> int:
    from vidcls.config import load_experiment_config
    from vidcls.run_dir import RunDir
    from vidcls.training import train

    source = RunDir(args.source)
    source.require_trained()
    flags = {"model.init_from": args.source, "model.lora_rank": args.lora_rank, **flag_values(args, FINETUNE_FLAGS)}
    config = load_experiment_config(None, flags, args.set, base=source.config())
    print(train(config, args.run_dir, progress=not args.quiet).describe())
    return 0


def add_sweep(commands) -> None:
    command = commands.add_parser("sweep", help="grid, random, Bayesian or Hyperband search (KerasTuner) over config keys; "
                                  "each trial is a normal run")
    command.add_argument("--config", required=True, help="the sweep file (YAML; see vidcls/training/sweep.py)")
    command.add_argument("--out-dir", required=True, help="trials, sweep_results.csv/.md and best_config.yaml go here")
    command.set_defaults(handler=_sweep)


def _sweep(args) -> int:
    from vidcls.training import run_sweep

    print(run_sweep(args.config, args.out_dir, progress=not args.quiet).describe())
    return 0


def add_demo(commands) -> None:
    command = commands.add_parser("demo", help="synth -> extract -> train -> evaluate -> export -> predict, offline")
    command.add_argument("--work-dir", default="demo_output", help="where the videos, cache, run and exports go")
    command.set_defaults(handler=_demo)


def _demo(args) -> int:
    from vidcls.demo import run_demo

    run_demo(args.work_dir, progress=not args.quiet)
    return 0
