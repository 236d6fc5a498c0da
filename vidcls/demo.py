"""`vidcls demo`: the whole product on synthetic videos, offline, in a few minutes.

synth -> extract (random-init ResNet50, which needs no download) -> train the
attention-LSTM and the mean-pool baseline -> evaluate both -> export to TFLite ->
predict held-out videos. The export includes the streaming pair for phones (float32
and int8 weights).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vidcls.config import ExperimentConfig, FeatureConfig
from vidcls.run_dir import RunDir

# Random-init MobileNet/EfficientNet features are constant (ENVIRONMENT.md); a random
# ResNet50 at 112 px gives informative features at ~130 frames/s on 2 CPU cores.
# The synthetic classes differ in how the frames' appearance changes over time: a shape
# grows or shrinks, a colour turns blue->red or red->blue. |Frame differences| are the same
# for a change and its reverse, so the motion stream (the default, for real footage) adds
# nothing here and would double extraction: the demo caches appearance alone and its
# models read it. (On real footage the motion stream carries to unseen scenes:
# docs/real-footage.md.)
DEMO_FEATURES = dict(backbone="resnet50", weights="none", num_frames=16, image_size=112, batch_size=64,
                     streams=["appearance"])
DEMO_MODELS = ("attention_lstm", "mean_pool")


@dataclass(frozen=True)
class DemoResult:
    work_dir: Path
    test_accuracy: dict[str, float]
    export_report: dict
    predictions: list[dict]


def run_demo(work_dir: str | Path = "demo_output", num_videos: int = 240, epochs: int = 30,
             progress: bool = True) -> DemoResult:
    from vidcls.evaluation import evaluate
    from vidcls.exporting import ExportReport, export, export_streaming
    from vidcls.features import FeatureCache, extract
    from vidcls.serving import Predictor
    from vidcls.training import train
    from vidcls.videos import synthesize

    work = Path(work_dir)
    videos, cache_dir = work / "videos", work / "cache"
    started = time.perf_counter()
    _step(f"1/6 synth: {num_videos} videos whose classes differ only in time -> {videos}")
    if not videos.is_dir():
        synthesize(videos, num_videos=num_videos, seed=0, progress=progress)
    _step(f"2/6 extract: {DEMO_FEATURES['backbone']} features (weights {DEMO_FEATURES['weights']}) -> {cache_dir}")
    summary = extract(FeatureConfig(data_dir=str(videos), cache_dir=str(cache_dir), **DEMO_FEATURES), progress=progress)
    print(summary.describe())
    accuracy = {}
    for number, name in enumerate(DEMO_MODELS, start=3):
        run_dir = work / "runs" / name
        _step(f"{number}/6 train + evaluate: {name} -> {run_dir}")
        config = ExperimentConfig().replace({
            "data.cache_dir": str(cache_dir), "model.name": name,
            "train.epochs": epochs, "train.batch_size": 16, "train.learning_rate": 1e-3,
        }, source="demo")
        train(config, run_dir, progress=progress)
        accuracy[name] = evaluate(run_dir, "test")["accuracy"]
        print(f"{name}: test accuracy {accuracy[name]:.3f}")
    best_run = work / "runs" / DEMO_MODELS[0]
    _step(f"5/6 export: SavedModel + TFLite, and the streaming pair for phones -> {best_run / 'export'}")
    report = export(best_run)
    variant = report["variants"][0]
    print(f"TFLite {variant['name']}: {variant['size_bytes'] / 1e6:.2f} MB, top-1 agreement with Keras "
          f"{variant['top1_agreement']:.3f}, max |diff| {variant['max_abs_diff']:.2e}, {variant['latency_ms']:.2f} ms/clip")
    report = ExportReport({**report, "streaming": export_streaming(best_run, ["float32", "dynamic_int8"])}, best_run)
    for variant in report["streaming"]["variants"]:
        print(f"streaming {variant['name']}: encoder {variant['encoder_ms_per_frame']['1']:.1f} ms/frame, "
              f"{variant['real_time_factor']['1']:.1f}x real time on 1 thread, top-1 agreement with predict --window "
              f"{variant['top1_agreement']:.3f} on {variant['windows']} windows")
    _step("6/6 predict: held-out test videos, decoded and classified end to end")
    predictor = Predictor(best_run)
    manifest = {entry["clip_id"]: entry for entry in FeatureCache(cache_dir).entries}
    test_ids = RunDir(best_run).splits()["test"]
    one_per_class = {manifest[clip_id]["label"]: clip_id for clip_id in reversed(test_ids)}
    predictions = []
    for clip_id in sorted(one_per_class.values()):
        result = predictor.predict(manifest[clip_id]["video"])
        predictions.append({**result, "true_label": manifest[clip_id]["label"]})
        print(f"  {result['video']}: {result['label']} ({result['score']:.2f}), true {manifest[clip_id]['label']}")
    _print_artifacts(work, best_run, accuracy, time.perf_counter() - started)
    return DemoResult(work_dir=work, test_accuracy=accuracy, export_report=report, predictions=predictions)


def _step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _print_artifacts(work: Path, best_run: Path, accuracy: dict, seconds: float) -> None:
    print(f"\nDemo finished in {seconds:.0f} s. Artifacts:")
    run = RunDir(best_run)
    for description, path in [
        ("synthetic videos", work / "videos"),
        ("feature cache", work / "cache"),
        ("trained model", run.best_model_path),
        ("TensorBoard logs", run.tensorboard_dir),
        ("metrics", run.metrics_path),
        ("evaluation report", run.eval_dir / "report.md"),
        ("confusion matrix", run.eval_dir / "confusion.png"),
        ("training curves", run.eval_dir / "curves.png"),
        ("TFLite model", run.export_dir / "model_float32.tflite"),
        ("phone (streaming)", run.export_dir / "streaming"),
        ("export report", run.export_report_path),
    ]:
        print(f"  {description:18s} {path}")
    print("\nTest accuracy (synthetic set, classes differ only in time):")
    for name, value in accuracy.items():
        print(f"  {name:16s} {value:.3f}")
