"""What a cache may not hold silently: duplicated clips, stale packed features, NaN/inf,
the wrong dtype, paths leading outside it, a hand-edited cache.json; and videos that are
not videos get a true reason in failures.jsonl."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_FEATURES
from vidcls.config import ExperimentConfig, FeatureConfig
from vidcls.data import stratified_split
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache, extract, pack_cache
from vidcls.features.cache import writer_lock
from vidcls.training import train
from vidcls.videos import discover_videos, read_annotations


def _copy(cache_dir, tmp_path) -> Path:
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    return copy


def _extract_command(video_dir, cache):
    settings = ["--backbone", "resnet50", "--weights", "none", "--num-frames", "8", "--image-size", "32",
                "--streams", "appearance"]
    return [sys.executable, "-m", "vidcls", "extract", "--data-dir", str(video_dir), "--cache-dir", str(cache), *settings]


def test_a_second_writer_is_refused_while_one_writes(video_dir, tmp_path):
    cache = tmp_path / "cache"
    with writer_lock(cache):  # as a running `vidcls extract` holds it
        completed = subprocess.run(_extract_command(video_dir, cache), capture_output=True, text=True)
    assert completed.returncode == 2, completed.stderr[-1500:]
    assert f"Another vidcls extract is writing to the cache {cache}" in completed.stderr
    assert "--shard i/n" in completed.stderr
    assert not (cache / "manifest.jsonl").exists()  # refused before writing anything
    with writer_lock(cache, 0, 2):  # shards share the cache, each shard once
        with writer_lock(cache, 1, 2):
            with pytest.raises(VidclsError, match="writing shard 1/2 of the cache"):
                with writer_lock(cache, 1, 2):
                    pass
        with pytest.raises(VidclsError, match="writing to the cache"):
            with writer_lock(cache):
                pass


@pytest.mark.slow
@pytest.mark.parametrize("shards", [(None, None), ("0/2", "1/2")], ids=["unsharded", "two_shards"])
def test_two_extract_processes_at_once_list_every_clip_once(video_dir, tmp_path, shards):
    cache = tmp_path / "cache"
    processes = [subprocess.Popen(_extract_command(video_dir, cache) + (["--shard", shard] if shard else []),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for shard in shards]
    outcomes = [(process.wait(), process.stderr.read()) for process in processes]
    for code, stderr in outcomes:
        assert code == 0 or (code == 2 and "Another vidcls extract is writing" in stderr and shards[0] is None), \
            stderr[-1500:]
    ids = [json.loads(line)["clip_id"] for line in (cache / "manifest.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 24


def test_two_writers_of_one_clip_record_it_once(cache_dir, tmp_path):
    copy = _copy(cache_dir, tmp_path)
    first, second = FeatureCache(copy), FeatureCache(copy)  # e.g. shards 0/2 and 0/3 overlap
    entry = {key: value for key, value in first.entries[0].items() if key not in ("feature_path", "feature_shape")}
    entry["clip_id"] = "new_clip"
    features = np.ones(first.feature_shape, np.float16)
    assert first.write_clip(entry, features) is True
    assert second.write_clip(entry, features) is False  # it sees the first writer's line
    assert sum('"new_clip"' in line for line in (copy / "manifest.jsonl").read_text().splitlines()) == 1


def test_duplicated_manifest_lines_are_merged_with_a_warning_and_conflicts_refused(cache_dir, tmp_path, caplog):
    copy = _copy(cache_dir, tmp_path)
    manifest = copy / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines + lines[:5]))  # what two unsharded writers left
    with caplog.at_level("WARNING", logger="vidcls"):
        cache = FeatureCache(copy)
    assert len(cache.entries) == 24 and "lists 5 clip(s) more than once" in caplog.text
    other = json.loads(lines[0])
    other.update(video="elsewhere/other.mp4", label="grow" if other["label"] != "grow" else "shrink")
    manifest.write_text("".join(lines) + json.dumps(other) + "\n")
    with pytest.raises(VidclsError, match=rf"Clip id '{other['clip_id']}' appears twice in .*manifest.jsonl for different clips"):
        FeatureCache(copy)


def test_splits_refuse_duplicate_clip_ids():
    with pytest.raises(VidclsError, match=r"1 clip id\(s\) appear more than once \(first: \['a'\]\)"):
        stratified_split(["a", "b", "a", "c"], ["x", "y", "x", "y"], 0.25, 0.25, seed=0)


def test_overwrite_removes_the_packed_file_and_a_changed_file_rebuilds_it(video_dir, cache_dir, tmp_path):
    copy = _copy(cache_dir, tmp_path)
    path, rows = pack_cache(FeatureCache(copy))
    assert path.is_file()
    # One feature file rewritten in place with other values (same shape): the pack follows.
    cache = FeatureCache(copy)
    entry = cache.entries[4]
    replaced = np.full(cache.feature_shape, 0.5, np.float16)
    np.save(copy / entry["feature_path"], replaced)
    os.utime(copy / entry["feature_path"], ns=(1, 1))  # even with an old modification time: the size
    np.save(copy / entry["feature_path"], replaced)   # is the same, so the mtime must be what changed
    path, rows = pack_cache(FeatureCache(copy))
    from vidcls.features import PackedRows

    np.testing.assert_array_equal(PackedRows(path, np.array([rows[entry["clip_id"]]]))[[0]][0], replaced)
    # extract --overwrite with other settings: the old pack must not survive.
    extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(copy), overwrite=True, **{**TINY_FEATURES, "num_frames": 4}))
    assert not (copy / "packed").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda features: features.astype(np.float32), r"Expected float16 features \(cache.json's dtype\) in .*\.npy; received float32"),
    (lambda features: np.where(np.arange(features.shape[1]) == 3, np.nan, features).astype(np.float16),
     r"Feature file .*\.npy holds 8 NaN/inf value\(s\)"),
    (lambda features: np.full_like(features, np.inf), r"Feature file .*\.npy holds 16384 NaN/inf value\(s\)"),
])
def test_bad_feature_values_are_refused_naming_the_file(cache_dir, tmp_path, damage, message):
    copy = _copy(cache_dir, tmp_path)
    cache = FeatureCache(copy)
    entry = cache.entries[1]
    np.save(copy / entry["feature_path"], damage(cache.load_features(entry)))
    with pytest.raises(VidclsError, match=message):
        cache.load_all(cache.entries)
    with pytest.raises(VidclsError, match=message):  # streamed from disk: checked while packing
        pack_cache(FeatureCache(copy))
    assert not list((copy / "packed").glob(".*tmp-*"))  # no half-written pack left behind


def test_training_on_nan_features_fails_naming_the_file(cache_dir, tmp_path):
    copy = _copy(cache_dir, tmp_path)
    cache = FeatureCache(copy)
    features = cache.load_features(cache.entries[0]).copy()
    features[0, 0] = np.nan
    np.save(copy / cache.entries[0]["feature_path"], features)
    config = ExperimentConfig().replace({"data.cache_dir": str(copy), "train.epochs": 1, "model.name": "mean_pool"})
    with pytest.raises(VidclsError, match=rf"{cache.entries[0]['clip_id']}.npy holds 1 NaN/inf"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "result.json").exists()


def test_feature_path_outside_the_cache_is_not_followed(cache_dir, tmp_path):
    copy = _copy(cache_dir, tmp_path)
    manifest = copy / "manifest.jsonl"
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    outside = tmp_path / "elsewhere.npy"
    np.save(outside, np.zeros((8, 2048), np.float16))
    entries[0]["feature_path"] = "features/../../elsewhere.npy"
    manifest.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    with pytest.raises(VidclsError, match=r"has feature_path 'features/../../elsewhere.npy'; expected a file inside"):
        FeatureCache(copy).load_all(FeatureCache(copy).entries)


def test_hand_edited_or_damaged_cache_json_is_refused(cache_dir, tmp_path):
    copy = _copy(cache_dir, tmp_path)
    info_path = copy / "cache.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "backbone": "vgg16_conv"}))
    with pytest.raises(VidclsError, match=r"cache.json was edited after extraction: its settings \(backbone 'vgg16_conv'"):
        FeatureCache(copy)
    info_path.write_text(json.dumps(info)[:40])
    with pytest.raises(VidclsError, match=r"cache.json is not valid JSON"):
        FeatureCache(copy)
    info_path.write_text("[1, 2]")
    with pytest.raises(VidclsError, match=r"Expected .*cache.json to hold an object with keys \['backbone'"):
        FeatureCache(copy)


@pytest.mark.parametrize("first, second", [("a/b/c.mp4", "a__b/c.mp4"), ("x y.mp4", "x_y.mp4")])
def test_colliding_clip_ids_in_a_folder_are_refused_naming_both(tmp_path, first, second):
    for name in (first, second):
        (tmp_path / "data" / "fight" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / "fight" / name).write_bytes(b"x")
    with pytest.raises(VidclsError, match=rf"fight/{re.escape(first)} and .*fight/{re.escape(second)} both get the clip id"):
        discover_videos(tmp_path / "data")


def test_things_named_like_videos_are_listed_as_failures_with_the_true_reason(video_dir, tmp_path):
    data = tmp_path / "videos"
    shutil.copytree(video_dir, data)
    (data / "grow" / "folder.mp4").mkdir()
    (data / "grow" / "loop.mp4").symlink_to("loop.mp4")
    (data / "grow" / "dangling.mp4").symlink_to("nowhere.mp4")
    cache = tmp_path / "cache"
    summary = extract(FeatureConfig(data_dir=str(data), cache_dir=str(cache), **TINY_FEATURES))
    assert summary.extracted == 24
    reasons = {Path(failure["video"]).name: failure["reason"]
               for failure in map(json.loads, (cache / "failures.jsonl").read_text().splitlines())}
    assert reasons["folder.mp4"] == "is a directory, not a video file"
    assert reasons["loop.mp4"].startswith("symbolic link loop")
    assert reasons["dangling.mp4"].startswith("broken symbolic link")


def test_an_unreadable_file_is_reported_as_permission_denied(video_dir):
    """As root every file is readable, so the check runs as an unprivileged user then."""
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        video = Path(directory) / "secret.mp4"
        shutil.copy(next(video_dir.rglob("*.mp4")), video)
        os.chmod(video, 0)
        code = ("import os\nfrom vidcls.features import VideoReadError, read_clips\nfrom vidcls.videos import ClipRange\n"
                "if os.geteuid() == 0:\n    os.setuid(65534)  # after the imports: nobody may read the venv\n"
                f"try:\n    read_clips({str(video)!r}, [ClipRange()], 4, 32)\n"
                "except VideoReadError as error:\n    print(error)\n")
        completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   cwd=Path(__file__).resolve().parents[2])
    assert completed.stdout.strip() == "permission denied: this user may not read the file", completed.stderr[-1500:]


def test_a_segment_past_the_end_reports_the_last_frame_of_the_video(real_videos):
    from vidcls.features.video import count_frames, read_clips
    from vidcls.videos import ClipRange

    video = sorted(real_videos.glob("*.mp4"))[0]
    total = count_frames(video)
    [result] = read_clips(video, [ClipRange(start_frame=total - 5, end_frame=total + 40)], 8, 32)
    assert f"last decodable frame: {total - 1})" in str(result) and "runs past the end of the video" in str(result)


def test_annotations_utf8_bom_non_utf8_and_infinite_times(tmp_path):
    csv_path = tmp_path / "clips.csv"
    csv_path.write_bytes("\ufeffpath,label\nclip.mp4,fight\n".encode())  # as spreadsheets save "CSV UTF-8"
    assert read_annotations(csv_path)[0].label == "fight"
    csv_path.write_bytes("path,label\nclip.mp4,caf\xe9\n".encode("latin-1"))
    with pytest.raises(VidclsError, match=r"clips.csv is not UTF-8 text: byte 0xe9 on line 2"):
        read_annotations(csv_path)
    csv_path.write_text("path,label,start_sec,end_sec\nclip.mp4,fight,0,inf\n")
    with pytest.raises(VidclsError, match=r"Row 2 of .*clips.csv: expected a finite number in column 'end_sec'; received 'inf'"):
        read_annotations(csv_path)


@pytest.fixture
def small_disk(tmp_path):
    """A 1.3 MB tmpfs: room for the tiny cache (0.8 MB), not for its packed copy."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    completed = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1300k", "tmpfs", str(mount_point)],
                               capture_output=True, text=True)
    if completed.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({completed.stderr.strip()}); needs root")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_packing_on_a_full_disk_says_how_much_space_it_needs(cache_dir, small_disk):
    copy = small_disk / "cache"
    shutil.copytree(cache_dir, copy)
    with pytest.raises(VidclsError, match=r"Packing .* needs 0.8 MB in .*packed; only 0.[0-9] MB is free. Free space"):
        pack_cache(FeatureCache(copy))
    assert [path.name for path in (copy / "packed").iterdir()] in ([], ["features.npy.lock"])
