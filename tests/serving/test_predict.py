import json

import numpy as np
import pytest

from tests.conftest import write_corrupt_video
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache, VideoReadError
from vidcls.serving import Predictor


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor(trained_run)


def test_predicting_a_cached_video_reproduces_the_cached_features(predictor, trained_run, cache_dir):
    """Decode -> backbone -> head at predict time equals the path training saw."""
    from vidcls.models import load_model

    cache = FeatureCache(cache_dir)
    entry = cache.entries[0]
    result = predictor.predict(entry["video"])
    features = cache.load_features(entry)[None].astype(np.float32)
    expected = np.asarray(load_model(trained_run / "best.keras")([features, np.ones((1, 8), np.float32)]))[0]
    labels = json.loads((trained_run / "labels.json").read_text())
    np.testing.assert_allclose([result["probabilities"][name] for name in labels], expected, atol=1e-5)
    assert result["label"] == labels[int(expected.argmax())]


def test_real_videos_get_a_distribution_over_the_run_labels(predictor, real_videos):
    for video in (real_videos / "demo_demo.mp4", real_videos / "tests_data_test.avi"):
        result = predictor.predict(video)
        assert set(result["probabilities"]) == set(predictor.label_space["label"])
        assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_corrupt_video_raises_a_read_error(predictor, tmp_path):
    with pytest.raises(VideoReadError):
        predictor.predict(write_corrupt_video(tmp_path / "bad.mp4"))


def test_backbone_weights_that_differ_from_the_cache_are_refused(trained_run, tmp_path):
    from vidcls.features import get_backbone

    other = tmp_path / "other.weights.h5"
    get_backbone("resnet50", weights="none", image_size=32, seed=123).save_weights(str(other))
    with pytest.raises(VidclsError, match="differ from those that built the training cache"):
        Predictor(trained_run, weights=str(other))


def _write_long_video(path, seconds: float, fps: float = 24.0):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 64))
    rng = np.random.default_rng(0)
    for index in range(int(seconds * fps)):
        frame = np.full((64, 64, 3), 40, np.uint8)
        size = 5 + index % 24  # a square that grows, again and again
        frame[32 - size // 2:32 + size // 2, 32 - size // 2:32 + size // 2] = (200, 80, 30)
        writer.write(np.clip(frame + rng.normal(0, 5, frame.shape), 0, 255).astype(np.uint8))
    writer.release()
    return path


def test_sliding_windows_cover_a_long_video_and_merge_into_events(predictor, tmp_path, capsys):
    from vidcls.cli import main

    video = _write_long_video(tmp_path / "long.mp4", seconds=5.0)
    result = predictor.predict_windows(video, window_sec=1.0, stride_sec=0.5)
    windows = result["windows"]
    assert windows[0]["start_sec"] == 0 and windows[-1]["end_sec"] == pytest.approx(5.0, abs=0.05)
    assert len(windows) == 9 and all(w["end_sec"] - w["start_sec"] == pytest.approx(1.0, abs=0.05) for w in windows)
    assert [w["start_sec"] for w in windows] == pytest.approx([0.5 * i for i in range(9)], abs=0.05)
    events = result["events"]
    assert sum(event["windows"] for event in events) == len(windows)
    assert all(a["label"] != b["label"] for a, b in zip(events, events[1:]))  # runs are maximal
    labels = [w["label"] for w in windows]
    assert [event["label"] for event in events] == [label for i, label in enumerate(labels) if i == 0 or labels[i - 1] != label]
    assert all(a["end_sec"] == b["start_sec"] for a, b in zip(events, events[1:]))  # no overlap, no gap
    mean = np.mean([[w["probabilities"][name] for name in predictor.label_space["label"]] for w in windows], axis=0)
    assert result["label"] == predictor.label_space["label"][int(mean.argmax())]

    assert main(["predict", "--run-dir", str(predictor_run_dir(predictor)), str(video), "--window", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # Starts at 0 and 2 s, then one aligned to the end (3 s) so the tail is scored too.
    assert [w["start_sec"] for w in printed[0]["windows"]] == pytest.approx([0, 2, 3], abs=0.05)
    assert printed[0]["window_sec"] == 2 and printed[0]["stride_sec"] == 2
    short = predictor.predict_windows(video, window_sec=60, stride_sec=10)  # longer than the video: one window
    assert len(short["windows"]) == 1 and short["windows"][0]["end_sec"] == pytest.approx(5.0, abs=0.05)
    with pytest.raises(VidclsError, match="Expected --window to be a positive finite number of seconds; received 0"):
        predictor.predict_windows(video, window_sec=0, stride_sec=1)
    with pytest.raises(VidclsError, match="Expected --window to be a positive finite number of seconds; received inf"):
        predictor.predict_windows(video, window_sec=float("inf"), stride_sec=1)
    # A 5-s video in 0.5-s windows every 1e-9 s: one window per frame, over the bound.
    with pytest.raises(VidclsError, match=r"makes \d+ windows of this 5.0-s video; at most 20 are allowed: use a stride of at least"):
        predictor.predict_windows(video, window_sec=0.5, stride_sec=1e-9, max_windows=20)


def test_sliding_windows_on_a_real_recording(predictor, real_videos):
    video = max(real_videos.iterdir(), key=lambda path: path.stat().st_size)
    result = predictor.predict_windows(video, window_sec=2.0, stride_sec=2.0)
    assert result["windows"] and result["events"]
    assert all(0 <= w["score"] <= 1 for w in result["windows"])


def predictor_run_dir(predictor):
    return predictor.run_dir


def test_consecutive_windows_with_one_label_merge_into_events():
    from vidcls.serving.predictor import merge_events

    labels = ["calm", "calm", "fight", "fight", "fight", "calm"]
    windows = [{"start_sec": i * 1.0, "end_sec": i * 1.0 + 2.0, "label": label, "score": 0.5 + i / 20}
               for i, label in enumerate(labels)]
    events = merge_events(windows)
    assert [(event["label"], event["windows"]) for event in events] == [("calm", 2), ("fight", 3), ("calm", 1)]
    # Overlapping windows: neighbouring events meet in the middle of the overlap.
    assert [(event["start_sec"], event["end_sec"]) for event in events] == [(0.0, 2.5), (2.5, 5.5), (5.5, 7.0)]
    assert events[1]["max_score"] == 0.7 and events[1]["mean_score"] == pytest.approx(0.65)
