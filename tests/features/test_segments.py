"""Segments of long videos, clips shorter than T, and sampling exactness."""

import json

import cv2
import numpy as np

from tests.conftest import TINY_FEATURES
from vidcls.config import FeatureConfig
from vidcls.features import FeatureCache, VideoReadError, extract, read_clips, segment_centre_indices
from vidcls.videos import ClipRange

FPS = 10


def write_index_video(path, num_frames):
    """Frame i is a flat image of brightness 3*i: the sampled index can be read back."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (32, 32))
    for index in range(num_frames):
        writer.write(np.full((32, 32, 3), 3 * index, np.uint8))
    writer.release()
    return path


def _indices(clip):
    return np.round(clip.frames.reshape(len(clip.frames), -1).mean(axis=1) / 3).astype(int)


def test_segments_in_frames_and_seconds_sample_inside_the_segment(tmp_path):
    video = write_index_video(tmp_path / "long.avi", 80)
    by_frames, by_seconds, whole = read_clips(video, [ClipRange(start_frame=20, end_frame=40),
                                                      ClipRange(start_sec=5.0, end_sec=7.0),
                                                      ClipRange()], num_frames=4, image_size=32)
    assert _indices(by_frames).tolist() == (20 + segment_centre_indices(20, 4)).tolist()
    assert _indices(by_seconds).tolist() == (50 + segment_centre_indices(20, 4)).tolist()
    assert by_frames.frame_range == (20, 40) and whole.frame_range == (0, 80)


def test_segment_past_the_end_fails_alone(tmp_path):
    video = write_index_video(tmp_path / "short.avi", 30)
    good, bad = read_clips(video, [ClipRange(start_frame=0, end_frame=10), ClipRange(start_frame=25, end_frame=60)], 4, 32)
    assert good.frames.shape == (4, 32, 32, 3)
    assert isinstance(bad, VideoReadError) and "runs past the end of the video" in str(bad)


def test_clip_shorter_than_t_repeats_frames_and_records_it(tmp_path):
    from vidcls.features import sampled_frame_mask

    video = write_index_video(tmp_path / "tiny.avi", 3)
    (clip,) = read_clips(video, [ClipRange()], num_frames=8, image_size=32)
    assert clip.valid_frames == 3 and _indices(clip).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sampled_frame_mask(clip.total_frames, 8).tolist() == [1, 0, 0, 1, 0, 1, 0, 0]  # repeats masked
    assert sampled_frame_mask(80, 8).tolist() == [1] * 8


def test_extract_from_an_annotations_csv(tmp_path):
    data = tmp_path / "videos"
    data.mkdir()
    write_index_video(data / "kitchen.avi", 60)
    write_index_video(data / "tiny.avi", 3)
    annotations = tmp_path / "clips.csv"
    annotations.write_text("narration_id,video,start_frame,end_frame,verb,noun\n"
                           "k_0,kitchen.avi,0,20,open,door\n"
                           "k_1,kitchen.avi,20,45,close,door\n"
                           "k_2,kitchen.avi,50,90,wash,cup\n"
                           "t_0,tiny.avi,0,3,take,cup\n"
                           "m_0,missing.avi,0,10,take,cup\n")
    cache = tmp_path / "cache"
    summary = extract(FeatureConfig(annotations=str(annotations), data_dir=str(data), cache_dir=str(cache), **TINY_FEATURES))
    assert summary.extracted == 3 and len(summary.failures) == 2
    entries = {entry["clip_id"]: entry for entry in FeatureCache(cache).entries}
    assert entries["k_1"]["label"] == "close/door" and entries["k_1"]["verb"] == "close" and entries["k_1"]["noun"] == "door"
    assert entries["k_1"]["frame_range"] == [20, 45] and entries["t_0"]["valid_frames"] == 3
    from vidcls.data import load_labelled_features

    data = load_labelled_features(FeatureCache(cache), ["k_1", "t_0"], ["close/door", "take/cup"])
    assert data.masks[0].tolist() == [1] * 8 and data.masks[1].tolist() == [1, 0, 0, 1, 0, 1, 0, 0]
    reasons = {failure["clip_id"]: failure["reason"] for failure in map(json.loads, (cache / "failures.jsonl").read_text().splitlines())}
    assert "runs past the end" in reasons["k_2"] and "does not exist" in reasons["m_0"]
