import json
import shutil

import numpy as np
import pytest

from vidcls.errors import VidclsError
from vidcls.features import FeatureCache, PackedRows, pack_cache


def test_packed_rows_equal_the_clip_files(cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    cache = FeatureCache(copy)
    path, rows = pack_cache(cache)
    picked = [cache.entries[i]["clip_id"] for i in (5, 0, 17, 5)]
    view = PackedRows(path, np.array([rows[clip_id] for clip_id in picked]))
    assert view.shape == (4, 8, 2048) and len(view) == 4
    expected = np.stack([cache.load_features(cache.entries[i]) for i in (5, 0, 17, 5)])
    np.testing.assert_array_equal(view[np.arange(4)], expected)
    np.testing.assert_array_equal(view[[3, 1]], expected[[3, 1]])


def test_pack_is_reused_then_rebuilt_when_the_manifest_changes(cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    path, _ = pack_cache(FeatureCache(copy))
    built = path.stat().st_mtime_ns
    assert pack_cache(FeatureCache(copy))[0].stat().st_mtime_ns == built
    manifest = copy / "manifest.jsonl"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:10]))
    path, rows = pack_cache(FeatureCache(copy))
    assert len(rows) == 10 and json.loads((copy / "packed" / "index.json").read_text())["clip_ids"] == list(rows)


def test_packing_names_a_wrong_shape_file(cache_dir, tmp_path):
    copy = tmp_path / "cache"
    shutil.copytree(cache_dir, copy)
    cache = FeatureCache(copy)
    np.save(copy / cache.entries[3]["feature_path"], np.zeros((8, 10), np.float16))
    with pytest.raises(VidclsError, match=rf"Expected features of shape \[8, 2048\] .* received \[8, 10\] in .*{cache.entries[3]['clip_id']}"):
        pack_cache(cache)
