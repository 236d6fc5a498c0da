"""`vidcls evaluate | compare | export | predict | serve`: the commands that use trained
runs. Parsing and printing only."""

from __future__ import annotations

import dataclasses
import json
import sys

from vidcls.errors import VidclsError
from vidcls.flags import add_dataclass_flags


def add_evaluate(commands) -> None:
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
    print(evaluate(runs, args.split, tta=args.tta, out_dir=args.out_dir, positive_class=args.positive_class,
                   target_recall=args.target_recall, target_fpr=args.target_fpr, cache_dir=args.cache_dir).describe())
    return 0


def add_compare(commands) -> None:
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


def add_export(commands) -> None:
    command = commands.add_parser("export", help="SavedModel + TFLite, checked in the LiteRT interpreter")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--quantize", default="none",
                         help="comma list of TFLite variants besides float32: float16, dynamic (int8 weights), int8 (full integer)")
    command.add_argument("--end-to-end", action="store_true",
                         help="also a model over raw frames [B, T, S, S, 3] uint8 with the backbone inside")
    command.set_defaults(handler=_export)


def _export(args) -> int:
    from vidcls.export import ExportReport, export, export_end_to_end, parse_quantize

    report = export(args.run_dir, variants=parse_quantize(args.quantize))
    if args.end_to_end:
        report = ExportReport({**report, "end_to_end": export_end_to_end(args.run_dir)}, args.run_dir)
    print(report.describe())
    return 0


def add_predict(commands) -> None:
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
        if not args.json and "label" in result:
            print(result.describe())
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0


def add_serve(commands) -> None:
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
