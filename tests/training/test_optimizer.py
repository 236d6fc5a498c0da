"""FusedAdamW: Keras's AdamW arithmetic (schedule, weight decay, clipping) in fewer ops."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from vidcls.config import TrainConfig


def _pair(steps_per_epoch=4, **train):
    """vidcls's optimizer and Keras's AdamW with the same schedule and settings."""
    import keras

    from vidcls.training.objectives import optimizer

    fused = optimizer(TrainConfig(**{"epochs": 3, "warmup_epochs": 1, "weight_decay": 1e-2, **train}), steps_per_epoch)
    reference = keras.optimizers.AdamW.from_config(fused.get_config())
    return fused, reference


def _model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3)(hidden))


def test_vidcls_trains_with_the_fused_optimizer():
    from vidcls.models import FusedAdamW

    fused, reference = _pair()
    assert isinstance(fused, FusedAdamW) and type(reference).__name__ == "AdamW"


@pytest.mark.parametrize("settings", [{}, {"gradient_clip": 0.05}, {"weight_decay": 0.0}])
def test_the_same_weights_and_moments_as_keras_adamw_step_by_step(settings):
    """Eight steps through warmup and decay (lr 0 at step 0, peak at step 4), with the
    gradient clipped or not, decayed or not: weights and both moments as Keras's."""

    fused, reference = _pair(**settings)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 6)).astype("float32"), rng.normal(size=(16, 3)).astype("float32")
    weights = []
    for optimizer in (fused, reference):
        model = _model(0)
        model.compile(optimizer=optimizer, loss="mse")
        for _ in range(8):
            model.train_on_batch(x, y)
        weights.append(([w.numpy() for w in model.weights],
                        [v.numpy() for v in optimizer.variables if v.path.rsplit("/", 1)[-1] != "iteration"]))
    assert int(fused.iterations.numpy()) == int(reference.iterations.numpy()) == 8
    (fused_model, fused_state), (keras_model, keras_state) = weights
    assert len(fused_state) == len(keras_state) > 0
    assert not np.allclose(fused_model[0], _model(0).weights[0].numpy())  # it trained
    for mine, theirs in zip(fused_model + fused_state, keras_model + keras_state):
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=1e-7)


def test_its_state_is_adamws_so_checkpoints_load_either_way():
    fused, reference = _pair()
    variables = _model(0).trainable_variables
    for optimizer in (fused, reference):
        optimizer.build(variables)
    assert fused.name == reference.name == "adamw"
    assert [(v.path, v.shape) for v in fused.variables] == [(v.path, v.shape) for v in reference.variables]


def test_a_step_runs_far_fewer_ops():
    """What the class is for: the op count of one update in a traced graph (Keras's
    evaluates the schedule for every variable's weight decay)."""
    import tensorflow as tf

    counts = []
    for optimizer in _pair():
        variables = _model(0).trainable_variables
        optimizer.build(variables)
        grads = [tf.ones_like(v) for v in variables]
        graph = tf.function(lambda: optimizer.apply(grads, variables)).get_concrete_function().graph  # noqa: B023
        counts.append(len(graph.get_operations()))
    fused, keras_ops = counts
    assert fused < 0.5 * keras_ops, counts


MIRRORED = """
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from vidcls.config import TrainConfig
from vidcls.training.objectives import optimizer
rng = np.random.default_rng(0)
x, y = rng.normal(size=(32, 6)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}
for name in ("fused", "keras"):
    keras.utils.set_random_seed(0)
    with strategy.scope():
        inputs = keras.Input((6,))
        model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(5, activation="tanh")(inputs)))
        opt = optimizer(TrainConfig(epochs=3, warmup_epochs=1, weight_decay=1e-2), 4)
        if name == "keras":
            opt = keras.optimizers.AdamW.from_config(opt.get_config())
        model.compile(optimizer=opt, loss="mse")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(data, epochs=3, verbose=0)
    out[name] = {"replicas": strategy.num_replicas_in_sync, "weights": [w.numpy().tolist() for w in model.weights],
                 "type": type(opt).__name__}
print(json.dumps(out))
"""


def test_the_same_under_a_two_replica_mirrored_strategy():
    """Each replica updates its copy of every variable (the fused kernel gets the copy on
    its own device), and the result is Keras's AdamW's under the same strategy."""
    completed = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    assert out["fused"]["replicas"] == 2 and out["fused"]["type"] == "FusedAdamW"
    for mine, theirs in zip(out["fused"]["weights"], out["keras"]["weights"]):
        np.testing.assert_allclose(mine, theirs, rtol=2e-5, atol=1e-7)
