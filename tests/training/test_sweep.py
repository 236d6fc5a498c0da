"""`vidcls sweep`: KerasTuner oracles choose, every trial is a real run, a ranked table,
and a sweep killed mid-trial resumes without redoing finished trials."""

import csv
import json
import subprocess
import sys
import time

import pytest
import yaml

from vidcls.cli import main
from vidcls.errors import VidclsError
from vidcls.training.sweep import SearchSpace, make_oracle, read_sweep, run_sweep

TINY = {"train.batch_size": 4, "model.adapter_units": 16, "model.attention_units": 8}


def _sweep_file(tmp_path, cache_dir, name="sweep.yaml", **extra):
    spec = {"set": {"data.cache_dir": str(cache_dir), "train.epochs": 2, "model.name": "mean_pool", **TINY},
            "parameters": {"model.adapter_units": [4, 8], "train.learning_rate": [1.0e-3, 3.0e-3]}, **extra}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return path


def _mtimes(out, names):
    return {name: (out / name / "best.keras").stat().st_mtime_ns for name in names}


def test_a_killed_two_by_two_grid_resumes_into_four_ranked_runs(cache_dir, tmp_path):
    sweep, out = _sweep_file(tmp_path, cache_dir), tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "vidcls", "sweep", "--config", str(sweep), "--out-dir", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "trial_2").is_dir():  # the third trial has started
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline, "the sweep never reached its third trial"
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert not (out / "trial_2" / "trial.json").exists()  # killed in the middle of the trial
    finished = _mtimes(out, ["trial_0", "trial_1"])

    assert main(["sweep", "--config", str(sweep), "--out-dir", str(out)]) == 0
    assert _mtimes(out, finished) == finished  # not redone
    with (out / "sweep_results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["trial"] for row in rows) == ["0", "1", "2", "3"]
    assert [int(row["rank"]) for row in rows] == [1, 2, 3, 4]
    keys = [(-float(row["val_accuracy"]), float(row["val_loss"])) for row in rows]
    assert keys == sorted(keys)  # by validation accuracy, ties by validation loss
    combos = {(int(row["model.adapter_units"]), float(row["train.learning_rate"])) for row in rows}
    assert combos == {(4, 1e-3), (4, 3e-3), (8, 1e-3), (8, 3e-3)}  # each grid point once, none twice
    for row in rows:
        run_dir = out / f"trial_{row['trial']}"
        trial = json.loads((run_dir / "trial.json").read_text())
        assert trial["status"] == "completed"
        assert trial["parameters"]["model.adapter_units"] == int(row["model.adapter_units"])
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["train"]["learning_rate"] == float(row["train.learning_rate"])
        metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
        assert metrics["accuracy"] == pytest.approx(float(row["test_accuracy"]))
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["model"]["adapter_units"] == int(rows[0]["model.adapter_units"])
    assert best["train"]["learning_rate"] == float(rows[0]["train.learning_rate"])
    assert "| rank | status | trial |" in (out / "sweep_results.md").read_text()

    # Finished: running it again trains nothing; another sweep in the same directory is refused.
    everything = _mtimes(out, [f"trial_{row['trial']}" for row in rows])
    assert main(["sweep", "--config", str(sweep), "--out-dir", str(out)]) == 0
    assert _mtimes(out, everything) == everything
    changed = _sweep_file(tmp_path, cache_dir, name="other.yaml", parameters={"model.adapter_units": [4, 16]})
    with pytest.raises(VidclsError, match="holds another sweep .*'parameters'"):
        run_sweep(changed, out)


def test_hyperband_promotes_trials_by_continuing_their_runs(cache_dir, tmp_path):
    path = _sweep_file(tmp_path, cache_dir, search="hyperband", max_epochs=3, factor=3, seed=1,
                       parameters={"model.adapter_units": [4, 8], "train.learning_rate": {"min": 1e-3, "max": 1e-2, "log": True}})
    path.write_text(path.read_text().replace("train.epochs: 2\n", ""))  # hyperband sets the epochs
    rows = run_sweep(path, tmp_path / "hb")
    by_trial = {row["trial"]: row for row in rows}
    promoted = [row for row in rows if row["continues"]]
    assert promoted and all(row["epochs"] == 3 for row in promoted)
    for row in promoted:
        parent = by_trial[row["continues"]]
        assert parent["epochs"] == 1 and parent["train.learning_rate"] == row["train.learning_rate"]
        result = json.loads((tmp_path / "hb" / f"trial_{row['trial']}" / "result.json").read_text())
        assert result["initialised_from"] == parent["run_dir"] and result["epochs_run"] == 2  # 1 + 2 more = 3
    best = yaml.safe_load((tmp_path / "hb" / "best_config.yaml").read_text())
    assert best["train"]["epochs"] == rows[0]["epochs"] and not best["model"]["init_from"]


def test_random_and_bayesian_draws_are_seeded_and_stay_in_their_ranges(cache_dir, tmp_path):
    from keras_tuner.src.engine.trial import TrialStatus

    space_spec = {"train.learning_rate": {"min": 1.0e-4, "max": 1.0e-2, "log": True},
                  "model.hidden_units": [4, 8, 16], "model.dropout": {"min": 0.0, "max": 0.5},
                  "model.bidirectional": [True, False], "train.epochs": {"min": 2, "max": 6}}

    def draws(search):
        sweep = read_sweep(_sweep_file(tmp_path, cache_dir, search=search, trials=6, seed=3, parameters=space_spec,
                                       **({"num_initial_points": 2} if search == "bayesian" else {})))
        space = SearchSpace(sweep.parameters)
        oracle = make_oracle(sweep, space)
        oracle._set_project_dir(str(tmp_path / f"oracle_{search}_{time.monotonic_ns()}"), "oracle")
        trials = []
        for _ in range(6):
            trial = oracle.create_trial("test")
            overrides = space.overrides(trial.hyperparameters.values)
            oracle.update_trial(trial.trial_id, {"val_accuracy": 1.0 - abs(overrides["train.learning_rate"] - 3e-3)})
            trial.status = TrialStatus.COMPLETED
            oracle.end_trial(trial)
            trials.append(overrides)
        return trials

    for search in ("random", "bayesian"):
        first = draws(search)
        assert first == draws(search) and len({json.dumps(t, sort_keys=True) for t in first}) == 6
        for trial in first:
            assert 1e-4 <= trial["train.learning_rate"] <= 1e-2 and trial["model.hidden_units"] in (4, 8, 16)
            assert 0 <= trial["model.dropout"] <= 0.5 and trial["model.bidirectional"] in (True, False)
            assert type(trial["train.learning_rate"]) is float and type(trial["train.epochs"]) is int and 2 <= trial["train.epochs"] <= 6


def test_lists_of_any_values_are_choices_and_bad_sweeps_are_refused_before_running(cache_dir, tmp_path):
    space = SearchSpace({"data.targets": [["label"], ["verb", "noun"]], "model.dropout": [0, 0.5]})
    assert space.overrides({"data.targets": 1, "model.dropout": 0.0}) == {"data.targets": ["verb", "noun"],
                                                                          "model.dropout": 0.0}
    bad = _sweep_file(tmp_path, cache_dir, parameters={"train.learning_rat": [1.0e-3]})
    with pytest.raises(VidclsError, match="Unknown config key 'train.learning_rat'"):
        read_sweep(bad)
    with pytest.raises(VidclsError, match="is a range; a grid needs a list of values"):
        read_sweep(_sweep_file(tmp_path, cache_dir, parameters={"model.dropout": {"min": 0.0, "max": 0.5}}))
    with pytest.raises(VidclsError, match="hyperband sets train.epochs itself"):
        read_sweep(_sweep_file(tmp_path, cache_dir, search="hyperband", max_epochs=9))
    with pytest.raises(VidclsError, match="Expected search: one of grid, random, bayesian, hyperband"):
        read_sweep(_sweep_file(tmp_path, cache_dir, search="evolution"))
    with pytest.raises(VidclsError, match="expected data.val_fraction > 0"):
        read_sweep(_sweep_file(tmp_path, cache_dir, set={"data.cache_dir": str(cache_dir), "data.val_fraction": 0.0}))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(VidclsError, match="is not empty and holds no sweep"):
        run_sweep(_sweep_file(tmp_path, cache_dir), tmp_path / "busy")


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(cache_dir, tmp_path):
    path = _sweep_file(tmp_path, cache_dir, parameters={"model.pooling": ["last", "maxx"]},
                       set={"data.cache_dir": str(cache_dir), "train.epochs": 1, "model.name": "bilstm", **TINY})
    rows = run_sweep(path, tmp_path / "out")
    assert [(row["status"], row["model.pooling"] if row["status"] == "completed" else None) for row in rows] == \
        [("completed", "last"), ("failed", None)]
    assert "model.pooling" in rows[1]["error"] and "maxx" in rows[1]["error"]
    record = json.loads((tmp_path / "out" / "trial_1" / "trial.json").read_text())
    assert record["status"] == "failed" and record["parameters"] == {"model.pooling": "maxx"}
    with (tmp_path / "out" / "sweep_results.csv").open() as handle:
        assert [row["status"] for row in csv.DictReader(handle)] == ["completed", "failed"]


def test_a_sweep_tunes_lora_rank_on_a_trained_run(trained_run, cache_dir, tmp_path):
    path = tmp_path / "lora.yaml"
    path.write_text(yaml.safe_dump({
        "base": str(trained_run / "config.yaml"),
        "set": {"data.cache_dir": str(cache_dir), "model.init_from": str(trained_run), "train.epochs": 1},
        "parameters": {"model.lora_rank": [1, 2]}}))
    rows = run_sweep(path, tmp_path / "out")
    # Adapters on the frame adapter (2048 -> 32) and the head (32 -> 4): rank x (in + out) each.
    assert {row["model.lora_rank"]: row["trainable_parameters"] for row in rows} == \
        {rank: rank * (2048 + 32) + rank * (32 + 4) for rank in (1, 2)}
    assert len({row["parameters"] for row in rows}) == 1  # merged: the source model's size


def test_with_folds_each_trial_is_a_grouped_crossval_ranked_by_its_mean(grouped_cache, tmp_path):
    path = _sweep_file(tmp_path, grouped_cache, folds=3, group_by="group",
                       set={"data.cache_dir": str(grouped_cache), "train.epochs": 2, "model.name": "mean_pool", **TINY},
                       parameters={"model.adapter_units": [4, 8]})
    rows = run_sweep(path, tmp_path / "out")
    assert [row["rank"] for row in rows] == [1, 2]
    assert rows[0]["cv_accuracy"] >= rows[1]["cv_accuracy"]
    for row in rows:
        summary = json.loads((tmp_path / "out" / f"trial_{row['trial']}" / "crossval.json").read_text())
        assert summary["num_folds"] == 3 and summary["group_by"] == "group"
        assert row["cv_accuracy"] == pytest.approx(summary["model"]["mean"]["accuracy"])
        assert row["cv_accuracy_std"] == pytest.approx(summary["model"]["std"]["accuracy"])
        assert row["baseline_cv_accuracy"] == pytest.approx(summary["baseline"]["mean"]["accuracy"])
    best = yaml.safe_load((tmp_path / "out" / "best_config.yaml").read_text())
    assert best["model"]["adapter_units"] == rows[0]["model.adapter_units"] and best["data"]["split_file"] == ""
    with pytest.raises(VidclsError, match="a sweep with folds ranks by cross-validated metrics"):
        read_sweep(_sweep_file(tmp_path, grouped_cache, name="bad.yaml", folds=3, rank_by="val_loss"))
    with pytest.raises(VidclsError, match="group_by in .* is a cross-validation setting: set folds too"):
        read_sweep(_sweep_file(tmp_path, grouped_cache, name="bad.yaml", group_by="group"))
    with pytest.raises(VidclsError, match="with folds in .* use grid, random or bayesian"):
        read_sweep(_sweep_file(tmp_path, grouped_cache, name="bad.yaml", folds=3, search="hyperband", max_epochs=3))


def test_three_failed_trials_in_a_row_stop_the_sweep(cache_dir, tmp_path):
    path = _sweep_file(tmp_path, cache_dir, parameters={"model.pooling": ["maxa", "maxb", "maxc", "last"]},
                       set={"data.cache_dir": str(cache_dir), "train.epochs": 1, "model.name": "bilstm", **TINY})
    with pytest.raises(VidclsError, match=r"Sweep .* stopped after 3 failed trials in a row; the last: .*received 'maxc'"):
        run_sweep(path, tmp_path / "out")
    assert not (tmp_path / "out" / "trial_3").exists()  # the fourth, good trial never ran


@pytest.mark.slow
@pytest.mark.parametrize("search", ["random", "bayesian"])
def test_a_killed_sweep_resumes_its_interrupted_trial_from_its_last_epoch(cache_dir, tmp_path, search):
    path = _sweep_file(tmp_path, cache_dir, search=search, trials=3, seed=3, num_initial_points=2,
                       set={"data.cache_dir": str(cache_dir), "train.epochs": 6, "model.name": "mean_pool", **TINY},
                       parameters={"train.learning_rate": {"min": 1e-3, "max": 1e-2, "log": True},
                                   "model.adapter_units": [8, 16]})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vidcls", "sweep", "--config", str(path), "--out-dir", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timing = out / "trial_1" / "timing.csv"
    deadline = time.monotonic() + 600
    while not (timing.is_file() and len(timing.read_text().splitlines()) >= 3):  # trial 1 is 2 epochs in
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.kill()
    process.wait()
    before = timing.read_text().splitlines()
    drawn = yaml.safe_load((out / "trial_1" / "config.yaml").read_text())

    assert main(["sweep", "--config", str(path), "--out-dir", str(out)]) == 0
    after = timing.read_text().splitlines()
    resumed_at = int(json.loads((out / "trial_1" / "result.json").read_text())["epochs_run"])
    assert resumed_at == 6 and [line.split(",")[0] for line in after[1:]] == [str(epoch) for epoch in range(6)]
    kept = len(before) - 2  # epochs whose backup was written before the kill (the last row may be redone)
    assert after[:1 + kept] == before[:1 + kept]  # measured timings kept: those epochs were not trained again
    assert yaml.safe_load((out / "trial_1" / "config.yaml").read_text()) == drawn  # same hyperparameters
    with (out / "sweep_results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["trial"] for row in rows) == ["0", "1", "2"] and all(row["status"] == "completed" for row in rows)
