"""`vidcls sweep`: grid or random search over config keys; every trial is a normal run.

A sweep file (YAML):

    base: configs/violence_rwf2000.yaml      # optional: a preset every trial starts from
    set:                                     # fixed for every trial
      data.cache_dir: cache/rwf_vgg19
      train.epochs: 20
    search: grid                             # grid | random
    trials: 8                                # random search only
    seed: 0                                  # random search only
    rank_by: val_accuracy                    # val_accuracy (higher first) | val_loss (lower first)
    parameters:
      train.learning_rate: [1.0e-3, 3.0e-4]  # a list: grid values, or random choices
      model.dropout: {min: 0.1, max: 0.5}    # a range: random search only
      train.weight_decay: {min: 1.0e-5, max: 1.0e-3, log: true}

Trials go to OUT_DIR/trial_NNN/ (config.yaml, trial.json, the usual run files, eval/ of the
test split). OUT_DIR/sweep_results.csv and .md rank them; OUT_DIR/best_config.yaml is the
winner's config. Running the same sweep again skips finished trials and resumes an
interrupted one, so a killed sweep continues where it stopped.
"""

from __future__ import annotations

import csv
import itertools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from vidcls.config import ExperimentConfig, load_experiment_config, save_config
from vidcls.errors import VidclsError
from vidcls.evaluation.compare import markdown_table
from vidcls.fileio import atomic_write_json

logger = logging.getLogger("vidcls")

SWEEP_KEYS = {"base", "set", "search", "trials", "seed", "rank_by", "parameters"}
RANKINGS = {"val_accuracy": ("best_val_accuracy", True), "val_loss": ("best_val_loss", False)}


@dataclass(frozen=True)
class Sweep:
    base: str | None
    fixed: dict
    search: str
    trials: int
    seed: int
    rank_by: str
    parameters: dict


def read_sweep(path: str | Path) -> Sweep:
    """Parses and checks a sweep file; every key it sets must be a valid config key.

    Raises:
        VidclsError: a missing file, an unknown sweep key or config key, a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise VidclsError(f"Sweep file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(values) - SWEEP_KEYS)
    if unknown:
        raise VidclsError(f"Unknown key(s) {unknown} in {path}; expected some of {sorted(SWEEP_KEYS)}")
    search = values.get("search", "grid")
    if search not in ("grid", "random"):
        raise VidclsError(f"Expected search: grid or random in {path}; received {search!r}")
    rank_by = values.get("rank_by", "val_accuracy")
    if rank_by not in RANKINGS:
        raise VidclsError(f"Expected rank_by: {' or '.join(RANKINGS)} in {path}; received {rank_by!r}")
    parameters = values.get("parameters") or {}
    if not isinstance(parameters, dict) or not parameters:
        raise VidclsError(f"Expected parameters: a mapping of config keys to values or ranges in {path}")
    for key, space in parameters.items():
        if isinstance(space, dict):
            if search == "grid":
                raise VidclsError(f"parameters.{key} in {path} is a range; a grid needs a list of values")
            if set(space) - {"min", "max", "log"} or not {"min", "max"} <= set(space):
                raise VidclsError(f"Expected parameters.{key} in {path} as {{min, max[, log]}}; received {space}")
        elif not isinstance(space, list) or not space:
            raise VidclsError(f"Expected parameters.{key} in {path} to be a list of values or a range; received {space!r}")
    trials = int(values.get("trials", 10))
    if search == "random" and trials < 1:
        raise VidclsError(f"Expected trials >= 1 in {path}; received {trials}")
    base = values.get("base")
    if base and not Path(base).is_absolute():
        base = str((path.parent / base)) if (path.parent / base).is_file() else base
    sweep = Sweep(base=base, fixed=values.get("set") or {}, search=search, trials=trials,
                  seed=int(values.get("seed", 0)), rank_by=rank_by, parameters=parameters)
    for overrides in trial_overrides(sweep):
        trial_config(sweep, overrides, str(path))  # every trial's config is valid before any runs
    return sweep


def trial_overrides(sweep: Sweep) -> list[dict]:
    """The `{key: value}` of every trial, in order (the grid's product, or seeded draws)."""
    keys = list(sweep.parameters)
    if sweep.search == "grid":
        return [dict(zip(keys, values)) for values in itertools.product(*(sweep.parameters[key] for key in keys))]
    rng = np.random.default_rng(sweep.seed)
    trials = []
    for _ in range(sweep.trials):
        trial = {}
        for key in keys:
            space = sweep.parameters[key]
            if isinstance(space, list):
                trial[key] = space[int(rng.integers(len(space)))]
            elif space.get("log"):
                trial[key] = float(math.exp(rng.uniform(math.log(space["min"]), math.log(space["max"]))))
            else:
                value = rng.uniform(space["min"], space["max"])
                trial[key] = int(round(value)) if all(isinstance(space[b], int) for b in ("min", "max")) else float(value)
        trials.append(trial)
    return trials


def trial_config(sweep: Sweep, overrides: dict, source: str) -> ExperimentConfig:
    config = load_experiment_config(sweep.base, None, None)
    return config.replace({**sweep.fixed, **overrides}, source=source)


def run_sweep(sweep_file: str | Path, out_dir: str | Path, progress: bool = False) -> list[dict]:
    """Runs (or resumes) every trial, evaluates each on its test split, writes the ranked
    tables and the best config; returns the ranked rows."""
    from vidcls.evaluation import evaluate
    from vidcls.training.trainer import train

    sweep = read_sweep(sweep_file)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    trials = trial_overrides(sweep)
    for index, overrides in enumerate(trials):
        run_dir = out / f"trial_{index:03d}"
        config = trial_config(sweep, overrides, str(sweep_file))
        logger.info("trial %d/%d: %s", index + 1, len(trials), overrides)
        result = train(config, run_dir, progress=progress)
        atomic_write_json(run_dir / "trial.json", {"index": index, "parameters": overrides})
        metrics_path = run_dir / "eval" / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if result.already_done and metrics_path.is_file() \
            else evaluate(run_dir, "test")
        rows.append({
            "trial": index, "run_dir": str(run_dir), **{key: overrides[key] for key in sweep.parameters},
            "val_accuracy": result.best_val_accuracy, "val_loss": result.best_val_loss,
            "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
            "parameters": result.parameters, "trainable_parameters": result.trainable_parameters,
            "seconds": round(result.seconds, 1),
        })
    key, descending = RANKINGS[sweep.rank_by]
    column = key.replace("best_", "")

    def order(row):  # trials without the metric (no validation split) last
        value = row[column]
        return (1, 0.0) if value is None else (0, -value if descending else value)

    ranked = sorted(rows, key=order)
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    _write_tables(out, ranked)
    best = ranked[0]
    save_config(trial_config(sweep, trials[best["trial"]], str(sweep_file)), out / "best_config.yaml")
    return ranked


def _write_tables(out: Path, rows: list[dict]) -> None:
    columns = ["rank", *[key for key in rows[0] if key != "rank"]]
    with (out / "sweep_results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    table = [{column: f"{row[column]:.4g}" if isinstance(row[column], float) else row[column] for column in columns}
             for row in rows]
    (out / "sweep_results.md").write_text(markdown_table(table) + "\n")
