"""Shared fixtures: one tiny synthetic video set, its feature cache and a trained run.

They are session-scoped so the suite decodes, embeds and trains once; tests that change
things copy them first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REAL_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_videos"
# The suite's small cache holds the appearance stream only: its synthetic classes (colour
# changes, growing shapes) are told apart by appearance; tests/features/test_streams.py
# covers the default two-stream cache.
# float32, so that exports (which compute in float32: phones have no bfloat16) must match
# predict to 1e-4; tests/features/test_precision.py covers bfloat16 caches.
TINY_FEATURES = dict(backbone="resnet50", weights="none", num_frames=8, image_size=32, batch_size=32,
                     streams=["appearance"], precision="float32")


def pytest_collection_modifyitems(session, config, items):
    """Files holding a test marked slow run first, in their usual order, then the rest.
    `make test` hands whole files to two workers as they free up; starting with the long
    ones keeps one worker from running a 3-minute file alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def write_corrupt_video(path: Path) -> Path:
    """Bytes that look like an mp4 name but hold no decodable stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
    return path


@pytest.fixture(scope="session")
def real_videos() -> Path:
    if not REAL_VIDEOS.is_dir():
        pytest.skip(f"real videos not found at {REAL_VIDEOS} (a checkout without ../shared)")
    return REAL_VIDEOS


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory) -> Path:
    from vidcls.videos import synthesize

    return synthesize(tmp_path_factory.mktemp("videos"), num_videos=24, seed=1).out_dir


@pytest.fixture(scope="session")
def cache_dir(video_dir, tmp_path_factory) -> Path:
    from vidcls.config import FeatureConfig
    from vidcls.features import extract

    cache = tmp_path_factory.mktemp("cache")
    summary = extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(cache), **TINY_FEATURES))
    assert summary.extracted == 24 and not summary.failures
    return cache


@pytest.fixture(scope="session")
def trained_run(cache_dir, tmp_path_factory) -> Path:
    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    run_dir = tmp_path_factory.mktemp("runs") / "attention_lstm"
    config = ExperimentConfig().replace({
        "data.cache_dir": str(cache_dir), "train.epochs": 3, "train.batch_size": 4,
        "model.adapter_units": 32, "model.hidden_units": 16, "model.attention_units": 8,
    })
    train(config, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def grouped_cache(cache_dir, tmp_path_factory) -> Path:
    """The shared 24-clip cache with a `group` per clip: six sources, each holding one clip
    of every class, so that grouping changes which clips may be tested together."""
    import json
    import shutil

    cache = tmp_path_factory.mktemp("grouped") / "cache"
    shutil.copytree(cache_dir, cache)
    entries = [json.loads(line) for line in (cache / "manifest.jsonl").read_text().splitlines()]
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry["label"]] = seen.get(entry["label"], -1) + 1
        entry["group"] = f"source_{seen[entry['label']]}"
    (cache / "manifest.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return cache
