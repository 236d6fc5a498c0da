import pytest
import yaml

from vidcls.config import ExperimentConfig, FeatureConfig, load_experiment_config, load_feature_config, read_config, save_config
from vidcls.errors import VidclsError


def test_defaults_are_the_documented_recipe():
    config = ExperimentConfig()
    assert config.model.name == "attention_lstm"
    assert config.train.batch_size == 32 and config.train.precision == "auto"


def test_yaml_then_flags_then_set_in_that_order(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("train:\n  epochs: 7\n  learning_rate: 0.01\nmodel:\n  dropout: 0.5\n")
    config = load_experiment_config(
        str(preset), flags={"train.learning_rate": 0.02, "train.epochs": None}, overrides=["train.learning_rate=3e-4"])
    assert config.train.epochs == 7  # from YAML; a flag left unset (None) does not override
    assert config.model.dropout == 0.5
    assert config.train.learning_rate == pytest.approx(3e-4)  # --set wins, "3e-4" read as a number


def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("train:\n  learning_rat: 0.1\n")
    with pytest.raises(VidclsError, match=r"Unknown config key 'train.learning_rat' in .*bad.yaml.*learning_rate"):
        load_experiment_config(str(preset))


def test_unknown_section_and_malformed_set_are_errors():
    with pytest.raises(VidclsError, match="Unknown config key 'optimizer.lr'"):
        load_experiment_config(overrides=["optimizer.lr=1"])
    with pytest.raises(VidclsError, match="Expected --set key=value"):
        load_experiment_config(overrides=["train.epochs"])


@pytest.mark.parametrize("item, message", [
    ("train.epochs=ten", r"Expected int for config key 'train.epochs' in --set; received 'ten'"),
    ("train.use_focal_loss=maybe", r"Expected bool for config key 'train.use_focal_loss'"),
    ("train.epochs=2.5", r"Expected int for config key 'train.epochs'"),
])
def test_wrong_type_is_an_error_naming_the_key(item, message):
    with pytest.raises(VidclsError, match=message):
        load_experiment_config(overrides=[item])


def test_saved_config_reads_back_identically(tmp_path):
    config = load_experiment_config(overrides=["model.name=mean_pool", "train.seed=3", "data.cache_dir=/x"])
    save_config(config, tmp_path / "config.yaml")
    assert read_config(tmp_path / "config.yaml") == config


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(VidclsError, match="does not exist"):
        load_experiment_config(str(tmp_path / "nope.yaml"))


def test_shipped_presets_load(tmp_path):
    from pathlib import Path

    presets = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert presets
    for preset in presets:
        load_experiment_config(str(preset))  # raises on any unknown key or wrong type
        load_feature_config(str(preset))  # its extract: section, if any
    from vidcls.training.sweep import read_sweep

    sweeps = sorted((Path(__file__).resolve().parents[1] / "configs" / "sweeps").glob("*.yaml"))
    assert sweeps
    for sweep in sweeps:
        read_sweep(sweep)  # every key and value of every trial checked


def test_run_configs_of_earlier_versions_still_load(tmp_path):
    old = ExperimentConfig().to_dict()
    old["train"].pop("precision")
    old["train"]["mixed_precision"] = True  # as vidcls wrote it before train.precision existed
    old["export"] = {"tflite": True, "parity_samples": 256}  # a section that was never read, since removed
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert read_config(tmp_path / "config.yaml").train.precision == "mixed_float16"


def test_one_recipe_file_serves_extract_and_train(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("extract:\n  backbone: vgg16_conv\n  image_size: 224\n  streams: [frame_difference]\n"
                      "model:\n  streams: [frame_difference]\n  dropout: 0.5\n")
    features = load_feature_config(str(recipe), flags={"image_size": None, "num_frames": 8},
                                   overrides=["extract.difference_gap=3"])
    assert (features.backbone, features.image_size, features.num_frames) == ("vgg16_conv", 224, 8)
    assert features.streams == ["frame_difference"] and features.difference_gap == 3
    assert FeatureConfig().streams == ["appearance", "frame_difference"]  # the default cache holds both
    run = load_experiment_config(str(recipe))  # the extract: section is not a run key
    assert run.model.streams == ["frame_difference"] and run.model.dropout == 0.5
    with pytest.raises(VidclsError, match=r"Unknown config key 'extract.grids' in .*recipe.yaml.*'grid'"):
        recipe.write_text("extract:\n  grids: 2\n")
        load_feature_config(str(recipe))
    with pytest.raises(VidclsError, match=r"Expected --set extract.key=value for vidcls extract; received \['train.epochs'\]"):
        load_feature_config(None, overrides=["train.epochs=3"])
    with pytest.raises(VidclsError, match="Expected int for config key 'extract.grid' in --set; received 'two'"):
        load_feature_config(None, overrides=["extract.grid=two"])


def test_flags_take_type_and_shown_default_from_the_dataclasses(tmp_path):
    """One place for defaults: the dataclass. A flag not given is None, so it does not
    overwrite a --config file's value with a default."""
    import argparse

    from vidcls.flags import EXTRACT_FLAGS, RUN_FLAGS, add_flags, flag_values

    parser = argparse.ArgumentParser()
    add_flags(parser, EXTRACT_FLAGS)
    text = parser.format_help()
    defaults = FeatureConfig()
    assert f"(default {defaults.num_frames})" in text and f"(default {defaults.difference_gain})" in text
    assert flag_values(parser.parse_args([]), EXTRACT_FLAGS) == {}
    given = flag_values(parser.parse_args(["--num-frames", "8", "--workers", "3", "--overwrite"]), EXTRACT_FLAGS)
    assert given == {"extract.num_frames": 8, "extract.decode_workers": 3, "extract.overwrite": True}
    with pytest.raises(SystemExit):
        parser.parse_args(["--num-frames", "eight"])  # typed as the field is
    train = argparse.ArgumentParser()
    for flags in RUN_FLAGS.values():
        add_flags(train, flags)
    assert f"(default {ExperimentConfig().train.learning_rate})" in train.format_help()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("train:\n  epochs: 7\n")
    flags = {key: value for table in RUN_FLAGS.values() for key, value in flag_values(train.parse_args([]), table).items()}
    assert load_experiment_config(str(recipe), flags).train.epochs == 7
