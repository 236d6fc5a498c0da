"""Figures written by `vidcls evaluate`: confusion matrix and training curves."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from vidcls.fileio import atomic_write_bytes, csv_number


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: servers and CI have no display
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(counts: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    """Row-normalised colours (recall per true class) annotated with raw counts."""
    atomic_write_bytes(Path(path), confusion_png(counts, class_names, title))


def confusion_png(counts: np.ndarray, class_names: list[str], title: str, dpi: int = 120) -> bytes:
    """`plot_confusion`'s figure as PNG bytes (also TensorBoard's image each epoch)."""
    plt = _pyplot()
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros_like(counts, dtype=float), where=totals > 0)
    size = max(4.0, 0.6 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axis, label="fraction of true class")
    ticks = np.arange(len(class_names))
    axis.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=title)
    axis.set_xticklabels(class_names, rotation=45, ha="right")
    axis.set_yticklabels(class_names)
    for row in range(len(class_names)):
        for column in range(len(class_names)):
            axis.text(column, row, str(counts[row, column]), ha="center", va="center",
                      color="white" if normalised[row, column] > 0.5 else "black")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    plt.close(figure)
    return buffer.getvalue()


def plot_curves(rows: list[dict], path: Path) -> bool:
    """Loss, accuracy and learning rate per epoch from history.csv's `rows` (`RunDir.history()`);
    False if there are none."""
    if not rows:
        return False
    plt = _pyplot()
    epochs = [int(row["epoch"]) + 1 for row in rows]
    accuracies = [key for key in rows[0] if key.endswith("accuracy")]  # accuracy, or verb_accuracy, noun_accuracy...
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", accuracies), ("learning rate", ["learning_rate"])]
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for axis, (title, keys) in zip(axes, panels):
        for key in keys:
            values = [math.nan if (value := csv_number(row.get(key))) is None else value for row in rows]
            if not all(math.isnan(value) for value in values):  # a run without validation logs val_* as NA
                axis.plot(epochs, values, marker=".", label=key)
        axis.set(title=title, xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    _save(figure, path, 110)
    plt.close(figure)
    return True


def plot_reliability(calibration: dict, path: Path, title_suffix: str = "") -> None:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    filled = [row for row in calibration["bins"] if row["count"]]
    centres = [(row["lower"] + row["upper"]) / 2 for row in filled]
    width = calibration["bins"][0]["upper"] - calibration["bins"][0]["lower"]
    axis.bar(centres, [row["accuracy"] for row in filled], width=width * 0.95, alpha=0.7, label="accuracy")
    axis.plot([row["confidence"] for row in filled], [row["accuracy"] for row in filled], "o", ms=3, color="black",
              label="bin (mean confidence, accuracy)")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)", ylabel="accuracy",
             title=f"reliability{f' ({title_suffix})' if title_suffix else ''}: ECE {calibration['ece']:.3f}")
    axis.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    _save(figure, path, 110)
    plt.close(figure)


def plot_roc_pr(labels: np.ndarray, probabilities: np.ndarray, binary: dict, path: Path) -> None:
    """ROC and precision-recall curves of the positive class, with both operating points."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    positive, column = binary["positive_class"], binary["positive_index"]
    truth = (labels == column).astype(int)
    scores = probabilities[:, column]
    false_positive_rate, recall, _ = roc_curve(truth, scores)
    precision, pr_recall, _ = precision_recall_curve(truth, scores)
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(9, 4))
    roc_axis.plot(false_positive_rate, recall, label=f"AUC {binary['roc_auc']:.3f}")
    roc_axis.plot([0, 1], [0, 1], "--", color="grey")
    pr_axis.plot(pr_recall, precision, label=f"AP {binary['pr_auc']:.3f}")
    for key, marker in (("at_recall", "o"), ("at_fpr", "s")):
        point = binary[key]
        roc_axis.plot(point["false_positive_rate"], point["recall"], marker, label=f"threshold {point['threshold']:.3f}")
    roc_axis.set(xlabel="false-positive rate", ylabel="recall", title=f"ROC: {positive}")
    pr_axis.set(xlabel="recall", ylabel="precision", title=f"precision-recall: {positive}", ylim=(0, 1.02))
    roc_axis.legend(fontsize=8)
    pr_axis.legend(fontsize=8)
    figure.tight_layout()
    _save(figure, path, 110)
    plt.close(figure)


def _save(figure, path: Path, dpi: int) -> None:
    """Writes the figure to a temporary name and renames it: never half a PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    atomic_write_bytes(Path(path), buffer.getvalue())
