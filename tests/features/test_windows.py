"""The frame grid that `predict --window`, `serve` and `stream` share."""

import numpy as np
import pytest

from vidcls.errors import VidclsError
from vidcls.features import plan_windows, segment_centre_indices


def test_each_window_holds_the_segment_centres_of_its_span_and_overlapping_windows_share_frames():
    # 25 fps, 2-s windows of T=10: one grid frame every 5 source frames (0.2 s).
    plan = plan_windows(total_frames=250, fps=25.0, num_frames=10, window_sec=2.0, stride_sec=0.6)
    assert plan.interval == 5 and plan.step == 3 and plan.frame_interval_sec == pytest.approx(0.2)
    assert plan.frames.tolist() == list(range(2, 250, 5))  # every grid frame decoded once
    for row, window in enumerate(plan.windows):
        start = int(window[0]) * 5
        # the same frames a training clip of this span samples
        assert plan.frames[window].tolist() == (start + segment_centre_indices(50, 10)).tolist()
        assert plan.times(row) == (pytest.approx(start / 25), pytest.approx(start / 25 + 2.0))
    assert [int(w[0]) for w in plan.windows] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 40]
    assert plan.times(len(plan.windows) - 1)[1] == pytest.approx(10.0)  # the tail window ends the video
    assert plan.masks.min() == 1.0


def test_a_stride_snaps_to_whole_frame_intervals_and_partners_follow_each_grid_frame():
    plan = plan_windows(total_frames=90, fps=30.0, num_frames=8, window_sec=2.0, stride_sec=0.4, difference_gap=2)
    assert plan.interval == pytest.approx(7.5) and plan.step == 2  # 0.4 s is 1.6 frame intervals of 0.25 s
    assert plan.frames.tolist() == [3, 11, 18, 26, 33, 41, 48, 56, 63, 71, 78, 86]
    assert plan.partners.tolist()[:-1] == (plan.frames[:-1] + 2).tolist()
    assert plan.partners.tolist()[-1] == 88  # 86 + 2 < 90
    end = plan_windows(total_frames=87, fps=30.0, num_frames=8, window_sec=2.0, stride_sec=0.4, difference_gap=2)
    assert end.frames[-1] == 86 and end.partners[-1] == 84  # no frame 88: the one before it


def test_a_video_shorter_than_one_window_is_one_window_with_its_repeats_masked():
    plan = plan_windows(total_frames=30, fps=30.0, num_frames=8, window_sec=2.0, stride_sec=1.0)
    assert len(plan.frames) == 4 and plan.windows.shape == (1, 8)
    assert plan.windows[0].tolist() == segment_centre_indices(4, 8).tolist()
    assert plan.masks[0].tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    assert plan.times(0) == (0.0, 1.0)
    # A window shorter than T source frames: grid frames repeat source frames, masked alike.
    dense = plan_windows(total_frames=100, fps=10.0, num_frames=8, window_sec=0.4, stride_sec=0.4)
    assert dense.interval == pytest.approx(0.5) and dense.masks[0].tolist() == [1, 0, 1, 0, 1, 0, 1, 0]


def test_bad_windows_are_refused_with_the_reason():
    for window, stride, message in ((0, 1, "Expected --window to be a positive finite number of seconds; received 0"),
                                    (float("nan"), 1, "--window .* received nan"),
                                    (1, -1, "Expected --stride .* received -1"),
                                    (True, 1, "--window .* received True")):
        with pytest.raises(VidclsError, match=message):
            plan_windows(100, 25.0, 8, window, stride)
    with pytest.raises(VidclsError, match=r"makes 93 windows of this 4.0-s video; at most 10 are allowed"):
        plan_windows(100, 25.0, 8, 0.32, 0.01, max_windows=10)
    with pytest.raises(VidclsError, match="frame rate"):
        plan_windows(100, 0.0, 8, 1, 1)
    assert np.all(plan_windows(100, 25.0, 8, 0.32, 0.01).masks == 1)
