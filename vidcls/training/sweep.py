"""`vidcls sweep`: runs the trials a KerasTuner oracle proposes, each a normal run directory (or a
cross-validation), and ranks them. The sweep file's format: sweep_file.py.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import asdict
from pathlib import Path

import keras_tuner
from keras_tuner.engine.trial import TrialStatus

from vidcls.config import ExperimentConfig, save_config
from vidcls.errors import VidclsError
from vidcls.evaluation import markdown_table
from vidcls.fileio import atomic_write_bytes, atomic_write_json, atomic_writer, claim_directory
from vidcls.run_dir import RunDir
from vidcls.training.sweep_file import CV_METRICS, CV_RANKINGS, RANKINGS, Sweep, grid_points, read_sweep, trial_config

logger = logging.getLogger("vidcls")

TUNER_EPOCHS, TUNER_INITIAL_EPOCH, TUNER_PARENT = "tuner/epochs", "tuner/initial_epoch", "tuner/trial_id"
ORACLE_DIR = "oracle"
SPEC_FILE = "sweep_spec.json"  # the sweep a directory holds, to refuse resuming another one
TUNER_ID = "vidcls"


class SearchSpace:
    """The sweep's parameters as KerasTuner hyperparameters, and back.

    A list of numbers, strings or booleans becomes a `Choice` of those values (ints and
    floats mixed become floats); any other list (lists, None...) a `Choice` of positions
    in it. A range becomes an `Int` (both ends integers) or a `Float`, log-sampled if asked.
    """

    def __init__(self, parameters: dict):
        self.hyperparameters = keras_tuner.HyperParameters()
        self._by_position = {}
        self.choices = {}  # key -> the values of its Choice, for the grid
        for key, space in parameters.items():
            if isinstance(space, dict):
                sampling = "log" if space.get("log") else "linear"
                if all(isinstance(space[end], int) for end in ("min", "max")):
                    self.hyperparameters.Int(key, space["min"], space["max"], sampling=sampling)
                else:
                    self.hyperparameters.Float(key, float(space["min"]), float(space["max"]), sampling=sampling)
            elif _one_scalar_type(space):
                numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in space)
                values = [float(value) for value in space] if numbers and len({type(v) for v in space}) > 1 else space
                self.choices[key] = values
                self.hyperparameters.Choice(key, values)
            else:
                self._by_position[key] = list(space)
                self.choices[key] = list(range(len(space)))
                self.hyperparameters.Choice(key, self.choices[key], ordered=False)

    def overrides(self, values: dict) -> dict:
        """The config overrides of a trial's hyperparameter values (tuner/* keys left out)."""
        return {key: self._by_position[key][value] if key in self._by_position else _native(value)
                for key, value in values.items() if not key.startswith("tuner/")}


def _native(value):
    """A Python scalar for a NumPy one (the Bayesian oracle proposes np.float64)."""
    return value.item() if hasattr(value, "item") else value


def _one_scalar_type(values: list) -> bool:
    kinds = {"bool" if isinstance(v, bool) else "number" if isinstance(v, (int, float)) else
             "str" if isinstance(v, str) else "other" for v in values}
    return len(kinds) == 1 and "other" not in kinds


class GridOracle(keras_tuner.Oracle):
    """Every combination of the listed values, in the sweep file's order (the last key
    fastest). The next one is the first not tried yet, worked out from the trials the
    oracle saved, so a reloaded oracle carries on where it stopped. (KerasTuner 1.4's
    GridSearchOracle keeps its place in memory only: after a reload it fails with a
    KeyError on the first trial it tries to follow.)"""

    def __init__(self, grid: list[dict], **kwargs):
        super().__init__(max_trials=len(grid), **kwargs)
        self.grid = grid

    def populate_space(self, trial_id):
        for values in self.grid:
            if not self._duplicate(values):
                return {"status": TrialStatus.RUNNING, "values": dict(values)}
        return {"status": TrialStatus.IDLE if self.ongoing_trials else TrialStatus.STOPPED, "values": None}


def make_oracle(sweep: Sweep, space: SearchSpace):
    """The KerasTuner oracle for `sweep.search`, quiet (vidcls logs trials itself)."""
    common = dict(objective=keras_tuner.Objective(sweep.rank_by, {**RANKINGS, **CV_RANKINGS}[sweep.rank_by]),
                  hyperparameters=space.hyperparameters, seed=sweep.seed + 1)  # KerasTuner treats seed 0 as "draw one"
    oracles = keras_tuner.oracles
    if sweep.search == "grid":
        oracle = GridOracle(grid_points(space.choices), **common)
    elif sweep.search == "random":
        oracle = oracles.RandomSearchOracle(max_trials=sweep.trials, **common)
    elif sweep.search == "bayesian":
        oracle = oracles.BayesianOptimizationOracle(max_trials=sweep.trials,
                                                    num_initial_points=sweep.num_initial_points, **common)
    else:
        oracle = oracles.HyperbandOracle(max_epochs=sweep.max_epochs, factor=sweep.factor,
                                         hyperband_iterations=sweep.hyperband_iterations, **common)
    oracle.verbose = 0
    return oracle


def run_sweep(sweep_file: str | Path, out_dir: str | Path, progress: bool = False) -> SweepResult:
    """Runs (or resumes) the search, evaluates every trial on its test split, writes the
    ranked tables and the best config; returns the ranked rows (failed trials last).

    Raises:
        VidclsError: a bad sweep file, OUT_DIR holding another sweep, three trials in a
            row failing, or no trial finishing.
    """
    sweep = read_sweep(sweep_file)
    out = Path(out_dir)
    claim_directory(out, SPEC_FILE, asdict(sweep), "sweep", differs=f" from {sweep_file}",
                    hint="resume it with the same file or choose another --out-dir")
    space = SearchSpace(sweep.parameters)
    oracle = make_oracle(sweep, space)
    oracle._set_project_dir(str(out), ORACLE_DIR)
    if (out / ORACLE_DIR / "oracle.json").is_file():
        oracle.reload()  # an interrupted trial goes back in the queue and runs first
        logger.info("resuming the sweep in %s: %d trial(s) finished", out, len(oracle.end_order))
    while True:
        trial = oracle.create_trial(TUNER_ID)
        if trial.status == TrialStatus.STOPPED:
            break
        if trial.status != TrialStatus.RUNNING:
            raise VidclsError(f"The {sweep.search} oracle has no trial to run (status {trial.status}) while none is running")
        values = trial.hyperparameters.values
        overrides = space.overrides(values)
        total = oracle.max_trials  # None for hyperband: its rounds decide
        logger.info("trial %s%s: %s", trial.trial_id, f" of {total}" if total else "", overrides)
        try:
            row = _run_trial(sweep, out, trial.trial_id, overrides, values, str(sweep_file), progress)
        except Exception as error:  # one bad trial (out of memory, a diverging setting) is recorded, the sweep goes on
            logger.error("trial %s failed: %s", trial.trial_id, error)
            trial.status, trial.message = TrialStatus.FAILED, f"{type(error).__name__}: {error}"
            _write_trial(out, trial.trial_id, overrides, values, row=None, error=trial.message)
        else:
            if row[sweep.rank_by] is None:
                trial.status, trial.message = TrialStatus.FAILED, (
                    f"no {sweep.rank_by}: the run has no validation split, or the metric is undefined for its classes")
            else:
                oracle.update_trial(trial.trial_id, {sweep.rank_by: row[sweep.rank_by]})
                trial.status = TrialStatus.COMPLETED
        try:
            oracle.end_trial(trial)
        except RuntimeError as error:  # KerasTuner's limit on consecutive failures
            limit = re.search(r"limit of (\d+)", str(error))
            raise VidclsError(f"Sweep {out} stopped after {limit.group(1) if limit else 'too many'} failed trials in a "
                              f"row; the last: {trial.message}") from error
    return SweepResult(_summarise(sweep, out, str(sweep_file), [oracle.trials[trial_id] for trial_id in oracle.start_order]), out)


def _run_trial(sweep: Sweep, out: Path, trial_id: str, overrides: dict, values: dict, source: str,
               progress: bool) -> dict:
    from vidcls.evaluation import evaluate
    from vidcls.training.trainer import train

    run_dir = out / f"trial_{trial_id}"
    config = trial_config(sweep, {**overrides, **_hyperband_overrides(out, values)}, source)
    if sweep.folds:
        return _run_crossval_trial(sweep, run_dir, trial_id, config, overrides, values, progress)
    result = train(config, run_dir, progress=progress)
    metrics = (RunDir(run_dir).metrics(required=False) if result.already_done else None) or evaluate(run_dir, "test")
    row = {"trial": trial_id, "run_dir": str(run_dir), **overrides}
    if sweep.search == "hyperband":  # total epochs, and the trial a promoted one continued
        row["epochs"], row["continues"] = values[TUNER_EPOCHS], values.get(TUNER_PARENT) or ""
    row.update({
        "val_accuracy": result.best_val_accuracy, "val_loss": result.best_val_loss,
        "test_accuracy": metrics["accuracy"], "test_macro_f1": metrics["macro_f1"],
        "parameters": result.parameters, "trainable_parameters": result.trainable_parameters,
        "seconds": round(result.seconds, 1),
    })
    _write_trial(out, trial_id, overrides, values, row=row)
    return row


def _run_crossval_trial(sweep: Sweep, run_dir: Path, trial_id: str, config: ExperimentConfig, overrides: dict,
                        values: dict, progress: bool) -> dict:
    """One trial as a cross-validation; its row holds the mean (and std) over folds."""
    from vidcls.training.crossval import crossval

    summary = crossval(config, run_dir, num_folds=sweep.folds, group_by=sweep.group_by, repeats=sweep.repeats,
                       progress=progress).summary
    mean, std = summary["model"]["mean"], summary["model"]["std"]
    row = {"trial": trial_id, "run_dir": str(run_dir), **overrides,
           **{f"cv_{metric}": mean[metric] for metric in CV_METRICS}, "cv_accuracy_std": std["accuracy"],
           "baseline_cv_accuracy": (summary.get("baseline") or {}).get("mean", {}).get("accuracy"),
           "seconds": round(sum(fold["seconds"] for fold in summary["folds"]), 1)}
    _write_trial(run_dir.parent, trial_id, overrides, values, row=row)
    return row


def _hyperband_overrides(out: Path, values: dict) -> dict:
    """Hyperband's round: train up to `tuner/epochs` in total, a promoted trial starting
    from its parent's weights (after `tuner/initial_epoch` epochs) with a fresh schedule."""
    if TUNER_EPOCHS not in values:
        return {}
    overrides = {"train.epochs": int(values[TUNER_EPOCHS]) - int(values.get(TUNER_INITIAL_EPOCH, 0))}
    if values.get(TUNER_PARENT):
        overrides["model.init_from"] = str(out / f"trial_{values[TUNER_PARENT]}")
    return overrides


def _write_trial(out: Path, trial_id: str, overrides: dict, values: dict, row: dict | None, error: str = "") -> None:
    run_dir = out / f"trial_{trial_id}"
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"trial": trial_id, "parameters": overrides, "status": "failed" if error else "completed", "row": row}
    if TUNER_EPOCHS in values:
        record["hyperband"] = {key: values[key] for key in values if key.startswith("tuner/")}
    if error:
        record["error"] = error
    atomic_write_json(run_dir / "trial.json", record)


def _summarise(sweep: Sweep, out: Path, source: str, trials: list) -> list[dict]:
    """Ranks finished trials by the validation metric (failed ones last), writes the tables
    and the best trial's config (hyperband's: its total epochs, not the continuation)."""
    rows, failed = [], []
    for trial in trials:
        path = out / f"trial_{trial.trial_id}" / "trial.json"
        record = json.loads(path.read_text()) if path.is_file() else None
        if record and record["row"] and trial.status == TrialStatus.COMPLETED:
            rows.append({"status": "completed", **record["row"]})
        elif trial.status in (TrialStatus.FAILED, TrialStatus.INVALID, TrialStatus.COMPLETED):
            last_line = ((trial.message or "").strip().splitlines() or [""])[-1]
            failed.append({"status": "failed", "trial": trial.trial_id, "run_dir": str(path.parent), "error": last_line})
    if not rows:
        raise VidclsError(f"No trial of sweep {out} finished; see the errors in its trial_*/trial.json files")
    ranked = sorted(rows, key=lambda row: _rank_key(row, sweep.rank_by))
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    columns = ["rank", *[key for key in ranked[0] if key != "rank"]]
    all_rows = ranked + failed
    if failed:
        columns.append("error")
    with atomic_writer(out / "sweep_results.csv", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(all_rows)
    table = [{column: _cell(row.get(column, "")) for column in columns} for row in all_rows]
    atomic_write_bytes(out / "sweep_results.md", (markdown_table(table) + "\n").encode())
    best = ranked[0]
    overrides = {key: best[key] for key in sweep.parameters}
    if "epochs" in best:
        overrides["train.epochs"] = best["epochs"]
    save_config(trial_config(sweep, overrides, source), out / "best_config.yaml")
    return all_rows


def _rank_key(row: dict, rank_by: str) -> tuple:
    """Best first by `rank_by`; ties broken by the other validation metric (cross-validated
    ones: by the cross-validated accuracy), then by time."""
    if rank_by in CV_RANKINGS:
        return (-row[rank_by], -row["cv_accuracy"], row["seconds"])
    accuracy, loss = row["val_accuracy"], row["val_loss"]
    primary = (-accuracy, loss) if rank_by == "val_accuracy" else (loss, -accuracy)
    return (*primary, row["seconds"])


def _cell(value):
    return f"{value:.4g}" if isinstance(value, float) else value


class SweepResult(list):
    """What `run_sweep` returns: the trials' rows, ranked (failed ones last), and where the
    sweep's files are."""

    def __init__(self, rows: list[dict], out_dir: Path):
        super().__init__(rows)
        self.out_dir = Path(out_dir)

    def describe(self) -> str:
        """What `vidcls sweep` prints: the ranked table (sweep_results.md) and the winner."""
        return ((self.out_dir / "sweep_results.md").read_text()
                + f"best: trial {self[0]['trial']} ({self[0]['run_dir']}); config in {self.out_dir / 'best_config.yaml'}")
