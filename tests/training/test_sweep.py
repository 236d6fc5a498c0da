"""`vidcls sweep`: every trial a real run, a ranked table, resumable."""

import csv
import json

import pytest
import yaml

from vidcls.cli import main
from vidcls.errors import VidclsError
from vidcls.training.sweep import read_sweep, trial_overrides


def _sweep_file(tmp_path, cache_dir, **extra):
    spec = {"set": {"data.cache_dir": str(cache_dir), "train.epochs": 2, "train.batch_size": 4,
                    "model.adapter_units": 16, "model.attention_units": 8},
            "parameters": {"model.hidden_units": [4, 8], "train.learning_rate": [1.0e-3, 3.0e-3]}, **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_two_by_two_grid_makes_four_ranked_runs_and_resumes(cache_dir, tmp_path):
    sweep, out = _sweep_file(tmp_path, cache_dir), tmp_path / "out"
    assert main(["sweep", "--config", str(sweep), "--out-dir", str(out)]) == 0
    with (out / "sweep_results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(row["trial"]) for row in rows) == [0, 1, 2, 3]
    assert [int(row["rank"]) for row in rows] == [1, 2, 3, 4]
    accuracies = [float(row["val_accuracy"]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True)  # ranked by validation accuracy
    combos = {(int(row["model.hidden_units"]), float(row["train.learning_rate"])) for row in rows}
    assert combos == {(4, 1e-3), (4, 3e-3), (8, 1e-3), (8, 3e-3)}
    for row in rows:
        trial = json.loads((out / f"trial_{int(row['trial']):03d}" / "trial.json").read_text())
        assert trial["parameters"]["model.hidden_units"] == int(row["model.hidden_units"])
        assert (out / f"trial_{int(row['trial']):03d}" / "eval" / "metrics.json").is_file()
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["model"]["hidden_units"] == int(rows[0]["model.hidden_units"])
    assert "| rank | trial |" in (out / "sweep_results.md").read_text()

    # Interrupted after two trials: the third's run directory is gone, the rest are kept.
    import shutil

    shutil.rmtree(out / "trial_002")
    finished = {name: (out / name / "best.keras").stat().st_mtime for name in ("trial_000", "trial_001", "trial_003")}
    assert main(["sweep", "--config", str(sweep), "--out-dir", str(out)]) == 0
    assert {name: (out / name / "best.keras").stat().st_mtime for name in finished} == finished  # not redone
    assert (out / "trial_002" / "result.json").is_file()


def test_random_search_is_seeded_and_checks_keys_before_running(cache_dir, tmp_path):
    path = _sweep_file(tmp_path, cache_dir, search="random", trials=5, seed=3,
                       parameters={"train.learning_rate": {"min": 1.0e-4, "max": 1.0e-2, "log": True},
                                   "model.hidden_units": [4, 8, 16], "model.dropout": {"min": 0.0, "max": 0.5}})
    first, again = trial_overrides(read_sweep(path)), trial_overrides(read_sweep(path))
    assert first == again and len(first) == 5
    assert all(1e-4 <= trial["train.learning_rate"] <= 1e-2 and trial["model.hidden_units"] in (4, 8, 16)
               and 0 <= trial["model.dropout"] <= 0.5 for trial in first)
    bad = _sweep_file(tmp_path, cache_dir, parameters={"train.learning_rat": [1.0e-3]})
    with pytest.raises(VidclsError, match="Unknown config key 'train.learning_rat'"):
        read_sweep(bad)
    grid_range = _sweep_file(tmp_path, cache_dir, parameters={"model.dropout": {"min": 0.0, "max": 0.5}})
    with pytest.raises(VidclsError, match="is a range; a grid needs a list of values"):
        read_sweep(grid_range)
