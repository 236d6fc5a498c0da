import numpy as np
import pytest

from vidcls.config import ModelConfig
from vidcls.errors import VidclsError
from vidcls.models import MODELS, AttentionPooling, build_model, load_model, rebuild_for_export
from vidcls.models.transformer import StochasticDepth

# Small hyperparameters each model accepts (build_model refuses keys a model does not use).
SMALL = {
    "attention_lstm": dict(adapter_units=16, hidden_units=8, attention_units=8),
    "bilstm": dict(adapter_units=16, hidden_units=8),
    "gru": dict(adapter_units=16, hidden_units=8, pooling="mean"),
    "transformer": dict(adapter_units=16, hidden_units=8, num_heads=2, mlp_units=16),
    "mean_pool": dict(adapter_units=16),
}
ALL = sorted(MODELS)


def _build(name, num_classes=4, feature_dim=12, num_frames=None, **overrides):
    # The transformer needs T for its positional table; the recurrent models then also
    # fix it. Without T the others take any length.
    frames = num_frames or (8 if name == "transformer" else None)
    return build_model(ModelConfig(name=name, **{**SMALL[name], **overrides}), num_classes=num_classes,
                       feature_dim=feature_dim, num_frames=frames)


def _inputs(batch=3, frames=6, dim=12, seed=0):
    features = np.random.default_rng(seed).normal(size=(batch, frames, dim)).astype(np.float32)
    return [features, np.ones((batch, frames), np.float32)]


def test_every_model_is_covered():
    assert set(SMALL) == set(MODELS) == {"attention_lstm", "bilstm", "gru", "transformer", "mean_pool"}


@pytest.mark.parametrize("name", ALL)
def test_output_is_a_float32_distribution(name):
    probabilities = np.asarray(_build(name, num_classes=5)(_inputs(), training=False))
    assert probabilities.shape == (3, 5) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_several_targets_give_one_named_head_each(name):
    outputs = _build(name, num_classes={"verb": 3, "noun": 5})(_inputs(), training=False)
    assert {key: tuple(value.shape) for key, value in outputs.items()} == {"verb": (3, 3), "noun": (3, 5)}


@pytest.mark.parametrize("name", ALL)
def test_keras_round_trip_gives_identical_outputs(name, tmp_path):
    model = _build(name, num_classes={"verb": 3, "noun": 2} if name == "gru" else 4)
    model.get_layer("feature_normalization").adapt(_inputs(20, seed=1)[0])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = load_model(path)
    assert type(restored) is type(model) and restored.get_config() == model.get_config()
    for got, expected in zip(_flat(restored(_inputs())), _flat(model(_inputs()))):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ALL)
def test_export_rebuild_has_fixed_frames_and_same_outputs(name):
    model = _build(name, num_frames=6)
    # Statistics far from 0 / 1, so a rebuild that kept the initial ones would show.
    model.get_layer("feature_normalization").adapt(3 + 5 * _inputs(20, 6, seed=1)[0])
    rebuilt = rebuild_for_export(model, num_frames=6)
    assert rebuilt.input_shape == [(None, 6, 12), (None, 6)]
    if "unroll" in rebuilt.get_config():
        assert rebuilt.get_config()["unroll"] is True
    x = [3 + 5 * _inputs()[0], _inputs()[1]]
    np.testing.assert_allclose(np.asarray(rebuilt(x)), np.asarray(model(x)), atol=1e-6)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("pattern", [[1, 1, 1, 1, 1, 0, 0, 0], [1, 0, 0, 1, 0, 1, 0, 0]], ids=["padded", "repeats"])
def test_masked_frames_change_nothing_in_training_and_export_graphs(name, pattern):
    """Whatever masked frames hold changes nothing, in the trained model and in its export
    rebuild; and a clip scores as the clip of its real frames alone (for the transformer,
    whose positions say where each frame was, when the real frames come first)."""
    model = _build(name, num_frames=8)
    features = _inputs(1, 8)[0]
    keep = np.array(pattern, bool)
    noisy = features.copy()
    noisy[0, ~keep] = 1e3
    mask = keep[None].astype(np.float32)
    for graph in (model, rebuild_for_export(model, num_frames=8)):
        np.testing.assert_allclose(np.asarray(graph([noisy, mask])), np.asarray(graph([features, mask])), atol=1e-6)
    if name == "transformer" and pattern != sorted(pattern, reverse=True):
        return
    short = model
    if name != "transformer":  # built for T=8: the same weights for any T
        short = type(model).from_config(model.get_config() | {"num_frames": None})
        short.set_weights(model.get_weights())
    alone = np.asarray(short([features[:, keep], np.ones((1, keep.sum()), np.float32)]))
    np.testing.assert_allclose(np.asarray(model([noisy, mask])), alone, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_a_mixed_precision_training_step_keeps_float32_probabilities(name):
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _build(name, num_frames=6)
        assert model.get_layer("frame_adapter").compute_dtype == "float16"
        model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        x, y = _inputs(8, 6), np.eye(4, dtype=np.float32)[np.arange(8) % 4]
        before = [w.copy() for w in model.get_weights()]
        # Dynamic loss scaling may skip the first steps (overflow at the initial scale of 2^15).
        losses = [model.train_on_batch(x, y) for _ in range(8)]
        assert np.isfinite(losses).all()
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        assert np.asarray(model(x)).dtype == np.float32
    finally:
        keras.config.set_dtype_policy(previous)


def test_attention_pooling_ignores_masked_frames():
    layer = AttentionPooling(4)
    real = _inputs(2, 5, 6)[0]
    padded = np.concatenate([real, np.full((2, 3, 6), 50.0, np.float32)], axis=1)
    mask = np.array([[True] * 5 + [False] * 3] * 2)
    np.testing.assert_allclose(np.asarray(layer(padded, mask=mask)), np.asarray(layer(real)), atol=1e-5)


def test_stochastic_depth_drops_whole_clips_while_training_only():
    layer = StochasticDepth(0.5, seed=0)
    x = np.ones((400, 3, 2), np.float32)
    dropped = np.asarray(layer(x, training=True))
    per_clip = dropped.reshape(400, -1)
    assert set(np.unique(per_clip)) == {0.0, 2.0} and (per_clip == per_clip[:, :1]).all()
    assert 0.4 < (per_clip[:, 0] == 0).mean() < 0.6
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)


def test_unknown_model_and_bad_hyperparameters_are_clear_errors():
    with pytest.raises(VidclsError, match="Unknown model 'transformerz'; choose one of: attention_lstm, bilstm, gru, transformer, mean_pool"):
        build_model(ModelConfig(name="transformerz"), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match="Expected model.hidden_units >= 1; received 0"):
        build_model(ModelConfig(hidden_units=0), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match=r"Expected model.dropout in \[0, 1\); received 1.5"):
        build_model(ModelConfig(dropout=1.5), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match=r"Expected model.pooling to be one of last, mean; received 'cls'"):
        build_model(ModelConfig(name="gru", pooling="cls"), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match=r"hidden_units \(30\) to be a multiple of model.num_heads \(4\)"):
        build_model(ModelConfig(name="transformer", hidden_units=30), num_classes=2, feature_dim=4, num_frames=8)
    with pytest.raises(VidclsError, match="The transformer needs num_frames"):
        build_model(ModelConfig(name="transformer"), num_classes=2, feature_dim=4)
    with pytest.raises(VidclsError, match="Expected at least 2 classes per output"):
        build_model(ModelConfig(name="mean_pool"), num_classes={"verb": 1}, feature_dim=4)


def test_a_setting_the_model_does_not_use_is_named_in_a_warning():
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("vidcls").addHandler(handler)
    try:
        build_model(ModelConfig(name="bilstm", num_heads=8), num_classes=2, feature_dim=4)
        build_model(ModelConfig(name="bilstm", pooling="mean"), num_classes=2, feature_dim=4)
    finally:
        logging.getLogger("vidcls").removeHandler(handler)
    assert [record.getMessage() for record in records] == [
        "model.num_heads=8 not used by bilstm (it uses: adapter_units, dropout, fusion, hidden_units, input_transform, "
        "num_layers, pooling, streams)"]


def _flat(outputs):
    return [np.asarray(outputs[key]) for key in sorted(outputs)] if isinstance(outputs, dict) else [np.asarray(outputs)]


@pytest.mark.parametrize("name", ALL)
def test_an_xla_compiled_training_step_matches_the_plain_one(name):
    import keras

    x, y = _inputs(8, 6), np.eye(4, dtype=np.float32)[np.arange(8) % 4]
    losses = []
    for jit_compile in (False, True):
        keras.utils.set_random_seed(0)
        model = _build(name, num_frames=6, dropout=0.0, **({"stochastic_depth": 0.0} if name == "transformer" else {}))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy", jit_compile=jit_compile)
        losses.append([float(model.train_on_batch(x, y)) for _ in range(3)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    assert losses[1][-1] < losses[1][0]


MIRRORED_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from vidcls.config import ModelConfig
from vidcls.data import BatchSource, make_dataset
from vidcls.models import build_model
small = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
features = rng.normal(size=(32, 6, 12)).astype(np.float16)
labels = np.arange(32) % 4
results = {}
# One strategy object for all models: several MirroredStrategy objects in one process
# share collective instance keys and collide.
strategies = {1: tf.distribute.get_strategy(), 2: tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])}
for name, hyper in small.items():
    losses = {}
    for replicas, strategy in strategies.items():
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build_model(ModelConfig(name=name, dropout=0.0, **hyper), num_classes=4, feature_dim=12, num_frames=6)
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
        data = make_dataset(BatchSource(features, labels, 4, 8, training=False, drop_remainder=True))
        history = model.fit(data, epochs=3, verbose=0)
        losses[replicas] = [history.history["loss"], strategy.num_replicas_in_sync]
    results[name] = losses
print(json.dumps(results))
"""


@pytest.mark.slow
def test_every_model_trains_under_a_two_replica_mirrored_strategy():
    """Two logical CPU devices (set before TensorFlow starts, hence a fresh process): the
    same global batches give the same losses as one replica."""
    import json
    import subprocess
    import sys

    small = {name: {**SMALL[name], **({"stochastic_depth": 0.0} if name == "transformer" else {})} for name in ALL}
    completed = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, json.dumps(small)],
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    for name in ALL:
        (one, one_replicas), (two, two_replicas) = results[name]["1"], results[name]["2"]
        assert (one_replicas, two_replicas) == (1, 2)
        np.testing.assert_allclose(two, one, rtol=1e-4, err_msg=name)


def test_a_feature_constant_in_training_is_not_blown_up():
    from vidcls.models import adapt_normalization

    model = _build("mean_pool")
    features = np.random.default_rng(0).normal(size=(20, 6, 12)).astype(np.float32)
    features[:, :, 3] = 0.0  # a dead unit of the backbone
    adapt_normalization(model, features)
    variance = model.get_layer("feature_normalization").adapt_variance.numpy().ravel()
    assert variance[3] == pytest.approx(np.median(np.delete(variance, 3)), rel=0.05)  # a typical scale, not ~0
    awake = features[:1].copy()
    awake[0, :, 3] = 0.5  # it wakes up at test time: a modest change, not a 1e7-fold one
    change = np.abs(np.asarray(model([awake, np.ones((1, 6), np.float32)])) - np.asarray(model([features[:1], np.ones((1, 6), np.float32)])))
    assert change.max() < 0.5


def _two_streams(name, **overrides):
    frames = 8 if name == "transformer" else None
    return build_model(ModelConfig(name=name, **{**SMALL[name], **overrides}), num_classes=3, feature_dim=12,
                       num_frames=frames, cache_streams=["appearance", "frame_difference"])


@pytest.mark.parametrize("name", ALL)
def test_a_model_reading_one_stream_ignores_the_other(name, tmp_path):
    model = _two_streams(name, streams=["frame_difference"], fusion="late", input_transform="centred")
    features, mask = _inputs(frames=8)
    changed = features.copy()
    changed[..., :6] = 100.0  # the appearance half
    np.testing.assert_allclose(model([changed, mask]), model([features, mask]), atol=1e-6)
    changed[..., 6:] += 1.0  # a constant shift of the read stream: centring removes it
    np.testing.assert_allclose(model([changed, mask]), model([features, mask]), atol=1e-5)
    changed[..., 6:] += np.arange(8, dtype=np.float32)[None, :, None]  # a change over time does not cancel
    assert np.abs(np.asarray(model([changed, mask])) - np.asarray(model([features, mask]))).max() > 1e-4
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(load_model(tmp_path / "m.keras")([features, mask]), model([features, mask]))
    np.testing.assert_allclose(rebuild_for_export(model, 8)([features, mask]), model([features, mask]), atol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_late_fusion_gives_each_stream_its_own_encoder(name):
    both = ["appearance", "frame_difference"]  # empty streams would read the motion stream alone
    early, late = _two_streams(name, streams=both), _two_streams(name, streams=both, fusion="late")
    assert "frame_adapter" in {layer.name for layer in early.layers}
    names = {layer.name for layer in late.layers}
    assert {"frame_adapter_appearance", "frame_adapter_frame_difference", "fusion"} <= names
    assert late.count_params() > early.count_params()


def test_frame_transforms_compute_differences_and_centring_over_real_frames():
    import keras

    from vidcls.models.blocks import FrameTransform

    x = np.array([[[1.0], [4.0], [4.0], [9.0]]], np.float32)  # frame 3 repeats frame 2 (masked)
    valid = np.array([[True, True, False, True]])
    assert np.asarray(FrameTransform("differences")(x, valid))[0, :, 0].tolist() == [0, 3, 0, 5]
    mean = (1 + 4 + 9) / 3  # of the real frames only
    np.testing.assert_allclose(np.asarray(FrameTransform("centred")(x, valid))[0, :, 0], [1 - mean, 4 - mean, 4 - mean, 9 - mean],
                               rtol=1e-6)
    both = np.asarray(FrameTransform("features_and_differences")(x, valid))
    assert both.shape == (1, 4, 2) and both[0, :, 1].tolist() == [0, 3, 0, 5]
    with pytest.raises(VidclsError, match="Expected model.input_transform to be one of none, differences"):
        FrameTransform("motion")
    with pytest.raises(VidclsError, match=r"model.streams to name distinct streams of the cache, \['appearance', "
                                          r"'frame_difference'\]; received \['flow'\]"):
        _two_streams("mean_pool", streams=["flow"])
    with pytest.raises(VidclsError, match="Expected model.fusion to be one of early, late"):
        _two_streams("mean_pool", fusion="middle")
    assert keras.saving.get_registered_object("vidcls>FrameTransform") is FrameTransform


def test_by_default_a_model_reads_the_motion_stream_of_a_two_stream_cache():
    from vidcls.models.registry import resolve_streams

    assert resolve_streams([], ["appearance", "frame_difference"]) == ["frame_difference"]
    assert resolve_streams([], ["appearance"]) is None and resolve_streams([], None) is None
    assert resolve_streams(["appearance"], ["appearance", "frame_difference"]) == ["appearance"]
    model = _two_streams("mean_pool")
    features, mask = _inputs(frames=8)
    changed = features.copy()
    changed[..., :6] = 100.0  # the appearance half: ignored
    np.testing.assert_allclose(model([changed, mask]), model([features, mask]), atol=1e-6)
    changed[..., 6:] = 100.0  # the motion half: read
    assert np.abs(model([changed, mask]) - model([features, mask])).max() > 1e-4
