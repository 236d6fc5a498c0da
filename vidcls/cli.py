"""Command line: argument parsing and printing only; each command calls one stage function
and prints what it returns (`describe()` of its result).

Flags that set config keys come from tables (vidcls/flags.py): their types and defaults
are the config dataclasses'. TensorFlow is imported by the commands that need it, never by
`vidcls --help`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

from vidcls import __version__
from vidcls.errors import VidclsError
from vidcls.flags import EXTRACT_FLAGS, FINETUNE_FLAGS, RUN_FLAGS, add_dataclass_flags, add_flags, flag_values

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _configure_logging()
    try:
        return args.handler(args) or 0
    except VidclsError as error:
        print(f"vidcls {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vidcls {args.command}: interrupted", file=sys.stderr)
        return 130


def _configure_logging() -> None:
    """vidcls's own messages on stderr; other libraries' loggers are left alone."""
    logger = logging.getLogger("vidcls")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("vidcls: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidcls", description="Train video action classifiers on cached CNN features; export to TFLite.")
    parser.add_argument("--version", action="version", version=f"vidcls {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_add_synth, _add_extract, _add_train, _add_crossval, _add_evaluate, _add_compare, _add_sweep,
                _add_finetune, _add_export, _add_predict, _add_serve, _add_demo):
        add(commands)
    return parser


def _add_synth(commands) -> None:
    command = commands.add_parser("synth", help="write a labelled set of synthetic videos whose classes differ in time")
    command.add_argument("out_dir", metavar="OUT_DIR")
    command.add_argument("--num-videos", type=int, default=240)
    command.add_argument("--seed", type=int, default=0)
    command.set_defaults(handler=_synth)


def _synth(args) -> int:
    from vidcls.videos import SYNTH_CLASSES, synthesize

    result = synthesize(args.out_dir, num_videos=args.num_videos, seed=args.seed, progress=True)
    print(f"wrote {len(result.videos)} videos in {len(SYNTH_CLASSES)} classes ({', '.join(SYNTH_CLASSES)}) to {result.out_dir}")
    return 0


def _add_extract(commands) -> None:
    from vidcls.features import BACKBONES

    command = commands.add_parser("extract", help="decode videos and cache backbone features as .npy",
                                  epilog=f"backbones: {', '.join(BACKBONES)}")
    command.add_argument("--config", help="YAML file whose `extract:` section sets these keys (a recipe, e.g. "
                         "configs/fight_surveillance.yaml)")
    command.add_argument("--set", action="append", default=[], metavar="extract.KEY=VALUE",
                         help="override a key, e.g. --set extract.grid=2 (repeatable)")
    add_flags(command, EXTRACT_FLAGS)
    command.set_defaults(handler=_extract)


def _extract(args) -> int:
    from vidcls.config import load_feature_config
    from vidcls.features import extract

    flags = {key.partition(".")[2]: value for key, value in flag_values(args, EXTRACT_FLAGS).items()}
    config = load_feature_config(args.config, flags, args.set)
    if not config.data_dir and not config.annotations:
        raise VidclsError("Expected --data-dir (a folder per class) or --annotations (a CSV of clips); received neither")
    if not config.cache_dir:
        raise VidclsError("Expected --cache-dir (or cache_dir in the --config file's extract section); received none")
    summary = extract(config, progress=True)
    print(summary.describe())
    if summary.failures and not config.allow_failures:
        print(f"vidcls extract: error: {len(summary.failures)} video(s) could not be read "
              "(see above); pass --allow-failures to accept a cache without them", file=sys.stderr)
        return 1
    return 0


def _add_train(commands) -> None:
    command = commands.add_parser("train", help="train a temporal classifier on a feature cache")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--resume", action="store_true",
                         help="continue the interrupted run in --run-dir with its own config.yaml (no other flags needed)")
    _add_run_flags(command)
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
    precision.add_argument("--precision", help="float32 | float16 | bfloat16 (mixed_float16 / mixed_bfloat16)")


def _run_config(args, base=None):
    """The run configuration from --config, the flags of RUN_FLAGS and --set."""
    from vidcls.config import load_experiment_config

    flags = {key: value for flags in RUN_FLAGS.values() for key, value in flag_values(args, flags).items()}
    if args.mixed_precision is not None:
        if args.precision is not None:
            raise VidclsError("Expected --mixed-precision / --no-mixed-precision or --precision, not both")
        flags["train.precision"] = "mixed_float16" if args.mixed_precision else "float32"
    if args.precision is not None:
        from vidcls.training import normalise_precision

        flags["train.precision"] = normalise_precision(args.precision)
    config = load_experiment_config(args.config, flags, args.set, base=base)
    if not config.data.cache_dir:
        raise VidclsError("Expected --cache-dir (or data.cache_dir in --config); received none")
    return config


def _train(args) -> int:
    from vidcls.run_dir import RunDir
    from vidcls.training import train

    base = None
    if args.resume:
        run = RunDir(args.run_dir)
        if not run.config_path.is_file():
            raise VidclsError(f"--resume: {run.root} holds no run to resume ({run.config_path} is missing)")
        base = run.config()
    print(train(_run_config(args, base), args.run_dir, progress=True).describe())
    return 0


def _add_crossval(commands) -> None:
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
    command.set_defaults(handler=_crossval)


def _crossval(args) -> int:
    from vidcls.training import crossval

    result = crossval(_run_config(args), args.out_dir, num_folds=args.folds, group_by=args.group_by,
                      repeats=args.repeats, seed=args.fold_seed, baseline=not args.no_baseline, progress=True)
    print(result.describe())
    return 0


def _add_evaluate(commands) -> None:
    command = commands.add_parser("evaluate", help="metrics, predictions, figures and report.md of a run (or an ensemble)")
    command.add_argument("--run-dir", required=True, action="append",
                         help="a trained run; repeat it to evaluate the ensemble (mean probabilities) of several")
    command.add_argument("--split", default="test", help="train | val | test")
    command.add_argument("--cache-dir", help="score every clip of this cache instead (e.g. other scenes, extracted "
                         "with the run's settings); results in RUN_DIR/eval_<cache name>")
    command.add_argument("--tta", type=int, default=1, metavar="N", help="average N temporal crops per clip")
    command.add_argument("--out-dir", help="default: RUN_DIR/eval (one run) or FIRST_RUN/eval_ensemble")
    command.add_argument("--positive-class", help="two classes: the event to detect (default: the rarer one)")
    command.add_argument("--target-recall", type=float, default=0.9, help="two classes: report the threshold reaching this recall")
    command.add_argument("--target-fpr", type=float, default=0.05,
                         help="two classes: report the threshold keeping false positives within this rate")
    command.set_defaults(handler=_evaluate)


def _evaluate(args) -> int:
    from vidcls.evaluation import describe_metrics, evaluate

    runs = args.run_dir if len(args.run_dir) > 1 else args.run_dir[0]
    print(describe_metrics(evaluate(runs, args.split, tta=args.tta, out_dir=args.out_dir,
                                    positive_class=args.positive_class, target_recall=args.target_recall,
                                    target_fpr=args.target_fpr, cache_dir=args.cache_dir)))
    return 0


def _add_compare(commands) -> None:
    command = commands.add_parser("compare", help="one table of several runs' metrics, settings and costs")
    command.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    command.add_argument("--csv", help="also write the table as CSV here")
    command.set_defaults(handler=_compare)


def _compare(args) -> int:
    from vidcls.evaluation import compare_runs, markdown_table, write_csv

    rows = compare_runs(args.run_dirs)
    print(markdown_table(rows))
    if args.csv:
        write_csv(rows, args.csv)
    return 0


def _add_export(commands) -> None:
    command = commands.add_parser("export", help="SavedModel + TFLite, checked in the LiteRT interpreter")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--quantize", default="none",
                         help="comma list of TFLite variants besides float32: float16, dynamic (int8 weights), int8 (full integer)")
    command.add_argument("--end-to-end", action="store_true",
                         help="also a model over raw frames [B, T, S, S, 3] uint8 with the backbone inside")
    command.set_defaults(handler=_export)


def _export(args) -> int:
    from vidcls.export import describe_export, export, export_end_to_end, parse_quantize

    report = export(args.run_dir, variants=parse_quantize(args.quantize))
    if args.end_to_end:
        report = {**report, "end_to_end": export_end_to_end(args.run_dir)}
    print(describe_export(report, args.run_dir))
    return 0


def _add_predict(commands) -> None:
    command = commands.add_parser("predict", help="classify video files with a trained run")
    command.add_argument("--run-dir", required=True)
    command.add_argument("videos", nargs="+", metavar="VIDEO")
    command.add_argument("--weights", help="backbone weights file, if the cache's has moved")
    command.add_argument("--json", action="store_true", help="print one JSON list")
    command.add_argument("--window", type=float, metavar="SECONDS",
                         help="score long videos in windows of this many seconds (T frames each) and merge events")
    command.add_argument("--stride", type=float, metavar="SECONDS", help="seconds between window starts (default: the window)")
    command.add_argument("--max-windows", type=int, default=0, metavar="N",
                         help="refuse a window and stride that make more windows than this per video (default 0: "
                              "no bound; `serve` bounds it)")
    command.set_defaults(handler=_predict)


def _predict(args) -> int:
    from vidcls.features import VideoReadError
    from vidcls.serving import Predictor, describe_prediction

    if args.stride and not args.window:
        raise VidclsError("--stride needs --window (the window length in seconds)")
    predictor = Predictor(args.run_dir, weights=args.weights)
    results, failed = [], 0
    for video in args.videos:
        try:
            if args.window:
                result = predictor.predict_windows(video, args.window, args.stride or args.window, args.max_windows)
            else:
                result = predictor.predict(video)
        except VideoReadError as error:
            failed += 1
            result = {"video": video, "error": str(error)}
            print(f"vidcls predict: error: {video}: {error}", file=sys.stderr)
        results.append(result)
        if not args.json and "label" in result:
            print(describe_prediction(result))
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _add_finetune(commands) -> None:
    command = commands.add_parser("finetune", help="adapt a trained run to new data with LoRA (everything else frozen)")
    command.add_argument("--from", dest="source", required=True, metavar="RUN_DIR", help="the trained run to adapt")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--lora-rank", type=int, default=8, help="adapter rank (default 8; model.lora_rank)")
    add_flags(command, FINETUNE_FLAGS)
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    command.set_defaults(handler=_finetune)


def _finetune(args) -> int:
    from vidcls.config import load_experiment_config
    from vidcls.run_dir import RunDir
    from vidcls.training import train

    source = RunDir(args.source)
    source.require_trained()
    flags = {"model.init_from": args.source, "model.lora_rank": args.lora_rank, **flag_values(args, FINETUNE_FLAGS)}
    config = load_experiment_config(None, flags, args.set, base=source.config())
    print(train(config, args.run_dir, progress=True).describe())
    return 0


def _add_sweep(commands) -> None:
    command = commands.add_parser("sweep", help="grid, random, Bayesian or Hyperband search (KerasTuner) over config keys; each trial is a normal run")
    command.add_argument("--config", required=True, help="the sweep file (YAML; see vidcls/training/sweep.py)")
    command.add_argument("--out-dir", required=True, help="trials, sweep_results.csv/.md and best_config.yaml go here")
    command.set_defaults(handler=_sweep)


def _sweep(args) -> int:
    from vidcls.training import describe_sweep, run_sweep

    print(describe_sweep(run_sweep(args.config, args.out_dir, progress=True), args.out_dir))
    return 0


def _add_serve(commands) -> None:
    command = commands.add_parser("serve", help="an HTTP API for a trained run: POST /predict, GET /healthz, GET /metadata")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    command.add_argument("--port", type=int, default=8000)
    from vidcls.serving import Limits

    add_dataclass_flags(command, Limits)
    command.add_argument("--weights", help="backbone weights file, if the cache's has moved")
    command.set_defaults(handler=_serve)


def _serve(args) -> int:
    from vidcls.serving import Limits, serve

    limits = Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Limits)})
    serve(args.run_dir, host=args.host, port=args.port, weights=args.weights, limits=limits)
    return 0


def _add_demo(commands) -> None:
    command = commands.add_parser("demo", help="synth -> extract -> train -> evaluate -> export -> predict, offline")
    command.add_argument("--work-dir", default="demo_output")
    command.set_defaults(handler=_demo)


def _demo(args) -> int:
    from vidcls.demo import run_demo

    run_demo(args.work_dir)
    return 0
