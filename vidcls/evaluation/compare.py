"""`vidcls compare`: several runs side by side — metrics, settings and costs."""

from __future__ import annotations

import csv
from pathlib import Path

from vidcls.errors import VidclsError
from vidcls.fileio import atomic_writer
from vidcls.run_dir import RunDir

NOT_EVALUATED = "-"


def compare_runs(run_dirs: list[str | Path]) -> list[dict]:
    """One row per run: model, targets, frames, backbone, epochs, parameters, FLOPs,
    training seconds, best validation accuracy, and the metrics of its latest
    `vidcls evaluate` (or "-" when it has not been evaluated).

    Raises:
        VidclsError: a directory that is not a finished run.
    """
    rows = []
    for path in run_dirs:
        run = RunDir(path)
        run.require_trained()
        if not run.result_path.is_file():
            raise VidclsError(f"{run.root} has no result.json; was its training interrupted?")
        config, result = run.config(), run.result()
        fingerprint = run.features()["fingerprint"]
        metrics = run.metrics(required=False) or {}
        rows.append({
            "run": str(run.root),
            "model": config.model.name,
            "targets": "+".join(config.data.targets),
            "frames": fingerprint.get("num_frames"),
            "backbone": fingerprint.get("backbone"),
            "epochs": result.get("epochs_run"),
            "parameters": result.get("parameters"),
            "mflops_per_clip": _round(result.get("flops_per_clip"), 1e6, 2),
            "train_seconds": _round(result.get("seconds"), 1, 1),
            "best_val_accuracy": _round(result.get("best_val_accuracy"), 1, 4),
            "eval_split": metrics.get("split", NOT_EVALUATED),
            "accuracy": _round(metrics.get("accuracy"), 1, 4),
            "balanced_accuracy": _round(metrics.get("balanced_accuracy"), 1, 4),
            "macro_f1": _round(metrics.get("macro_f1"), 1, 4),
        })
    return rows


def write_csv(rows: list[dict], path: str | Path) -> None:
    """The table of `compare_runs` as CSV, one row per run."""
    with atomic_writer(Path(path), newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def _round(value, scale: float, digits: int):
    return NOT_EVALUATED if value is None else round(value / scale, digits)
