"""Metrics of the scores themselves: ROC and PR for two classes, operating thresholds,
and calibration (expected calibration error and the reliability diagram's bins)."""

from __future__ import annotations

import numpy as np

CALIBRATION_BINS = 15


def calibration(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Top-label calibration: clips binned by their top probability (equal-width bins over
    [0, 1]); ECE = sum over bins of |accuracy - mean confidence| x share of clips.

    Returns `{"ece", "bins": [{"lower", "upper", "count", "confidence", "accuracy"}]}`
    (empty bins have count 0 and null confidence / accuracy).
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i + 1]]; a confidence of exactly 0 goes to the first.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for index in range(bins):
        members = which == index
        count = int(members.sum())
        row = {"lower": float(edges[index]), "upper": float(edges[index + 1]), "count": count,
               "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = float(confidence[members].mean())
            row["accuracy"] = float(correct[members].mean())
            ece += abs(row["accuracy"] - row["confidence"]) * count / len(labels)
        table.append(row)
    return {"ece": float(ece), "bins": table}


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str], positive: int,
                   target_recall: float = 0.9, target_fpr: float = 0.05) -> dict:
    """ROC AUC, PR AUC (average precision) and two operating points for the score of class
    `positive`: the highest threshold whose recall reaches `target_recall`, and the lowest
    threshold whose false-positive rate stays within `target_fpr`. AUCs are None when the
    split holds only one class (they are undefined)."""
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    truth = (labels == positive).astype(int)
    scores = probabilities[:, positive]
    result = {"positive_class": class_names[positive], "positive_index": int(positive), "positives": int(truth.sum()),
              "negatives": int(len(truth) - truth.sum()), "roc_auc": None, "pr_auc": None}
    if 0 < truth.sum() < len(truth):
        result["roc_auc"] = float(roc_auc_score(truth, scores))
        result["pr_auc"] = float(average_precision_score(truth, scores))
        false_positive_rate, recall, thresholds = roc_curve(truth, scores, drop_intermediate=False)
        reaching = np.flatnonzero(recall >= target_recall)[0]
        within = np.flatnonzero(false_positive_rate <= target_fpr)[-1]
        result["at_recall"] = _operating_point(truth, scores, thresholds[reaching], target_recall, "target_recall")
        result["at_fpr"] = _operating_point(truth, scores, thresholds[within], target_fpr, "target_fpr")
    return result


def _operating_point(truth: np.ndarray, scores: np.ndarray, threshold: float, target: float, name: str) -> dict:
    flagged = scores >= threshold
    positives, negatives = truth == 1, truth == 0
    true_positives = int((flagged & positives).sum())
    return {
        name: target,
        "threshold": float(min(threshold, 1.0)),  # roc_curve's first threshold is +inf: flag nothing
        "recall": true_positives / max(int(positives.sum()), 1),
        "false_positive_rate": int((flagged & negatives).sum()) / max(int(negatives.sum()), 1),
        "precision": true_positives / int(flagged.sum()) if flagged.any() else None,
    }


def default_positive(labels: np.ndarray, class_names: list[str]) -> int:
    """The class a two-class report treats as the event to detect: the rarer one in the
    split (fights among clips, usually), the second on a tie."""
    counts = np.bincount(labels, minlength=2)
    return 0 if counts[0] < counts[1] else 1
