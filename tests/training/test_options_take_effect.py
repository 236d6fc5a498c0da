"""Each training option changes what a real run does: tests that fail when the option is
silently ignored (tools/mutants.py breaks each one and checks these notice)."""

import csv
import json
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from vidcls.config import ExperimentConfig
from vidcls.errors import VidclsError
from vidcls.training import train

TINY = {"model.name": "mean_pool", "model.adapter_units": 8, "train.batch_size": 4, "model.dropout": 0.0}


def _config(cache_dir, **updates):
    return ExperimentConfig().replace({"data.cache_dir": str(cache_dir), **TINY, **updates})


def _history(run_dir):
    with (run_dir / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def _first_loss(cache_dir, run_dir, **updates) -> float:
    """The training loss of epoch 0 at learning rate 0: the initial model (same seed, same
    weights) scored by the loss as configured, so only the loss's own settings differ."""
    train(_config(cache_dir, **{"train.epochs": 1, "train.learning_rate": 0.0, "train.warmup_epochs": 0,
                                "train.weight_decay": 0.0, **updates}), run_dir)
    return float(_history(run_dir)[0]["loss"])


@pytest.fixture(scope="module")
def imbalanced_cache(cache_dir, tmp_path_factory):
    """The shared cache with classes 6 / 6 / 3 / 2 clips: frequencies differ per class."""
    copy = tmp_path_factory.mktemp("imbalanced") / "cache"
    shutil.copytree(cache_dir, copy)
    entries = [json.loads(line) for line in (copy / "manifest.jsonl").read_text().splitlines()]
    keep, seen = [], {}
    limits = {"blue_to_red": 6, "grow": 6, "red_to_blue": 3, "shrink": 2}
    for entry in entries:
        seen[entry["label"]] = seen.get(entry["label"], 0) + 1
        if seen[entry["label"]] <= limits[entry["label"]]:
            keep.append(entry)
    (copy / "manifest.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in keep))
    return copy


def test_class_weights_change_the_loss(cache_dir, tmp_path):
    plain = _first_loss(cache_dir, tmp_path / "plain")
    weights = dict(zip(["blue_to_red", "grow", "red_to_blue", "shrink"], [1.0, 2.0, 3.0, 4.0]))
    weighted = _first_loss(cache_dir, tmp_path / "weighted", **{"train.use_class_weights": True,
                                                                 "train.class_weights": weights})
    assert abs(weighted - plain) > 1e-3 * plain, (plain, weighted)


def test_label_smoothing_changes_the_loss(cache_dir, tmp_path):
    plain = _first_loss(cache_dir, tmp_path / "plain")
    smoothed = _first_loss(cache_dir, tmp_path / "smoothed", **{"train.label_smoothing": 0.3})
    assert abs(smoothed - plain) > 1e-3 * plain, (plain, smoothed)


def test_balanced_focal_alpha_changes_the_loss(imbalanced_cache, tmp_path):
    focal = {"train.use_focal_loss": True, "data.val_fraction": 0.0, "data.test_fraction": 0.0}
    fixed = _first_loss(imbalanced_cache, tmp_path / "fixed", **focal)
    balanced = _first_loss(imbalanced_cache, tmp_path / "balanced", **focal, **{"train.focal_alpha_balanced": True})
    assert abs(balanced - fixed) > 1e-3 * fixed, (fixed, balanced)


def test_early_stopping_stops_when_val_loss_stops_improving(cache_dir, tmp_path):
    # At learning rate 0 the validation loss never improves after epoch 0.
    result = train(_config(cache_dir, **{"train.epochs": 10, "train.learning_rate": 0.0,
                                         "train.early_stopping_patience": 2}), tmp_path / "run")
    assert result.epochs_run == 3  # epoch 0, then two without improvement
    # TensorBoard's confusion picture: the first epoch's, and the last one trained (drawn
    # when training ends, since the early stop was not known at that epoch's end).
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    events = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert [event.step for event in events.Tensors("validation_per_class", "confusion_matrix")] == [0, 2]


def test_gradient_clipping_bounds_the_updates(cache_dir, tmp_path):
    """With every gradient clipped to norm 1e-12, Adam's steps (m / (sqrt(v) + eps), eps
    1e-7) shrink to ~1e-5 of the learning rate: the loss stays where it started."""
    common = {"train.epochs": 3, "train.learning_rate": 0.05, "train.warmup_epochs": 0, "train.weight_decay": 0.0}
    train(_config(cache_dir, **common, **{"train.gradient_clip": 0.0}), tmp_path / "free")
    train(_config(cache_dir, **common, **{"train.gradient_clip": 1e-12}), tmp_path / "clipped")
    free = [float(row["loss"]) for row in _history(tmp_path / "free")]
    clipped = [float(row["loss"]) for row in _history(tmp_path / "clipped")]
    assert free[0] - free[-1] > 0.1
    assert abs(clipped[0] - clipped[-1]) < 0.01, clipped


def test_weight_decay_shrinks_the_weights(cache_dir, tmp_path):
    from vidcls.models import load_model

    common = {"train.epochs": 6, "train.learning_rate": 0.01, "train.warmup_epochs": 0}
    norms = {}
    for name, decay in (("none", 0.0), ("strong", 10.0)):
        train(_config(cache_dir, **common, **{"train.weight_decay": decay}), tmp_path / name)
        kernel = load_model(tmp_path / name / "best.keras").get_layer("frame_adapter").kernel
        norms[name] = float(np.linalg.norm(np.asarray(kernel)))
    assert norms["strong"] < 0.7 * norms["none"], norms


def test_a_split_file_decides_the_splits(cache_dir, tmp_path):
    from vidcls.features import FeatureCache

    ids = sorted(entry["clip_id"] for entry in FeatureCache(cache_dir).entries)
    wanted = {"train": ids[:14], "val": ids[14:18], "test": ids[18:22]}
    (tmp_path / "split.json").write_text(json.dumps(wanted))
    train(_config(cache_dir, **{"train.epochs": 1, "data.split_file": str(tmp_path / "split.json")}), tmp_path / "run")
    assert json.loads((tmp_path / "run" / "splits.json").read_text()) == wanted


def _identity(path):
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


@pytest.mark.slow
def test_best_model_is_saved_only_on_improvement_also_across_a_resume(cache_dir, tmp_path):
    """At learning rate 0 no epoch improves on epoch 0: best.keras, saved once, must keep
    its inode and modification time through the run, a SIGKILL and the resumed run."""
    import time

    run_dir = tmp_path / "run"
    best = run_dir / "best.keras"
    command = [sys.executable, "-m", "vidcls", "train", "--cache-dir", str(cache_dir), "--run-dir", str(run_dir),
               "--model", "mean_pool", "--epochs", "60", "--batch-size", "4", "--learning-rate", "0",
               "--set", "model.adapter_units=8", "--set", "train.early_stopping_patience=1000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if first is None and best.is_file():
            first = _identity(best)
        if (run_dir / "history.csv").is_file() and len(_history(run_dir)) >= 5:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert process.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert first is not None and _identity(best) == first
    subprocess.run(command, check=True, capture_output=True)
    assert len(_history(run_dir)) == 60 and (run_dir / "result.json").is_file()
    assert _identity(best) == first  # never replaced: no epoch was better


@pytest.fixture(scope="module")
def unequal_groups_cache(cache_dir, tmp_path_factory):
    """The shared 24-clip cache with a `group` per clip: one source of 12 clips, then six of
    2 (clip i of each class in source i // 2, beyond the first three of each class)."""
    copy = tmp_path_factory.mktemp("unequal_groups") / "cache"
    shutil.copytree(cache_dir, copy)
    entries = [json.loads(line) for line in (copy / "manifest.jsonl").read_text().splitlines()]
    seen = {}
    for entry in entries:
        index = seen[entry["label"]] = seen.get(entry["label"], -1) + 1
        entry["group"] = "big" if index < 3 else f"small_{index // 2}_{entry['label'][:4]}"
    (copy / "manifest.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return copy


def test_balanced_group_weights_weigh_every_group_the_same():
    from vidcls.training.objectives import balanced_group_weights

    weights = balanced_group_weights(["a", "a", "a", "b", "c", "c"])
    np.testing.assert_allclose(weights, np.array([1 / 3, 1 / 3, 1 / 3, 1, 1 / 2, 1 / 2]) / (3 / 6), rtol=1e-6)
    groups = np.array(["a", "a", "a", "b", "c", "c"])
    assert len({round(float(weights[groups == g].sum()), 6) for g in "abc"}) == 1  # each group's total is equal


def test_group_weights_multiply_class_weights_per_target():
    from vidcls.config import TrainConfig
    from vidcls.training.objectives import sample_weights

    labels = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    space = {"verb": ["cut", "wash"], "noun": ["knife", "pan"]}
    config = TrainConfig(use_class_weights=True, balance_groups=True)
    weights = sample_weights(config, labels, space, ["a", "a", "a", "b"])
    groups_only = sample_weights(TrainConfig(balance_groups=True), labels, space, ["a", "a", "a", "b"])
    classes_only = sample_weights(TrainConfig(use_class_weights=True), labels, space)
    assert weights.shape == (4, 2) and groups_only.shape == (4,)
    np.testing.assert_allclose(weights, classes_only * groups_only[:, None], rtol=1e-6)
    with pytest.raises(VidclsError, match="needs the group of each of the 4 training clips; received 3"):
        sample_weights(config, labels, space, ["a", "a", "b"])


def test_balanced_groups_change_the_loss(unequal_groups_cache, tmp_path):
    grouped = {"data.group_by": "group", "data.val_fraction": 0.0, "data.test_fraction": 0.0}  # every clip trains
    plain = _first_loss(unequal_groups_cache, tmp_path / "plain", **grouped)
    balanced = _first_loss(unequal_groups_cache, tmp_path / "balanced", **grouped, **{"train.balance_groups": True})
    assert abs(balanced - plain) > 1e-3 * plain, (plain, balanced)


def test_balanced_groups_need_a_group_key(cache_dir, tmp_path):
    with pytest.raises(VidclsError, match=r"train.balance_groups .* but data.group_by \(--group-by\) is empty"):
        train(_config(cache_dir, **{"train.balance_groups": True}), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written
