"""Real footage, honest evaluation: models x inputs in grouped cross-validation, with the
logistic-regression baseline in the same table.

    python benchmarks/real_bench.py --annotations ../shared/data/fight_surv/clips.csv \\
        --weights vgg16_conv_hed.weights.h5 --folds 5 [--repeats 1] [--fold-seed 1000] [--work-dir DIR] [--quick]

Each clip's source video (the annotations' `group` column) stays inside one fold, so
every score is on scenes the model never saw. Caches (each extracted once, then reused):

- `appearance_128`: VGG16 conv features at 128 px, the setting of the first real-data
  measurements (attention-LSTM at chance, the baseline ~0.7);
- `motion_224`: appearance and frame-difference streams at 224 px, the difference gap the
  recipe's (`extract.difference_seconds`), for the rows that compare them (the recipe
  caches and reads the frame-difference stream alone, whose numbers are the same whatever
  else is cached);
- `gap2_224`: the frame-difference stream with a fixed 2-frame gap, the recipe until
  2026-12-01;
- `grid_224`: both streams with 2x2 grid pooling.

Each row is one `vidcls crossval` (a run per fold, the baseline on the same folds):
mean ± std over folds of accuracy, balanced accuracy, macro F1 and ROC AUC, the pooled
out-of-fold accuracy, and seconds per fold. The fold assignments come from
`--fold-seed` (default 1000), not from the training seed the recipe's sweep ranked its
trials on, so the recipe is scored on folds that did not choose it. `--quick` keeps the first two caches and
the rows that decide the default. Prints one JSON line; writes real_bench.json and
real_bench.md in the work dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "fight_surveillance.yaml"

BACKBONE = dict(backbone="vgg16_conv", num_frames=16, batch_size=32)
CACHES = {
    "appearance_128": dict(image_size=128, streams=["appearance"]),
    "motion_224": dict(image_size=224, streams=["appearance", "frame_difference"]),
    "grid_224": dict(image_size=224, streams=["appearance", "frame_difference"], grid=2),
    "gap2_224": dict(image_size=224, streams=["frame_difference"], difference_gap=2, difference_seconds=0.0),
}
MOTION_KEYS = ("difference_gap", "difference_seconds", "difference_gain")  # from the recipe unless a cache sets them
# (row name, cache, config overrides on top of the recipe, in --quick)
ROWS = [
    ("recipe: mean_pool on the frame_difference stream, features and their differences", "motion_224", {}, True),
    ("mean_pool on the frame_difference stream, features as cached (the recipe until 2026-12-01)", "motion_224",
     {"model.input_transform": "none"}, True),
    ("the recipe with a fixed 2-frame difference gap (the recipe until 2026-12-01)", "gap2_224", {}, True),
    ("attention_lstm, frame_difference stream, features and their differences", "motion_224",
     {"model.name": "attention_lstm"}, True),
    ("transformer, frame_difference stream, features and their differences", "motion_224",
     {"model.name": "transformer"}, False),
    ("mean_pool, both streams, early fusion", "motion_224", {"model.streams": ["appearance", "frame_difference"],
                                                        "model.input_transform": "none"}, True),
    ("mean_pool, both streams, late fusion", "motion_224",
     {"model.streams": ["appearance", "frame_difference"], "model.fusion": "late", "model.input_transform": "none"}, False),
    ("mean_pool, appearance 224", "motion_224", {"model.streams": ["appearance"], "model.input_transform": "none"}, True),
    ("mean_pool, appearance 224, differences", "motion_224",
     {"model.streams": ["appearance"], "model.input_transform": "differences"}, False),
    ("mean_pool, appearance 224, centred", "motion_224",
     {"model.streams": ["appearance"], "model.input_transform": "centred"}, False),
    ("mean_pool, frame_difference, 2x2 grid", "grid_224", {"model.input_transform": "none"}, False),
    ("mean_pool, appearance, 2x2 grid, differences", "grid_224",
     {"model.streams": ["appearance"], "model.input_transform": "differences"}, False),
    ("attention_lstm, appearance 128 (first release's defaults)", "appearance_128", {"__first_release__": True}, True),
    ("attention_lstm, appearance 128, differences", "appearance_128",
     {"model.name": "attention_lstm", "model.streams": [], "model.input_transform": "differences"}, False),
    ("mean_pool, appearance 128", "appearance_128", {"model.streams": [], "model.input_transform": "none"}, False),
]
# The first release's training settings (issue 14's measurements): attention-LSTM,
# 40 epochs, batch 16, everything else at its old default.
FIRST_RELEASE = {"model.name": "attention_lstm", "model.streams": [], "model.adapter_units": 256,
                 "model.hidden_units": 128, "model.dropout": 0.3, "train.epochs": 40, "train.batch_size": 16,
                 "train.learning_rate": 1e-3, "train.weight_decay": 1e-4, "train.early_stopping_patience": 10,
                 "data.val_fraction": 0.15, "augment.noise_std": 0.0, "model.input_transform": "none"}


def extract_caches(work: Path, annotations: str, weights: str, names) -> dict[str, Path]:
    from vidcls.config import FeatureConfig, load_feature_config
    from vidcls.features import extract

    recipe = load_feature_config(str(RECIPE))
    motion = {key: getattr(recipe, key) for key in MOTION_KEYS}
    caches = {}
    for name in names:
        caches[name] = work / "caches" / name
        summary = extract(FeatureConfig(annotations=annotations, cache_dir=str(caches[name]), weights=weights,
                                        **BACKBONE, **{**motion, **CACHES[name]}), progress=True)
        print(f"{name}: {summary.describe()}", file=sys.stderr)
        if summary.failures:
            raise SystemExit(f"{len(summary.failures)} clip(s) of {annotations} could not be read; see {caches[name]}")
    return caches


def run_row(name: str, cache: Path, overrides: dict, out: Path, folds: int, repeats: int, fold_seed: int) -> dict:
    from vidcls.config import load_experiment_config
    from vidcls.training import crossval

    if overrides.pop("__first_release__", False):
        overrides = {**FIRST_RELEASE, **overrides}
    config = load_experiment_config(str(RECIPE)).replace({**overrides, "data.cache_dir": str(cache)}, source=name)
    summary = crossval(config, out, num_folds=folds, group_by="group", repeats=repeats,
                       seed=fold_seed).summary
    model, baseline = summary["model"], summary["baseline"]
    seconds = [fold["seconds"] for fold in summary["folds"]]
    return {
        "row": name, "cache": cache.name,
        **{f"{metric}_mean": _round(model["mean"][metric]) for metric in ("accuracy", "balanced_accuracy", "macro_f1",
                                                                           "roc_auc")},
        **{f"{metric}_std": _round(model["std"][metric]) for metric in ("accuracy", "balanced_accuracy", "macro_f1",
                                                                         "roc_auc")},
        "pooled_accuracy": _round(model["pooled"]["accuracy"]),
        "baseline_accuracy_mean": _round(baseline["mean"]["accuracy"]),
        "baseline_accuracy_std": _round(baseline["std"]["accuracy"]),
        "seconds_per_fold": round(sum(seconds) / len(seconds), 1),
        "out_dir": str(out),
    }


def _round(value):
    return None if value is None else round(value, 4)


def markdown(rows: list[dict], folds: int, repeats: int) -> str:
    lines = [f"Grouped {folds}-fold cross-validation ({repeats} repeat(s)); mean ± std over folds; the baseline is "
             "logistic regression on the mean and std of |frame-to-frame feature differences| of the same cache, "
             "on the same folds.", "",
             "| model and input | cache | accuracy | balanced accuracy | macro F1 | ROC AUC | baseline accuracy | "
             "s / fold |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [f"{row[f'{metric}_mean']:.3f} ± {row[f'{metric}_std']:.3f}"
                 for metric in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")]
        lines.append(f"| {row['row']} | {row['cache']} | " + " | ".join(cells)
                     + f" | {row['baseline_accuracy_mean']:.3f} ± {row['baseline_accuracy_std']:.3f} | "
                       f"{row['seconds_per_fold']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotations", required=True, help="CSV with path,label,group (e.g. fight_surv/clips.csv)")
    parser.add_argument("--weights", required=True, help="backbone weights file (real_vgg16_weights.py writes one)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--fold-seed", type=int, default=1000, help="seed of the first fold assignment")
    parser.add_argument("--work-dir", help="caches and cross-validations (default: a temporary folder); reused")
    parser.add_argument("--quick", action="store_true", help="only the rows that decide the default")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vidcls_real_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows_wanted = [row for row in ROWS if row[3] or not args.quick]
    caches = extract_caches(work, args.annotations, args.weights, dict.fromkeys(row[1] for row in rows_wanted))
    rows = []
    for index, (name, cache, overrides, _) in enumerate(rows_wanted):
        print(f"[{index + 1}/{len(rows_wanted)}] {name}", file=sys.stderr, flush=True)
        rows.append(run_row(name, caches[cache], dict(overrides),
                            work / "crossval" / f"row_{index:02d}_r{args.repeats}_s{args.fold_seed}", args.folds,
                            args.repeats, args.fold_seed))
    recipe, first = rows[0], next(row for row in rows if "first release" in row["row"])
    report = {
        "benchmark": "real_footage", "annotations": args.annotations, "folds": args.folds, "repeats": args.repeats,
        "fold_seed": args.fold_seed, "rows": rows,
        "recipe_accuracy": recipe["accuracy_mean"], "recipe_minus_baseline": round(
            recipe["accuracy_mean"] - first["baseline_accuracy_mean"], 4),
        "recipe_minus_first_release": round(recipe["accuracy_mean"] - first["accuracy_mean"], 4),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    (work / "real_bench.json").write_text(json.dumps(report, indent=2))
    (work / "real_bench.md").write_text(markdown(rows, args.folds, args.repeats))
    print(markdown(rows, args.folds, args.repeats), file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
