"""LoRA fine-tuning: adapters only, merged into a plain model that exports like any other."""

import json

import cv2
import numpy as np
import pytest

from vidcls.cli import main
from vidcls.config import ModelConfig
from vidcls.errors import VidclsError
from vidcls.models import build_model, load_model
from vidcls.training.lora import apply_lora, merge_lora


def test_only_the_adapters_train_and_merging_reproduces_the_adapted_model():
    model = build_model(ModelConfig(adapter_units=16, hidden_units=8, attention_units=8), num_classes=3, feature_dim=12)
    x = [np.random.default_rng(0).normal(size=(2, 6, 12)).astype(np.float32), np.ones((2, 6), np.float32)]
    before, parameters = np.asarray(model(x)), model.count_params()
    summary = apply_lora(model, rank=2, alpha=4)
    # Adapters on the frame adapter (12 -> 16) and the head (16 -> 3): rank x (in + out) each.
    assert summary["lora_layers"] == 2 and summary["trainable"] == 2 * (12 + 16) + 2 * (16 + 3)
    assert summary["total"] == parameters  # the share is of the model without its adapters
    assert {variable.path.split("/")[-1] for variable in model.trainable_variables} == {"lora_kernel_a", "lora_kernel_b"}
    np.testing.assert_array_equal(np.asarray(model(x)), before)  # B starts at zero: no change yet
    for variable in model.trainable_variables:
        if variable.path.endswith("lora_kernel_b"):
            variable.assign(np.full(variable.shape, 0.05, np.float32))
    merged = merge_lora(model)
    np.testing.assert_allclose(np.asarray(merged(x)), np.asarray(model(x)), atol=1e-6)
    assert not any("lora" in variable.path for variable in merged.weights)
    with pytest.raises(VidclsError, match="Expected model.lora_rank >= 1"):
        apply_lora(model, rank=0)


def test_merging_under_a_mixed_policy_keeps_the_float32_kernel():
    """`--precision auto` fine-tunes in mixed_bfloat16 on CPUs with AMX: the merged update
    must stay rank r, not W rounded to bfloat16."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_model(ModelConfig(adapter_units=16, hidden_units=8, attention_units=8), num_classes=3, feature_dim=64)
        before = model.get_layer("frame_adapter").kernel.numpy().copy()
        apply_lora(model, rank=2, alpha=4)
        for variable in model.trainable_variables:
            variable.assign(np.random.default_rng(1).normal(0, 0.01, variable.shape).astype(np.float32))
        merged = merge_lora(model)
    finally:
        keras.config.set_dtype_policy(previous)
    delta = merged.get_layer("frame_adapter").kernel.numpy() - before
    assert np.linalg.matrix_rank(delta, tol=1e-6) == 2


def test_finetune_changes_dense_kernels_by_low_rank_updates_only(trained_run, cache_dir, tmp_path, capsys):
    from vidcls.exporting import export

    run_dir = tmp_path / "lora"
    assert main(["finetune", "--from", str(trained_run), "--cache-dir", str(cache_dir), "--run-dir", str(run_dir),
                 "--lora-rank", "2", "--epochs", "3", "--learning-rate", "0.01"]) == 0
    assert "trainable parameters of" in capsys.readouterr().out
    result = json.loads((run_dir / "result.json").read_text())
    # Rank 2 on the frame adapter (2048 -> 32) and the head (32 -> 4): 5.5% of this tiny model.
    assert result["trainable_parameters"] == 2 * (2048 + 32) + 2 * (32 + 4) < 0.06 * result["parameters"]
    source, tuned = load_model(trained_run / "best.keras"), load_model(run_dir / "best.keras")
    changed = 0
    for before, after in zip(source.weights, tuned.weights):
        delta = np.asarray(after.numpy()) - np.asarray(before.numpy())
        if after.path.split("/")[0] in ("frame_adapter", "probabilities") and after.path.endswith("kernel"):
            assert np.linalg.matrix_rank(delta, tol=1e-6) <= 2, after.path
            changed += int(np.abs(delta).max() > 0)
        else:
            np.testing.assert_array_equal(delta, 0, err_msg=after.path)  # LSTMs, biases, statistics: frozen
    assert changed == 2
    variant = export(run_dir)["variants"][0]  # the merged model exports like any other
    assert variant["top1_agreement"] == 1.0 and variant["max_abs_diff"] < 1e-4


def test_lora_without_a_source_run_is_refused(cache_dir, tmp_path):
    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    with pytest.raises(VidclsError, match="model.lora_rank adapts a trained model: set model.init_from"):
        train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "model.lora_rank": 4}), tmp_path / "run")


def _as_another_camera(source, target, transform) -> None:
    capture = cv2.VideoCapture(str(source))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(transform(frame)))
    capture.release()
    target.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()


@pytest.mark.slow
def test_lora_wins_back_a_camera_that_swaps_red_and_blue(tmp_path):
    """Two classes differ only in colour order (blue_to_red, red_to_blue); a second camera
    delivering BGR as RGB makes each look like the other. A few epochs of LoRA on the new
    camera's training clips beat the frozen source model on its test clips."""
    from tests.conftest import TINY_FEATURES
    from vidcls.config import ExperimentConfig, FeatureConfig
    from vidcls.data import load_labelled_features
    from vidcls.features import FeatureCache, extract
    from vidcls.run_dir import RunDir
    from vidcls.training import train
    from vidcls.videos import synthesize

    camera_a = synthesize(tmp_path / "camera_a", num_videos=96, seed=1).out_dir
    for video in sorted(camera_a.rglob("*.mp4")):
        _as_another_camera(video, tmp_path / "camera_b" / video.relative_to(camera_a), lambda frame: frame[..., ::-1])
    for camera in ("camera_a", "camera_b"):
        extract(FeatureConfig(data_dir=str(tmp_path / camera), cache_dir=str(tmp_path / f"cache_{camera}"), **TINY_FEATURES))
    source = tmp_path / "source"
    train(ExperimentConfig().replace({
        "data.cache_dir": str(tmp_path / "cache_camera_a"), "train.epochs": 30, "train.batch_size": 8,
        "train.learning_rate": 3e-3, "model.adapter_units": 32, "model.hidden_units": 16, "model.attention_units": 8,
    }), source)
    tuned = tmp_path / "lora"
    assert main(["finetune", "--from", str(source), "--cache-dir", str(tmp_path / "cache_camera_b"), "--run-dir",
                 str(tuned), "--lora-rank", "4", "--epochs", "20", "--learning-rate", "0.01"]) == 0

    def accuracy(run_dir, camera, split_run):
        space = RunDir(run_dir).label_space()
        clips = load_labelled_features(FeatureCache(tmp_path / f"cache_{camera}"), RunDir(split_run).splits()["test"], space)
        probabilities = load_model(run_dir / "best.keras").predict([clips.features.astype("float32"), clips.masks], verbose=0)
        return float((np.asarray(probabilities).argmax(1) == clips.labels[:, 0]).mean())

    assert accuracy(source, "camera_a", source) >= 0.75  # the source model knows its own camera
    frozen, adapted = accuracy(source, "camera_b", tuned), accuracy(tuned, "camera_b", tuned)
    assert adapted >= frozen + 0.25, (frozen, adapted)
