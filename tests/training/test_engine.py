"""The training engine: replicas, workers, determinism, losses, accumulation, checkpoints."""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

from vidcls.cli import main
from vidcls.config import ExperimentConfig, TrainConfig
from vidcls.errors import VidclsError
from vidcls.training import train

# No dropout: replicas draw different random numbers, which would blur the comparison.
# float32: the tolerance below is float32's summation order (auto would pick bfloat16 here).
SMALL = ["--epochs", "4", "--batch-size", "4", "--set", "model.adapter_units=16", "--set", "model.hidden_units=8",
         "--set", "model.dropout=0.0", "--precision", "float32"]
# The same global batches on 1 and 2 replicas sum the same gradients in another order:
# float32 rounding moved the 4th-epoch loss by 0.03% here; allow 0.5%.
REPLICA_TOLERANCE = 5e-3


def _train_command(cache_dir, run_dir, *extra):
    return [sys.executable, "-m", "vidcls", "train", "--cache-dir", str(cache_dir), "--run-dir", str(run_dir),
            *SMALL, *extra]


def _losses(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle)]


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def engine_runs(cache_dir, tmp_path_factory):
    """One replica twice (--deterministic), two logical CPU replicas, and two worker
    processes on localhost under TF_CONFIG: the same data, seed and global batch."""
    root = tmp_path_factory.mktemp("engine")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for name, extra in (("one", ["--deterministic"]), ("one_again", ["--deterministic"]), ("two_replicas", ["--devices", "2"])):
        subprocess.run(_train_command(cache_dir, root / name, *extra), check=True, capture_output=True, env=env)
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = [
        subprocess.Popen(_train_command(cache_dir, root / "two_workers"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env={**env, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                              "task": {"type": "worker", "index": index}})})
        for index in range(2)]
    errors = [process.communicate(timeout=600)[1] for process in processes]
    assert all(process.returncode == 0 for process in processes), [error[-2000:] for error in errors]
    return root


@pytest.mark.slow
def test_deterministic_runs_write_identical_histories(engine_runs):
    assert (engine_runs / "one" / "history.csv").read_bytes() == (engine_runs / "one_again" / "history.csv").read_bytes()
    assert json.loads((engine_runs / "one" / "env.json").read_text())["deterministic"] is True


def test_two_replicas_follow_the_one_replica_loss_curve(engine_runs):
    env = json.loads((engine_runs / "two_replicas" / "env.json").read_text())
    assert env["strategy"] == "MirroredStrategy" and env["replicas"] == 2
    np.testing.assert_allclose(_losses(engine_runs / "two_replicas"), _losses(engine_runs / "one"), rtol=REPLICA_TOLERANCE)


def test_two_workers_follow_the_one_replica_loss_curve(engine_runs):
    chief = engine_runs / "two_workers"
    env = json.loads((chief / "env.json").read_text())
    assert env["strategy"] == "MultiWorkerMirroredStrategy" and env["workers"] == 2 and env["replicas"] == 2
    np.testing.assert_allclose(_losses(chief), _losses(engine_runs / "one"), rtol=REPLICA_TOLERANCE)
    # The chief writes the run; the other worker keeps its files apart.
    assert (chief / "best.keras").is_file() and (chief / "workers" / "worker_1" / "history.csv").is_file()


def test_losses_change_as_computed_by_hand():
    from vidcls.training.objectives import loss as _loss

    targets = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    probabilities = np.array([[0.8, 0.2], [0.4, 0.6]], np.float32)
    cross_entropy = -np.log([0.8, 0.6])
    plain = float(_loss(TrainConfig(), np.array([0, 1]), 2)(targets, probabilities))
    assert plain == pytest.approx(cross_entropy.mean(), rel=1e-5)
    # Label smoothing 0.1 over 2 classes: targets 0.95 / 0.05.
    smoothed = float(_loss(TrainConfig(label_smoothing=0.1), np.array([0, 1]), 2)(targets, probabilities))
    expected = -(0.95 * np.log([0.8, 0.6]) + 0.05 * np.log([0.2, 0.4])).mean()
    assert smoothed == pytest.approx(expected, rel=1e-5)
    # Focal: -alpha (1 - p)^gamma log p of the true class, alpha 0.25, gamma 2.
    focal = float(_loss(TrainConfig(use_focal_loss=True), np.array([0, 1]), 2)(targets, probabilities))
    assert focal == pytest.approx((0.25 * np.array([0.2, 0.4]) ** 2 * cross_entropy).mean(), rel=1e-5)
    # Class weights travel as sample weights: the batch mean of weight x loss.
    weighted = float(_loss(TrainConfig(), np.array([0, 1]), 2)(targets, probabilities, sample_weight=np.array([3.0, 0.5])))
    assert weighted == pytest.approx((np.array([3.0, 0.5]) * cross_entropy).mean(), rel=1e-5)


def test_gradient_accumulation_updates_every_n_batches():
    from vidcls.training.objectives import optimizer as _optimizer

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=_optimizer(TrainConfig(grad_accum_steps=2, warmup_epochs=0), steps_per_epoch=10),
                  loss="categorical_crossentropy")
    x, y = np.ones((4, 3), np.float32), np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    start = model.get_weights()[0].copy()
    model.train_on_batch(x, y)
    assert np.array_equal(model.get_weights()[0], start)  # the first batch only accumulates
    model.train_on_batch(x, y)
    assert not np.array_equal(model.get_weights()[0], start)


def test_periodic_checkpoints_timing_and_tensorboard_extras(cache_dir, tmp_path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    from vidcls.models import load_model

    run_dir = tmp_path / "run"
    config = ExperimentConfig().replace({
        "data.cache_dir": str(cache_dir), "train.epochs": 4, "train.batch_size": 4, "train.checkpoint_every": 2,
        "model.adapter_units": 16, "model.hidden_units": 8, "model.attention_units": 8})
    train(config, run_dir)
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["epoch_002.keras", "epoch_004.keras"]
    load_model(run_dir / "checkpoints" / "epoch_004.keras")
    # best.keras is the inference model: no optimizer slots, loads uncompiled. The periodic
    # checkpoint keeps the optimizer, which trained on after every best.keras save: 4 epochs
    # of 16 training clips in batches of 4.
    assert _optimizer_iterations(run_dir / "best.keras") is None
    assert _optimizer_iterations(run_dir / "checkpoints" / "epoch_004.keras") == 16
    assert not keras.saving.load_model(run_dir / "best.keras").compiled
    events = EventMultiplexer().AddRunsFromDirectory(str(run_dir / "tensorboard"))
    events.Reload()
    tags = events.Runs()
    recall = [tag for tag in tags["validation_per_class"]["tensors"] if tag.startswith("recall/")]
    assert sorted(recall) == ["recall/blue_to_red", "recall/grow", "recall/red_to_blue", "recall/shrink"]
    import tensorflow as tf

    values = [float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors("validation_per_class", "recall/grow")]
    assert len(values) == 4 and all(0 <= value <= 1 for value in values)
    assert "_hparams_/session_start_info" in tags["hparams"]["tensors"]
    # The confusion matrix as a picture ([width, height, PNG] as TensorBoard's image plugin stores
    # it): after the first epoch, then at most every 30 s (this run takes less), and the last.
    pictures = events.Tensors("validation_per_class", "confusion_matrix")
    assert [event.step for event in pictures] == [0, 3]
    width, height, png = tf.make_ndarray(pictures[-1].tensor_proto)
    image = tf.image.decode_png(png).numpy()
    assert image.shape == (int(height), int(width), 3) and image.std() > 10  # drawn, not blank
    assert not [tag for tag in tags["validation_per_class"]["tensors"] if tag.startswith("pr_curve")]  # 4 classes
    # TensorBoard's epoch_seconds stop at validation; timing.csv's cover the whole epoch,
    # best.keras, the backup, the checkpoints and these TensorBoard writes included.
    in_loop = [float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors("train", "epoch_epoch_seconds")]
    with (run_dir / "timing.csv").open() as handle:
        whole = [float(row["epoch_seconds"]) for row in csv.DictReader(handle)]
    assert len(in_loop) == len(whole) == 4 and all(w - i > 0.005 for w, i in zip(whole, in_loop)), (whole, in_loop)


def _optimizer_iterations(path):
    """The optimizer's step count stored in a .keras file, or None without optimizer state."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
        if "optimizer" not in weights:
            return None
        return int(weights["optimizer/vars/0"][()])


def test_two_class_runs_write_pr_curves(cache_dir, tmp_path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    two_classes = tmp_path / "cache"
    shutil.copytree(cache_dir, two_classes)
    manifest = two_classes / "manifest.jsonl"
    kept = [line for line in manifest.read_text().splitlines() if json.loads(line)["label"] in ("grow", "shrink")]
    manifest.write_text("\n".join(kept) + "\n")
    config = ExperimentConfig().replace({"data.cache_dir": str(two_classes), "train.epochs": 2, "train.batch_size": 4,
                                         "model.name": "mean_pool", "model.adapter_units": 16})
    train(config, tmp_path / "run")
    events = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert sorted(tag for tag in events.Runs()["validation_per_class"]["tensors"] if tag.startswith("pr_curve")) == [
        "pr_curve/grow/pr_curves", "pr_curve/shrink/pr_curves"]  # the plugin appends /pr_curves
    import tensorflow as tf

    curve = tf.make_ndarray(events.Tensors("validation_per_class", "pr_curve/grow/pr_curves")[-1].tensor_proto)
    assert curve.shape == (6, 101)  # TP, FP, TN, FN, precision, recall at 101 thresholds
    label_of = {json.loads(line)["clip_id"]: json.loads(line)["label"] for line in kept}
    val_labels = [label_of[clip] for clip in json.loads((tmp_path / "run" / "splits.json").read_text())["val"]]
    true_positives, false_positives, true_negatives, false_negatives = curve[:4, 0]  # threshold 0: all positive
    assert (true_positives, false_positives) == (val_labels.count("grow"), val_labels.count("shrink")) != (0, 0)
    assert true_negatives == false_negatives == 0


def test_resume_flag_uses_the_run_config(trained_run, tmp_path, capsys):
    assert main(["train", "--run-dir", str(trained_run), "--resume"]) == 0  # finished: nothing to do
    assert main(["train", "--run-dir", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no run to resume" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(trained_run), "--resume", "--epochs", "9"]) == 2
    assert "train.epochs: run has 3, asked 9" in capsys.readouterr().err


def test_device_and_precision_choices_are_checked(cache_dir, tmp_path, capsys):
    # This test process started TensorFlow long ago: logical devices can no longer be made.
    with pytest.raises(VidclsError, match=r"--devices \(train.devices\) 2: TensorFlow already started in this process"):
        train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "train.devices": 2}), tmp_path / "run")
    with pytest.raises(VidclsError, match="Expected train.precision to be one of auto, float32, mixed_float16, mixed_bfloat16"):
        train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "train.precision": "half"}), tmp_path / "run")
    assert main(["train", "--cache-dir", str(cache_dir), "--run-dir", str(tmp_path / "r"), "--mixed-precision",
                 "--precision", "bfloat16"]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()


def test_bfloat16_precision_trains(cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--cache-dir", str(cache_dir), "--run-dir", str(run_dir), "--precision", "bfloat16",
                 "--epochs", "1", "--batch-size", "4", "--set", "model.adapter_units=16", "--set", "model.hidden_units=8"]) == 0
    assert json.loads((run_dir / "env.json").read_text())["precision"] == "mixed_bfloat16"
    assert np.isfinite(_losses(run_dir)).all()
