"""The run directory contract (docs/architecture.md): every file name of a run, and the
readers other stages rely on, in one place."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from vidcls.config import ExperimentConfig, read_config
from vidcls.errors import VidclsError


class RunDir:
    """Paths of one training run and readers for the files other stages rely on.

    Args:
        path: the `--run-dir` given to `vidcls train`.
    """

    def __init__(self, path: str | Path):
        self.root = Path(path)

    config_path = property(lambda self: self.root / "config.yaml")
    labels_path = property(lambda self: self.root / "labels.json")
    splits_path = property(lambda self: self.root / "splits.json")
    features_path = property(lambda self: self.root / "features.json")  # the cache it trained on
    env_path = property(lambda self: self.root / "env.json")
    result_path = property(lambda self: self.root / "result.json")
    best_model_path = property(lambda self: self.root / "best.keras")
    history_path = property(lambda self: self.root / "history.csv")
    timing_path = property(lambda self: self.root / "timing.csv")  # seconds and samples/s per epoch
    checkpoints_dir = property(lambda self: self.root / "checkpoints")
    backup_dir = property(lambda self: self.root / "backup")
    tensorboard_dir = property(lambda self: self.root / "tensorboard")
    eval_dir = property(lambda self: self.root / "eval")
    export_dir = property(lambda self: self.root / "export")
    metrics_path = property(lambda self: self.root / "eval" / "metrics.json")  # of `vidcls evaluate --run-dir`
    export_report_path = property(lambda self: self.root / "export" / "export_report.json")

    def require_trained(self) -> None:
        if not self.best_model_path.is_file():
            raise VidclsError(
                f"{self.root} is not a finished training run: {self.best_model_path} is missing "
                "(train one with `vidcls train --cache-dir DIR --run-dir DIR`)"
            )
        if not self.result_path.is_file():
            raise VidclsError(
                f"{self.root} is not a finished training run: {self.result_path} is missing, so training stopped "
                "before its end (killed, diverged, or still running); resume it with the same `vidcls train` command"
            )

    def config(self) -> ExperimentConfig:
        return read_config(self.config_path)

    def labels(self) -> list[str]:
        """The class names of a single-target run (labels.json as a list)."""
        stored = self._read_json(self.labels_path)
        if not isinstance(stored, list):
            raise VidclsError(f"{self.labels_path} holds several targets ({', '.join(stored)}); read label_space()")
        return stored

    def label_space(self) -> dict[str, list[str]]:
        """`{target: class names}` for every target the run predicts, in output order."""
        from vidcls.data import label_space_from_json

        return label_space_from_json(self._read_json(self.labels_path), self.config().data.targets, self.labels_path)

    def splits(self) -> dict[str, list[str]]:
        return self._read_json(self.splits_path)

    def features(self) -> dict:
        """`{"cache_dir": ..., "fingerprint": cache.json of the cache the run trained on}`."""
        return self._read_json(self.features_path)

    def cache(self):
        """The feature cache the run trained on (a `vidcls.features.FeatureCache`)."""
        from vidcls.features import FeatureCache

        return FeatureCache(self.features()["cache_dir"])

    def held_out_clip_ids(self) -> list[str]:
        """The clips the run did not learn from: its test split, else its val split; a run
        that trained on every clip gives its training clips (then say so to the user)."""
        splits = self.splits()
        return next((splits[name] for name in ("test", "val", "train") if splits.get(name)), [])

    def result(self) -> dict:
        """result.json: what `vidcls train` returned (epochs, best val loss, parameters, seconds)."""
        return self._read_json(self.result_path)

    def history(self) -> list[dict]:
        """history.csv's rows (one per epoch, as CSVLogger wrote them: strings, `NA` for a
        value not measured); empty before the first epoch ends."""
        if not self.history_path.is_file():
            return []
        with self.history_path.open(newline="") as handle:
            return list(csv.DictReader(handle))

    def metrics(self, required: bool = True) -> dict | None:
        """eval/metrics.json of `vidcls evaluate`; None when absent and not `required`."""
        if not self.metrics_path.is_file():
            if not required:
                return None
            raise VidclsError(f"{self.metrics_path} is missing; run `vidcls evaluate --run-dir {self.root}` first")
        return json.loads(self.metrics_path.read_text())

    def export_report(self) -> dict | None:
        """export/export_report.json of `vidcls export`, or None before the first export."""
        path = self.export_report_path
        return json.loads(path.read_text()) if path.is_file() else None

    def _read_json(self, path: Path):
        if not path.is_file():
            raise VidclsError(f"Expected {path} in the run directory; it is missing")
        return json.loads(path.read_text())
