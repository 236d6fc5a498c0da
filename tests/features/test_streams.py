"""Motion-aware inputs at extraction: a frame-difference stream beside appearance, and
spatial grid pooling; and a two-stream run from cache to predict and the end-to-end TFLite."""

import csv
import json

import cv2
import numpy as np
import pytest

from tests.conftest import TINY_FEATURES
from vidcls.config import ExperimentConfig, FeatureConfig
from vidcls.errors import VidclsError
from vidcls.features import (
    FeatureCache,
    PartnerGap,
    VideoReadError,
    difference_images,
    extract,
    get_backbone,
    plan_windows,
    read_sampled_frames,
)
from vidcls.features.sampling import partner_indices, segment_centre_indices

MOTION = dict(streams=["appearance", "frame_difference"], difference_gap=2, difference_gain=4.0)
DEFAULT_STREAMS = {key: value for key, value in TINY_FEATURES.items() if key != "streams"}


@pytest.fixture(scope="module")
def motion_cache(video_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("motion") / "cache"
    summary = extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(cache), **DEFAULT_STREAMS))  # the defaults
    assert summary.extracted == 24 and not summary.failures
    return cache


def _write(path, frames, fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_partner_frames_are_gap_frames_later_and_earlier_at_the_end(tmp_path):
    indices = segment_centre_indices(10, 4)  # [1, 3, 6, 8]
    assert partner_indices(indices, 0, 10, 2).tolist() == [3, 5, 8, 6]  # 8 + 2 is past the end: 8 - 2
    assert partner_indices(np.array([0, 0]), 0, 1, 1).tolist() == [0, 0]  # one frame: no motion to see
    ramp = _write(tmp_path / "ramp.avi", [np.full((32, 32, 3), index * 6, np.uint8) for index in range(40)])
    clip = read_sampled_frames(ramp, num_frames=4, image_size=32, difference_gap=3)
    brightness = clip.partner_frames.reshape(4, -1).mean(axis=1) / 6
    np.testing.assert_allclose(brightness, segment_centre_indices(40, 4) + 3, atol=0.6)
    np.testing.assert_array_equal(difference_images(clip.frames, clip.partner_frames, 4.0),
                                  np.minimum(np.abs(clip.partner_frames.astype(int) - clip.frames) * 4, 255))


def test_a_gap_in_seconds_spans_the_same_time_at_any_frame_rate(tmp_path):
    gap = PartnerGap(seconds=0.1)
    for fps, frames in ((10, 1), (30, 3)):
        ramp = _write(tmp_path / f"ramp{fps}.avi", [np.full((32, 32, 3), index * 6, np.uint8) for index in range(40)], fps)
        clip = read_sampled_frames(ramp, num_frames=4, image_size=32, difference_gap=gap)
        brightness = clip.partner_frames.reshape(4, -1).mean(axis=1) / 6
        np.testing.assert_allclose(brightness, segment_centre_indices(40, 4) + frames, atol=0.6)
        plan = plan_windows(total_frames=90, fps=fps, num_frames=8, window_sec=2.0, stride_sec=1.0, difference_gap=gap)
        assert plan.partners[0] == plan.frames[0] + frames
    # The nearest whole number of frames, at least one; an exact half rounds to the shorter gap.
    assert [gap.at(fps) for fps in (5.0, 15.0, 15.01, 25.0, 25.01, 29.97)] == [1, 1, 2, 2, 3, 3]
    assert PartnerGap(2).at(60.0) == 2 and not PartnerGap() and PartnerGap(seconds=0.1)
    with pytest.raises(VideoReadError, match=r"cam.avi: the container reports no frame rate \(0.0\), so a difference "
                                             r"gap of 0.1 s cannot be converted to frames; extract with --difference-gap"):
        gap.at(0.0, "cam.avi")
    with pytest.raises(VidclsError, match=r"Expected --difference-seconds \(extract.difference_seconds\) >= 0 "
                                          r"\(0: the gap is --difference-gap frames\); received -0.1"):
        extract(FeatureConfig(data_dir=str(tmp_path), cache_dir=str(tmp_path / "x"),
                              **{**TINY_FEATURES, "streams": ["frame_difference"], "difference_seconds": -0.1}))


def test_the_motion_stream_is_the_backbone_on_difference_images_beside_appearance(motion_cache, cache_dir):
    info = json.loads((motion_cache / "cache.json").read_text())
    assert info["streams"] == ["appearance", "frame_difference"] and info["stream_dim"] == 2048
    assert info["feature_dim"] == 4096 and info["difference_gap"] == 2 and info["difference_gain"] == 4.0
    motion, plain = FeatureCache(motion_cache), FeatureCache(cache_dir)
    entry = motion.entries[0]
    features = motion.load_features(entry).astype(np.float32)
    appearance = plain.load_features(next(e for e in plain.entries if e["clip_id"] == entry["clip_id"]))
    np.testing.assert_allclose(features[:, :2048], appearance, rtol=2e-3, atol=2e-3)  # the same first stream
    backbone = get_backbone("resnet50", "none", 32, seed=0, batch_size=32)
    clip = read_sampled_frames(entry["video"], 8, 32, difference_gap=2)
    expected = backbone.embed(difference_images(clip.frames, clip.partner_frames, 4.0)).astype(np.float16)
    np.testing.assert_allclose(features[:, 2048:], expected, rtol=2e-3, atol=2e-3)
    assert not np.allclose(features[:, 2048:], features[:, :2048], atol=0.05)  # not the appearance again


def test_a_still_video_has_the_motion_features_of_a_black_image(tmp_path):
    still = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    (tmp_path / "videos" / "still").mkdir(parents=True)
    (tmp_path / "videos" / "moving").mkdir()
    _write(tmp_path / "videos" / "still" / "a.avi", [still] * 12)
    _write(tmp_path / "videos" / "moving" / "b.avi", [np.roll(still, 3 * index, axis=1) for index in range(12)])
    cache = tmp_path / "cache"
    extract(FeatureConfig(data_dir=str(tmp_path / "videos"), cache_dir=str(cache), **DEFAULT_STREAMS, **MOTION))
    by_label = {entry["label"]: FeatureCache(cache).load_features(entry) for entry in FeatureCache(cache).entries}
    black = get_backbone("resnet50", "none", 32, seed=0, batch_size=32).embed(np.zeros((1, 32, 32, 3), np.uint8))
    np.testing.assert_allclose(by_label["still"][:, 2048:].astype(np.float32), np.repeat(black, 8, 0).astype(np.float16),
                               rtol=2e-3, atol=2e-3)
    assert np.abs(by_label["moving"][:, 2048:].astype(np.float32) - black).max() > 0.1


def test_grid_cells_average_to_the_whole_frame_features(video_dir, tmp_path):
    """ResNet50 at 64 px ends in a 2x2 map: 2x2 cells are its four positions, so their
    mean is the global average that --grid 1 caches."""
    settings = {**TINY_FEATURES, "image_size": 64}
    extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(tmp_path / "whole"), **settings))
    extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(tmp_path / "grid"), **{**settings, "grid": 2}))
    whole, grid = FeatureCache(tmp_path / "whole"), FeatureCache(tmp_path / "grid")
    assert grid.info["grid"] == 2 and grid.feature_shape == (8, 4 * 2048) and "grid" not in whole.info
    cells = grid.load_features(grid.entries[0]).astype(np.float32).reshape(8, 4, 2048)
    np.testing.assert_allclose(cells.mean(axis=1), whole.load_features(whole.entries[0]), rtol=3e-3, atol=3e-3)
    assert np.abs(cells[:, 0] - cells[:, 3]).max() > 0.01  # cells differ: where things are survives
    with pytest.raises(VidclsError, match=r"at least 3x3 for --grid \(extract.grid\) 3; the backbone gives 2x2"):
        get_backbone("resnet50", "none", 64, grid=3)
    with pytest.raises(VidclsError, match=r"--grid \(extract.grid\) pools a convolutional feature map; backbone vgg16 gives the fc2"):
        get_backbone("vgg16", "none", 32, grid=2)
    with pytest.raises(VidclsError, match=r"distinct streams of appearance, frame_difference; received \['flow'\]"):
        extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(tmp_path / "x"), **{**TINY_FEATURES, "streams": ["flow"]}))


@pytest.fixture(scope="module")
def motion_run(motion_cache, tmp_path_factory):
    from vidcls.training import train

    run_dir = tmp_path_factory.mktemp("motion_run") / "run"
    train(ExperimentConfig().replace({
        "data.cache_dir": str(motion_cache), "train.epochs": 2, "train.batch_size": 4, "model.fusion": "late",
        "model.adapter_units": 16, "model.hidden_units": 8, "model.attention_units": 8}), run_dir)
    return run_dir


def test_predict_on_a_two_stream_run_reproduces_the_cached_features(motion_run, motion_cache):
    from vidcls.models import load_model
    from vidcls.serving import Predictor

    predictor = Predictor(motion_run)
    cache = FeatureCache(motion_cache)
    for entry in cache.entries[:2]:
        features, mask = predictor.embed(predictor.read(entry["video"]))
        np.testing.assert_allclose(features, cache.load_features(entry).astype(np.float32), rtol=2e-3, atol=2e-3)
        result = predictor.predict(entry["video"])
        expected = np.asarray(load_model(motion_run / "best.keras")([features[None], mask[None]]))[0]
        np.testing.assert_allclose(list(result["probabilities"].values()), expected, atol=1e-5)


@pytest.mark.slow
def test_the_end_to_end_tflite_computes_the_frame_difference_inside(motion_run):
    from vidcls.exporting.exporter import export_end_to_end

    entry = export_end_to_end(motion_run, videos=3)
    assert set(entry["inputs"]) == {"frames", "mask", "partner_frames"}
    assert entry["streams"] == ["appearance", "frame_difference"]
    assert entry["top1_agreement"] == 1.0 and entry["max_abs_diff"] < 1e-4
    assert not [op for op in entry["ops"] if op.startswith("Flex") or op == "CUSTOM"]


def test_a_run_is_scored_on_a_cache_that_holds_more_streams_than_it_was_trained_on(trained_run, cache_dir, motion_cache,
                                                                                   motion_run, tmp_path):
    """Appearance is embedded alone in a two-stream cache too, so a run trained on it alone
    reads its columns there; the other way round a stream is missing, and that is refused."""
    from vidcls.evaluation import evaluate

    own = evaluate(trained_run, cache_dir=cache_dir, out_dir=tmp_path / "own")
    wider = evaluate(trained_run, cache_dir=motion_cache, out_dir=tmp_path / "wider")
    assert wider["num_samples"] == own["num_samples"] == 24
    by_clip = {name: _predictions(tmp_path / name) for name in ("own", "wider")}
    assert by_clip["own"].keys() == by_clip["wider"].keys()
    for clip_id, probabilities in by_clip["own"].items():  # the caches' appearance agrees to ~2e-3
        np.testing.assert_allclose(by_clip["wider"][clip_id], probabilities, atol=5e-3)
    with pytest.raises(VidclsError, match=r"holds the streams \['appearance'\], but .* was trained on "
                                          r"\['appearance', 'frame_difference'\]"):
        evaluate(motion_run, cache_dir=cache_dir, out_dir=tmp_path / "narrower")


def _predictions(eval_dir):
    with (eval_dir / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return {row["clip_id"]: np.array([float(row[key]) for key in row if key.startswith("prob_")]) for row in rows}


@pytest.mark.slow
def test_a_gap_in_seconds_travels_from_the_cache_to_predict_and_the_phone(video_dir, tmp_path):
    """0.2 s is 5 frames of these 24-frame/s videos: extract, predict and the streaming pair
    all read each frame's partner 5 frames later."""
    from vidcls.exporting import export_streaming, read_metadata
    from vidcls.serving import Predictor
    from vidcls.training import train

    cache = tmp_path / "cache"
    extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(cache),
                          **{**TINY_FEATURES, "streams": ["frame_difference"], "difference_seconds": 0.2}))
    info = json.loads((cache / "cache.json").read_text())
    assert info["difference_seconds"] == 0.2 and info["streams"] == ["frame_difference"]
    assert "difference_gap" not in info  # the config's default gap in frames is not in effect
    entry = FeatureCache(cache).entries[0]
    clip = read_sampled_frames(entry["video"], 8, 32, difference_gap=5)
    backbone = get_backbone("resnet50", "none", 32, seed=0, batch_size=32)
    expected = backbone.embed(difference_images(clip.frames, clip.partner_frames, 4.0))
    features = FeatureCache(cache).load_features(entry).astype(np.float32)
    np.testing.assert_allclose(features, expected, rtol=2e-3, atol=2e-3)
    run = tmp_path / "run"
    train(ExperimentConfig().replace({"data.cache_dir": str(cache), "model.name": "mean_pool", "train.epochs": 2,
                                      "train.batch_size": 4, "model.adapter_units": 16}), run)
    predicted, _ = Predictor(run).embed(Predictor(run).read(entry["video"]))
    np.testing.assert_allclose(predicted, features, rtol=2e-3, atol=2e-3)
    report = export_streaming(run, variants=["float32"], stride_sec=1.0)
    (variant,) = report["variants"]
    assert variant["windows"] >= 2 and variant["top1_agreement"] == 1.0 and variant["max_abs_diff"] < 1e-4
    encoder = read_metadata(run / "export" / "streaming" / "frame_encoder_float32.tflite")
    assert encoder["difference_seconds"] == 0.2 and "difference_seconds later" in encoder["partner_frame"]
    assert "difference_gap" not in encoder
