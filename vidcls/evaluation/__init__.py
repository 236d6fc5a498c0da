"""Evaluation stage: metrics, reports, figures, and the baseline accuracy claims are measured against."""

from vidcls.evaluation.baseline import motion_statistics, motion_statistics_baseline
from vidcls.evaluation.compare import compare_runs, markdown_table, write_csv
from vidcls.evaluation.evaluate import (
    classification_metrics,
    evaluate,
    headline,
    read_metrics,
    score_predictions,
    write_evaluation,
)
from vidcls.evaluation.plots import confusion_png
from vidcls.evaluation.report import Metrics

__all__ = [
    "classification_metrics", "confusion_png", "Metrics", "compare_runs", "markdown_table", "evaluate", "headline",
    "motion_statistics", "motion_statistics_baseline", "read_metrics", "score_predictions", "write_csv",
    "write_evaluation"
]
