"""`vidcls evaluate | compare | export | predict | serve`: the commands that use trained
runs. Parsing and printing only."""

from __future__ import annotations

import dataclasses
import sys

from vidcls.cli.output import add_json_flag, json_output, print_result, to_json
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
    command.add_argument("--target-recall", type=float, default=0.9,
                         help="two classes: report the threshold reaching this recall")
    command.add_argument("--target-fpr", type=float, default=0.05,
                         help="two classes: report the threshold keeping false positives within this rate")
    add_json_flag(command, "the metrics (metrics.json)")
    command.set_defaults(handler=_evaluate)


def _evaluate(args) -> int:
    from vidcls import api

    with json_output(args):
        metrics = api.evaluate(args.run_dir, args.split, tta=args.tta, out_dir=args.out_dir,
                               positive_class=args.positive_class, target_recall=args.target_recall,
                               target_fpr=args.target_fpr, cache_dir=args.cache_dir)
    print_result(args, metrics)
    return 0


def add_compare(commands) -> None:
    command = commands.add_parser("compare", help="one table of several runs' metrics, settings and costs")
    command.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    command.add_argument("--csv", help="also write the table as CSV here")
    add_json_flag(command, "the table's rows (a list of objects)")
    command.set_defaults(handler=_compare)


def _compare(args) -> int:
    from vidcls.evaluation import compare_runs, markdown_table, write_csv

    with json_output(args):
        rows = compare_runs(args.run_dirs)
    print(to_json(rows) if args.json else markdown_table(rows))
    if args.csv:
        write_csv(rows, args.csv)
    return 0


def add_export(commands) -> None:
    command = commands.add_parser("export", help="SavedModel + TFLite, checked in the LiteRT interpreter")
    command.add_argument("--run-dir", required=True, help="a trained run (vidcls train)")
    command.add_argument("--quantize", default="none",
                         help="comma list of TFLite variants besides float32: float16 (weights), dynamic (int8 weights)")
    command.add_argument("--end-to-end", action="store_true",
                         help="also a model over raw frames [B, T, S, S, 3] uint8 with the backbone inside")
    command.add_argument("--streaming", action="store_true",
                         help="also export/streaming/: a one-frame encoder and a head over T features per variant, "
                              "for phones (see vidcls stream)")
    command.add_argument("--window", type=float, metavar="SECONDS",
                         help="--streaming: the seconds T frames span (default: the training clips' median length)")
    command.add_argument("--stride", type=float, default=0.5, metavar="SECONDS",
                         help="--streaming: seconds between windows, the stream's default and its check's (default 0.5)")
    add_json_flag(command, "the report (export_report.json)")
    command.set_defaults(handler=_export)


def _export(args) -> int:
    from vidcls import api

    with json_output(args):
        report = api.export(args.run_dir, quantize=args.quantize, end_to_end=args.end_to_end, streaming=args.streaming,
                            window=args.window, stride=args.stride)
    print_result(args, report)
    return 0


def add_stream(commands) -> None:
    command = commands.add_parser("stream", help="run the streaming TFLite pair on a video frame by frame, as a phone "
                                  "app does (LiteRT), printing events as they happen")
    command.add_argument("--run-dir", required=True, help="a trained run (vidcls train)")
    command.add_argument("video", metavar="VIDEO")
    command.add_argument("--variant", default="float32", help="float32, float16 or dynamic_int8 (as exported)")
    command.add_argument("--window", type=float, metavar="SECONDS",
                         help="seconds T frames span (default: the exported window, the training clips' length)")
    command.add_argument("--stride", type=float, metavar="SECONDS", help="seconds between windows (default: the export's)")
    command.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    add_json_flag(command, "the result at the end")
    command.set_defaults(handler=_stream)


def _stream(args) -> int:
    from vidcls.exporting import StreamRunner
    from vidcls.run_dir import RunDir

    runner = StreamRunner(RunDir(args.run_dir).export_dir / "streaming", args.variant, args.threads, args.window)
    printer = None if args.json else _EventPrinter()
    with json_output(args):
        result = runner.run(args.video, args.stride, on_window=printer)
    if args.json:
        print(to_json(result))
    else:
        printer.close()
        latency = result["latency"]
        print(f"{args.video}: {result['label']} ({result['score']:.3f}) over {len(result['windows'])} windows; "
              f"encoder {latency['encoder_ms_per_frame']:.1f} ms/frame, head {latency['head_ms_per_window']:.2f} "
              f"ms/window, frame interval {latency['frame_interval_ms']:.0f} ms: {latency['real_time_factor']:.1f}x "
              f"real time ({args.variant}, {args.threads} thread{'s' if args.threads > 1 else ''})")
    return 0


class _EventPrinter:
    """Prints an event (a run of windows with one label) as soon as the next label starts."""

    def __init__(self):
        self.event = None

    def __call__(self, window: dict) -> None:
        if self.event and self.event["label"] == window["label"]:
            self.event.update(end_sec=window["end_sec"], scores=self.event["scores"] + [window["score"]])
            return
        self.close()
        self.event = {"label": window["label"], "start_sec": window["start_sec"], "end_sec": window["end_sec"],
                      "scores": [window["score"]]}
        print(f"  {window['start_sec']:8.2f} s           {window['label']} begins ({window['score']:.3f})", flush=True)

    def close(self) -> None:
        if self.event:
            event = self.event
            print(f"  {event['start_sec']:8.2f}-{event['end_sec']:8.2f} s  {event['label']}  (max "
                  f"{max(event['scores']):.3f}, {len(event['scores'])} windows)", flush=True)
        self.event = None


def add_predict(commands) -> None:
    command = commands.add_parser("predict", help="classify video files with a trained run")
    command.add_argument("--run-dir", required=True, help="a trained run (vidcls train)")
    command.add_argument("videos", nargs="+", metavar="VIDEO")
    command.add_argument("--weights", help="backbone weights file, if the cache's has moved")
    add_json_flag(command, "one JSON list of the results")
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
    with json_output(args):
        predictor = Predictor(args.run_dir, weights=args.weights)
    results, failed = [], 0
    for video in args.videos:
        try:
            with json_output(args):
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
        print(to_json(results))
    return 1 if failed else 0


def add_serve(commands) -> None:
    command = commands.add_parser("serve", help="an HTTP API for a trained run: POST /predict, GET /healthz, GET /metadata")
    command.add_argument("--run-dir", required=True, help="a trained run (vidcls train)")
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    command.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
    from vidcls.serving import Limits

    add_dataclass_flags(command, Limits)
    command.add_argument("--weights", help="backbone weights file, if the cache's has moved")
    command.set_defaults(handler=_serve)


def _serve(args) -> int:
    from vidcls.serving import Limits, serve

    limits = Limits(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Limits)})
    serve(args.run_dir, host=args.host, port=args.port, weights=args.weights, limits=limits)
    return 0
