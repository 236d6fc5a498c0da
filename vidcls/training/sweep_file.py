"""The sweep file of `vidcls sweep` (hyperparameter search over config keys; every trial is a
normal run): reading it and checking every value before any trial runs.

KerasTuner's oracles choose the trials; vidcls runs each one as an ordinary run directory.
A sweep file (YAML):

    base: configs/violence_rwf2000.yaml      # optional: a preset every trial starts from
    set:                                     # fixed for every trial
      data.cache_dir: cache/rwf_vgg19
      train.epochs: 20
    search: grid                             # grid | random | bayesian | hyperband
    trials: 8                                # random and bayesian: how many trials
    seed: 0                                  # random, bayesian, hyperband
    rank_by: val_accuracy                    # val_accuracy (higher first) | val_loss (lower first)
    folds: 5                                 # optional: each trial is a K-fold cross-validation
    group_by: group                          # with folds: a manifest key whose clips stay in one fold

With `folds`, a trial is `vidcls crossval` (its trial directory holds one run per fold)
and trials are ranked by a cross-validated metric (`rank_by: cv_accuracy`, the default
then, or cv_balanced_accuracy, cv_macro_f1, cv_roc_auc): the mean over held-out folds,
not one small validation split. Choosing the best of many trials on those same folds
flatters the winner a little; confirm it with a crossval of other fold seeds.
    parameters:
      train.learning_rate: [1.0e-3, 3.0e-4]  # a list: grid values, or choices
      model.dropout: {min: 0.1, max: 0.5}    # a range: not for grid
      train.weight_decay: {min: 1.0e-5, max: 1.0e-3, log: true}

Hyperband (`max_epochs`, `factor`, `hyperband_iterations`) sets `train.epochs` itself and
continues a promoted trial from the run it promotes (`model.init_from`, a fresh schedule).

Trials go to OUT_DIR/trial_<id>/ (config.yaml, trial.json, the usual run files, eval/ of
the test split); the oracle's state to OUT_DIR/oracle/. OUT_DIR/sweep_results.csv and .md
rank the trials; OUT_DIR/best_config.yaml is the winner's config. Running the same sweep
again resumes it: finished trials are kept, an interrupted one continues from its last
epoch, and the oracle carries on from where it stopped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from vidcls.config import ExperimentConfig, load_experiment_config
from vidcls.errors import VidclsError

SEARCHES = ("grid", "random", "bayesian", "hyperband")
SWEEP_KEYS = {"base", "set", "search", "trials", "seed", "rank_by", "parameters", "folds", "group_by", "repeats",
              "num_initial_points", "max_epochs", "factor", "hyperband_iterations"}
RANKINGS = {"val_accuracy": "max", "val_loss": "min"}
CV_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc")
CV_RANKINGS = {f"cv_{metric}": "max" for metric in CV_METRICS}

@dataclass(frozen=True)
class Sweep:
    base: str | None
    fixed: dict
    search: str
    trials: int
    seed: int
    rank_by: str
    parameters: dict
    num_initial_points: int | None = None
    max_epochs: int = 0
    factor: int = 3
    hyperband_iterations: int = 1
    folds: int = 0  # > 0: every trial is a cross-validation with this many folds
    group_by: str | None = None
    repeats: int = 1


def read_sweep(path: str | Path) -> Sweep:
    """Parses and checks a sweep file; every key it sets must be a valid config key, and
    every value it can give that key a valid value.

    Raises:
        VidclsError: a missing file, an unknown sweep key or config key, a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise VidclsError(f"Sweep file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise VidclsError(f"Expected a mapping of sweep keys in {path}; received {type(values).__name__}")
    unknown = sorted(set(values) - SWEEP_KEYS)
    if unknown:
        raise VidclsError(f"Unknown key(s) {unknown} in {path}; expected some of {sorted(SWEEP_KEYS)}")
    search = values.get("search", "grid")
    if search not in SEARCHES:
        raise VidclsError(f"Expected search: one of {', '.join(SEARCHES)} in {path}; received {search!r}")
    folds = _positive(values, "folds", 0, path)
    if folds == 1:
        raise VidclsError(f"Expected folds: an integer >= 2 in {path} (or no folds key); received 1")
    rankings = CV_RANKINGS if folds else RANKINGS
    rank_by = values.get("rank_by", next(iter(rankings)))
    if rank_by not in rankings:
        raise VidclsError(f"Expected rank_by: one of {', '.join(rankings)} in {path}"
                          f"{' (a sweep with folds ranks by cross-validated metrics)' if folds else ''}; "
                          f"received {rank_by!r}")
    for key in ("group_by", "repeats"):
        if key in values and not folds:
            raise VidclsError(f"{key} in {path} is a cross-validation setting: set folds too")
    if folds and search == "hyperband":
        raise VidclsError(f"search: hyperband continues single runs from round to round; with folds in {path} "
                          "use grid, random or bayesian")
    parameters = values.get("parameters") or {}
    if not isinstance(parameters, dict) or not parameters:
        raise VidclsError(f"Expected parameters: a mapping of config keys to values or ranges in {path}")
    for key, space in parameters.items():
        if isinstance(space, dict):
            if search == "grid":
                raise VidclsError(f"parameters.{key} in {path} is a range; a grid needs a list of values")
            if set(space) - {"min", "max", "log"} or not {"min", "max"} <= set(space) or not space["min"] < space["max"]:
                raise VidclsError(f"Expected parameters.{key} in {path} as {{min, max[, log]}} with min < max; received {space}")
            if space.get("log") and space["min"] <= 0:
                raise VidclsError(f"parameters.{key} in {path} is a log range: expected min > 0; received {space['min']}")
        elif not isinstance(space, list) or not space:
            raise VidclsError(f"Expected parameters.{key} in {path} to be a list of values or a range; received {space!r}")
    sweep = Sweep(
        base=_resolve_base(values.get("base"), path), fixed=values.get("set") or {}, search=search,
        trials=_positive(values, "trials", 10, path), seed=int(values.get("seed", 0)), rank_by=rank_by,
        parameters=parameters,
        num_initial_points=_positive(values, "num_initial_points", None, path),
        max_epochs=_positive(values, "max_epochs", 0, path),
        factor=_positive(values, "factor", 3, path),
        hyperband_iterations=_positive(values, "hyperband_iterations", 1, path),
        folds=folds, group_by=values.get("group_by"), repeats=_positive(values, "repeats", 1, path))
    base = load_experiment_config(sweep.base, None, None)
    _check_hyperband(sweep, base, path)
    for overrides in _value_samples(sweep):
        config = trial_config(sweep, overrides, str(path), base)  # every value is valid before any trial runs
    if not folds and not (config.data.val_fraction > 0 or config.data.split_file):
        raise VidclsError(f"Sweeps rank trials by {rank_by}, a validation metric: expected data.val_fraction > 0 "
                          f"(or a data.split_file with a val list) in {path}; received {config.data.val_fraction}")
    return sweep


def _positive(values: dict, key: str, default, path: Path):
    if values.get(key) is None:
        return default
    value = values[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise VidclsError(f"Expected {key}: an integer >= 1 in {path}; received {value!r}")
    return value


def _resolve_base(base, path: Path):
    if base and not Path(base).is_absolute() and (path.parent / base).is_file():
        return str(path.parent / base)
    return base


def _check_hyperband(sweep: Sweep, base: ExperimentConfig, path: Path) -> None:
    if sweep.search != "hyperband":
        return
    if not sweep.max_epochs:
        raise VidclsError(f"search: hyperband needs max_epochs (the most epochs one trial trains) in {path}")
    if sweep.factor < 2:
        raise VidclsError(f"Expected factor >= 2 for hyperband in {path}; received {sweep.factor}")
    for key in ("train.epochs", "model.init_from"):
        if key in sweep.parameters or key in sweep.fixed:
            raise VidclsError(f"search: hyperband sets {key} itself (epochs per round; a promoted trial starts from "
                              f"its parent's run); remove {key} from {path}")
    if base.model.init_from:
        raise VidclsError(f"search: hyperband continues promoted trials with model.init_from, which the base config "
                          f"{sweep.base} already sets (a LoRA source?); use grid, random or bayesian")


def _value_samples(sweep: Sweep) -> list[dict]:
    """Every grid point; otherwise each listed value and each range's ends, key by key."""
    if sweep.search == "grid":
        return grid_points(sweep.parameters)
    samples = []
    for key, space in sweep.parameters.items():
        for value in (space if isinstance(space, list) else (space["min"], space["max"])):
            samples.append({key: value})
    return samples


def grid_points(choices: dict) -> list[dict]:
    """`{key: [values]}` -> every combination, in key order (the last key fastest)."""
    keys = list(choices)
    return [dict(zip(keys, values)) for values in itertools.product(*(choices[key] for key in keys))]


def trial_config(sweep: Sweep, overrides: dict, source: str, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """The base config (read from `sweep.base` unless given) with the fixed keys and `overrides`."""
    config = base or load_experiment_config(sweep.base, None, None)
    return config.replace({**sweep.fixed, **overrides}, source=source)
