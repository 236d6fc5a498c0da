"""`vidcls export --streaming`: a frame encoder and a classifier head for phones.

`frame_encoder_<variant>.tflite`: one RGB uint8 frame `[1, S, S, 3]` (with a motion
stream also `partner_frame`, the frame `difference_gap` (or `difference_seconds`) later)
-> `features` `[1, D]`: the streams the model reads, through the backbone with its own
keras.applications preprocessing, rounded through float16 as the cache stores them.
`head_<variant>.tflite`: `features` `[1, T, D]` + `mask` `[1, T]` -> probabilities per
target. Streams the model does not read are neither computed by the encoder nor fed to
the head (the head fills them with zeros inside: the model slices them away after
per-dimension normalisation).

The encoder ends with the model's per-dimension standardisation (the training set's mean
and deviation, which the head then skips), so what passes between the two files is on
one scale in every dimension: a quantised head reads its input with one scale per tensor,
and raw backbone features range from ~0 to ~200 with a median near 1.
Both files carry their settings as TFLite metadata (`tflite_metadata.py`), builtin ops
only, and are checked as a phone runs them (default interpreter options, XNNPACK on).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from vidcls.errors import VidclsError
from vidcls.exporting.exporter import convert_to_tflite, held_out_videos
from vidcls.exporting.stream import StreamRunner
from vidcls.exporting.tflite_metadata import with_metadata, with_standard_metadata
from vidcls.features import stream_subset
from vidcls.fileio import atomic_write_bytes, atomic_write_json
from vidcls.run_dir import RunDir

STREAMING_DIR = "streaming"
DEFAULT_STRIDE_SEC = 0.5


def export_streaming(run_dir: str | Path, variants=("float32",), window_sec: float | None = None,
                     stride_sec: float = DEFAULT_STRIDE_SEC, videos: int = 4) -> dict:
    """Writes `RUN_DIR/export/streaming/` (both files per variant) and returns the report
    entry (also `export_report.json`'s `streaming`): per variant, the files' sizes, encoder
    parity with `vidcls predict`'s features, and, on up to `videos` held-out videos, the
    agreement of `vidcls stream` with `vidcls predict --window` window by window, and its
    per-frame latency on 1 and 4 threads.

    `window_sec`: the seconds T frames span (default: the training clips' median length).
    """
    from vidcls.serving import Predictor

    run = RunDir(run_dir)
    predictor = Predictor(run.root)
    model_config = predictor.model.get_config()
    cache_streams = list(model_config.get("cache_streams") or predictor.encoder.streams)
    read_streams = list(model_config.get("streams") or cache_streams)
    window_sec = float(window_sec or _training_window(run))
    out = run.export_dir / STREAMING_DIR
    out.mkdir(parents=True, exist_ok=True)
    columns = stream_subset(predictor.fingerprint, read_streams)[1]  # the read streams' part of a cache row
    mean, scale = standardisation(predictor.model)
    encoder_model = _encoder_saved_model(predictor.encoder, read_streams, mean[columns], scale[columns],
                                         out / "saved_model_frame_encoder")
    head_model = _head_saved_model(predictor, cache_streams, read_streams, out / "saved_model_head")
    check_videos = held_out_videos(run, videos, "the streaming model")
    metadata = _metadata(run, predictor, read_streams, window_sec, stride_sec)
    entries = []
    for variant in variants:
        metadata.update(variant=variant, pair=uuid.uuid4().hex[:12])
        for role, saved_model in (("frame_encoder", encoder_model), ("head", head_model)):
            tflite = with_metadata(convert_to_tflite(saved_model, variant), {**metadata, "role": role})
            inputs, outputs = _standard_tensors(role, metadata)
            tflite = with_standard_metadata(tflite, f"vidcls {role} ({variant})", _DESCRIPTIONS[role], inputs, outputs)
            atomic_write_bytes(out / f"{role}_{variant}.tflite", tflite)
        entries.append(_check_variant(out, variant, predictor, columns, check_videos, stride_sec))
    report = run.export_report() or {"variants": []}
    report["streaming"] = {"directory": f"{run.export_dir.name}/{STREAMING_DIR}", "window_sec": window_sec,
                           "stride_sec": stride_sec, "streams": read_streams, "variants": entries,
                           "checked_on_videos": [str(video) for video in check_videos]}
    atomic_write_json(run.export_report_path, report)
    return report["streaming"]


_DESCRIPTIONS = {
    "frame_encoder": "One video frame to its feature vector; run once per frame interval, keep the last T in a ring "
                     "buffer for the head (vidcls streaming; settings in the 'vidcls' metadata buffer).",
    "head": "The last T frames' feature vectors to class probabilities; run every stride (vidcls streaming; settings "
            "in the 'vidcls' metadata buffer).",
}


def _standard_tensors(role: str, metadata: dict) -> tuple[dict, dict]:
    """The inputs and outputs of one file for the standard TFLite metadata."""
    size, frames = metadata["image_size"], metadata["num_frames"]
    features = {"description": f"[1, {metadata['feature_dim']}] float32: {metadata['features']}"}
    if role == "frame_encoder":
        frame = {"description": f"[1, {size}, {size}, 3] uint8 RGB: {metadata['input']}", "image_size": size}
        inputs = {"frame": frame}
        if "partner_frame" in metadata:
            inputs["partner_frame"] = {**frame, "description": f"[1, {size}, {size}, 3] uint8 RGB: "
                                                               f"{metadata['partner_frame']}"}
        return inputs, {"features": features}
    inputs = {"features": {"description": f"[1, {frames}, {metadata['feature_dim']}] float32: the frame encoder's "
                                          f"output for the last {frames} grid frames, oldest first"},
              "mask": {"description": f"[1, {frames}] float32: {metadata['mask']}"}}
    targets = metadata["targets"]
    if len(targets) == 1:
        labels = next(iter(targets.values()))
        return inputs, {"probabilities": {"description": "class probabilities (softmax)", "labels": labels,
                                          "labels_file": "labels.txt"}}
    return inputs, {target: {"description": f"{target} probabilities (softmax)", "labels": labels,
                             "labels_file": f"labels_{target}.txt"} for target, labels in targets.items()}


def _training_window(run: RunDir) -> float:
    """The median length in seconds of (up to 32) training clips: a window spans as much
    time as the clips the model learned from."""
    from vidcls.features import frame_rate

    by_id = {entry["clip_id"]: entry for entry in run.cache().entries}
    lengths = []
    for clip_id in run.splits()["train"][:32]:
        entry = by_id[clip_id]
        start, end = entry["frame_range"]
        try:
            fps = frame_rate(entry["video"])
        except VidclsError:
            continue
        lengths.append((end - start) / fps)
    if not lengths:
        raise VidclsError(f"No training video of {run.root} could be read to measure the clips' length; "
                          "give the window with --window SECONDS")
    return round(float(np.median(lengths)), 2)


def standardisation(model) -> tuple[np.ndarray, np.ndarray]:
    """`(mean, scale)` `[D]` of the model's feature normalisation: it computes
    `(x - mean) / scale`."""
    import keras

    from vidcls.models import NORMALIZATION_LAYER

    layer = model.get_layer(NORMALIZATION_LAYER)
    mean = np.asarray(layer.mean, np.float32).reshape(-1)
    scale = np.maximum(np.sqrt(np.asarray(layer.variance, np.float32).reshape(-1)), keras.backend.epsilon())
    return mean, scale.astype(np.float32)


def _encoder_saved_model(encoder, read_streams: list[str], mean: np.ndarray, scale: np.ndarray, path: Path) -> Path:
    import keras
    import tensorflow as tf

    backbone, size = encoder.backbone.as_float32(), encoder.backbone.image_size  # TFLite computes in float32

    def encode(frame, partner_frame=None):
        image = tf.cast(frame, tf.float32)
        images = {"appearance": image}
        if partner_frame is not None:  # as difference_images: min(gain * |partner - frame|, 255), then uint8
            difference = tf.abs(tf.cast(partner_frame, tf.float32) - image) * encoder.difference_gain
            images["frame_difference"] = tf.floor(tf.minimum(difference, 255.0))
        features = tf.concat([backbone.model(backbone.preprocess(images[name]), training=False)
                              for name in read_streams], axis=-1)
        features = tf.cast(tf.cast(features, tf.float16), tf.float32)  # as the cache stores them
        return {"features": (features - mean) / scale}

    signature = [tf.TensorSpec([1, size, size, 3], tf.uint8, name="frame")]
    if "frame_difference" in read_streams:
        signature.append(tf.TensorSpec([1, size, size, 3], tf.uint8, name="partner_frame"))
    archive = keras.export.ExportArchive()
    archive.track(backbone.model)
    archive.add_endpoint("serve", encode, input_signature=signature)
    archive.write_out(str(path), verbose=False)
    return path


def _head_saved_model(predictor, cache_streams: list[str], read_streams: list[str], path: Path) -> Path:
    import keras
    import tensorflow as tf

    from vidcls.models import NORMALIZATION_LAYER, finalize_layers, rebuild_for_export

    num_frames, width = predictor.num_frames, predictor.backbone.feature_dim
    classifier = rebuild_for_export(predictor.model, num_frames)
    normalisation = classifier.get_layer(NORMALIZATION_LAYER)  # the encoder standardised the features
    normalisation.adapt_mean.assign(np.zeros(normalisation.adapt_mean.shape, np.float32))
    normalisation.adapt_variance.assign(np.ones(normalisation.adapt_variance.shape, np.float32))
    finalize_layers(classifier)

    def classify(features, mask):
        columns = {name: features[..., i * width:(i + 1) * width] for i, name in enumerate(read_streams)}
        zeros = tf.zeros([1, num_frames, width], tf.float32)
        full = tf.concat([columns.get(name, zeros) for name in cache_streams], axis=-1)
        outputs = classifier([full, mask], training=False)
        return outputs if isinstance(outputs, dict) else {"probabilities": outputs}

    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint("serve", classify, input_signature=[
        tf.TensorSpec([1, num_frames, width * len(read_streams)], tf.float32, name="features"),
        tf.TensorSpec([1, num_frames], tf.float32, name="mask")])
    archive.write_out(str(path), verbose=False)
    return path


def _metadata(run: RunDir, predictor, read_streams: list[str], window_sec: float, stride_sec: float) -> dict:
    fingerprint, num_frames = predictor.fingerprint, predictor.num_frames
    values = {
        "format": "vidcls streaming 1",
        "num_frames": num_frames, "window_sec": window_sec, "frame_interval_sec": window_sec / num_frames,
        "default_stride_sec": stride_sec,
        "image_size": int(fingerprint["image_size"]),
        "input": "RGB uint8 [1, S, S, 3]: the frame resized to S x S (area interpolation); normalisation is inside",
        "normalisation": fingerprint.get("preprocessing"),
        "backbone": fingerprint["backbone"], "weights_checksum": fingerprint["weights_checksum"],
        "streams": read_streams, "feature_dim": predictor.backbone.feature_dim * len(read_streams),
        "features": "the streams' backbone features, rounded through float16, standardised per dimension with the "
                    "training set's mean and deviation (inside the encoder)",
        "mask": "1 for a new frame, 0 for one that repeats the frame before (a window shorter than T frames)",
        "targets": predictor.label_space,
        "target_order": list(predictor.label_space),  # the action label joins the targets' labels in this order
        "windows": "grid frame k is source frame floor((k + 0.5) * window_sec * fps / T); a window is T consecutive "
                   "grid frames, one every round(stride / frame interval) grid frames (vidcls.features.windows)",
        "run": run.root.name,
    }
    if "frame_difference" in read_streams:
        encoder = predictor.encoder
        gap = encoder.partner_gap
        if gap.seconds:
            values.update(difference_seconds=gap.seconds,
                          partner_frame="the frame difference_seconds later: gap = max(1, ceil(fps x "
                                        "difference_seconds - 0.5)) source frames (at the end of a video, the one "
                                        "gap frames before)")
        else:
            values.update(difference_gap=gap.frames,
                          partner_frame="the frame difference_gap source frames later (at the end of a video, the one "
                                        "difference_gap before)")
        values["difference_gain"] = encoder.difference_gain
    if len(predictor.label_space) == 1:
        values["labels"] = next(iter(predictor.label_space.values()))
    return values


def _check_variant(out: Path, variant: str, predictor, columns: np.ndarray, videos, stride_sec) -> dict:
    """The variant as a phone runs it: encoder features (`columns` of `predict`'s cache
    rows) against `predict`'s, and the stream against `predict --window`, window by window,
    on `videos`."""
    runner = StreamRunner(out, variant, threads=1)
    mean, scale = standardisation(predictor.model)
    feature_diff, windows, agree, prob_diff, latencies = 0.0, 0, 0, 0.0, []
    for video in videos:
        clip = predictor.read(video)
        reference = (predictor.embed(clip)[0][:, columns] - mean[columns]) / scale[columns]
        partners = clip.partner_frames if runner.gap else [None] * len(clip.frames)
        encoded = np.stack([runner.encode(frame, partner) for frame, partner in zip(clip.frames, partners)])
        feature_diff = max(feature_diff, float(np.abs(encoded - reference).max()))
        streamed = runner.run(video, stride_sec)
        expected = predictor.predict_windows(video, runner.window_sec, stride_sec, max_windows=0)
        times = [(w["start_sec"], w["end_sec"]) for w in streamed["windows"]]
        if times != [(w["start_sec"], w["end_sec"]) for w in expected["windows"]]:
            raise VidclsError(f"vidcls stream placed windows {times} on {video}; predict --window placed "
                              f"{[(w['start_sec'], w['end_sec']) for w in expected['windows']]}")
        for got, want in zip(streamed["windows"], expected["windows"]):
            windows += 1
            agree += got["label"] == want["label"]
            prob_diff = max(prob_diff, _max_probability_diff(got, want))
        latencies.append(streamed["latency"])
    four = StreamRunner(out, variant, threads=4).run(videos[0], stride_sec)["latency"]
    sizes = {role: (out / f"{role}_{variant}.tflite").stat().st_size for role in ("frame_encoder", "head")}
    return {
        "name": variant, "files": {role: f"{role}_{variant}.tflite" for role in sizes},
        "size_bytes": sizes, "encoder_max_abs_diff": feature_diff,
        "windows": windows, "top1_agreement": agree / windows, "max_abs_diff": prob_diff,
        "encoder_ms_per_frame": {"1": float(np.mean([lat["encoder_ms_per_frame"] for lat in latencies])),
                                 "4": four["encoder_ms_per_frame"]},
        "head_ms_per_window": {"1": float(np.mean([lat["head_ms_per_window"] for lat in latencies])),
                               "4": four["head_ms_per_window"]},
        "frame_interval_ms": latencies[0]["frame_interval_ms"],
        "real_time_factor": {"1": float(np.mean([lat["real_time_factor"] for lat in latencies])),
                             "4": four["real_time_factor"]},
    }


def _max_probability_diff(got: dict, want: dict) -> float:
    pairs = ([(got["targets"][t], want["targets"][t]) for t in want["targets"]] if "targets" in want
             else [(got, want)])
    return max(abs(a["probabilities"][name] - b["probabilities"][name]) for a, b in pairs for name in b["probabilities"])
