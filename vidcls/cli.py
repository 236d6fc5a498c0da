"""Command line: argument parsing only; each command calls one stage function.

TensorFlow is imported by the commands that need it, never by `vidcls --help`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from vidcls import __version__
from vidcls.errors import VidclsError


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
    for add in (_add_synth, _add_extract, _add_train, _add_crossval, _add_evaluate, _add_compare, _add_sweep, _add_finetune, _add_export, _add_predict, _add_serve, _add_demo):
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


# Flags of `vidcls extract` and the FeatureConfig keys they set (defaults live there).
EXTRACT_FLAGS = {
    "data_dir": "data_dir", "annotations": "annotations", "cache_dir": "cache_dir", "backbone": "backbone",
    "weights": "weights", "num_frames": "num_frames", "image_size": "image_size", "batch_size": "batch_size",
    "seed": "seed", "allow_failures": "allow_failures", "shard": "shard", "overwrite": "overwrite",
    "workers": "decode_workers", "streams": "streams", "difference_gap": "difference_gap",
    "difference_gain": "difference_gain", "grid": "grid",
}


def _add_extract(commands) -> None:
    from vidcls.config import FeatureConfig
    from vidcls.features import BACKBONES

    defaults = FeatureConfig()
    command = commands.add_parser("extract", help="decode videos and cache backbone features as .npy")
    command.add_argument("--config", help="YAML file whose `extract:` section sets these keys (a recipe, e.g. "
                         "configs/fight_surveillance.yaml)")
    command.add_argument("--set", action="append", default=[], metavar="extract.KEY=VALUE",
                         help="override a key, e.g. --set extract.grid=2 (repeatable)")
    command.add_argument("--data-dir", help="ROOT/<class>/<video> tree, or the folder --annotations paths are relative to")
    command.add_argument("--annotations", help="CSV of clips: path,label (or verb,noun) [,start_sec,end_sec | start_frame,end_frame]")
    command.add_argument("--cache-dir", help="where the features go (required, here or in --config)")
    command.add_argument("--backbone", help=f"one of: {', '.join(BACKBONES)} (default {defaults.backbone})")
    command.add_argument("--weights", help=f"imagenet | none | PATH to a Keras weights file (default {defaults.weights})")
    command.add_argument("--num-frames", type=int, help=f"frames sampled uniformly over each video (default {defaults.num_frames})")
    command.add_argument("--image-size", type=int, help="default: the backbone's native size")
    command.add_argument("--streams", help="comma list of images embedded per frame: appearance, frame_difference "
                         f"(default {','.join(defaults.streams)})")
    command.add_argument("--difference-gap", type=int,
                         help=f"frame_difference: frames between the two differenced images (default {defaults.difference_gap})")
    command.add_argument("--difference-gain", type=float,
                         help=f"frame_difference: |difference| x this, clipped to 255 (default {defaults.difference_gain})")
    command.add_argument("--grid", type=int, help="pool the last feature map over GRID x GRID cells instead of the "
                         f"whole frame (default {defaults.grid})")
    command.add_argument("--batch-size", type=int, help=f"images per backbone call (default {defaults.batch_size})")
    command.add_argument("--seed", type=int, help="initialises the backbone for --weights none")
    command.add_argument("--allow-failures", action="store_true", default=None, help="exit 0 even if some videos are unreadable")
    command.add_argument("--shard", metavar="I/N",
                         help="embed only every N-th video starting at the I-th, so N processes or machines share one dataset")
    command.add_argument("--overwrite", action="store_true", default=None, help="delete an existing cache in --cache-dir first")
    command.add_argument("--workers", type=int, help=f"video decoding threads (default {defaults.decode_workers})")
    command.set_defaults(handler=_extract)


def _extract(args) -> int:
    from vidcls.config import load_feature_config
    from vidcls.features import extract

    config = load_feature_config(args.config, {key: getattr(args, name) for name, key in EXTRACT_FLAGS.items()}, args.set)
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


# Flags of `vidcls train` and the config keys they set.
TRAIN_FLAGS = {
    "cache_dir": "data.cache_dir", "targets": "data.targets", "model": "model.name", "init_from": "model.init_from",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "learning_rate": "train.learning_rate",
    "weight_decay": "train.weight_decay", "warmup_epochs": "train.warmup_epochs", "gradient_clip": "train.gradient_clip",
    "grad_accum_steps": "train.grad_accum_steps", "precision": "train.precision", "xla": "train.xla",
    "use_focal_loss": "train.use_focal_loss", "focal_gamma": "train.focal_gamma", "focal_alpha": "train.focal_alpha",
    "use_class_weights": "train.use_class_weights", "label_smoothing": "train.label_smoothing",
    "early_stopping_patience": "train.early_stopping_patience", "seed": "train.seed",
    "deterministic": "train.deterministic", "devices": "train.devices", "checkpoint_every": "train.checkpoint_every",
}


def _add_train(commands) -> None:
    command = commands.add_parser("train", help="train a temporal classifier on a feature cache")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--resume", action="store_true",
                         help="continue the interrupted run in --run-dir with its own config.yaml (no other flags needed)")
    _add_run_flags(command)
    command.set_defaults(handler=_train)


def _add_run_flags(command) -> None:
    """The flags that make a run's configuration: shared by train and crossval."""
    command.add_argument("--cache-dir", help="the cache written by vidcls extract (or data.cache_dir in --config)")
    command.add_argument("--config", help="YAML file with data/model/train/augment/export sections")
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override any config key, e.g. --set train.weight_decay=1e-3 (repeatable)")
    data = command.add_argument_group("data and model")
    data.add_argument("--targets", help="manifest keys to predict, one output head each: label (default), "
                      "or verb,noun for EPIC-style clips")
    data.add_argument("--model", help="attention_lstm (default), bilstm, gru, transformer or mean_pool")
    data.add_argument("--init-from", metavar="RUN_DIR",
                      help="start from a trained run's weights (same model; any frame count: train on few frames, then many)")
    optimisation = command.add_argument_group("optimisation")
    optimisation.add_argument("--epochs", type=int)
    optimisation.add_argument("--batch-size", type=int, help="global batch size, split across replicas")
    optimisation.add_argument("--learning-rate", type=float, help="peak rate, after warmup")
    optimisation.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay")
    optimisation.add_argument("--warmup-epochs", type=int, help="linear warmup, then cosine decay to 0")
    optimisation.add_argument("--gradient-clip", type=float, help="global gradient norm clip (0: off)")
    optimisation.add_argument("--grad-accum-steps", type=int, help="average the gradients of N batches per update")
    optimisation.add_argument("--early-stopping-patience", type=int, help="epochs without a better val loss")
    optimisation.add_argument("--seed", type=int)
    losses = command.add_argument_group("loss and imbalance")
    losses.add_argument("--use-focal-loss", action="store_true", default=None)
    losses.add_argument("--focal-gamma", type=float)
    losses.add_argument("--focal-alpha", type=float)
    losses.add_argument("--use-class-weights", action="store_true", default=None,
                        help="balanced class weights, applied as per-sample weights")
    losses.add_argument("--label-smoothing", type=float)
    runtime = command.add_argument_group("devices, precision, checkpoints")
    runtime.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                         help="mixed_float16 (pays off on GPUs; slower on CPU)")
    runtime.add_argument("--precision", help="float32 | float16 | bfloat16 (mixed_float16 / mixed_bfloat16)")
    runtime.add_argument("--xla", action="store_true", default=None, help="compile training steps with XLA")
    runtime.add_argument("--devices", type=int,
                         help="replicas: the first N GPUs (default: all), or without GPUs N logical CPU devices")
    runtime.add_argument("--deterministic", action="store_true", default=None,
                         help="deterministic ops: the same --seed gives the same history.csv")
    runtime.add_argument("--checkpoint-every", type=int, metavar="N", help="also keep checkpoints/epoch_NNN.keras every N epochs")


def _run_config(args, base=None):
    """The run configuration from --config, the flags of `_add_run_flags` and --set."""
    from vidcls.config import load_experiment_config

    flags = {key: getattr(args, name) for name, key in TRAIN_FLAGS.items()}
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

    base = None
    if args.resume:
        run = RunDir(args.run_dir)
        if not run.config_path.is_file():
            raise VidclsError(f"--resume: {run.root} holds no run to resume ({run.config_path} is missing)")
        base = run.config()
    config = _run_config(args, base)
    from vidcls.training import train

    result = train(config, args.run_dir, progress=True)
    if not result.already_done:
        print(f"trained {config.model.name} for {result.epochs_run} epochs in {result.seconds:.1f} s; "
              f"best val loss {result.best_val_loss}, val accuracy {result.best_val_accuracy}; run in {result.run_dir}")
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
    from vidcls.evaluation import evaluate

    runs = args.run_dir if len(args.run_dir) > 1 else args.run_dir[0]
    metrics = evaluate(runs, args.split, tta=args.tta, out_dir=args.out_dir, positive_class=args.positive_class,
                       target_recall=args.target_recall, target_fpr=args.target_fpr, cache_dir=args.cache_dir)
    for member, values in metrics.get("members", {}).items():
        print(f"  member {member}: accuracy {values['accuracy']:.4f}, macro F1 {values['macro_f1']:.4f}")
    subject = "action " if "targets" in metrics else ("ensemble " if "members" in metrics else "")
    print(f"{metrics['split']}: {subject}accuracy {metrics['accuracy']:.4f}, balanced accuracy "
          f"{metrics['balanced_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} on {metrics['num_samples']} clips")
    for target, values in metrics.get("targets", {}).items():
        print(f"  {target}: accuracy {values['accuracy']:.4f}, balanced accuracy {values['balanced_accuracy']:.4f}, "
              f"macro F1 {values['macro_f1']:.4f}")
    if metrics.get("binary", {}).get("roc_auc") is not None:
        binary = metrics["binary"]
        print(f"  {binary['positive_class']}: ROC AUC {binary['roc_auc']:.4f}, PR AUC {binary['pr_auc']:.4f}")
    default_out = (f"{args.run_dir[0]}/eval_{Path(args.cache_dir).resolve().name}" if args.cache_dir
                   else args.run_dir[0] + ("/eval" if len(args.run_dir) == 1 else "/eval_ensemble"))
    print(f"files and report.md in {args.out_dir or default_out}")
    return 0


def _add_compare(commands) -> None:
    command = commands.add_parser("compare", help="one table of several runs' metrics, settings and costs")
    command.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    command.add_argument("--csv", help="also write the table as CSV here")
    command.set_defaults(handler=_compare)


def _compare(args) -> int:
    from vidcls.evaluation import compare_runs, markdown_table

    rows = compare_runs(args.run_dirs)
    print(markdown_table(rows))
    if args.csv:
        import csv

        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
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
    from vidcls.export import export, export_end_to_end, parse_quantize

    report = export(args.run_dir, variants=parse_quantize(args.quantize))
    for variant in report["variants"]:
        print(f"{variant['name']}: {variant['path']} {variant['size_bytes']} bytes, top-1 agreement "
              f"{variant['top1_agreement']:.4f}, max |diff| {variant['max_abs_diff']:.2e}, "
              f"{variant['latency_ms']:.2f} ms/clip, ops {', '.join(variant['ops'])}")
    if args.end_to_end:
        entry = export_end_to_end(args.run_dir)
        print(f"end to end: {entry['path']} {entry['size_bytes']} bytes, top-1 agreement with vidcls predict "
              f"{entry['top1_agreement']:.4f} on {entry['checked_on_videos']} videos, max |diff| {entry['max_abs_diff']:.2e}, "
              f"{entry['latency_ms']:.1f} ms/clip")
    print(f"report: {args.run_dir}/export/export_report.json")
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
    from vidcls.serving import Predictor

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
        if not args.json and "events" in result:
            print(f"{video}: {result['label']} ({result['score']:.3f}) over {len(result['windows'])} windows")
            for event in result["events"]:
                print(f"  {event['start_sec']:8.2f}-{event['end_sec']:8.2f} s  {event['label']}  "
                      f"(mean {event['mean_score']:.3f}, max {event['max_score']:.3f}, {event['windows']} windows)")
        elif not args.json and "label" in result:
            print(f"{video}: {result['label']} ({result['score']:.3f})  {_scores_text(result)}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def _scores_text(result: dict) -> str:
    if "targets" in result:
        return "  ".join(f"{target}: {_scores_text(values)}" for target, values in result["targets"].items())
    return " ".join(f"{name}={p:.3f}" for name, p in result["probabilities"].items())


def _add_finetune(commands) -> None:
    command = commands.add_parser("finetune", help="adapt a trained run to new data with LoRA (everything else frozen)")
    command.add_argument("--from", dest="source", required=True, metavar="RUN_DIR", help="the trained run to adapt")
    command.add_argument("--cache-dir", required=True, help="features of the new domain (same backbone and labels)")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--lora-rank", type=int, default=8)
    command.add_argument("--lora-alpha", type=float, default=0.0, help="adapter scale alpha / rank (default: alpha = rank)")
    command.add_argument("--epochs", type=int)
    command.add_argument("--learning-rate", type=float)
    command.add_argument("--batch-size", type=int)
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    command.set_defaults(handler=_finetune)


def _finetune(args) -> int:
    from vidcls.config import load_experiment_config
    from vidcls.run_dir import RunDir
    from vidcls.training import train

    source = RunDir(args.source)
    source.require_trained()
    flags = {"data.cache_dir": args.cache_dir, "model.init_from": args.source, "model.lora_rank": args.lora_rank,
             "model.lora_alpha": args.lora_alpha, "train.epochs": args.epochs,
             "train.learning_rate": args.learning_rate, "train.batch_size": args.batch_size}
    config = load_experiment_config(None, flags, args.set, base=source.config())
    result = train(config, args.run_dir, progress=True)
    if not result.already_done:
        share = 100.0 * (result.trainable_parameters or 0) / max(result.parameters, 1)
        print(f"fine-tuned {config.model.name} with LoRA rank {args.lora_rank}: {result.trainable_parameters:,} trainable "
              f"parameters of {result.parameters:,} ({share:.2f}%), {result.epochs_run} epochs in {result.seconds:.1f} s; "
              f"best val accuracy {result.best_val_accuracy}; merged model in {result.run_dir}/best.keras")
    return 0


def _add_sweep(commands) -> None:
    command = commands.add_parser("sweep", help="grid, random, Bayesian or Hyperband search (KerasTuner) over config keys; each trial is a normal run")
    command.add_argument("--config", required=True, help="the sweep file (YAML; see vidcls/training/sweep.py)")
    command.add_argument("--out-dir", required=True, help="trials, sweep_results.csv/.md and best_config.yaml go here")
    command.set_defaults(handler=_sweep)


def _sweep(args) -> int:
    from vidcls.training import run_sweep

    rows = run_sweep(args.config, args.out_dir, progress=True)
    print((Path(args.out_dir) / "sweep_results.md").read_text())
    print(f"best: trial {rows[0]['trial']} ({rows[0]['run_dir']}); config in {args.out_dir}/best_config.yaml")
    return 0


def _add_serve(commands) -> None:
    command = commands.add_parser("serve", help="an HTTP API for a trained run: POST /predict, GET /healthz, GET /metadata")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    command.add_argument("--port", type=int, default=8000)
    command.add_argument("--max-upload-mb", type=float, default=200.0,
                         help="larger uploads are answered with 413, as soon as they pass the limit (default 200)")
    command.add_argument("--max-windows", type=int, default=200, metavar="N",
                         help="?window=&stride= making more windows than this per video get 422 (default 200)")
    command.add_argument("--idle-timeout", type=float, default=15.0, metavar="SECONDS",
                         help="an upload that sends nothing for this long gets 408 (default 15)")
    command.add_argument("--upload-timeout", type=float, default=300.0, metavar="SECONDS",
                         help="an upload that takes longer than this in all gets 408 (default 300)")
    command.add_argument("--max-concurrent", type=int, default=8, metavar="N",
                         help="uploads handled at once; more get 503 with Retry-After (default 8)")
    command.add_argument("--max-upload-disk-mb", type=float, default=0.0, metavar="MB",
                         help="temporary disk for all uploads at once; an upload that would pass it gets 503 "
                              "(default: twice --max-upload-mb)")
    command.add_argument("--weights", help="backbone weights file, if the cache's has moved")
    command.set_defaults(handler=_serve)


def _serve(args) -> int:
    from vidcls.serving import Limits, serve

    for name in ("max_upload_mb", "max_windows", "idle_timeout", "upload_timeout", "max_concurrent"):
        if not getattr(args, name) > 0:
            raise VidclsError(f"Expected --{name.replace('_', '-')} > 0; received {getattr(args, name)}")
    if args.max_upload_disk_mb and args.max_upload_disk_mb < args.max_upload_mb:
        raise VidclsError(f"Expected --max-upload-disk-mb >= --max-upload-mb ({args.max_upload_mb}), or 0 for twice "
                          f"it; received {args.max_upload_disk_mb}")
    limits = Limits(max_upload_mb=args.max_upload_mb, max_windows=args.max_windows, idle_timeout=args.idle_timeout,
                    upload_timeout=args.upload_timeout, max_concurrent=args.max_concurrent,
                    max_upload_disk_mb=args.max_upload_disk_mb)
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
