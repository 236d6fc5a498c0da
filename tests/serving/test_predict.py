import json

import numpy as np
import pytest

from tests.conftest import write_corrupt_video
from vidcls.data import discover_videos
from vidcls.errors import VidclsError
from vidcls.features import FeatureCache, VideoReadError
from vidcls.serving import Predictor


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor(trained_run)


def test_predicting_a_cached_video_reproduces_the_cached_features(predictor, trained_run, cache_dir):
    """Decode -> backbone -> head at predict time equals the path training saw."""
    from vidcls.models import load_model

    cache = FeatureCache(cache_dir)
    entry = cache.entries[0]
    result = predictor.predict(entry["video"])
    features = cache.load_features(entry)[None].astype(np.float32)
    expected = np.asarray(load_model(trained_run / "best.keras")([features, np.ones((1, 8), np.float32)]))[0]
    labels = json.loads((trained_run / "labels.json").read_text())
    np.testing.assert_allclose([result["probabilities"][name] for name in labels], expected, atol=1e-5)
    assert result["label"] == labels[int(expected.argmax())]


def test_real_videos_get_a_distribution_over_the_run_labels(predictor, real_videos):
    for video in (real_videos / "demo_demo.mp4", real_videos / "tests_data_test.avi"):
        result = predictor.predict(video)
        assert set(result["probabilities"]) == set(predictor.label_space["label"])
        assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-5)


def test_corrupt_video_raises_a_read_error(predictor, tmp_path):
    with pytest.raises(VideoReadError):
        predictor.predict(write_corrupt_video(tmp_path / "bad.mp4"))


def test_backbone_weights_that_differ_from_the_cache_are_refused(trained_run, tmp_path):
    from vidcls.features import get_backbone

    other = tmp_path / "other.weights.h5"
    get_backbone("resnet50", weights="none", image_size=32, seed=123)._model.save_weights(str(other))
    with pytest.raises(VidclsError, match="differ from those that built the training cache"):
        Predictor(trained_run, weights=str(other))
