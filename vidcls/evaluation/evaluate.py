"""`vidcls evaluate`: metrics, per-class table, predictions and figures for one split."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np

from vidcls.data import SPLITS, LabelSpace, action_names, load_labelled_features
from vidcls.errors import VidclsError
from vidcls.evaluation.plots import plot_confusion, plot_curves
from vidcls.features import FeatureCache
from vidcls.fileio import atomic_write_json
from vidcls.run_dir import RunDir

TOP_K = 5


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Headline and per-class metrics of predictions `argmax(probabilities)` against `labels`."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0)
    metrics = {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(np.mean(f1)),
        "num_samples": int(len(labels)),
    }
    if len(class_names) > TOP_K:
        metrics[f"top{TOP_K}_accuracy"] = top_k_accuracy(labels, probabilities, TOP_K)
    metrics["per_class"] = [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
    ]
    metrics["confusion"] = confusion_matrix(labels, predicted, labels=indices).tolist()
    return metrics


def top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the k highest scores."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def multi_target_metrics(labels: np.ndarray, probabilities: dict[str, np.ndarray], space: LabelSpace) -> dict:
    """Per-target metrics and the action metrics of EPIC-KITCHENS: an action (e.g. verb
    + noun) is right only when every target is; action top-5 ranks the pairs by the
    product of their probabilities (two targets).

    Args:
        labels: `[N, targets]` class indices.
        probabilities: `{target: [N, K_target]}`.
        space: `{target: class names}`.
    """
    from sklearn.metrics import balanced_accuracy_score, f1_score

    per_target = {target: classification_metrics(labels[:, column], probabilities[target], names)
                  for column, (target, names) in enumerate(space.items())}
    predicted = np.stack([probabilities[target].argmax(axis=1) for target in space], axis=1)
    true_actions, predicted_actions = action_names(space, labels), action_names(space, predicted)
    with warnings.catch_warnings():  # predicted actions that never occur in the split are expected
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        balanced = balanced_accuracy_score(true_actions, predicted_actions)
    metrics = {
        "accuracy": float(np.mean((predicted == labels).all(axis=1))),
        # Over the actions that occur in the split, each counting once.
        "balanced_accuracy": float(balanced),
        "macro_f1": float(f1_score(true_actions, predicted_actions, labels=sorted(set(true_actions)),
                                   average="macro", zero_division=0)),
        "num_samples": int(len(labels)),
    }
    if len(space) == 2:
        first, second = (probabilities[target] for target in space)
        joint = (first[:, :, None] * second[:, None, :]).reshape(len(labels), -1)
        metrics[f"top{TOP_K}_accuracy"] = top_k_accuracy(labels[:, 0] * second.shape[1] + labels[:, 1], joint, TOP_K)
    metrics["targets"] = per_target
    return metrics


def evaluate(run_dir: str | Path, split: str = "test") -> dict:
    """Scores the run's best model on `split` and writes `RUN_DIR/eval/`.

    Returns the metrics written to `metrics.json`. With several targets (verb + noun),
    the headline metrics are those of the action and `targets` holds each target's.
    """
    if split not in SPLITS:
        raise VidclsError(f"Unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    run = RunDir(run_dir)
    run.require_trained()
    space = run.label_space()
    clip_ids = run.splits()[split]
    if not clip_ids:
        raise VidclsError(f"The {split} split of {run.root} is empty; nothing to evaluate")
    cache = FeatureCache(run.features()["cache_dir"])
    data = load_labelled_features(cache, clip_ids, space)

    from vidcls.models import load_model

    model = load_model(run.best_model_path)
    probabilities = outputs_by_target(model.predict([data.features.astype(np.float32), data.masks], verbose=0), space)
    if len(space) == 1:
        target, names = next(iter(space.items()))
        metrics = {"split": split, **classification_metrics(data.labels[:, 0], probabilities[target], names)}
    else:
        metrics = {"split": split, **multi_target_metrics(data.labels, probabilities, space)}
    _write_outputs(run, metrics, data, probabilities, space)
    return metrics


def outputs_by_target(outputs, space: LabelSpace) -> dict[str, np.ndarray]:
    """A model's output (an array, or a dict with several heads) as `{target: float64 [N, K]}`."""
    if not isinstance(outputs, dict):
        outputs = {next(iter(space)): outputs}
    return {target: np.asarray(outputs[target], dtype=np.float64) for target in space}


def _write_outputs(run: RunDir, metrics: dict, data, probabilities: dict[str, np.ndarray], space: LabelSpace) -> None:
    out = run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    multi = len(space) > 1
    per_target = metrics["targets"] if multi else {next(iter(space)): metrics}
    atomic_write_json(out / "metrics.json", _without_tables(metrics))
    with (out / "per_class.csv").open("w", newline="") as handle:
        fields = ["class", "precision", "recall", "f1", "support"]
        writer = csv.DictWriter(handle, fieldnames=["target", *fields] if multi else fields)
        writer.writeheader()
        for target, target_metrics in per_target.items():
            writer.writerows({**row, "target": target} if multi else row for row in target_metrics["per_class"])
    predicted = np.stack([probabilities[target].argmax(axis=1) for target in space], axis=1)
    with (out / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        probability_columns = [f"prob_{name}" if not multi else f"prob_{target}/{name}"
                               for target, names in space.items() for name in names]
        writer.writerow(["clip_id", "label", "predicted", *probability_columns])
        rows = np.concatenate([probabilities[target] for target in space], axis=1)
        for clip_id, truth, guess, row in zip(data.clip_ids, action_names(space, data.labels),
                                              action_names(space, predicted), rows):
            writer.writerow([clip_id, truth, guess, *[f"{p:.6f}" for p in row]])
    for index, (target, names) in enumerate(space.items()):
        counts = np.array(per_target[target]["confusion"])
        # confusion.png / .json: the (first) target; confusion_<target>.* for each with several.
        stems = ["confusion"] if not multi else (["confusion", f"confusion_{target}"] if index == 0 else [f"confusion_{target}"])
        for stem in stems:
            atomic_write_json(out / f"{stem}.json", {"target": target, "classes": names, "counts": counts.tolist()})
            plot_confusion(counts, names, out / f"{stem}.png", title=(
                f"{metrics['split']} {target if multi else ''}: accuracy {per_target[target]['accuracy']:.3f}, "
                f"n={metrics['num_samples']}").replace("  ", " "))
    plot_curves(run.history_path, out / "curves.png")


def _without_tables(metrics: dict) -> dict:
    """metrics.json: everything but the confusion matrices (they have their own files)."""
    cleaned = {key: value for key, value in metrics.items() if key not in ("confusion", "targets")}
    if "targets" in metrics:
        cleaned["targets"] = {target: _without_tables(values) for target, values in metrics["targets"].items()}
    return cleaned


def read_metrics(run_dir: str | Path) -> dict:
    path = RunDir(run_dir).eval_dir / "metrics.json"
    if not path.is_file():
        raise VidclsError(f"{path} is missing; run `vidcls evaluate --run-dir {run_dir}` first")
    return json.loads(path.read_text())
