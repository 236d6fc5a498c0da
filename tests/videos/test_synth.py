import pytest

from vidcls.errors import VidclsError
from vidcls.features import read_sampled_frames
from vidcls.videos import SYNTH_CLASSES, discover_videos, synthesize


def test_synth_writes_balanced_decodable_videos(video_dir):
    items = discover_videos(video_dir)
    assert len(items) == 24
    assert sorted({item.label for item in items}) == sorted(SYNTH_CLASSES)
    assert all(sum(item.label == label for item in items) == 6 for label in SYNTH_CLASSES)


def test_paired_classes_are_the_same_frames_in_reverse_order(tmp_path):
    """grow/shrink: the mean frame carries no order, the first-to-last change does."""
    synthesize(tmp_path, num_videos=8, seed=4)
    areas = {}
    for item in discover_videos(tmp_path):
        frames = read_sampled_frames(item.video, 8, 64).frames.astype(float).mean(axis=3)
        bright = frames > frames.mean() + 20
        areas.setdefault(item.label, []).append(bright.reshape(8, -1).mean(axis=1))
    assert all(series[-1] > series[0] for series in areas["grow"])
    assert all(series[-1] < series[0] for series in areas["shrink"])


def test_same_seed_writes_the_same_videos(tmp_path):
    first = synthesize(tmp_path / "a", num_videos=4, seed=9).videos
    second = synthesize(tmp_path / "b", num_videos=4, seed=9).videos
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_too_few_videos_is_an_error(tmp_path):
    with pytest.raises(VidclsError, match="Expected --num-videos >= 4"):
        synthesize(tmp_path, num_videos=2)
