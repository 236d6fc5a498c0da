"""The Python API (`import vidcls`): the documented example runs, the import stays light,
settings resolve as flags do, and vidcls's .keras files load with plain Keras."""

import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import vidcls
from vidcls import api
from vidcls.config import ExperimentConfig, field_types
from vidcls.errors import VidclsError

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_the_documented_example_runs(tmp_path):
    text = (ROOT / "docs" / "python-api.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    assert blocks, "docs/python-api.md has no python example"
    completed = _python("\n".join(blocks), tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("extracted 16 clips (96 frames)")
    assert any(line.startswith("test accuracy ") and line.endswith(" on 4 clips") for line in lines), lines
    assert any(line.startswith("float32 ") for line in lines), lines
    assert lines[-1].startswith("MeanPoolClassifier "), lines


def test_import_and_api_names_do_not_import_tensorflow(tmp_path):
    code = ("import sys, vidcls\n"
            "functions = [vidcls.extract, vidcls.train, vidcls.crossval, vidcls.evaluate, vidcls.export, vidcls.run_config]\n"
            "print(all(callable(f) for f in functions), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    completed = _python(code, tmp_path)
    assert completed.stdout.split() == ["True", "False", "False"], completed.stderr[-2000:]


@pytest.mark.parametrize("imports, load", [
    ("import vidcls, keras", "keras.saving.load_model"),
    ("import vidcls, tensorflow as tf", "tf.keras.models.load_model"),  # TensorFlow imports Keras itself
    ("import keras, vidcls", "keras.saving.load_model"),  # Keras first: registered at `import vidcls`
])
def test_a_vidcls_keras_file_loads_with_plain_keras_after_import_vidcls(trained_run, tmp_path, imports, load):
    completed = _python(f"{imports}\nmodel = {load}({str(trained_run / 'best.keras')!r})\n"
                        "print(type(model).__name__, model.count_params())", tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.split()[0] == "AttentionLSTMClassifier"


def test_without_import_vidcls_keras_cannot_find_the_classes(trained_run, tmp_path):
    # What the registration is for: plain Keras alone does not know vidcls's classes.
    completed = _python(f"import keras\nkeras.saving.load_model({str(trained_run / 'best.keras')!r})", tmp_path)
    assert completed.returncode != 0 and "Could not locate class 'AttentionLSTMClassifier'" in completed.stderr


def test_settings_resolve_like_flags():
    resolved = api.run_settings({"epochs": 5, "model": "gru", "cache_dir": "c", "dropout": 0.3, "noise_std": 0.1,
                                 "train.weight_decay": 1e-3, "precision": "bfloat16", "seed": None})
    assert resolved == {"train.epochs": 5, "model.name": "gru", "data.cache_dir": "c", "model.dropout": 0.3,
                        "augment.noise_std": 0.1, "train.weight_decay": 1e-3, "train.precision": "mixed_bfloat16"}
    with pytest.raises(VidclsError, match=r"Unknown setting 'epoch' \(did you mean epochs\?\)"):
        api.run_settings({"epoch": 3})


def test_field_names_are_unique_across_sections():
    # A bare field name (dropout=0.3) must name one key; a new field that repeats another
    # section's name would make it ambiguous.
    names = [name for section in typing.get_type_hints(ExperimentConfig).values() for name in field_types(section)]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)


def test_train_checks_settings_before_writing_anything(cache_dir, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(VidclsError, match="train.epochs"):
        vidcls.train(run, cache_dir=str(cache_dir), epochs="many")
    with pytest.raises(VidclsError, match=r"Expected a cache folder \(--cache-dir, or cache_dir= in Python"):
        vidcls.train(run, epochs=2)
    assert not run.exists()


def test_missing_inputs_are_named_as_python_spells_them(tmp_path):
    with pytest.raises(VidclsError, match=r"--data-dir, or data_dir= in Python\) or a CSV of clips \(--annotations, annotations="):
        vidcls.extract(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(VidclsError, match=r"--cache-dir, or cache_dir= in Python"):
        vidcls.extract(data_dir=str(tmp_path))
    assert not (tmp_path / "cache").exists()


def test_extract_from_a_config_object_with_keyword_overrides(video_dir, tmp_path):
    from vidcls.config import FeatureConfig

    subset = tmp_path / "videos"
    for name in ("grow", "shrink"):
        shutil.copytree(video_dir / name, subset / name)
    base = FeatureConfig(backbone="resnet50", weights="none", num_frames=4, image_size=32, streams=["appearance"],
                         precision="float32")
    summary = vidcls.extract(base, data_dir=str(subset), cache_dir=str(tmp_path / "cache"), num_frames=3,
                             progress=False)
    assert summary.extracted == 12 and summary.to_dict()["extracted"] == 12
    from vidcls.features import FeatureCache

    assert FeatureCache(tmp_path / "cache").feature_shape[0] == 3  # the keyword beat the object's 4
