"""Evaluation stage: metrics, reports and figures."""

from vidcls.evaluation.evaluate import classification_metrics, evaluate, read_metrics

__all__ = ["classification_metrics", "evaluate", "read_metrics"]
