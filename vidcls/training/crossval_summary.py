"""The figures of a cross-validation: per-fold metrics, mean ± std over folds, the pooled
out-of-fold evaluation, summary.md, and what `vidcls crossval` prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidcls.evaluation import headline, score_predictions, write_evaluation

SUMMARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")


@dataclass(frozen=True)
class CrossvalResult:
    out_dir: Path
    summary: dict  # the contents of crossval.json

    def to_dict(self) -> dict:
        """JSON-ready: crossval.json's contents and where they are."""
        return {**self.summary, "out_dir": str(self.out_dir)}

    def describe(self) -> str:
        """Lines for a terminal: the mean ± std of each metric, the baseline beside it."""
        summary = self.summary
        lines = [f"{summary['num_folds']} folds x {summary['repeats']} repeat(s), "
                 f"{'grouped by ' + repr(summary['group_by']) if summary['group_by'] else 'not grouped'}, "
                 f"{summary['num_clips']} clips"]
        for name, block in (("model", summary["model"]), ("baseline", summary.get("baseline"))):
            if block:
                lines.append(f"  {name:9s}" + ", ".join(
                    f"{metric} {block['mean'][metric]:.3f} ± {block['std'][metric]:.3f}"
                    for metric in SUMMARY_METRICS if block["mean"].get(metric) is not None))
        lines.append(f"  table: {self.out_dir / 'summary.md'}; out-of-fold report: "
                     f"{self.out_dir / 'out_of_fold' / 'report.md'}")
        return "\n".join(lines)


def pooled_evaluation(out_dir, results, folds, row_of, labels, space, note) -> dict:
    """Mean and std over folds of each metric, and the metrics of every prediction pooled."""
    per_fold, clip_ids, rows, pooled = [], [], [], {target: [] for target in space}
    for fold, result in zip(folds, results):
        fold_rows = [row_of[clip_id] for clip_id in fold["test"]]
        fold_probabilities = {target: np.array([result["probabilities"][clip_id][target] for clip_id in fold["test"]])
                              for target in space}
        per_fold.append(_summary_metrics(score_predictions(labels[fold_rows], fold_probabilities, space, "test")))
        clip_ids += fold["test"]
        rows += fold_rows
        for target in space:
            pooled[target].append(fold_probabilities[target])
    probabilities = {target: np.concatenate(values) for target, values in pooled.items()}
    metrics = score_predictions(labels[rows], probabilities, space, "out_of_fold")
    write_evaluation(out_dir, [], metrics, clip_ids, labels[rows], probabilities, space, note=note)
    return {"per_fold": per_fold, "mean": _statistic(per_fold, np.mean), "std": _statistic(per_fold, _sample_std),
            "pooled": headline(metrics)}


def _summary_metrics(metrics: dict) -> dict:
    values = {key: metrics.get(key) for key in SUMMARY_METRICS[:3]}
    values["roc_auc"] = (metrics.get("binary") or {}).get("roc_auc")
    values["num_samples"] = metrics["num_samples"]
    return values


def _statistic(per_fold: list[dict], function) -> dict:
    values = {}
    for metric in SUMMARY_METRICS:
        defined = [fold[metric] for fold in per_fold if fold.get(metric) is not None]
        values[metric] = float(function(defined)) if defined else None
    return values


def _sample_std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summary_markdown(summary: dict) -> str:
    """The per-fold table and the mean ± std lines of summary.md."""
    lines = [f"# Cross-validation: {summary['num_folds']} folds x {summary['repeats']} repeat(s), "
             f"{summary['num_clips']} clips, "
             f"{'grouped by `' + summary['group_by'] + '`' if summary['group_by'] else 'not grouped'}", "",
             f"Cache: `{summary['cache_dir']}`. Std is over folds (ddof=1). ROC AUC: two classes only.", "",
             "| fold | clips | epochs | seconds | accuracy | balanced accuracy | macro F1 | ROC AUC | baseline accuracy |",
             "|---|---|---|---|---|---|---|---|---|"]
    baseline = summary.get("baseline")
    for index, fold in enumerate(summary["folds"]):
        base = baseline["per_fold"][index]["accuracy"] if baseline else None
        lines.append(f"| {fold['name']} | {fold['num_samples']} | {fold['epochs_run']} | {fold['seconds']} | "
                     + " | ".join(_number(fold.get(metric)) for metric in SUMMARY_METRICS) + f" | {_number(base)} |")
    lines += ["", "| | " + " | ".join(metric.replace("_", " ") for metric in SUMMARY_METRICS) + " |",
              "|---|" + "---|" * len(SUMMARY_METRICS)]
    for name, block in (("model", summary["model"]), ("baseline", baseline)):
        if not block:
            continue
        lines.append(f"| {name}: mean ± std over folds | " + " | ".join(
            f"{_number(block['mean'][metric])} ± {_number(block['std'][metric])}" for metric in SUMMARY_METRICS) + " |")
        lines.append(f"| {name}: pooled out-of-fold | " + " | ".join(
            _number(block["pooled"].get(metric)) for metric in SUMMARY_METRICS) + " |")
    if baseline:
        lines += ["", f"Baseline: {baseline['name']}, trained on each fold's train + val clips."]
    lines += ["", "Out-of-fold report: [out_of_fold/report.md](out_of_fold/report.md); baseline: "
              "[baseline/report.md](baseline/report.md)." if baseline else
              "Out-of-fold report: [out_of_fold/report.md](out_of_fold/report.md).", ""]
    return "\n".join(lines)


def _number(value) -> str:
    return "-" if value is None else f"{value:.3f}"
