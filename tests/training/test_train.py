import csv
import json

import keras
import pytest

from vidcls.config import ExperimentConfig
from vidcls.errors import VidclsError
from vidcls.features import cpu_bf16_flags
from vidcls.models import load_model, rebuild_for_export
from vidcls.training import train

RESUME_LOSS_TOLERANCE = 1e-4  # absolute; measured: identical to the last digit
TINY_MODEL = {"model.adapter_units": 16, "model.hidden_units": 8, "model.attention_units": 8}


def _config(cache_dir, **updates):
    return ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "train.batch_size": 4, **TINY_MODEL, **updates})


def _history(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_run_directory_contract(trained_run, cache_dir):
    for name in ("config.yaml", "splits.json", "labels.json", "env.json", "features.json", "best.keras", "result.json"):
        assert (trained_run / name).is_file(), name
    assert json.loads((trained_run / "labels.json").read_text()) == ["blue_to_red", "grow", "red_to_blue", "shrink"]
    splits = json.loads((trained_run / "splits.json").read_text())
    assert {len(splits[name]) for name in ("val", "test")} == {4} and len(splits["train"]) == 16
    rows = _history(trained_run)
    assert len(rows) == 3
    for column in ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        assert column in rows[0], column
    assert "epoch_seconds" not in rows[0]  # timings vary run to run: timing.csv
    with (trained_run / "timing.csv").open() as handle:
        timing = list(csv.DictReader(handle))
    assert [row["epoch"] for row in timing] == ["0", "1", "2"] and all(float(row["samples_per_second"]) > 0 for row in timing)
    env = json.loads((trained_run / "env.json").read_text())
    # auto: bfloat16 where the CPU has bfloat16 instructions (no GPU here), else float32.
    assert env["precision"] == ("mixed_bfloat16" if cpu_bf16_flags() else "float32")
    assert env["tensorflow"].startswith("2.21") and env["xla"] is False
    assert env["strategy"] and env["replicas"] == 1
    assert any((trained_run / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (trained_run / "backup").exists()  # removed once training completes


def test_learning_rate_warms_up_then_decays(cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    train(_config(cache_dir, **{"train.epochs": 6, "train.warmup_epochs": 2, "train.learning_rate": 0.01}), run_dir)
    rates = [float(row["learning_rate"]) for row in _history(run_dir)]
    assert rates[0] < rates[1] == pytest.approx(0.01, rel=1e-3)  # warmup ends at the peak
    assert rates[1] > rates[3] > rates[5] >= 0  # cosine decay


def test_same_config_again_does_nothing_other_config_is_refused(trained_run, cache_dir):
    config = ExperimentConfig().replace({
        "data.cache_dir": str(cache_dir), "train.epochs": 3, "train.batch_size": 4,
        "model.adapter_units": 32, "model.hidden_units": 16, "model.attention_units": 8,
    })
    assert train(config, trained_run).already_done
    with pytest.raises(VidclsError, match=r"already holds a run with another configuration \(train.epochs: run has 3, asked 4\)"):
        train(config.replace({"train.epochs": 4}), trained_run)


def test_auto_precision_continues_a_run_in_its_stored_precision(cache_dir, tmp_path):
    """Runs from before `auto` was the default stored float32: the same command, now
    meaning auto, resumes or finds them finished instead of refusing a changed config."""
    run_dir = tmp_path / "run"
    config = _config(cache_dir, **{"train.epochs": 1, "model.name": "mean_pool"})
    train(config.replace({"train.precision": "float32"}), run_dir)
    assert config.train.precision == "auto" and train(config, run_dir).already_done
    assert json.loads((run_dir / "env.json").read_text())["precision"] == "float32"


def test_focal_loss_class_weights_and_label_smoothing_train(cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = train(_config(cache_dir, **{
        "train.epochs": 2, "train.use_focal_loss": True, "train.use_class_weights": True,
        "train.label_smoothing": 0.1, "model.name": "mean_pool"}), run_dir)
    assert result.epochs_run == 2 and result.best_val_loss is not None
    assert all(float(row["loss"]) > 0 for row in _history(run_dir))


def test_mixed_precision_on_cpu_warns_trains_and_exports_in_float32(cache_dir, tmp_path, caplog):
    run_dir = tmp_path / "run"
    with caplog.at_level("WARNING", logger="vidcls"):
        train(_config(cache_dir, **{"train.epochs": 1, "train.precision": "mixed_float16"}), run_dir)
    assert "no GPU is visible" in caplog.text and "slower" in caplog.text
    assert json.loads((run_dir / "env.json").read_text())["precision"] == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    model = load_model(run_dir / "best.keras")  # the config stores no dtype: loads as float32
    assert model.get_layer("frame_adapter").dtype_policy.name == "float32"
    rebuilt = rebuild_for_export(model, num_frames=8)
    assert {layer.dtype_policy.name for layer in rebuilt.layers} == {"float32"}


def test_xla_single_device_trains(cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    train(_config(cache_dir, **{"train.epochs": 1, "train.xla": True, "model.name": "mean_pool"}), run_dir)
    assert json.loads((run_dir / "env.json").read_text())["xla"] is True


def test_one_iterator_reads_every_epoch_in_its_own_order(cache_dir, tmp_path, monkeypatch):
    """The training data is one repeated dataset read through one iterator (a new
    iterator over the generator every epoch stalled epochs by ~1 s): each epoch still draws
    its own order, once, even when prefetching starts the next one early."""
    import tensorflow as tf

    from vidcls.data import BatchSource
    from vidcls.training import trainer

    drawn = []
    generate = BatchSource.__call__

    def recorded(self):
        if self.training:
            drawn.append(self.epoch)
        return generate(self)

    monkeypatch.setattr(BatchSource, "__call__", recorded)
    made = []
    datasets = trainer._datasets
    monkeypatch.setattr(trainer, "_datasets", lambda *args: made.append(datasets(*args)) or made[-1])
    train(_config(cache_dir, **{"train.epochs": 5, "model.name": "mean_pool"}), tmp_path / "run")
    assert made[0][1].cardinality().numpy() == tf.data.INFINITE_CARDINALITY
    assert drawn[:5] == [0, 1, 2, 3, 4] and len(drawn) <= 6  # the sixth: prefetched, never trained on


def test_unknown_model_fails_before_any_work(cache_dir, tmp_path):
    with pytest.raises(VidclsError, match="Unknown model 'lstm'; choose one of"):
        train(_config(cache_dir, **{"model.name": "lstm"}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sigkilled_training_resumes_with_the_same_command(cache_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "vidcls", "train", "--cache-dir", str(cache_dir), "--run-dir", str(run_dir),
               "--epochs", "40", "--batch-size", "4", "--set", "train.early_stopping_patience=1000",
               "--set", "model.adapter_units=16", "--set", "model.hidden_units=8", "--set", "model.dropout=0.0"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run_dir / "history.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) > 5:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert (run_dir / "backup").is_dir() and not (run_dir / "result.json").exists()
    epochs_before = len(_history(run_dir))

    subprocess.run(command, check=True, capture_output=True)
    epochs = [int(row["epoch"]) for row in _history(run_dir)]
    assert epochs_before < 40 and epochs == list(range(len(epochs)))  # no epoch lost or repeated
    assert len(epochs) == 40 and (run_dir / "result.json").is_file()

    # Against the same command never interrupted: weights, optimizer state, schedule and
    # data order all resume, and without dropout nothing random is left to differ.
    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run([uninterrupted if part == str(run_dir) else part for part in command], check=True, capture_output=True)
    resumed, reference = _history(run_dir)[-1], _history(uninterrupted)[-1]
    print("final loss resumed / uninterrupted:", resumed["loss"], reference["loss"],
          "val_loss:", resumed["val_loss"], reference["val_loss"])
    assert abs(float(resumed["loss"]) - float(reference["loss"])) < RESUME_LOSS_TOLERANCE
    assert abs(float(resumed["val_loss"]) - float(reference["val_loss"])) < RESUME_LOSS_TOLERANCE


def test_streaming_from_disk_trains_exactly_like_ram(cache_dir, tmp_path, caplog):
    common = {"train.epochs": 3, "model.name": "mean_pool", "augment.crop_min": 0.7, "augment.mixup_alpha": 0.3}
    train(_config(cache_dir, **common), tmp_path / "ram")
    with caplog.at_level("INFO", logger="vidcls"):
        train(_config(cache_dir, **common, **{"data.memory_budget_gb": 1e-6}), tmp_path / "disk")
    assert "over the 0.00 GB memory budget: streaming" in caplog.text
    for column in ("loss", "val_loss", "accuracy"):
        assert [row[column] for row in _history(tmp_path / "ram")] == [row[column] for row in _history(tmp_path / "disk")]


def test_balanced_sampling_explicit_class_weights_and_focal_alpha(cache_dir, tmp_path):
    classes = ["blue_to_red", "grow", "red_to_blue", "shrink"]
    result = train(_config(cache_dir, **{
        "train.epochs": 1, "model.name": "mean_pool", "data.sampling": "balanced",
        "train.use_class_weights": True, "train.class_weights": dict(zip(classes, [1, 2, 3, 4])),
        "train.use_focal_loss": True, "train.focal_alpha_balanced": True}), tmp_path / "run")
    assert result.epochs_run == 1
    with pytest.raises(VidclsError, match=r"train.class_weights must give a weight for every class .* missing: \['shrink'\]"):
        train(_config(cache_dir, **{"train.use_class_weights": True,
                                    "train.class_weights": dict(zip(classes[:3], [1, 2, 3]))}), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # a refused run leaves nothing that blocks the corrected one
    with pytest.raises(VidclsError, match="Unknown data.sampling 'oversample'"):
        train(_config(cache_dir, **{"data.sampling": "oversample"}), tmp_path / "bad")


def test_grouped_split_in_a_run(cache_dir, tmp_path):
    import shutil

    grouped = tmp_path / "cache"
    shutil.copytree(cache_dir, grouped)
    entries = [json.loads(line) for line in (grouped / "manifest.jsonl").read_text().splitlines()]
    for entry in entries:  # pairs of same-label clips share a source, e.g. one long video
        entry["group"] = f"{entry['label']}-{int(entry['clip_id'].rsplit('_', 1)[1].split('.')[0]) // 8}"
    (grouped / "manifest.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    train(_config(grouped, **{"train.epochs": 1, "model.name": "mean_pool", "data.group_by": "group",
                              "data.val_fraction": 0.34, "data.test_fraction": 0.34}), tmp_path / "run")
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    group_of = {entry["clip_id"]: entry["group"] for entry in entries}
    owners = [{group_of[clip_id] for clip_id in splits[name]} for name in ("train", "val", "test")]
    assert all(len(owners[i] & owners[j]) == 0 for i, j in ((0, 1), (0, 2), (1, 2)))
    assert all(owners) and sum(len(ids) for ids in splits.values()) == 24
    with pytest.raises(VidclsError, match="data.group_by is 'participant' but 24 clip"):
        train(_config(cache_dir, **{"data.group_by": "participant"}), tmp_path / "bad")


def test_feature_statistics_come_from_the_training_clips(trained_run, cache_dir):
    import numpy as np

    from vidcls.features import FeatureCache

    cache = FeatureCache(cache_dir)
    by_id = {entry["clip_id"]: entry for entry in cache.entries}
    training = np.stack([cache.load_features(by_id[clip_id]).astype(np.float32)
                         for clip_id in json.loads((trained_run / "splits.json").read_text())["train"]])
    layer = load_model(trained_run / "best.keras").get_layer("feature_normalization")
    np.testing.assert_allclose(np.ravel(layer.mean), training.mean(axis=(0, 1)), rtol=1e-3, atol=1e-3)
    variance = training.var(axis=(0, 1))
    varies = variance > 1e-6 * np.median(variance)  # constant features are given the median (blocks.py)
    np.testing.assert_allclose(np.ravel(layer.variance)[varies], variance[varies], rtol=2e-2, atol=1e-3)


def test_missing_group_key_error_shows_the_keys_of_a_clip_that_lacks_it():
    from vidcls.training.splits import clip_groups

    entries = [{"clip_id": "a", "label": "x", "group": "s1"}, {"clip_id": "b", "label": "y", "camera": "c2"}]
    assert clip_groups(entries[:1], "group", "cache") == ["s1"]
    with pytest.raises(VidclsError, match=r"'group' but 1 clip\(s\) of cache .*first: b\); keys of that clip: "
                                          r"\['camera', 'clip_id', 'label'\]"):
        clip_groups(entries, "group", "cache")


def test_result_line_says_when_there_was_no_validation_split(tmp_path):
    from vidcls.training.result import TrainResult

    without = TrainResult(tmp_path, 30, None, None, 1.0, 100, model="mean_pool")
    assert "no validation split" in without.describe() and "None" not in without.describe()
    with_val = TrainResult(tmp_path, 3, 0.5, 0.75, 1.0, 100, model="mean_pool")
    assert "best val loss 0.5, val accuracy 0.75" in with_val.describe()
