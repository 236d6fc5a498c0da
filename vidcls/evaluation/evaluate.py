"""`vidcls evaluate`: metrics, per-class table, predictions and figures for one split."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np

from vidcls.data import SPLITS, LabelSpace, action_names, load_labelled_features, temporal_crops
from vidcls.errors import VidclsError
from vidcls.evaluation.plots import plot_confusion, plot_curves, plot_reliability, plot_roc_pr
from vidcls.evaluation.report import Metrics, write_report
from vidcls.evaluation.scores import binary_metrics, calibration, default_positive
from vidcls.features import DEFAULT_STREAMS, NOT_FINGERPRINT, FeatureCache, stream_subset
from vidcls.fileio import atomic_write_json, atomic_writer
from vidcls.run_dir import RunDir

TTA_CROP = 0.8  # each test-time crop covers this share of the clip

TOP_K = 5


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: list[str]) -> dict:
    """Headline and per-class metrics of predictions `argmax(probabilities)` against `labels`."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, precision_recall_fscore_support

    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0)
    share = support / max(support.sum(), 1)
    metrics = {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(np.mean(f1)),
        "num_samples": int(len(labels)),
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "weighted_precision": float(np.sum(share * precision)),
        "weighted_recall": float(np.sum(share * recall)),
        "weighted_f1": float(np.sum(share * f1)),
        "ece": calibration(labels, probabilities)["ece"],
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


def evaluate(run_dirs, split: str = "test", tta: int = 1, out_dir: str | Path | None = None,
             positive_class: str | None = None, target_recall: float = 0.9, target_fpr: float = 0.05,
             cache_dir: str | Path | None = None) -> Metrics:
    """Scores the best model of one run (or the mean probabilities of several: an
    ensemble) on `split` and writes metrics, tables, figures and `report.md`.

    Args:
        run_dirs: one run directory, or a list of them (same labels and split clips).
        split: train, val or test.
        tta: temporal crops averaged per clip (1: the clip as cached).
        out_dir: where to write; default `RUN_DIR/eval` for one run, `FIRST_RUN/eval_ensemble`
            for several, `RUN_DIR/eval_<cache name>` with `cache_dir`.
        positive_class: for two classes, the event to detect (default: the rarer one).
        target_recall, target_fpr: the operating points reported for two classes.
        cache_dir: score every clip of this cache instead of a split of the run's own
            (e.g. other scenes, extracted with the same settings); `split` is then unused.

    Returns the metrics written to `metrics.json`, and `out_dir`. With several targets (verb + noun),
    the headline metrics are those of the action and `targets` holds each target's.
    """
    if split not in SPLITS:
        raise VidclsError(f"Unknown split '{split}'; choose one of: {', '.join(SPLITS)}")
    if tta < 1:
        raise VidclsError(f"Expected --tta >= 1 (temporal crops per clip); received {tta}")
    runs = [RunDir(path) for path in (run_dirs if isinstance(run_dirs, (list, tuple)) else [run_dirs])]
    for run in runs:
        run.require_trained()
    space = runs[0].label_space()
    if cache_dir is not None:
        return _evaluate_on_cache(runs, Path(cache_dir), space, tta, out_dir, positive_class, target_recall, target_fpr)
    clip_ids = runs[0].splits()[split]
    for run in runs[1:]:
        if run.label_space() != space:
            raise VidclsError(f"Runs {runs[0].root} and {run.root} predict different labels; an ensemble needs the same")
        if run.splits()[split] != clip_ids:
            raise VidclsError(f"The {split} splits of {runs[0].root} and {run.root} hold different clips; "
                              "an ensemble is scored on the same clips (train them with the same seed and cache clips)")
    if not clip_ids:
        raise VidclsError(f"The {split} split of {runs[0].root} is empty; nothing to evaluate")
    members = [_predict_split(run, clip_ids, space, tta) for run in runs]
    data = members[0][0]
    probabilities = {target: np.mean([member[1][target] for member in members], axis=0) for target in space}
    metrics = score_predictions(data.labels, probabilities, space, split, positive_class, target_recall, target_fpr)
    metrics["tta"] = tta
    if len(runs) > 1:
        metrics["members"] = {
            str(run.root): headline(score_predictions(data.labels, member[1], space, split, positive_class,
                                                      target_recall, target_fpr))
            for run, member in zip(runs, members)}
    out = Path(out_dir) if out_dir else (runs[0].eval_dir if len(runs) == 1 else runs[0].root / "eval_ensemble")
    write_evaluation(out, runs, metrics, data.clip_ids, data.labels, probabilities, space)
    return Metrics({**metrics, "out_dir": str(out)})


def _evaluate_on_cache(runs, cache_dir: Path, space, tta, out_dir, positive_class, target_recall, target_fpr) -> dict:
    """Every clip of another cache, which must hold features made as the runs' were (it may
    hold more streams than a run was trained on: the run's are picked out)."""
    cache = FeatureCache(cache_dir)
    columns = [_run_columns(run, cache, cache_dir) for run in runs]
    clip_ids = [entry["clip_id"] for entry in cache.entries]
    if not clip_ids:
        raise VidclsError(f"{cache_dir} holds no clip; nothing to evaluate")
    members = [_predict_split(run, clip_ids, space, tta, cache, picked) for run, picked in zip(runs, columns)]
    data = members[0][0]
    probabilities = {target: np.mean([member[1][target] for member in members], axis=0) for target in space}
    metrics = score_predictions(data.labels, probabilities, space, "all", positive_class, target_recall, target_fpr)
    metrics.update(tta=tta, cache_dir=str(cache_dir))
    out = Path(out_dir) if out_dir else runs[0].root / f"eval_{cache_dir.resolve().name}"
    write_evaluation(out, runs, metrics, data.clip_ids, data.labels, probabilities, space,
                     note=f"Every clip of the cache `{cache_dir}`, scored by " + ", ".join(f"`{run.root}`" for run in runs)
                     + (" (ensemble: mean of the members' probabilities)." if len(runs) > 1 else "."))
    return Metrics({**metrics, "out_dir": str(out)})


def _run_columns(run: RunDir, cache: FeatureCache, cache_dir: Path) -> np.ndarray | None:
    """The columns of `cache`'s rows that `run` was trained on: None for all of them, or
    the run's streams picked out of a cache that holds more.

    Raises:
        VidclsError: the cache's features were made otherwise (another backbone, weights,
            image size, number format, T, ...) or lack a stream the run was trained on.
    """
    trained_on = run.features()["fingerprint"]
    streams = list(trained_on.get("streams", DEFAULT_STREAMS))
    cached = list(cache.info.get("streams", DEFAULT_STREAMS))
    subset = stream_subset(cache.info, streams)
    if subset is None:
        raise VidclsError(f"{cache_dir} holds the streams {cached}, but {run.root} was trained on {streams}; "
                          "extract it with the run's streams (vidcls extract --config the run's recipe)")
    compared, columns = (cache.info, None) if cached == streams else subset
    different = sorted(key for key in set(trained_on) | set(compared) if key not in NOT_FINGERPRINT
                       and trained_on.get(key) != compared.get(key))
    if different:
        described = "; ".join(f"{key}: run's {trained_on.get(key)!r}, this cache's {compared.get(key)!r}"
                              for key in different)
        raise VidclsError(f"{cache_dir} holds other features than {run.root} was trained on ({described}); "
                          "extract it with the same settings (vidcls extract --config the run's recipe)")
    return columns


def _predict_split(run: RunDir, clip_ids: list[str], space: LabelSpace, tta: int, cache: FeatureCache | None = None,
                   columns: np.ndarray | None = None):
    """`(LabelledFeatures, {target: probabilities [N, K]})` of `run`'s best model on
    `clip_ids` of `cache` (default: the run's own; `columns`: the part of its rows the run
    was trained on), averaged over `tta` temporal crops."""
    from vidcls.models import load_model, outputs_by_target, predict

    cache = cache or run.cache()
    data = load_labelled_features(cache, clip_ids, space)
    model = load_model(run.best_model_path)
    features = data.features.astype(np.float32) if columns is None else data.features[..., columns].astype(np.float32)
    views = [(features, data.masks)] if tta == 1 else temporal_crops(features, data.masks, tta, TTA_CROP)
    outputs = [outputs_by_target(predict(model, list(view)), space) for view in views]
    return data, {target: np.mean([output[target] for output in outputs], axis=0) for target in space}


def score_predictions(labels: np.ndarray, probabilities: dict[str, np.ndarray], space: LabelSpace, split: str,
                      positive_class: str | None = None, target_recall: float = 0.9, target_fpr: float = 0.05) -> dict:
    """Every metric `evaluate` reports for predicted `probabilities` (`{target: [N, K]}`)
    of clips with class indices `labels` `[N, targets]`; two classes add ROC/PR and
    operating points for `positive_class` (default: the rarer one)."""
    if len(space) > 1:
        return {"split": split, **multi_target_metrics(labels, probabilities, space)}
    target, names = next(iter(space.items()))
    metrics = {"split": split, **classification_metrics(labels[:, 0], probabilities[target], names)}
    if len(names) == 2:
        if positive_class is not None and positive_class not in names:
            raise VidclsError(f"--positive-class '{positive_class}' is not a class of the run; classes: {names}")
        positive = names.index(positive_class) if positive_class else default_positive(labels[:, 0], names)
        metrics["binary"] = binary_metrics(labels[:, 0], probabilities[target], names, positive, target_recall, target_fpr)
    return metrics


def headline(metrics: dict) -> dict:
    """The few numbers that summarise an evaluation: accuracy, balanced accuracy, macro F1
    (top-5, ECE, and ROC AUC for two classes, where they exist)."""
    keys = ("accuracy", "balanced_accuracy", "macro_f1", f"top{TOP_K}_accuracy", "ece")
    headline = {key: metrics[key] for key in keys if key in metrics}
    if "binary" in metrics:
        headline["roc_auc"] = metrics["binary"]["roc_auc"]
    return headline


def write_evaluation(out: Path, runs: list[RunDir], metrics: dict, clip_ids: list[str], labels: np.ndarray,
                     probabilities: dict[str, np.ndarray], space: LabelSpace, note: str = "") -> None:
    """Writes metrics.json, per_class.csv, predictions.csv, confusion matrices, figures and
    report.md for `metrics` (from `score_predictions`) into `out`; `note` (see
    `write_report`) describes predictions pooled from several runs, e.g. out-of-fold ones."""
    out.mkdir(parents=True, exist_ok=True)
    figures = []
    multi = len(space) > 1
    per_target = metrics["targets"] if multi else {next(iter(space)): metrics}
    atomic_write_json(out / "metrics.json", _without_tables(metrics))
    with atomic_writer(out / "per_class.csv", newline="") as handle:
        fields = ["class", "precision", "recall", "f1", "support"]
        writer = csv.DictWriter(handle, fieldnames=["target", *fields] if multi else fields)
        writer.writeheader()
        for target, target_metrics in per_target.items():
            writer.writerows({**row, "target": target} if multi else row for row in target_metrics["per_class"])
    predicted = np.stack([probabilities[target].argmax(axis=1) for target in space], axis=1)
    with atomic_writer(out / "predictions.csv", newline="") as handle:
        writer = csv.writer(handle)
        probability_columns = [f"prob_{name}" if not multi else f"prob_{target}/{name}"
                               for target, names in space.items() for name in names]
        writer.writerow(["clip_id", "label", "predicted", *probability_columns])
        rows = np.concatenate([probabilities[target] for target in space], axis=1)
        for clip_id, truth, guess, row in zip(clip_ids, action_names(space, labels),
                                              action_names(space, predicted), rows):
            writer.writerow([clip_id, truth, guess, *[f"{p:.6f}" for p in row]])
    for index, (target, names) in enumerate(space.items()):
        counts = np.array(per_target[target]["confusion"])
        # confusion.png / .json: the (first) target; confusion_<target>.* for each with several.
        stems = ["confusion"] if not multi else (["confusion", f"confusion_{target}"] if index == 0 else [f"confusion_{target}"])
        totals = counts.sum(axis=1, keepdims=True)
        normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        for stem in stems:
            atomic_write_json(out / f"{stem}.json", {"target": target, "classes": names, "counts": counts.tolist(),
                                                     "row_normalised": np.round(normalised, 6).tolist()})
            plot_confusion(counts, names, out / f"{stem}.png", title=(
                f"{metrics['split']} {target if multi else ''}: accuracy {per_target[target]['accuracy']:.3f}, "
                f"n={metrics['num_samples']}").replace("  ", " "))
            figures.append((f"confusion matrix{f' ({target})' if multi else ''}", f"{stem}.png"))
        file_name = f"reliability{f'_{target}' if multi else ''}.png"
        plot_reliability(calibration(labels[:, index], probabilities[target]), out / file_name, target if multi else "")
        figures.append((f"reliability diagram{f' ({target})' if multi else ''}", file_name))
    if "binary" in metrics and metrics["binary"]["roc_auc"] is not None:
        target = next(iter(space))
        plot_roc_pr(labels[:, 0], probabilities[target], metrics["binary"], out / "roc_pr.png")
        figures.append(("ROC and precision-recall curves", "roc_pr.png"))
    if len(runs) == 1 and plot_curves(runs[0].history(), out / "curves.png"):
        figures.append(("training curves", "curves.png"))
    write_report(out / "report.md", runs, metrics, figures, note)


def _without_tables(metrics: dict) -> dict:
    """metrics.json: everything but the confusion matrices (they have their own files)."""
    cleaned = {key: value for key, value in metrics.items() if key not in ("confusion", "targets")}
    if "targets" in metrics:
        cleaned["targets"] = {target: _without_tables(values) for target, values in metrics["targets"].items()}
    return cleaned


def read_metrics(run_dir: str | Path) -> dict:
    return RunDir(run_dir).metrics()
