import struct

import cv2
import numpy as np
import pytest

from tests.conftest import write_corrupt_video
from vidcls.features import VideoReadError, read_counted, read_sampled_frames, segment_centre_indices
from vidcls.features.video import count_frames


def test_indices_are_segment_centres_over_the_whole_video():
    indices = segment_centre_indices(100, 4)
    assert indices.tolist() == [12, 37, 62, 87]  # not the first four frames


def test_short_video_repeats_frames_in_order():
    indices = segment_centre_indices(3, 8)
    assert len(indices) == 8 and indices.tolist() == sorted(indices.tolist())
    assert set(indices.tolist()) == {0, 1, 2}


def test_synthetic_video_decodes_with_its_true_frame_count(video_dir):
    video = sorted(video_dir.rglob("*.mp4"))[0]
    clip = read_sampled_frames(video, num_frames=8, image_size=48)
    assert clip.frames.shape == (8, 48, 48, 3) and clip.frames.dtype == np.uint8
    assert 24 <= clip.total_frames <= 40 and clip.valid_frames == 8


def test_real_videos_decode_at_every_resolution(real_videos):
    for video in sorted(real_videos.glob("*.*")):
        if video.suffix not in (".mp4", ".avi"):
            continue
        clip = read_sampled_frames(video, num_frames=16, image_size=64)
        assert clip.frames.shape == (16, 64, 64, 3), video
        assert clip.total_frames == count_frames(video) > 16
        assert clip.frames.std() > 1, f"{video.name} decoded to flat frames"


def test_samples_come_from_the_right_frames(tmp_path):
    """Each frame's brightness encodes its index; the sampled frames must match."""
    path = tmp_path / "ramp.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for index in range(40):
        writer.write(np.full((32, 32, 3), index * 6, np.uint8))
    writer.release()
    clip = read_sampled_frames(path, num_frames=4, image_size=32)
    observed = clip.frames.reshape(4, -1).mean(axis=1) / 6
    np.testing.assert_allclose(observed, segment_centre_indices(40, 4), atol=0.6)


def _ramp_avi(path, frames=40, header_frames=None):
    """An MJPG AVI whose frame i has brightness 6 i; `header_frames` overwrites the frame
    count its headers claim (avih and strh), as a damaged or lying container does."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for index in range(frames):
        writer.write(np.full((32, 32, 3), index * 6, np.uint8))
    writer.release()
    if header_frames is not None:
        data = bytearray(path.read_bytes())
        for chunk, offset in ((b"avih", 16), (b"strh", 32)):
            at = data.find(chunk) + 8 + offset
            assert struct.unpack("<I", data[at:at + 4])[0] == frames
            data[at:at + 4] = struct.pack("<I", header_frames)
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("header_frames", [None, 80, 25])
def test_one_decoding_pass_counts_and_samples_unless_the_container_lies(tmp_path, header_frames):
    path = _ramp_avi(tmp_path / "ramp.avi", header_frames=header_frames)
    assert cv2.VideoCapture(str(path)).get(cv2.CAP_PROP_FRAME_COUNT) == (header_frames or 40)
    counted = read_counted(path, lambda total: set(segment_centre_indices(total, 4).tolist()), 32)
    # The plan is the one for the decoded count (40), whatever the header says; a wrong header
    # costs a second pass, a right one does not.
    assert counted.total == 40 and sorted(counted.frames) == segment_centre_indices(40, 4).tolist()
    assert counted.passes == (1 if header_frames is None else 2)
    brightness = [counted.frames[index].mean() / 6 for index in sorted(counted.frames)]
    np.testing.assert_allclose(brightness, segment_centre_indices(40, 4), atol=0.6)
    clip = read_sampled_frames(path, num_frames=4, image_size=32)
    assert clip.total_frames == 40
    np.testing.assert_allclose(clip.frames.reshape(4, -1).mean(axis=1) / 6, segment_centre_indices(40, 4), atol=0.6)
    with pytest.raises(VideoReadError, match=r"frames \[40\] could not be decoded \(the video has 40 frames\)"):
        counted.require([5, 40])


@pytest.mark.parametrize("make, reason", [
    (lambda d: d / "missing.mp4", "file does not exist"),
    (lambda d: (d / "empty.mp4").write_bytes(b"") or d / "empty.mp4", "file is empty"),
    (lambda d: write_corrupt_video(d / "corrupt.mp4"), "could not open|no decodable frame"),
])
def test_unreadable_videos_raise_with_a_reason(tmp_path, make, reason):
    with pytest.raises(VideoReadError, match=reason):
        read_sampled_frames(make(tmp_path), num_frames=4, image_size=32)


def test_zero_frame_video_is_unreadable(tmp_path):
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    writer.release()  # a container header and no frame
    with pytest.raises(VideoReadError, match="file is empty|could not open|no decodable frame"):
        read_sampled_frames(path, num_frames=4, image_size=32)


def test_truncated_video_is_unreadable(video_dir, tmp_path):
    source = sorted(video_dir.rglob("*.mp4"))[0].read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(source[: len(source) // 2])
    with pytest.raises(VideoReadError):
        read_sampled_frames(truncated, num_frames=4, image_size=32)
