"""`vidcls crossval`: grouped, stratified folds; each fold a real run; honest pooled
figures beside the baseline; a SIGKILL mid-fold resumes without redoing finished folds."""

import csv
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from vidcls.cli import main
from vidcls.config import ExperimentConfig
from vidcls.errors import VidclsError
from vidcls.training.crossval import crossval, make_folds

TINY = {"train.batch_size": 4, "train.epochs": 2, "model.adapter_units": 16, "model.hidden_units": 8,
        "model.attention_units": 8}


def _config(cache, **updates):
    return ExperimentConfig().replace({"data.cache_dir": str(cache), **TINY, **updates})


def test_make_folds_keep_groups_whole_and_cover_every_clip_once():
    labels = ["a"] * 12 + ["b"] * 12
    groups = [f"g{index % 6}" for index in range(24)]
    folds = make_folds(labels, 3, seed=0, groups=groups)
    assert sorted(row for fold in folds for row in fold) == list(range(24))
    for fold in folds:
        held_out = {groups[row] for row in fold}
        rest = {groups[row] for row in range(24) if row not in fold}
        assert not held_out & rest  # no source in both train and test
        assert {labels[row] for row in fold} == {"a", "b"}  # stratified: both classes tested
    assert make_folds(labels, 3, seed=0, groups=groups) == folds  # seeded
    with pytest.raises(VidclsError, match="at least 8 groups for 8 folds; the cache has 6"):
        make_folds(labels, 8, seed=0, groups=groups)
    with pytest.raises(VidclsError, match="--folds >= 2"):
        make_folds(labels, 1, seed=0)


def test_grouped_crossval_scores_every_clip_once_by_a_model_that_never_saw_its_source(grouped_cache, tmp_path):
    out = tmp_path / "cv"
    result = crossval(_config(grouped_cache), out, num_folds=3, group_by="group")
    summary = json.loads((out / "crossval.json").read_text())
    assert summary == json.loads(json.dumps(result.summary))
    entries = [json.loads(line) for line in (grouped_cache / "manifest.jsonl").read_text().splitlines()]
    group_of = {entry["clip_id"]: entry["group"] for entry in entries}
    tested = []
    for fold in json.loads((out / "folds.json").read_text())["folds"]:
        run_dir = out / fold["name"]
        splits = json.loads((run_dir / "splits.json").read_text())
        assert splits["test"] == fold["test"]  # the run trained on this fold's split file
        trained_groups = {group_of[clip] for clip in splits["train"] + splits["val"]}
        assert not trained_groups & {group_of[clip] for clip in splits["test"]}
        assert (run_dir / "best.keras").is_file() and (run_dir / "eval" / "metrics.json").is_file()
        tested += fold["test"]
    assert sorted(tested) == sorted(group_of)  # every clip held out exactly once
    with (out / "out_of_fold" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["clip_id"] for row in rows) == sorted(group_of)
    pooled_accuracy = np.mean([row["label"] == row["predicted"] for row in rows])
    assert summary["model"]["pooled"]["accuracy"] == pytest.approx(pooled_accuracy)
    per_fold = [fold["accuracy"] for fold in summary["folds"]]
    assert summary["model"]["mean"]["accuracy"] == pytest.approx(np.mean(per_fold))
    assert summary["model"]["std"]["accuracy"] == pytest.approx(np.std(per_fold, ddof=1))
    # Each fold's accuracy is that of its own run's evaluation of its test clips.
    for fold in summary["folds"]:
        metrics = json.loads((out / fold["name"] / "eval" / "metrics.json").read_text())
        assert fold["accuracy"] == pytest.approx(metrics["accuracy"]) and fold["num_samples"] == 8
    baseline = summary["baseline"]
    assert len(baseline["per_fold"]) == 3 and 0.0 <= baseline["mean"]["accuracy"] <= 1.0
    with (out / "baseline" / "predictions.csv").open() as handle:
        assert sorted(row["clip_id"] for row in csv.DictReader(handle)) == sorted(group_of)
    markdown = (out / "summary.md").read_text()
    assert "grouped by `group`" in markdown and "baseline" in markdown and "fold_2" in markdown
    assert (out / "out_of_fold" / "confusion.png").is_file() and (out / "out_of_fold" / "report.md").is_file()


def test_crossval_refuses_bad_settings_naming_them(grouped_cache, tmp_path):
    with pytest.raises(VidclsError, match=r"--group-by \(data.group_by\) is 'scene' but 24 clip\(s\) .* have no such manifest key"):
        crossval(_config(grouped_cache), tmp_path / "a", num_folds=3, group_by="scene")
    with pytest.raises(VidclsError, match="remove data.split_file"):
        crossval(_config(grouped_cache, **{"data.split_file": "splits.json"}), tmp_path / "b", num_folds=3)
    with pytest.raises(VidclsError, match="at least 7 groups for 7 folds; the cache has 6"):
        crossval(_config(grouped_cache), tmp_path / "c", num_folds=7, group_by="group")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("mine")
    with pytest.raises(VidclsError, match="not empty and holds no cross-validation"):
        crossval(_config(grouped_cache), tmp_path / "d", num_folds=3)


@pytest.mark.slow
def test_a_crossval_killed_in_a_fold_resumes_and_refuses_other_settings(grouped_cache, tmp_path):
    out = tmp_path / "cv"
    command = [sys.executable, "-m", "vidcls", "crossval", "--cache-dir", str(grouped_cache), "--out-dir", str(out),
               "--folds", "3", "--group-by", "group", "--epochs", "3", "--batch-size", "4",
               "--set", "model.adapter_units=16", "--set", "model.hidden_units=8", "--set", "model.attention_units=8"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not (out / "fold_1" / "history.csv").is_file():  # the second fold has trained an epoch
        assert process.poll() is None, "crossval ended before it could be killed"
        assert time.monotonic() < deadline, "crossval never reached its second fold"
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert not (out / "crossval.json").exists()  # an unfinished cross-validation does not look finished
    finished = (out / "fold_0" / "best.keras").stat().st_mtime_ns

    assert main(command[3:]) == 0
    assert (out / "fold_0" / "best.keras").stat().st_mtime_ns == finished  # not trained again
    summary = json.loads((out / "crossval.json").read_text())
    assert [fold["name"] for fold in summary["folds"]] == ["fold_0", "fold_1", "fold_2"]
    with (out / "fold_1" / "history.csv").open() as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["0", "1", "2"]  # resumed, no epoch twice

    with pytest.raises(VidclsError, match=r"holds another cross-validation \(it differs in \['config'\]\)"):
        crossval(_config(grouped_cache, **{"train.epochs": 4}), out, num_folds=3, group_by="group")
