"""Frame-count transfer (`--init-from`) and the model summary logged at train start."""

import json

import numpy as np
import pytest

from tests.conftest import TINY_FEATURES
from vidcls.config import ExperimentConfig, FeatureConfig, ModelConfig
from vidcls.errors import VidclsError
from vidcls.models import build_model, load_model
from vidcls.models.summary import flops_per_clip
from vidcls.models.transfer import interpolate_positions, transfer_weights
from vidcls.training import train

TINY_TRANSFORMER = {"model.name": "transformer", "model.adapter_units": 16, "model.hidden_units": 8,
                    "model.num_heads": 2, "model.mlp_units": 16}


def _transformer(num_frames):
    return build_model(ModelConfig(name="transformer", adapter_units=16, hidden_units=8, num_heads=2, mlp_units=16),
                       num_classes=3, feature_dim=12, num_frames=num_frames)


def test_positions_are_resampled_at_the_same_moments_of_the_clip():
    ramp = np.arange(4, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # position i holds i
    np.testing.assert_allclose(interpolate_positions(ramp, 4), ramp)
    longer = interpolate_positions(ramp, 8)
    # New position j sits at (j + 0.5) / 8 of the clip = old position 4 (j + 0.5) / 8 - 0.5, clamped.
    expected = np.clip(4 * (np.arange(8) + 0.5) / 8 - 0.5, 0, 3)
    np.testing.assert_allclose(longer[:, 0], expected, atol=1e-6)


def test_transfer_copies_every_weight_and_resamples_only_positions():
    source, target = _transformer(8), _transformer(16)
    source.get_layer("feature_normalization").adapt(3 + 5 * np.random.default_rng(0).normal(size=(20, 8, 12)))
    assert transfer_weights(source, target) == ["positional_embedding"]
    # At the same T the copy computes what the source does: the copied statistics are the
    # ones used (Normalization caches them as tensors).
    same = _transformer(8)
    transfer_weights(source, same)
    x = [3 + 5 * np.random.default_rng(1).normal(size=(2, 8, 12)).astype(np.float32), np.ones((2, 8), np.float32)]
    np.testing.assert_allclose(np.asarray(same(x)), np.asarray(source(x)), atol=1e-5)
    for mine, theirs in zip(target.weights, source.weights):
        if "positional_embedding" in mine.path:
            np.testing.assert_allclose(mine.numpy(), interpolate_positions(theirs.numpy(), 16))
        else:
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(VidclsError, match="holds a TransformerClassifier; this run builds a MeanPoolClassifier"):
        transfer_weights(source, build_model(ModelConfig(name="mean_pool"), 3, 12))


def test_flops_count_every_matrix_product():
    # mean_pool: the adapter on each of T frames, then the head: 2 x multiply-adds.
    model = build_model(ModelConfig(name="mean_pool", adapter_units=16), num_classes=3, feature_dim=12)
    assert flops_per_clip(model, 8) == 2 * (8 * 12 * 16 + 16 * 3)
    # An unrolled recurrence counts every step: the adapter and both LSTMs grow with T.
    lstm = build_model(ModelConfig(adapter_units=16, hidden_units=8, attention_units=8), num_classes=3, feature_dim=12)
    per_frame = 2 * (12 * 16 + 2 * 4 * 8 * (16 + 8) + 16 * 8)  # adapter, 2 LSTMs (4 gates), attention projection
    assert flops_per_clip(lstm, 16) - flops_per_clip(lstm, 8) == 8 * per_frame + 8 * 2 * 8


@pytest.fixture(scope="module")
def short_cache(video_dir, tmp_path_factory):
    from vidcls.features import extract

    cache = tmp_path_factory.mktemp("short_cache")
    extract(FeatureConfig(data_dir=str(video_dir), cache_dir=str(cache), **{**TINY_FEATURES, "num_frames": 4}))
    return cache


def test_a_four_frame_run_starts_an_eight_frame_one(short_cache, cache_dir, tmp_path):
    base = {"train.batch_size": 4, "train.epochs": 2, **TINY_TRANSFORMER}
    short = tmp_path / "short"
    train(ExperimentConfig().replace({"data.cache_dir": str(short_cache), **base}), short)
    result = train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "model.init_from": str(short),
                                               **base, "train.epochs": 1}), tmp_path / "long")
    assert result.initialised_from == str(short) and result.flops_per_clip > 0
    stored = json.loads((tmp_path / "long" / "result.json").read_text())
    assert stored["parameters"] == result.parameters and stored["trainable_parameters"] <= result.parameters
    long_model = load_model(tmp_path / "long" / "best.keras")
    assert long_model.num_frames == 8 and load_model(short / "best.keras").num_frames == 4
    # The normalisation statistics came from the source run, not from adapting again.
    np.testing.assert_array_equal(long_model.get_layer("feature_normalization").mean.numpy(),
                                  load_model(short / "best.keras").get_layer("feature_normalization").mean.numpy())


def test_an_incompatible_source_run_is_refused_before_anything_is_written(trained_run, cache_dir, tmp_path):
    config = ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "model.init_from": str(trained_run),
                                         "data.targets": ["label", "video"]})
    with pytest.raises(VidclsError, match="model.init_from: .* predicts .*but this run's labels"):
        train(config, tmp_path / "run")
    with pytest.raises(VidclsError, match="trained a attention_lstm; this run trains a gru; expected the same model"):
        train(config.replace({"model.name": "gru", "data.targets": ["label"], "model.attention_units": 64}), tmp_path / "run")
    with pytest.raises(VidclsError, match="is not a finished training run"):
        train(config.replace({"model.init_from": str(tmp_path / "nothing"), "data.targets": ["label"]}), tmp_path / "run")
    assert not (tmp_path / "run").exists()
