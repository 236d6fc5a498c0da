"""The Python API: the functions the command line calls, for notebooks and scripts.

    import vidcls

    vidcls.extract(data_dir="videos", cache_dir="cache", backbone="resnet50")
    result = vidcls.train("runs/a", cache_dir="cache", model="mean_pool", epochs=20)
    metrics = vidcls.evaluate("runs/a")
    vidcls.exporting("runs/a", quantize=["float16"])
    vidcls.Predictor("runs/a").predict("clip.mp4")["label"]

Settings are keyword arguments: a command-line flag's name (`epochs=20`, `model="gru"`,
`cache_dir=...`), any field name that belongs to one config section (`dropout=0.3`), or a
dotted key passed as `**{"train.weight_decay": 1e-3}`. A YAML recipe (`config=`) is read
first and the keywords override it, as on the command line. Each function returns the
typed result the command prints (`describe()`), and the results are dicts or have
`to_dict()`, so they serialise to JSON.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vidcls.errors import VidclsError

if TYPE_CHECKING:
    from vidcls.config import ExperimentConfig, FeatureConfig
    from vidcls.evaluation import Metrics
    from vidcls.exporting import ExportReport
    from vidcls.features import ExtractSummary
    from vidcls.training import CrossvalResult, TrainResult


def extract(config: str | Path | FeatureConfig | None = None, *, overrides: list[str] | None = None,
            progress: bool = True, **settings: Any) -> ExtractSummary:
    """Decodes videos and caches their backbone features (`vidcls extract`).

    Args:
        config: a YAML recipe whose `extract:` section is read, or a `FeatureConfig`.
        overrides: `"extract.key=value"` strings, as `--set` takes them.
        progress: show a progress bar (on stderr).
        **settings: keys of the `extract` section: `data_dir` or `annotations`,
            `cache_dir`, `backbone`, `weights`, `num_frames`, `image_size`, `streams`, ...
            (`workers` is accepted for `decode_workers`).

    Returns:
        The `ExtractSummary`: clips extracted, skipped and failed, frames per second.
        Videos that could not be read are listed in `failures`; they do not raise.

    Raises:
        VidclsError: for a bad setting, or when neither `data_dir` nor `annotations`, or
            no `cache_dir`, is given.
    """
    from vidcls.config import FeatureConfig, load_feature_config
    from vidcls.features import extract as extract_features

    if "workers" in settings:
        settings["decode_workers"] = settings.pop("workers")
    settings = {key.removeprefix("extract."): value for key, value in settings.items()}
    if isinstance(config, FeatureConfig):
        feature_config = load_feature_config(None, settings, overrides, base=config)
    else:
        feature_config = load_feature_config(str(config) if config else None, settings, overrides)
    if not feature_config.data_dir and not feature_config.annotations:
        raise VidclsError("Expected a folder per class (--data-dir, or data_dir= in Python) or a CSV of clips (--annotations, "
                          "annotations=); received neither")
    if not feature_config.cache_dir:
        raise VidclsError("Expected a cache folder (--cache-dir, or cache_dir= in Python, or cache_dir in the config file's "
                          "extract section); received none")
    return extract_features(feature_config, progress=progress)


def run_config(config: str | Path | ExperimentConfig | None = None, *, overrides: list[str] | None = None,
               base: ExperimentConfig | None = None, **settings: Any) -> ExperimentConfig:
    """The run configuration `train` and `crossval` use: defaults (or `base`), the YAML file,
    the settings, then `overrides` (`"section.key=value"` strings). Checked: an unknown key
    or a wrong type is a `VidclsError` naming it."""
    from vidcls.config import ExperimentConfig, load_experiment_config

    if isinstance(config, ExperimentConfig):
        base, config = config, None
    resolved = load_experiment_config(str(config) if config else None, run_settings(settings), overrides, base=base)
    if not resolved.data.cache_dir:
        raise VidclsError("Expected a cache folder (--cache-dir, or cache_dir= in Python, or data.cache_dir in the config "
                          "file); received none")
    return resolved


def train(run_dir: str | Path, config: str | Path | ExperimentConfig | None = None, *, resume: bool = False,
          overrides: list[str] | None = None, progress: bool = True, **settings: Any) -> TrainResult:
    """Trains a temporal classifier on a feature cache into `run_dir` (`vidcls train`).

    Running it again on a finished run returns that run's result (`already_done`); on an
    interrupted one it continues from the last epoch, if the configuration is the same.

    Args:
        run_dir: where the run goes (config.yaml, best.keras, history.csv, TensorBoard logs).
        config: a YAML recipe, or an `ExperimentConfig`.
        resume: continue the run in `run_dir` with its own config.yaml (settings may be empty).
        overrides: `"section.key=value"` strings, as `--set` takes them.
        progress: print a line per epoch.
        **settings: e.g. `cache_dir="cache"`, `model="mean_pool"`, `epochs=30`, `precision="float32"`.

    Returns:
        The `TrainResult`: epochs run, best validation loss and accuracy, seconds, parameters.
    """
    from vidcls.run_dir import RunDir
    from vidcls.training import train as train_run

    base = None
    if resume:
        run = RunDir(run_dir)
        if not run.config_path.is_file():
            raise VidclsError(f"--resume: {run.root} holds no run to resume ({run.config_path} is missing)")
        base = run.config()
    return train_run(run_config(config, overrides=overrides, base=base, **settings), run_dir, progress=progress)


def crossval(out_dir: str | Path, config: str | Path | ExperimentConfig | None = None, *, folds: int = 5,
             group_by: str | None = None, repeats: int = 1, fold_seed: int | None = None, baseline: bool = True,
             overrides: list[str] | None = None, progress: bool = True, **settings: Any) -> CrossvalResult:
    """K-fold cross-validation, grouped by a manifest key (`vidcls crossval`): one run per
    fold under `out_dir`, the mean ± std of each metric, and a logistic-regression baseline
    on the same folds. Resumable. Settings as for `train`."""
    from vidcls.training import crossval as run_crossval

    return run_crossval(run_config(config, overrides=overrides, **settings), out_dir, num_folds=folds,
                        group_by=group_by, repeats=repeats, seed=fold_seed, baseline=baseline, progress=progress)


def evaluate(run_dir: str | Path | list[str | Path], split: str = "test", *, cache_dir: str | Path | None = None,
             tta: int = 1, out_dir: str | Path | None = None, positive_class: str | None = None,
             target_recall: float = 0.9, target_fpr: float = 0.05) -> Metrics:
    """Scores a trained run, or the ensemble of several (a list), on a split or on every clip
    of another cache (`vidcls evaluate`), and writes metrics.json, predictions, figures and
    report.md. Returns the `Metrics` (the contents of metrics.json)."""
    from vidcls.evaluation import evaluate as evaluate_runs

    runs = [str(run) for run in run_dir] if isinstance(run_dir, (list, tuple)) else str(run_dir)
    if isinstance(runs, list) and len(runs) == 1:
        runs = runs[0]
    return evaluate_runs(runs, split, tta=tta, out_dir=out_dir, positive_class=positive_class,
                         target_recall=target_recall, target_fpr=target_fpr, cache_dir=cache_dir)


def export(run_dir: str | Path, *, quantize: str | list[str] = "none", end_to_end: bool = False,
           streaming: bool = False, window: float | None = None, stride: float = 0.5) -> ExportReport:
    """Exports a trained run to SavedModel and TFLite, each variant checked against the
    trained model in the LiteRT interpreter (`vidcls export`).

    Args:
        quantize: variants besides float32: "float16", "dynamic" (a list or a comma string).
        end_to_end: also a model over raw frames with the backbone inside.
        streaming: also a one-frame encoder and a head over T features, for phones.
        window, stride: the streaming window and stride in seconds.

    Returns:
        The `ExportReport` (the contents of export_report.json).
    """
    from vidcls.exporting import ExportReport, export_end_to_end, export_streaming, parse_quantize
    from vidcls.exporting import export as export_run

    variants = parse_quantize(quantize if isinstance(quantize, str) else ",".join(quantize))
    report = export_run(run_dir, variants=variants)
    if end_to_end:
        report = ExportReport({**report, "end_to_end": export_end_to_end(run_dir)}, run_dir)
    if streaming:
        report = ExportReport({**report, "streaming": export_streaming(run_dir, variants, window, stride)}, run_dir)
    return report


def run_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """`{"section.key": value}` from keyword settings (see the module docstring); None values
    are dropped (not given). Field names are unique across the run's sections (a test keeps
    them so), so a bare field name names one key."""
    from vidcls.config import ExperimentConfig, field_types
    from vidcls.flags import RUN_FLAGS
    from vidcls.training import normalise_precision

    keys = {name: f"{section}.{name}" for section, section_class in typing.get_type_hints(ExperimentConfig).items()
            for name in field_types(section_class)}
    keys.update({flag.dest: flag.key for flags in RUN_FLAGS.values() for flag in flags})
    resolved = {}
    for name, value in settings.items():
        if value is None:
            continue
        if "." not in name and name not in keys:
            close = difflib.get_close_matches(name, keys, n=3)
            raise VidclsError(f"Unknown setting '{name}'"
                              + (f" (did you mean {' or '.join(close)}?)" if close else "")
                              + "; expected a flag name (epochs, model, cache_dir, ...), a field of the data, model, "
                              "train or augment section, or a 'section.key'")
        key = name if "." in name else keys[name]
        resolved[key] = normalise_precision(value) if key == "train.precision" else value
    return resolved
