"""Figures written by `vidcls evaluate`: confusion matrix and training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: servers and CI have no display
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(counts: np.ndarray, class_names: list[str], path: Path, title: str) -> None:
    """Row-normalised colours (recall per true class) annotated with raw counts."""
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
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_curves(history_path: Path, path: Path) -> bool:
    """Loss, accuracy and learning rate per epoch from `history.csv`; False if absent."""
    if not history_path.is_file():
        return False
    with history_path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return False
    plt = _pyplot()
    epochs = [int(row["epoch"]) + 1 for row in rows]
    accuracies = [key for key in rows[0] if key.endswith("accuracy")]  # accuracy, or verb_accuracy, noun_accuracy...
    panels = [("loss", ["loss", "val_loss"]), ("accuracy", accuracies), ("learning rate", ["learning_rate"])]
    figure, axes = plt.subplots(1, len(panels), figsize=(13, 3.6))
    for axis, (title, keys) in zip(axes, panels):
        for key in keys:
            if key in rows[0]:
                axis.plot(epochs, [float(row[key]) for row in rows], marker=".", label=key)
        axis.set(title=title, xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
