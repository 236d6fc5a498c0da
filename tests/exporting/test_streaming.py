"""The streaming pair for phones: a one-frame encoder and a head over T features, run by
`vidcls stream` frame by frame in the LiteRT interpreter with default options."""

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidcls.errors import VidclsError
from vidcls.exporting import StreamRunner, export_streaming, read_metadata, read_standard_metadata
from vidcls.exporting.streaming import standardisation
from vidcls.serving import Predictor


@pytest.fixture(scope="module")
def streaming_run(trained_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("streaming") / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export", "eval*"))
    report = export_streaming(run, variants=["float32", "dynamic_int8"], stride_sec=0.32)
    return run, report


@pytest.fixture(scope="module")
def predictor(streaming_run):
    return Predictor(streaming_run[0])


def test_the_streamed_windows_are_predict_windows_with_the_same_scores(streaming_run):
    run, report = streaming_run
    assert json.loads((run / "export" / "export_report.json").read_text())["streaming"] == report
    float32, dynamic = report["variants"]
    assert report["streams"] == ["appearance"] and report["window_sec"] > 0
    assert float32["windows"] >= 4 and float32["top1_agreement"] == 1.0 and float32["max_abs_diff"] < 1e-4
    # Features rounded through float16 inside the encoder, as the cache stores them, then standardised.
    assert float32["encoder_max_abs_diff"] < 0.05
    # The int8-weight pair ran as a phone runs it (StreamRunner: default options, XNNPACK on); how well it
    # agrees on real weights is measured in benchmarks/stream_bench.py (this backbone is random).
    assert dynamic["windows"] == float32["windows"] and 0 <= dynamic["top1_agreement"] <= 1
    assert dynamic["size_bytes"]["frame_encoder"] < float32["size_bytes"]["frame_encoder"] / 3
    for variant in report["variants"]:
        assert variant["real_time_factor"]["1"] > 0 and variant["encoder_ms_per_frame"]["4"] > 0


def test_labels_and_timing_travel_inside_the_tflite_files(streaming_run):
    from ai_edge_litert.interpreter import Interpreter

    from vidcls.exporting.exporter import convert_to_tflite

    run, report = streaming_run
    directory = run / "export" / "streaming"
    labels = json.loads((run / "labels.json").read_text())
    head, encoder = read_metadata(directory / "head_float32.tflite"), read_metadata(directory / "frame_encoder_dynamic_int8.tflite")
    assert head["labels"] == labels and head["targets"] == {"label": labels}
    assert head["num_frames"] == 8 and head["window_sec"] == report["window_sec"]
    assert head["frame_interval_sec"] == pytest.approx(report["window_sec"] / 8)
    assert encoder["image_size"] == 32 and encoder["role"] == "frame_encoder" and encoder["variant"] == "dynamic_int8"
    assert "resnet50.preprocess_input" in encoder["normalisation"] and encoder["streams"] == ["appearance"]
    assert head["pair"] != encoder["pair"]  # one pair per variant
    # The standard TFLite model metadata too (TFLITE_METADATA, schema M001), with labels.txt packed as a zip
    # appended to the model, where generic tooling (Android's MetadataExtractor) looks for it.
    import zipfile

    standard = read_standard_metadata(directory / "head_float32.tflite")
    assert standard["name"] == "vidcls head (float32)" and sorted(standard["inputs"]) == ["features", "mask"]
    assert standard["outputs"] == ["probabilities"] and standard["files"]["labels.txt"].split() == labels
    assert zipfile.ZipFile(directory / "head_float32.tflite").read("labels.txt").decode().split() == labels
    encoder_standard = read_standard_metadata(directory / "frame_encoder_dynamic_int8.tflite")
    assert encoder_standard["inputs"] == ["frame"] and encoder_standard["outputs"] == ["features"]
    for path in directory.glob("*.tflite"):
        interpreter = Interpreter(model_path=str(path))
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], path
    plain = run / "plain.tflite"
    plain.write_bytes(convert_to_tflite(directory / "saved_model_head", "float32"))
    with pytest.raises(VidclsError, match="carries no 'vidcls' metadata: it was not written by vidcls export --streaming"):
        read_metadata(plain)
    with pytest.raises(VidclsError, match="carries no TFLITE_METADATA buffer"):
        read_standard_metadata(plain)
    not_tflite = run / "labels.json"
    with pytest.raises(VidclsError, match="is not a TFLite model"):
        read_metadata(not_tflite)


def test_the_encoder_reproduces_the_cached_features_on_a_real_recording(streaming_run, predictor, real_videos):
    runner = StreamRunner(streaming_run[0] / "export" / "streaming")
    video = sorted(real_videos.glob("*.mp4"))[0]
    clip = predictor.read(video)
    cached = predictor.embed(clip)[0]  # what vidcls extract writes for this clip
    mean, scale = standardisation(predictor.model)
    encoded = np.stack([runner.encode(frame) for frame in clip.frames])
    assert encoded.shape == cached.shape
    # The encoder's output is the cached features standardised as the model does it, give or take one
    # float16 rounding step of the feature (the backbones run in different runtimes).
    error = np.abs(encoded * scale + mean - cached)
    assert np.all(error <= np.abs(cached) * 2 ** -10 + 1e-5), error.max()
    assert np.abs(encoded - (cached - mean) / scale).max() < 0.05


def test_streaming_a_long_real_recording_matches_predict_window_by_window(streaming_run, predictor, real_videos):
    runner = StreamRunner(streaming_run[0] / "export" / "streaming")
    video = max(real_videos.glob("*.mp4"), key=lambda path: path.stat().st_size)
    seen = []
    streamed = runner.run(video, stride_sec=1.0, on_window=seen.append)
    expected = predictor.predict_windows(video, runner.window_sec, 1.0, max_windows=0)
    assert len(streamed["windows"]) == len(expected["windows"]) == len(seen) > 3
    for got, want, live in zip(streamed["windows"], expected["windows"], seen):
        assert (got["start_sec"], got["end_sec"]) == (want["start_sec"], want["end_sec"])
        assert got["label"] == want["label"] == live["label"]
        assert max(abs(got["probabilities"][k] - want["probabilities"][k]) for k in want["probabilities"]) < 1e-4
    assert [(e["label"], e["start_sec"], e["end_sec"], e["windows"]) for e in streamed["events"]] == \
        [(e["label"], e["start_sec"], e["end_sec"], e["windows"]) for e in expected["events"]]
    latency = streamed["latency"]
    assert latency["frames_encoded"] == len(predictor.read_windows(video, runner.window_sec, 1.0, 0)["plan"].frames)


def test_a_video_shorter_than_one_window_is_one_window(streaming_run, predictor, tmp_path):
    video = _write_video(tmp_path / "short.mp4", frames=5, fps=25)
    runner = StreamRunner(streaming_run[0] / "export" / "streaming")
    streamed = runner.run(video)
    expected = predictor.predict_windows(video, runner.window_sec, runner.default_stride_sec)
    assert len(streamed["windows"]) == 1 and streamed["windows"][0]["end_sec"] == pytest.approx(0.2)
    assert streamed["windows"][0]["label"] == expected["windows"][0]["label"]
    assert streamed["windows"][0]["probabilities"] == pytest.approx(expected["windows"][0]["probabilities"], abs=1e-4)


def test_a_variable_frame_rate_file_streams_like_predict(streaming_run, predictor, tmp_path):
    # 60 frames alternately 60 ms and 20 ms apart (the container's average: 25 fps).
    video = _write_video(tmp_path / "vfr.mp4", frames=60, fps=25)
    _make_variable_frame_rate(video, [768 if i % 2 == 0 else 256 for i in range(60)])
    capture = cv2.VideoCapture(str(video))
    stamps = []
    while capture.grab():
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
    assert len(stamps) == 60 and set(np.round(np.diff(stamps)).tolist()) == {20.0, 60.0}  # really variable
    runner = StreamRunner(streaming_run[0] / "export" / "streaming")
    streamed = runner.run(video, stride_sec=0.32)
    expected = predictor.predict_windows(video, runner.window_sec, 0.32)
    assert [w["label"] for w in streamed["windows"]] == [w["label"] for w in expected["windows"]]
    assert [w["start_sec"] for w in streamed["windows"]] == [w["start_sec"] for w in expected["windows"]]


def test_stream_command_prints_events_then_latency_and_refuses_a_missing_variant(streaming_run, real_videos, capsys):
    from vidcls.cli import main

    run = streaming_run[0]
    video = sorted(real_videos.glob("*.mp4"))[0]
    assert main(["stream", "--run-dir", str(run), str(video), "--stride", "1"]) == 0
    out = capsys.readouterr().out
    assert "begins" in out and "windows" in out and "x real time (float32, 1 thread)" in out
    assert main(["stream", "--run-dir", str(run), str(video), "--variant", "dynamic_int8", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["variant"] == "dynamic_int8" and result["windows"] and result["latency"]["real_time_factor"] > 0
    with pytest.raises(VidclsError, match=r"Expected frame_encoder_float16.tflite, head_float16.tflite in .*streaming "
                                          r"\(written by vidcls export --streaming\); found \['frame_encoder_dynamic_int8.tflite', 'frame_encoder_float32"):
        StreamRunner(run / "export" / "streaming", "float16")
    with pytest.raises(VidclsError, match=r"file does not exist: .*missing.mp4"):
        StreamRunner(run / "export" / "streaming").run(run / "missing.mp4")
    (run / "notes.mp4").write_text("not a video")
    with pytest.raises(VidclsError, match=r"notes.mp4: OpenCV could not open the file|notes.mp4: no decodable frame"):
        StreamRunner(run / "export" / "streaming").run(run / "notes.mp4")


def _write_video(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    rng = np.random.default_rng(0)
    for index in range(frames):
        frame = np.full((48, 64, 3), 40, np.uint8)
        frame[10:30, index % 50:index % 50 + 14] = rng.integers(100, 255, 3)
        writer.write(frame)
    writer.release()
    return path


def _make_variable_frame_rate(path: Path, deltas: list[int]) -> None:
    """Rewrites the mp4's time-to-sample table (stts) so frames are `deltas` timescale units
    apart (same total, so the container's duration still holds)."""
    data = bytearray(path.read_bytes())

    def children(start, end):
        while start < end:
            size, kind = struct.unpack(">I4s", data[start:start + 8])
            yield start, size, kind
            start += size

    parents, start, end = [], 0, len(data)
    for name in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stts"):
        offset, size = next((o, s) for o, s, kind in children(start, end) if kind == name)
        parents.append(offset)
        start, end = offset + 8, offset + size
    stts = parents.pop()
    size = struct.unpack(">I", data[stts:stts + 4])[0]
    mdat = next(offset for offset, _, kind in children(0, len(data)) if kind == b"mdat")
    assert mdat < parents[0], "moov must follow mdat, or the chunk offsets would move"
    table = struct.pack(">I4sII", 16 + 8 * len(deltas), b"stts", 0, len(deltas))
    table += b"".join(struct.pack(">II", 1, delta) for delta in deltas)
    data[stts:stts + size] = table
    for parent in parents:  # moov follows mdat in OpenCV's files, so no chunk offset moves
        data[parent:parent + 4] = struct.pack(">I", struct.unpack(">I", data[parent:parent + 4])[0] + len(table) - size)
    path.write_bytes(bytes(data))
