"""history.csv (and timing.csv) across interruptions: trimming epochs that are trained
again, the best value so far, and the result of a finished run."""

from __future__ import annotations

import csv
import logging

import numpy as np

from vidcls.fileio import atomic_writer, csv_number, drop_partial_last_line
from vidcls.run_dir import RunDir
from vidcls.training.checks import unloadable
from vidcls.training.result import TrainResult

logger = logging.getLogger("vidcls")


def trim_logs(run: RunDir, resume_epoch: int) -> None:
    """Keeps only the history.csv and timing.csv rows of epochs before `resume_epoch`: a
    kill after an epoch's row was written but before its backup would otherwise leave
    that epoch twice once it is trained again. A row cut short by a kill is dropped first
    (timing.csv's row is written after the backup, so its epoch is not trained again)."""
    for path in (run.history_path, run.timing_path):
        if not path.is_file():
            continue
        drop_partial_last_line(path)
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames, list(reader)
        kept = [row for row in rows if csv_number(row.get("epoch")) is not None and int(row["epoch"]) < resume_epoch]
        if len(kept) == len(rows):
            continue
        logger.info("%s: dropping %d row(s) of epochs from %d on, which are trained again", path.name,
                    len(rows) - len(kept), resume_epoch)
        with atomic_writer(path, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(kept)


def best_so_far(run: RunDir, monitor: str) -> float | None:
    """The best `monitor` value in history.csv (a resumed run), or None (a new one, or
    one whose best.keras is missing or does not load: any epoch then replaces it)."""
    if not run.history_path.is_file():
        return None
    problem = unloadable(run.best_model_path)
    if problem:
        logger.warning("%s: %s; the next epoch's model replaces it", run.best_model_path, problem)
        return None
    values = [csv_number(row.get(monitor)) for row in run.history()]
    values = [value for value in values if value is not None]
    return min(values) if values else None


def finished_result(run: RunDir, seconds: float, summary: dict, config) -> TrainResult:
    """The result of the run in `run` (from history.csv, not fit()'s return value: after a
    resume it holds every epoch)."""
    rows = run.history()
    validated = [row for row in rows if csv_number(row.get("val_loss")) is not None]  # CSVLogger writes NA without val
    best = min(validated, key=lambda row: float(row["val_loss"])) if validated else None
    return TrainResult(
        run_dir=run.root,
        epochs_run=len(rows),
        best_val_loss=float(best["val_loss"]) if best else None,
        best_val_accuracy=_val_accuracy(best) if best else None,
        seconds=seconds,
        parameters=summary["parameters"],
        trainable_parameters=summary["trainable_parameters"],
        flops_per_clip=summary["flops_per_clip"],
        initialised_from=config.model.init_from or None,
        model=config.model.name,
        lora_rank=config.model.lora_rank,
    )


def _val_accuracy(row: dict) -> float | None:
    """`val_accuracy`; with several targets, the mean of `val_<target>_accuracy`."""
    if "val_accuracy" in row:
        return csv_number(row["val_accuracy"])
    values = [csv_number(value) for key, value in row.items() if key.startswith("val_") and key.endswith("_accuracy")]
    values = [value for value in values if value is not None]
    return float(np.mean(values)) if values else None
