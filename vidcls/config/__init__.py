"""Typed configuration: the sections and their defaults (sections.py), and loading them from
YAML files, flags and `--set` overrides (loading.py)."""

from vidcls.config.loading import (
    EXTRACT_SECTION,
    experiment_config_from_dict,
    load_experiment_config,
    load_feature_config,
    read_config,
    save_config,
)
from vidcls.config.sections import (
    AugmentConfig,
    DataConfig,
    ExperimentConfig,
    FeatureConfig,
    ModelConfig,
    TrainConfig,
    field_types,
    replace_fields,
)

__all__ = [
    "AugmentConfig", "DataConfig", "EXTRACT_SECTION", "ExperimentConfig", "FeatureConfig", "ModelConfig", "TrainConfig",
    "experiment_config_from_dict", "field_types", "load_experiment_config", "load_feature_config", "read_config",
    "replace_fields", "save_config",
]
