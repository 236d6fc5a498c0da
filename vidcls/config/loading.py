"""Where configurations come from: YAML presets (`--config`), command-line flags and
`--set key=value` overrides, and the `config.yaml` of a run (older ones upgraded).

Precedence, lowest first: dataclass defaults, a YAML file, explicit command line flags,
then `--set section.key=value`. Every key is checked: an unknown section or key, or a value
of the wrong type, is a `VidclsError` that names the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vidcls.config.sections import ExperimentConfig, FeatureConfig, replace_fields
from vidcls.errors import VidclsError

# A YAML file may carry an `extract:` section (FeatureConfig) beside a run's sections, so
# that one recipe serves `vidcls extract --config` and `vidcls train --config`.
EXTRACT_SECTION = "extract"


def load_feature_config(config_file: str | None = None, flags: dict[str, Any] | None = None,
                        overrides: list[str] | None = None, base: FeatureConfig | None = None) -> FeatureConfig:
    """`vidcls extract`'s settings: defaults (or `base`), the `extract:` section of a YAML
    file, flags (`{key: value}`, None for not given), then `--set extract.key=value` items."""
    config = base or FeatureConfig()
    if config_file:
        section = _read_yaml(config_file).get(EXTRACT_SECTION) or {}
        if not isinstance(section, dict):
            raise VidclsError(f"Expected section '{EXTRACT_SECTION}' in {config_file} to be a mapping of keys; "
                              f"received {section!r}")
        config = replace_fields(config, section, EXTRACT_SECTION, config_file)
    if flags:
        config = replace_fields(config, {key: value for key, value in flags.items() if value is not None},
                                EXTRACT_SECTION, "command line")
    if overrides:
        parsed = _parse_overrides(overrides)
        wrong = [key for key in parsed if not key.startswith(f"{EXTRACT_SECTION}.")]
        if wrong:
            raise VidclsError(f"Expected --set {EXTRACT_SECTION}.key=value for vidcls extract; received {wrong}")
        config = replace_fields(config, {key.partition(".")[2]: value for key, value in parsed.items()},
                                EXTRACT_SECTION, "--set")
    return config


def load_experiment_config(
    config_file: str | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    base: ExperimentConfig | None = None,
) -> ExperimentConfig:
    """Builds the run configuration from defaults (or `base`, e.g. a run's own config
    when resuming), a YAML file, flags and `--set` items."""
    config = base or ExperimentConfig()
    if config_file:
        config = config.replace(_flatten_yaml(config_file), source=config_file)
    if flags:
        config = config.replace(
            {key: value for key, value in flags.items() if value is not None},
            source="command line",
        )
    if overrides:
        config = config.replace(_parse_overrides(overrides), source="--set")
    return config


def experiment_config_from_dict(values: dict, source: str) -> ExperimentConfig:
    """Rebuilds a config written by `save_config` (e.g. a run's `config.yaml`), including
    those of earlier vidcls versions (see `_upgrade`)."""
    return ExperimentConfig().replace(_upgrade(_flatten(values, source)), source=source)


def _upgrade(flat: dict[str, Any]) -> dict[str, Any]:
    """Keys that earlier vidcls versions wrote into run configs, in today's terms, so old
    runs stay readable: train.mixed_precision (bool) became train.precision; the export
    section (never read: `vidcls export` takes its settings as flags) is gone."""
    flat = {key: value for key, value in flat.items() if not key.startswith("export.")}
    if "train.mixed_precision" in flat and "train.precision" not in flat:
        flat["train.precision"] = "mixed_float16" if flat.pop("train.mixed_precision") else "float32"
    return flat


def save_config(config: ExperimentConfig, path: Path) -> None:
    from vidcls.fileio import atomic_write_bytes

    atomic_write_bytes(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False).encode())


def read_config(path: Path) -> ExperimentConfig:
    if not path.is_file():
        raise VidclsError(f"Expected a run configuration at {path}; it does not exist")
    return experiment_config_from_dict(yaml.safe_load(path.read_text()) or {}, str(path))


def _read_yaml(config_file: str) -> dict:
    path = Path(config_file)
    if not path.is_file():
        raise VidclsError(f"Config file {config_file} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise VidclsError(f"Config file {config_file} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise VidclsError(f"Expected a mapping of sections (data, model, train, augment, extract) in "
                          f"{config_file}; received {type(values).__name__}")
    return values


def _flatten_yaml(config_file: str) -> dict[str, Any]:
    """A run's keys from a YAML file; its `extract:` section (for vidcls extract) is not one."""
    values = _read_yaml(config_file)
    return _flatten({key: value for key, value in values.items() if key != EXTRACT_SECTION}, config_file)


def _flatten(values: Any, source: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise VidclsError(
            f"Expected a mapping of sections (data, model, train, augment) in {source}; "
            f"received {type(values).__name__}"
        )
    flat = {}
    for section, entries in values.items():
        if not isinstance(entries, dict):
            raise VidclsError(
                f"Expected section '{section}' in {source} to be a mapping of keys; "
                f"received {entries!r}"
            )
        for key, value in entries.items():
            flat[f"{section}.{key}"] = value
    return flat


def _parse_overrides(items: list[str]) -> dict[str, Any]:
    parsed = {}
    for item in items:
        key, separator, text = item.partition("=")
        if not separator or not key:
            raise VidclsError(f"Expected --set key=value (e.g. train.learning_rate=3e-4); received '{item}'")
        parsed[key.strip()] = yaml.safe_load(text) if text else ""
    return parsed
