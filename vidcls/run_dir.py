"""The run directory contract (ARCHITECTURE.md), read the same way by every stage."""

from __future__ import annotations

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

    def _read_json(self, path: Path):
        if not path.is_file():
            raise VidclsError(f"Expected {path} in the run directory; it is missing")
        return json.loads(path.read_text())
