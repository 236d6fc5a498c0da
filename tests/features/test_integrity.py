"""Sharding, --overwrite, leftovers of killed writers, and resume after a real SIGKILL."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import TINY_FEATURES
from vidcls.config import FeatureConfig
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache, extract
from vidcls.features.extractor import parse_shard


def test_shards_into_one_cache_cover_every_clip_once(video_dir, tmp_path):
    cache = tmp_path / "cache"
    counts = [extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(cache), shard=f"{i}/3", **TINY_FEATURES)).extracted
              for i in range(3)]
    assert counts == [8, 8, 8]
    ids = [entry["clip_id"] for entry in FeatureCache(cache).entries]
    assert len(ids) == len(set(ids)) == 24


@pytest.mark.parametrize("shard", ["2/2", "a/b", "1", "-1/2"])
def test_bad_shard_is_an_error(shard):
    with pytest.raises(VidclsError, match="Expected --shard i/n"):
        parse_shard(shard)


def test_overwrite_rebuilds_with_new_settings(video_dir, cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    settings = {**TINY_FEATURES, "num_frames": 4}
    summary = extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(copy), overwrite=True, **settings))
    assert summary.extracted == 24 and FeatureCache(copy).feature_shape == (4, 2048)


def test_temp_files_of_dead_writers_are_removed(video_dir, cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    dead = copy / "features" / f".x.npy.tmp-{socket.gethostname()}-999999999"
    alive = copy / "features" / f".y.npy.tmp-{socket.gethostname()}-{os.getpid()}"
    dead.write_bytes(b"partial")
    alive.write_bytes(b"in progress")
    extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(copy), **TINY_FEATURES))
    assert not dead.exists() and alive.exists()


@pytest.mark.slow
def test_sigkill_then_rerun_completes_without_recomputing(video_dir, tmp_path):
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "vidcls", "extract", "--data-dir", str(video_dir), "--cache-dir", str(cache),
               "--backbone", "resnet50", "--weights", "none", "--num-frames", "8", "--image-size", "64", "--batch-size", "8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = cache / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= 4:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait() == -signal.SIGKILL, "extraction finished before it could be killed"
    before = {entry["clip_id"]: (cache / entry["feature_path"]).stat().st_mtime_ns for entry in FeatureCache(cache).entries}
    assert 4 <= len(before) < 24

    subprocess.run(command, check=True, capture_output=True)
    entries = FeatureCache(cache).entries
    assert sorted(e["clip_id"] for e in entries) == sorted({e["clip_id"] for e in entries}) and len(entries) == 24
    for clip_id, mtime in before.items():  # finished clips were not recomputed
        assert (cache / "features" / f"{clip_id}.npy").stat().st_mtime_ns == mtime
    assert not [p for p in (cache / "features").iterdir() if not p.name.endswith(".npy") or p.name.startswith(".")]
    assert json.loads((cache / "cache.json").read_text())["num_frames"] == 8
