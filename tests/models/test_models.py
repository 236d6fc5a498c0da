import numpy as np
import pytest

from vidcls.config import ModelConfig
from vidcls.errors import VidclsError
from vidcls.models import MODELS, AttentionPooling, build_model, load_model, rebuild_for_export

SMALL = dict(adapter_units=16, hidden_units=8, attention_units=8)


def _inputs(batch=3, frames=6, dim=12, seed=0):
    features = np.random.default_rng(seed).normal(size=(batch, frames, dim)).astype(np.float32)
    return [features, np.ones((batch, frames), np.float32)]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_is_a_float32_distribution(name):
    model = build_model(ModelConfig(name=name, **SMALL), num_classes=5, feature_dim=12)
    probabilities = np.asarray(model(_inputs(), training=False))
    assert probabilities.shape == (3, 5) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_keras_round_trip_gives_identical_outputs(name, tmp_path):
    model = build_model(ModelConfig(name=name, **SMALL), num_classes=4, feature_dim=12)
    model.get_layer("feature_normalization").adapt(_inputs(20, seed=1)[0])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = load_model(path)
    assert type(restored) is type(model) and restored.get_config() == model.get_config()
    np.testing.assert_array_equal(np.asarray(restored(_inputs())), np.asarray(model(_inputs())))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_rebuild_has_fixed_frames_and_same_outputs(name):
    model = build_model(ModelConfig(name=name, **SMALL), num_classes=4, feature_dim=12)
    rebuilt = rebuild_for_export(model, num_frames=6)
    assert rebuilt.input_shape == [(None, 6, 12), (None, 6)]
    if "unroll" in rebuilt.get_config():
        assert rebuilt.get_config()["unroll"] is True
    np.testing.assert_allclose(np.asarray(rebuilt(_inputs())), np.asarray(model(_inputs())), atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("pattern", [[1, 1, 1, 1, 1, 0, 0, 0], [1, 0, 0, 1, 0, 1, 0, 0]], ids=["padded", "repeats"])
def test_masked_frames_change_nothing_in_training_and_export_graphs(name, pattern):
    """A clip with masked frames scores as the clip of its real frames alone, whatever the
    masked frames hold, both in the trained model and in its unrolled export rebuild."""
    model = build_model(ModelConfig(name=name, **SMALL), num_classes=4, feature_dim=12)
    features = _inputs(1, 8)[0]
    keep = np.array(pattern, bool)
    noisy = features.copy()
    noisy[0, ~keep] = 1e3
    mask = keep[None].astype(np.float32)
    alone = np.asarray(model([features[:, keep], np.ones((1, keep.sum()), np.float32)]))
    for graph in (model, rebuild_for_export(model, num_frames=8)):
        np.testing.assert_allclose(np.asarray(graph([noisy, mask])), alone, atol=1e-6)


def test_attention_pooling_ignores_masked_frames():
    layer = AttentionPooling(4)
    real = _inputs(2, 5, 6)[0]
    padded = np.concatenate([real, np.full((2, 3, 6), 50.0, np.float32)], axis=1)
    mask = np.array([[True] * 5 + [False] * 3] * 2)
    np.testing.assert_allclose(np.asarray(layer(padded, mask=mask)), np.asarray(layer(real)), atol=1e-5)


def test_unknown_model_and_bad_hyperparameters_are_clear_errors():
    with pytest.raises(VidclsError, match="Unknown model 'transformerz'; choose one of: attention_lstm, mean_pool"):
        build_model(ModelConfig(name="transformerz"), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match="Expected model.hidden_units >= 1; received 0"):
        build_model(ModelConfig(hidden_units=0), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match=r"Expected model.dropout in \[0, 1\); received 1.5"):
        build_model(ModelConfig(dropout=1.5), num_classes=2, feature_dim=4)
