import json
import shutil

import numpy as np
import pytest

from tests.conftest import TINY_FEATURES, write_corrupt_video
from vidcls.config import FeatureConfig
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache, extract


def test_cache_follows_the_directory_contract(cache_dir):
    info = json.loads((cache_dir / "cache.json").read_text())
    for key in ("backbone", "weights", "num_frames", "image_size", "feature_dim", "dtype", "preprocessing", "weights_checksum"):
        assert key in info, key
    assert info["backbone"] == "resnet50" and info["feature_dim"] == 2048 and info["dtype"] == "float16"
    entries = [json.loads(line) for line in (cache_dir / "manifest.jsonl").read_text().splitlines()]
    assert len(entries) == 24
    for key in ("clip_id", "video", "label", "num_frames", "feature_path", "feature_shape"):
        assert key in entries[0], key
    features = np.load(cache_dir / entries[0]["feature_path"], allow_pickle=False)
    assert features.dtype == np.float16 and features.shape == (8, 2048) == tuple(entries[0]["feature_shape"])
    assert (cache_dir / "failures.jsonl").read_text() == ""


def test_rerun_skips_finished_clips(video_dir, cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    summary = extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(copy), **TINY_FEATURES))
    assert summary.extracted == 0 and summary.skipped == 24


def test_a_killed_run_resumes_the_missing_clips_only(video_dir, cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    manifest = copy / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:20]) + lines[20][:15])  # died while appending line 21
    summary = extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(copy), **TINY_FEATURES))
    assert summary.extracted == 4 and summary.skipped == 20
    ids = [json.loads(line)["clip_id"] for line in manifest.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 24


def test_unreadable_videos_are_listed_never_zero_filled(video_dir, tmp_path):
    data = tmp_path / "videos"
    shutil.copytree(video_dir, data)
    write_corrupt_video(data / "grow" / "broken.mp4")
    (data / "shrink" / "empty.mp4").write_bytes(b"")
    cache = tmp_path / "cache"
    summary = extract(FeatureConfig(data_dir=str(data), cache_dir=str(cache), **TINY_FEATURES))
    assert summary.extracted == 24
    failures = [json.loads(line) for line in (cache / "failures.jsonl").read_text().splitlines()]
    assert sorted(failure["video"].rsplit("/", 1)[1] for failure in failures) == ["broken.mp4", "empty.mp4"]
    assert all(failure["reason"] for failure in failures)
    assert not any("broken" in entry["clip_id"] or "empty" in entry["clip_id"] for entry in FeatureCache(cache).entries)
    assert "2 failed" in summary.describe() and "broken.mp4" in summary.describe()


def test_other_settings_on_an_existing_cache_are_refused(video_dir, cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    settings = {**TINY_FEATURES, "num_frames": 4}
    with pytest.raises(VidclsError, match=r"built with other settings \(num_frames: cache has 8, this run wants 4\).*another --cache-dir"):
        extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(copy), **settings))


def test_wrong_shape_feature_file_names_the_file(cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    cache = FeatureCache(copy)
    entry = cache.entries[0]
    np.save(copy / entry["feature_path"], np.zeros((8, 4096), np.float16))
    with pytest.raises(VidclsError, match=rf"Expected features of shape \[8, 2048\] for backbone resnet50; received \[8, 4096\] in .*{entry['clip_id']}.npy"):
        cache.load_features(entry)


def test_missing_feature_file_names_the_file(cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    cache = FeatureCache(copy)
    (copy / cache.entries[2]["feature_path"]).unlink()
    with pytest.raises(VidclsError, match=rf"Feature file .*{cache.entries[2]['clip_id']}.npy listed in .*manifest.jsonl is missing"):
        cache.load_all(cache.entries)


def test_missing_or_empty_data_dir_is_an_error(tmp_path):
    with pytest.raises(VidclsError, match="Data directory .*nowhere does not exist"):
        extract(FeatureConfig(data_dir=str(tmp_path / "nowhere"), cache_dir=str(tmp_path / "c"), **TINY_FEATURES))
    (tmp_path / "empty" / "some_class").mkdir(parents=True)
    with pytest.raises(VidclsError, match="holds no videos"):
        extract(FeatureConfig(data_dir=str(tmp_path / "empty"), cache_dir=str(tmp_path / "c"), **TINY_FEATURES))


def test_not_a_cache_is_an_error(tmp_path):
    with pytest.raises(VidclsError, match="is not a feature cache.*cache.json is missing"):
        FeatureCache(tmp_path)
