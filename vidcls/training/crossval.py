"""`vidcls crossval`: K-fold cross-validation, each fold a normal run directory.

On a few hundred clips one held-out split of 30 clips says little: its accuracy moves by
±0.1 with the seed. Cross-validation trains K runs, each tested on a different fold, so
every clip is scored once by a model that never saw it (out of fold). Folds are
stratified by class and, with a group key (source video, scene, camera, participant),
keep every group in one fold, so no scene is both trained and tested on.

OUT_DIR holds:
    crossval_spec.json     what this directory cross-validates (a different one is refused)
    folds.json             the clip ids held out by each fold
    splits/<fold>.json     each fold's train / val / test split (val is drawn, grouped, from train)
    <fold>/                a normal run directory (config.yaml, best.keras, eval/ of its test fold...)
    out_of_fold/           every clip's prediction by the fold that held it out, with one
                           metrics.json, confusion matrix, report.md (`vidcls evaluate`'s files)
    baseline/              the same for the logistic-regression baseline, on the same folds
    summary.md             per-fold table, mean ± std, the baseline beside it
    crossval.json          all the figures; written last, so it exists only for a finished run

Running the same command again resumes: finished folds are kept, an interrupted fold
continues from its last epoch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from vidcls.config import ExperimentConfig
from vidcls.data import build_label_space, encode_labels, stratified_split
from vidcls.errors import VidclsError
from vidcls.evaluation import evaluate, motion_statistics, motion_statistics_baseline
from vidcls.features import FeatureCache
from vidcls.fileio import atomic_write_bytes, atomic_write_json, claim_directory
from vidcls.training.crossval_summary import CrossvalResult, pooled_evaluation, summary_markdown
from vidcls.training.splits import clip_groups

logger = logging.getLogger("vidcls")

SPEC_FILE = "crossval_spec.json"
FOLDS_FILE = "folds.json"
RESULT_FILE = "crossval.json"
FOLD_RESULT = "fold_result.json"  # in each fold's run directory, once it is trained and scored
BASELINE_NAME = ("logistic regression on the mean and std of |frame-to-frame feature differences| "
                 "(standardised, C=0.01)")


def make_folds(labels: list[str], num_folds: int, seed: int, groups: list[str] | None = None) -> list[list[int]]:
    """`num_folds` lists of row indices, each a test fold: stratified by label and, with
    `groups`, with every group inside one fold (scikit-learn's StratifiedGroupKFold).

    Raises:
        VidclsError: fewer than 2 folds, or fewer clips (groups) than folds.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if num_folds < 2:
        raise VidclsError(f"Expected --folds >= 2; received {num_folds}")
    units = len(set(groups)) if groups is not None else len(labels)
    if units < num_folds:
        what = "groups" if groups is not None else "clips"
        raise VidclsError(f"Expected at least {num_folds} {what} for {num_folds} folds; the cache has {units}")
    placeholder = np.zeros(len(labels))
    if groups is None:
        smallest = min(labels.count(label) for label in set(labels))
        if smallest < num_folds:
            logger.warning("the rarest class has %d clip(s), fewer than %d folds: some folds test none of it",
                           smallest, num_folds)
        splitter = StratifiedKFold(num_folds, shuffle=True, random_state=seed)
        return [sorted(test.tolist()) for _, test in splitter.split(placeholder, labels)]
    splitter = StratifiedGroupKFold(num_folds, shuffle=True, random_state=seed)
    return [sorted(test.tolist()) for _, test in splitter.split(placeholder, labels, groups)]


def crossval(config: ExperimentConfig, out_dir: str | Path, num_folds: int = 5, group_by: str | None = None,
             repeats: int = 1, seed: int | None = None, baseline: bool = True, progress: bool = False) -> CrossvalResult:
    """Cross-validates `config` on its cache into `out_dir` (see the module docstring).

    Args:
        config: the run configuration every fold trains with; its `data.split_file`
            must be empty (the folds make the splits) and `data.test_fraction` is not
            used (each fold's test set is the held-out fold).
        num_folds: K.
        group_by: a manifest key whose clips stay in one fold (default
            `config.data.group_by`; empty: clips are split one by one).
        repeats: R different fold assignments (seeds `seed`, `seed + 1`, ...), for a
            steadier mean; each repeat also trains with its own `train.seed`.
        seed: the first fold assignment's seed (default `config.train.seed`).
        baseline: also score the logistic-regression baseline on the same folds.

    Raises:
        VidclsError: a bad option, a group key the manifest lacks, or OUT_DIR holding
            another cross-validation.
    """
    if config.data.split_file:
        raise VidclsError(f"crossval makes each fold's split itself; remove data.split_file "
                          f"({config.data.split_file}) from the configuration")
    if repeats < 1:
        raise VidclsError(f"Expected --repeats >= 1; received {repeats}")
    group_by = config.data.group_by if group_by is None else group_by
    seed = config.train.seed if seed is None else seed
    config = config.replace({"data.group_by": group_by}, source="crossval")
    cache = FeatureCache(config.data.cache_dir)
    entries = cache.entries
    space = build_label_space(entries, config.data.targets, str(cache.root))
    labels = encode_labels(entries, space)
    groups = clip_groups(entries, group_by, cache.root, setting="--group-by (data.group_by)") if group_by else None
    out = Path(out_dir)
    spec = {"config": config.to_dict(), "folds": num_folds, "group_by": group_by, "repeats": repeats, "seed": seed,
            "baseline": baseline, "clips": len(entries)}
    claim_directory(out, SPEC_FILE, spec, "cross-validation")
    folds = _load_or_make_folds(out, entries, config, num_folds, groups, repeats, seed)
    clip_ids = [entry["clip_id"] for entry in entries]
    row_of = {clip_id: row for row, clip_id in enumerate(clip_ids)}
    fold_results = []
    for number, fold in enumerate(folds, start=1):
        logger.info("fold %d of %d (%s): %d test clips", number, len(folds), fold["name"], len(fold["test"]))
        fold_results.append(_run_fold(out, fold, config, entries, groups, space, progress))
    baseline_results = _baseline(cache, folds, row_of, labels, space) if baseline else None
    summary = _summarise(out, config, folds, fold_results, baseline_results, row_of, labels, space, repeats)
    return CrossvalResult(out_dir=out, summary=summary)


def _load_or_make_folds(out: Path, entries: list[dict], config: ExperimentConfig, num_folds: int,
                        groups: list[str] | None, repeats: int, seed: int) -> list[dict]:
    """Each fold's name, test clips and train/val split, written once (a resumed run reads them)."""
    path = out / FOLDS_FILE
    if path.is_file():
        return json.loads(path.read_text())["folds"]
    clip_ids = [entry["clip_id"] for entry in entries]
    stratify_by = [str(entry[config.data.targets[0]]) for entry in entries]
    folds = []
    for repeat in range(repeats):
        for index, test_rows in enumerate(make_folds(stratify_by, num_folds, seed + repeat, groups)):
            name = f"fold_{index}" if repeats == 1 else f"repeat_{repeat}_fold_{index}"
            held_out = set(test_rows)
            train_rows = [row for row in range(len(clip_ids)) if row not in held_out]
            # The fold's own validation clips (grouped too) pick its best epoch; the test fold stays unseen.
            inner = stratified_split([clip_ids[row] for row in train_rows], [stratify_by[row] for row in train_rows],
                                     config.data.val_fraction, 0.0, seed + repeat,
                                     [groups[row] for row in train_rows] if groups else None)
            folds.append({"name": name, "repeat": repeat, "train_seed": config.train.seed + repeat,
                          "train": inner["train"], "val": inner["val"],
                          "test": sorted(clip_ids[row] for row in test_rows)})
    (out / "splits").mkdir(exist_ok=True)
    for fold in folds:
        atomic_write_json(out / "splits" / f"{fold['name']}.json",
                          {split: fold[split] for split in ("train", "val", "test")})
    atomic_write_json(path, {"folds": folds})
    return folds


def _run_fold(out: Path, fold: dict, config: ExperimentConfig, entries, groups, space, progress) -> dict:
    """Trains (or resumes) one fold and scores its test clips; the fold's predictions are
    kept in `FOLD_RESULT`, written once both are done."""
    from vidcls.training.trainer import train

    run_dir = out / fold["name"]
    done = run_dir / FOLD_RESULT
    if done.is_file():
        return json.loads(done.read_text())
    fold_config = config.replace({"data.split_file": str((out / "splits" / f"{fold['name']}.json").resolve()),
                                  "train.seed": fold["train_seed"]}, source=f"crossval {fold['name']}")
    result = train(fold_config, run_dir, progress=progress)
    evaluate(run_dir, "test")
    record = {"name": fold["name"], "repeat": fold["repeat"], "epochs_run": result.epochs_run,
              "seconds": round(result.seconds, 1), "best_val_accuracy": result.best_val_accuracy,
              "probabilities": _read_probabilities(run_dir / "eval" / "predictions.csv", space)}
    atomic_write_json(done, record)
    return record


def _read_probabilities(path: Path, space: dict) -> dict[str, dict[str, list[float]]]:
    """`{clip_id: {target: [p per class]}}` from an evaluation's predictions.csv."""
    import csv

    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    multi = len(space) > 1
    return {row["clip_id"]: {target: [float(row[f"prob_{target}/{name}" if multi else f"prob_{name}"]) for name in names]
                             for target, names in space.items()} for row in rows}


def _baseline(cache: FeatureCache, folds: list[dict], row_of: dict, labels: np.ndarray, space: dict) -> list[dict]:
    """The logistic-regression baseline on each fold: trained on the fold's train and val
    clips, scored on its test clips."""
    if len(space) > 1:
        logger.info("baseline: logistic regression scores single-target runs only; not computed for %s", list(space))
        return None
    statistics = motion_statistics(cache.load_all(cache.entries))
    results = []
    for fold in folds:
        train_rows = [row_of[clip_id] for clip_id in fold["train"] + fold["val"]]
        test_rows = [row_of[clip_id] for clip_id in fold["test"]]
        probabilities = motion_statistics_baseline(statistics[train_rows], labels[train_rows, 0],
                                                   statistics[test_rows], len(next(iter(space.values()))))
        results.append({"name": fold["name"], "probabilities": {
            clip_id: {next(iter(space)): row.tolist()} for clip_id, row in zip(fold["test"], probabilities)}})
    return results


def _summarise(out, config, folds, fold_results, baseline_results, row_of, labels, space, repeats) -> dict:
    """Per-fold metrics, their mean and std, the pooled out-of-fold evaluation (model and
    baseline), summary.md, and crossval.json last."""
    note = (f"Out-of-fold predictions of {len(folds)} folds ({repeats} repeat(s)): every clip scored by the "
            f"model of the fold that held it out.")
    model = pooled_evaluation(out / "out_of_fold", fold_results, folds, row_of, labels, space, note)
    summary = {"num_folds": len([fold for fold in folds if fold["repeat"] == 0]), "repeats": repeats,
               "group_by": config.data.group_by, "num_clips": len(row_of), "cache_dir": config.data.cache_dir,
               "folds": [{"name": result["name"], "epochs_run": result["epochs_run"], "seconds": result["seconds"],
                          **metrics} for result, metrics in zip(fold_results, model["per_fold"])],
               "model": model}
    if baseline_results:
        summary["baseline"] = {"name": BASELINE_NAME, **pooled_evaluation(out / "baseline", baseline_results, folds, row_of,
                                                                labels, space, note.replace("model", "baseline"))}
    atomic_write_bytes(out / "summary.md", summary_markdown(summary).encode())
    atomic_write_json(out / RESULT_FILE, summary)
    return summary
