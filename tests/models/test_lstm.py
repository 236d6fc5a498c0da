"""vidcls's LSTM computes what keras.layers.LSTM computes, from the same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from vidcls.models import LSTM


def _pair(return_sequences: bool, go_backwards: bool, units: int = 6, channels: int = 5, frames: int = 7):
    """keras.layers.LSTM and vidcls's LSTM with the same weights, both unrolled."""
    kwargs = dict(return_sequences=return_sequences, go_backwards=go_backwards, unroll=True)
    reference, projected = keras.layers.LSTM(units, **kwargs), LSTM(units, **kwargs)
    reference.build((None, frames, channels))
    projected.build((None, frames, channels))
    rng = np.random.default_rng(0)
    projected.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in reference.get_weights()])
    reference.set_weights(projected.get_weights())
    return reference, projected


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_same_outputs_and_gradients_as_keras_lstm_with_a_mask(return_sequences, go_backwards):
    reference, projected = _pair(return_sequences, go_backwards)
    rng = np.random.default_rng(1)
    inputs = tf.constant(rng.normal(size=(4, 7, 5)).astype("float32"))
    mask = tf.constant(np.arange(7)[None, :] < np.array([[7], [5], [1], [3]]))  # clips of 7, 5, 1, 3 frames
    results = []
    for layer in (reference, projected):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, mask=mask)
            # Every output with its own weight, so a misplaced step changes the gradients.
            weights = tf.reshape(tf.cos(tf.range(tf.size(outputs), dtype="float32")), tf.shape(outputs))
            loss = tf.reduce_sum(outputs * weights)
        results.append((outputs.numpy(), [g.numpy() for g in tape.gradient(loss, [inputs, *layer.trainable_weights])]))
    (want, want_grads), (got, got_grads) = results
    np.testing.assert_allclose(got, want, atol=1e-5)
    for got_grad, want_grad in zip(got_grads, want_grads):
        np.testing.assert_allclose(got_grad, want_grad, atol=1e-4)


def test_rolled_loop_is_keras_own():
    reference, projected = _pair(True, False)
    rolled = LSTM(6, return_sequences=True)
    rolled.build((None, 7, 5))
    rolled.set_weights(projected.get_weights())
    inputs = np.random.default_rng(2).normal(size=(3, 7, 5)).astype("float32")
    np.testing.assert_allclose(rolled(inputs), reference(inputs), atol=1e-5)


def test_weights_saved_from_a_keras_lstm_model_load(tmp_path):
    """Runs trained before vidcls had its own LSTM hold keras.layers.LSTM weights under the same paths."""
    def model(layer_class):
        inputs = keras.Input((7, 5))
        return keras.Model(inputs, layer_class(6, unroll=True, name="lstm")(inputs))

    old, new = model(keras.layers.LSTM), model(LSTM)
    old.set_weights([np.random.default_rng(3).normal(0, 0.5, w.shape) for w in old.get_weights()])
    old.save_weights(tmp_path / "old.weights.h5")
    new.load_weights(tmp_path / "old.weights.h5")
    inputs = np.random.default_rng(4).normal(size=(2, 7, 5)).astype("float32")
    np.testing.assert_allclose(new(inputs), old(inputs), atol=1e-5)


def test_keras_round_trip(tmp_path):
    inputs = keras.Input((7, 5))
    model = keras.Model(inputs, LSTM(6, unroll=True)(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.layers[-1], LSTM)
    data = np.random.default_rng(5).normal(size=(2, 7, 5)).astype("float32")
    np.testing.assert_allclose(loaded(data), model(data), atol=1e-6)
