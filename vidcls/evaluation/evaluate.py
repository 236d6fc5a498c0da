"""`vidcls evaluate`: metrics, per-class table, predictions and figures for one split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from vidcls.data import SPLITS, load_labelled_features
from vidcls.errors import VidclsError
from vidcls.evaluation.plots import plot_confusion, plot_curves
from vidcls.features import FeatureCache
from vidcls.fileio import atomic_write_json
from vidcls.run_dir import RunDir


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Headline and per-class metrics of predictions `argmax(probabilities)` against `labels`."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(np.mean(f1)),
        "num_samples": int(len(labels)),
        "per_class": [
            {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        ],
        "confusion": confusion_matrix(labels, predicted, labels=indices).tolist(),
    }


def evaluate(run_dir: str | Path, split: str = "test") -> dict:
    """Scores the run's best model on `split` and writes `RUN_DIR/eval/`.

    Returns the metrics written to `metrics.json`.
    """
    if split not in SPLITS:
        raise VidclsError(f"Unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    run = RunDir(run_dir)
    run.require_trained()
    class_names = run.labels()
    clip_ids = run.splits()[split]
    if not clip_ids:
        raise VidclsError(f"The {split} split of {run.root} is empty; nothing to evaluate")
    cache = FeatureCache(run.features()["cache_dir"])
    data = load_labelled_features(cache, clip_ids, class_names)

    from vidcls.models import load_model

    model = load_model(run.best_model_path)
    probabilities = np.asarray(model.predict([data.features.astype(np.float32), data.masks], verbose=0), dtype=np.float64)
    metrics = {"split": split, **classification_metrics(data.labels, probabilities, class_names)}
    _write_outputs(run, metrics, data, probabilities, class_names)
    return metrics


def _write_outputs(run: RunDir, metrics: dict, data, probabilities: np.ndarray, class_names: list[str]) -> None:
    out = run.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", {key: value for key, value in metrics.items() if key != "confusion"})
    counts = np.array(metrics["confusion"])
    atomic_write_json(out / "confusion.json", {"classes": class_names, "counts": counts.tolist()})
    with (out / "per_class.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["class", "precision", "recall", "f1", "support"])
        writer.writeheader()
        writer.writerows(metrics["per_class"])
    with (out / "predictions.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "label", "predicted", *[f"prob_{name}" for name in class_names]])
        for clip_id, label, row in zip(data.clip_ids, data.labels, probabilities):
            writer.writerow([clip_id, class_names[label], class_names[int(row.argmax())], *[f"{p:.6f}" for p in row]])
    plot_confusion(counts, class_names, out / "confusion.png",
                   title=f"{metrics['split']}: accuracy {metrics['accuracy']:.3f}, n={metrics['num_samples']}")
    plot_curves(run.history_path, out / "curves.png")


def read_metrics(run_dir: str | Path) -> dict:
    path = RunDir(run_dir).eval_dir / "metrics.json"
    if not path.is_file():
        raise VidclsError(f"{path} is missing; run `vidcls evaluate --run-dir {run_dir}` first")
    return json.loads(path.read_text())
