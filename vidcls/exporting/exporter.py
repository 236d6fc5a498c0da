"""`vidcls export`: SavedModel and float32 TFLite, checked against the Keras model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from vidcls.data import load_labelled_features
from vidcls.errors import VidclsError
from vidcls.fileio import atomic_write_bytes, atomic_write_json
from vidcls.run_dir import RunDir

SAVED_MODEL_DIR = "saved_model"
FLOAT_TFLITE = "model_float32.tflite"
# --quantize names -> variant names (and files model_<variant>.tflite).
QUANTIZATIONS = {"none": "float32", "float32": "float32", "float16": "float16", "dynamic": "dynamic_int8"}
# Why there is no full-integer int8 variant (measured; docs/export-and-phones.md, "Streaming on phones").
NO_FULL_INT8 = (
    "--quantize int8 (full integer: int8 weights and activations) is not offered: with one int8 scale per activation "
    "tensor it disagreed with the trained model too often to ship. Streaming pair on real VGG16 weights (fight "
    "recipe): top-1 agreement with predict --window 0.29 on 68 windows of the real recordings, 0.55 on 22 of fight "
    "clips and 0.29 on 7 of held-out ones (encoder features off by a median 0.14 standard deviations per dimension, "
    "from the first convolution blocks on: keeping block 5 in float did not help); demo backbone: 0.96; "
    "features-in heads: 0.4-0.83, and XNNPACK could not prepare the int8 recurrent graphs. Use --quantize dynamic "
    "(int8 weights, activations quantised per call: 4x smaller, 96 of the same 97 windows) or float16")


def parse_quantize(text: str) -> list[str]:
    """`--quantize none,float16,dynamic` as variant names, float32 always first."""
    names = [item.strip() for item in text.split(",") if item.strip()]
    for name in names:
        if name == "int8":
            raise VidclsError(NO_FULL_INT8)
        if name not in QUANTIZATIONS:
            raise VidclsError(f"Unknown --quantize '{name}'; choose from: none, float16, dynamic")
    variants = ["float32"] + [QUANTIZATIONS[name] for name in names]
    return list(dict.fromkeys(variants))


def export(run_dir: str | Path, parity_samples: int = 256, variants: list[str] | tuple[str, ...] = ("float32",)) -> ExportReport:
    """Writes `RUN_DIR/export/` and returns the contents of `export_report.json`.

    The model is rebuilt in float32 with fixed T and unrolled recurrence from the trained
    weights (so a mixed-precision run exports in float32 and TFLite needs builtin ops
    only), saved as a SavedModel with a `serve` signature over features `[B, T, D]`,
    converted to TFLite (`variants`: float32, float16 weights, dynamic-range int8
    weights), and each file run in the LiteRT interpreter on held-out clips against the
    trained model.
    """
    import tensorflow as tf

    from vidcls.models import load_model, outputs_by_target, predict, rebuild_for_export

    run = RunDir(run_dir)
    run.require_trained()
    fingerprint = run.features()["fingerprint"]
    num_frames, feature_dim = int(fingerprint["num_frames"]), int(fingerprint["feature_dim"])
    trained = load_model(run.best_model_path)
    model = rebuild_for_export(trained, num_frames)
    out = run.export_dir
    out.mkdir(parents=True, exist_ok=True)

    saved_model = out / SAVED_MODEL_DIR
    model.export(str(saved_model), format="tf_saved_model", verbose=False, input_signature=[[
        tf.TensorSpec([None, num_frames, feature_dim], tf.float32, name="features"),
        tf.TensorSpec([None, num_frames], tf.float32, name="mask"),
    ]])
    space = run.label_space()
    samples, masks = _parity_features(run, parity_samples, space)
    # Against the trained model itself, not the rebuild: the file must agree with what was trained.
    reference = outputs_by_target(predict(trained, [samples, masks]), space)
    report_variants = []
    for name in variants:
        path = out / f"model_{name}.tflite"
        atomic_write_bytes(path, convert_to_tflite(saved_model, name))
        report_variants.append({"name": name, "path": path.name, "size_bytes": path.stat().st_size,
                                **_check_tflite(path, {"features": samples, "mask": masks}, reference)})
    float_size = report_variants[0]["size_bytes"]
    for variant in report_variants:
        variant["size_vs_float32"] = round(float_size / variant["size_bytes"], 2)
    for target, names in space.items():
        labels_file = "labels.txt" if len(space) == 1 else f"labels_{target}.txt"
        atomic_write_bytes(out / labels_file, "".join(f"{name}\n" for name in names).encode())
    atomic_write_json(out / "metadata.json", {
        "inputs": {
            "features": {"shape": [1, num_frames, feature_dim], "dtype": "float32"},
            "mask": {"shape": [1, num_frames], "dtype": "float32",
                     "meaning": "1 for a real frame, 0 for a repeated one (clip shorter than T); all ones otherwise"},
        },
        "files": {variant["name"]: variant["path"] for variant in report_variants},
        "num_frames": num_frames,
        "feature_dim": feature_dim,
        **_output_metadata(space),
        "model": type(model).__name__,
        **{key: fingerprint.get(key) for key in ("backbone", "weights", "image_size", "preprocessing", "sampling")},
        # What each frame's feature row holds (streams side by side; see vidcls/features/encoder.py).
        "streams": fingerprint.get("streams", ["appearance"]),
        **{key: fingerprint[key] for key in ("difference_gap", "difference_seconds", "difference_gain", "grid")
           if key in fingerprint},
    })
    report = {"saved_model": SAVED_MODEL_DIR, "parity_samples": int(len(samples)), "variants": report_variants}
    atomic_write_json(run.export_report_path, report)
    return ExportReport(report, run.root)


def convert_to_tflite(saved_model: Path, variant: str) -> bytes:
    """TFLite bytes of `saved_model`, builtin ops only: float32; float16 weights (computed
    in float32, half the size); or dynamic-range int8 weights (activations stay float,
    quantised per call inside the int8 matrix products)."""
    import tensorflow as tf

    if variant not in QUANTIZATIONS.values():
        raise VidclsError(f"Unknown TFLite variant '{variant}'; expected one of {sorted(set(QUANTIZATIONS.values()))}")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant in ("float16", "dynamic_int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def _output_metadata(space: dict) -> dict:
    if len(space) == 1:
        return {"output": "class probabilities (softmax), in labels.txt order", "labels": next(iter(space.values()))}
    return {"outputs": {target: {"shape": [1, len(names)], "meaning": f"{target} probabilities (softmax), in "
                                 f"labels_{target}.txt order", "labels": names} for target, names in space.items()},
            "action": "the pair of the targets' top classes, " + " + ".join(space)}


def _parity_features(run: RunDir, limit: int, space: dict) -> tuple[np.ndarray, np.ndarray]:
    """Held-out clips (test, else val, else train) as the Keras and TFLite inputs."""
    clip_ids = run.held_out_clip_ids()
    if not clip_ids:
        raise VidclsError(f"{run.splits_path} lists no clips to check the exported model on")
    data = load_labelled_features(run.cache(), clip_ids[:limit], space)
    return data.features.astype(np.float32), data.masks


def _check_tflite(path: Path, inputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict:
    """Runs each clip alone (batch 1, one thread, as on a phone) in the LiteRT interpreter,
    through the model's signature (`inputs` by name, e.g. `features` and `mask`, each
    `[N, ...]`; one output per target). Agreement is the worst target's; `per_output` has
    each one's."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)  # as a phone app creates it: XNNPACK on
    runner = interpreter.get_signature_runner()
    count = len(next(iter(inputs.values())))
    try:
        runner(**{name: values[:1] for name, values in inputs.items()})
    except RuntimeError as error:
        raise VidclsError(f"{path} does not run in the LiteRT interpreter with its default options (XNNPACK): "
                          f"{error}") from None
    ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
    custom = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
    if custom:
        raise VidclsError(f"Expected builtin TFLite ops only in {path}; found {custom}")
    outputs = {target: np.empty_like(values) for target, values in reference.items()}
    started = time.perf_counter()
    for row in range(count):
        result = runner(**{name: values[row:row + 1] for name, values in inputs.items()})
        if len(reference) == 1:
            result = {next(iter(reference)): next(iter(result.values()))}
        for target in reference:
            outputs[target][row] = result[target][0]
    latency_ms = 1000 * (time.perf_counter() - started) / count
    per_output = {target: {"top1_agreement": float(np.mean(outputs[target].argmax(1) == reference[target].argmax(1))),
                           "max_abs_diff": float(np.abs(outputs[target] - reference[target]).max())}
                  for target in reference}
    return {
        "ops": ops,
        "top1_agreement": min(values["top1_agreement"] for values in per_output.values()),
        "max_abs_diff": max(values["max_abs_diff"] for values in per_output.values()),
        "latency_ms": latency_ms,
        "kernels": "xnnpack" if "DELEGATE" in ops else "builtin",
        **({"per_output": per_output} if len(per_output) > 1 else {}),
    }


END_TO_END_DIR = "saved_model_end_to_end"
END_TO_END_TFLITE = "model_end_to_end_float32.tflite"


def export_end_to_end(run_dir: str | Path, videos: int = 8) -> dict:
    """Writes a SavedModel and a float32 TFLite file whose input is raw frames: `frames`
    uint8 `[B, T, S, S, 3]` (RGB, resized to the backbone's size S), with a motion stream
    also `partner_frames` (each frame's partner, `difference_gap` frames or
    `difference_seconds` later, same shape), and `mask`
    `[B, T]`. They contain the streams' images (the frame difference is computed inside),
    the backbone, its preprocessing and the classifier (features are rounded through
    float16 as in the cache, so they compute what `vidcls predict` computes). Checked
    against `vidcls predict`'s path (decode -> backbone -> classifier) on up to `videos`
    held-out videos, each decoded once for both.

    Returns the report entry (also added to export_report.json's `end_to_end`).
    """
    import keras
    import tensorflow as tf

    from vidcls.models import rebuild_for_export
    from vidcls.serving import Predictor

    run = RunDir(run_dir)
    predictor = Predictor(run.root)  # rebuilds the backbone and checks its weights against the cache's
    encoder, num_frames = predictor.encoder, predictor.num_frames
    backbone = encoder.backbone.as_float32()  # TFLite has no bfloat16; float16 is a weights variant there
    size, stream_dim = backbone.image_size, backbone.feature_dim
    classifier = rebuild_for_export(predictor.model, num_frames)
    space = predictor.label_space
    with_partners = bool(encoder.partner_gap)

    def stream_features(images):
        batch = tf.shape(images)[0]
        flat = backbone.preprocess(tf.reshape(images, [-1, size, size, 3]))
        return tf.reshape(backbone.model(flat, training=False), [batch, num_frames, stream_dim])

    def serve(frames, mask, partner_frames=None):
        images = {"appearance": tf.cast(frames, tf.float32)}
        if partner_frames is not None:  # as difference_images: min(gain * |partner - frame|, 255), then uint8
            difference = tf.abs(tf.cast(partner_frames, tf.float32) - images["appearance"]) * encoder.difference_gain
            images["frame_difference"] = tf.floor(tf.minimum(difference, 255.0))
        features = tf.concat([stream_features(images[stream]) for stream in encoder.streams], axis=-1)
        features = tf.cast(tf.cast(features, tf.float16), tf.float32)  # as the cache stores them
        outputs = classifier([features, mask], training=False)
        return outputs if isinstance(outputs, dict) else {"probabilities": outputs}

    out = run.export_dir
    out.mkdir(parents=True, exist_ok=True)
    saved_model = out / END_TO_END_DIR
    # Keras's archive tracks both models' variables, so the converter can freeze them.
    archive = keras.export.ExportArchive()
    archive.track(backbone.model)
    archive.track(classifier)
    signature = [tf.TensorSpec([None, num_frames, size, size, 3], tf.uint8, name="frames"),
                 tf.TensorSpec([None, num_frames], tf.float32, name="mask")]
    if with_partners:
        signature.append(tf.TensorSpec([None, num_frames, size, size, 3], tf.uint8, name="partner_frames"))
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(saved_model), verbose=False)
    path = out / END_TO_END_TFLITE
    atomic_write_bytes(path, convert_to_tflite(saved_model, "float32"))

    clips = _held_out_clips(run, predictor, videos)
    inputs = {"frames": np.stack([clip.frames for clip in clips]),
              "mask": np.stack([predictor.embed(clip)[1] for clip in clips])}
    if with_partners:
        inputs["partner_frames"] = np.stack([clip.partner_frames for clip in clips])
    reference = {target: np.stack([_as_target_probabilities(predictor.classify(clip), target, space) for clip in clips])
                 for target in space}
    checked = _check_tflite(path, inputs, reference)
    entry = {"name": "end_to_end_float32", "path": path.name, "size_bytes": path.stat().st_size,
             "inputs": {name: [1, *values.shape[1:]] for name, values in inputs.items()},
             "streams": list(encoder.streams), "checked_on_videos": len(clips), **checked}
    report = run.export_report() or {"variants": []}
    report["end_to_end"] = entry
    atomic_write_json(run.export_report_path, report)
    return entry


def _held_out_clips(run: RunDir, predictor, limit: int) -> list:
    """The first held-out videos (test, else val), decoded as `vidcls predict` reads them."""
    return [predictor.read(video) for video in held_out_videos(run, limit, "the end-to-end model")]


def held_out_videos(run: RunDir, limit: int, what: str) -> list[str]:
    """The first `limit` distinct videos of the run's held-out clips, to check `what` on."""
    by_id = {entry["clip_id"]: entry for entry in run.cache().entries}
    videos = list(dict.fromkeys(by_id[clip_id]["video"] for clip_id in run.held_out_clip_ids()))[:limit]
    if not videos:
        raise VidclsError(f"{run.root} has no held-out video to check {what} on")
    return videos


def _as_target_probabilities(result: dict, target: str, space: dict) -> np.ndarray:
    values = result["targets"][target] if "targets" in result else result
    return np.array([values["probabilities"][name] for name in space[target]])


class ExportReport(dict):
    """What `export` returns: the contents of export_report.json (a dict: `report["variants"]`),
    and the run it belongs to."""

    def __init__(self, values: dict, run_dir: str | Path):
        super().__init__(values)
        self.run_dir = Path(run_dir)

    def describe(self) -> str:
        """The lines `vidcls export` prints."""
        lines = [f"{variant['name']}: {variant['path']} {variant['size_bytes']} bytes, top-1 agreement "
                 f"{variant['top1_agreement']:.4f}, max |diff| {variant['max_abs_diff']:.2e}, "
                 f"{variant['latency_ms']:.2f} ms/clip, ops {', '.join(variant['ops'])}" for variant in self["variants"]]
        entry = self.get("end_to_end")
        if entry:
            lines.append(f"end to end: {entry['path']} {entry['size_bytes']} bytes, top-1 agreement with vidcls "
                         f"predict {entry['top1_agreement']:.4f} on {entry['checked_on_videos']} videos, max |diff| "
                         f"{entry['max_abs_diff']:.2e}, {entry['latency_ms']:.1f} ms/clip")
        streaming = self.get("streaming")
        if streaming:
            lines.append(f"streaming ({streaming['directory']}, window {streaming['window_sec']} s, stride "
                         f"{streaming['stride_sec']} s, streams {', '.join(streaming['streams'])}):")
            lines += [f"  {v['name']}: encoder {v['size_bytes']['frame_encoder']} bytes + head {v['size_bytes']['head']} "
                      f"bytes; vs predict --window: top-1 {v['top1_agreement']:.4f} on {v['windows']} windows, max |diff| "
                      f"{v['max_abs_diff']:.2e}; {v['encoder_ms_per_frame']['1']:.1f} ms/frame on 1 thread, "
                      f"{v['real_time_factor']['1']:.1f}x real time" for v in streaming["variants"]]
        lines.append(f"report: {RunDir(self.run_dir).export_report_path}")
        return "\n".join(lines)
