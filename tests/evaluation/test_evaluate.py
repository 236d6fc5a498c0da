import csv
import json

import numpy as np
import pytest

from vidcls.cli import main
from vidcls.errors import VidclsError
from vidcls.evaluation import classification_metrics, evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_metrics_match_a_hand_computed_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    metrics = classification_metrics(labels, np.eye(3)[predicted], ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: a = 2*1*(2/3)/(1+2/3) = 0.8; b = 0.5; c = 2*0.5*1/1.5 = 2/3
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_perfect_and_constant_classifiers():
    labels = np.array([0, 1, 2, 1])
    perfect = classification_metrics(labels, np.eye(3)[labels], ["a", "b", "c"])
    assert perfect["accuracy"] == perfect["balanced_accuracy"] == perfect["macro_f1"] == 1.0
    constant = classification_metrics(labels, np.eye(3)[[1, 1, 1, 1]], ["a", "b", "c"])
    assert constant["accuracy"] == 0.5 and constant["balanced_accuracy"] == pytest.approx(1 / 3)


def test_evaluate_writes_the_contract_files(trained_run):
    metrics = evaluate(trained_run, "test")
    out = trained_run / "eval"
    written = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "num_samples", "split"):
        assert key in written, key
    assert written["split"] == "test" and written["num_samples"] == 4 == metrics["num_samples"]
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.reader(handle))
    classes = json.loads((trained_run / "labels.json").read_text())
    assert rows[0] == ["clip_id", "label", "predicted", *[f"prob_{name}" for name in classes]]
    assert len(rows) == 5
    assert all(abs(sum(float(p) for p in row[3:]) - 1) < 1e-4 for row in rows[1:])
    accuracy = np.mean([row[1] == row[2] for row in rows[1:]])
    assert accuracy == pytest.approx(written["accuracy"])
    for figure in ("confusion.png", "curves.png"):
        assert (out / figure).read_bytes()[:8] == PNG_SIGNATURE, figure
    assert json.loads((out / "confusion.json").read_text())["classes"] == classes


def test_unknown_split_and_untrained_run_are_errors(trained_run, tmp_path):
    with pytest.raises(VidclsError, match="Unknown split 'dev'; choose one of: train, val, test"):
        evaluate(trained_run, "dev")
    with pytest.raises(VidclsError, match="is not a finished training run"):
        evaluate(tmp_path, "test")


def test_weighted_metrics_on_the_hand_computed_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    metrics = classification_metrics(labels, np.eye(3)[[0, 0, 1, 1, 2, 2]], ["a", "b", "c"])
    # precision a=1, b=1/2, c=1/2; recall a=2/3, b=1/2, c=1; supports 3, 2, 1.
    assert metrics["weighted_precision"] == pytest.approx((3 * 1 + 2 * 0.5 + 1 * 0.5) / 6)
    assert metrics["weighted_recall"] == pytest.approx(metrics["accuracy"])  # always, by definition
    assert metrics["macro_precision"] == pytest.approx(2 / 3) and metrics["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)


def test_binary_scores_and_operating_points_by_hand():
    from vidcls.evaluation.scores import binary_metrics, default_positive

    labels = np.array([0, 0, 0, 1, 1])
    positive_scores = np.array([0.1, 0.4, 0.35, 0.8, 0.3])
    probabilities = np.stack([1 - positive_scores, positive_scores], axis=1)
    assert default_positive(labels, ["calm", "fight"]) == 1  # the rarer class
    result = binary_metrics(labels, probabilities, ["calm", "fight"], positive=1, target_recall=0.9, target_fpr=0.05)
    # ROC AUC: of the 6 (positive, negative) pairs, 0.8 beats all 3 negatives, 0.3 beats 0.1: 4/6.
    assert result["roc_auc"] == pytest.approx(4 / 6)
    # Average precision: ranked 0.8 (P) 0.4 0.35 0.3 (P) 0.1: precisions 1 and 2/4 at the positives.
    assert result["pr_auc"] == pytest.approx(0.75)
    assert result["at_recall"] == {"target_recall": 0.9, "threshold": pytest.approx(0.3), "recall": 1.0,
                                   "false_positive_rate": pytest.approx(2 / 3), "precision": 0.5}
    assert result["at_fpr"] == {"target_fpr": 0.05, "threshold": pytest.approx(0.8), "recall": 0.5,
                                "false_positive_rate": 0.0, "precision": 1.0}


def test_expected_calibration_error_by_hand():
    from vidcls.evaluation.scores import calibration

    # Two clips at confidence 0.9 (one right): |0.5 - 0.9| x 2/3; one at 0.6 (right): |1 - 0.6| x 1/3.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4]])
    result = calibration(np.array([0, 1, 0]), probabilities)
    assert result["ece"] == pytest.approx(0.4 * 2 / 3 + 0.4 / 3)
    assert sum(row["count"] for row in result["bins"]) == 3


def test_temporal_crops_cover_the_clip_and_keep_masks():
    from vidcls.evaluation.evaluate import temporal_crops

    features = np.arange(8, dtype=np.float32)[None, :, None] * np.ones((2, 1, 3), np.float32)
    masks = np.ones((2, 8), np.float32)
    (same, same_masks), = temporal_crops(features, masks, 1, fraction=1.0)
    np.testing.assert_array_equal(same, features)
    np.testing.assert_array_equal(same_masks, masks)
    first, last = temporal_crops(features, masks, 2, fraction=0.5)
    assert first[0][0, 0, 0] == 0 and last[0][0, -1, 0] == 7  # from the start, to the end
    assert first[0].shape == features.shape and first[1].sum(axis=1).tolist() == [4, 4]  # 4 real frames, 4 repeats


def test_ensemble_of_two_identical_runs_equals_each_run(trained_run, tmp_path):
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(trained_run, twin, ignore=shutil.ignore_patterns("eval*", "export"))
    alone = evaluate(trained_run, "test", out_dir=tmp_path / "alone")
    ensemble = evaluate([trained_run, twin], "test")
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "ece"):
        assert ensemble[key] == pytest.approx(alone[key]), key
        assert all(member[key] == pytest.approx(alone[key]) for member in ensemble["members"].values())
    with (tmp_path / "alone" / "predictions.csv").open() as a, (trained_run / "eval_ensemble" / "predictions.csv").open() as b:
        assert a.read() == b.read()
    splits = json.loads((twin / "splits.json").read_text())
    splits["test"] = splits["test"][1:]
    (twin / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(VidclsError, match="hold different clips"):
        evaluate([trained_run, twin], "test")


def test_tta_and_a_report_that_links_every_figure(trained_run, tmp_path):
    out = tmp_path / "tta"
    metrics = evaluate(trained_run, "test", tta=3, out_dir=out)
    assert metrics["tta"] == 3 and json.loads((out / "metrics.json").read_text())["tta"] == 3
    report = (out / "report.md").read_text()
    figures = sorted(path.name for path in out.glob("*.png"))
    assert figures == ["confusion.png", "curves.png", "reliability.png"]
    for name in figures:
        assert f"]({name})" in report and (out / name).read_bytes()[:8] == PNG_SIGNATURE
    confusion = json.loads((out / "confusion.json").read_text())
    assert all(abs(sum(row) - 1) < 1e-5 for row, counts in zip(confusion["row_normalised"], confusion["counts"]) if sum(counts))
    with pytest.raises(VidclsError, match="Expected --tta >= 1"):
        evaluate(trained_run, "test", tta=0)


def test_compare_puts_runs_in_one_table(trained_run, tmp_path, capsys):
    from vidcls.cli import main

    evaluate(trained_run, "test")
    assert main(["compare", str(trained_run), str(trained_run), "--csv", str(tmp_path / "runs.csv")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| run | model | targets | frames | backbone | epochs | parameters | mflops_per_clip")
    assert len(table) == 4 and "| attention_lstm | label | 8 | resnet50 | 3 |" in table[2]
    with (tmp_path / "runs.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[0]["accuracy"]) == pytest.approx(json.loads((trained_run / "eval" / "metrics.json").read_text())["accuracy"], abs=1e-4)
    assert main(["compare", str(tmp_path)]) == 2


def test_a_run_is_scored_on_every_clip_of_another_cache_made_the_same_way(trained_run, cache_dir, tmp_path):
    import shutil

    other = tmp_path / "other_scenes"
    shutil.copytree(cache_dir, other)
    lines = (other / "manifest.jsonl").read_text().splitlines(keepends=True)
    (other / "manifest.jsonl").write_text("".join(lines[:10]))  # another set of clips
    assert main(["evaluate", "--run-dir", str(trained_run), "--cache-dir", str(other)]) == 0
    metrics = json.loads((trained_run / "eval_other_scenes" / "metrics.json").read_text())
    assert metrics["num_samples"] == 10 and metrics["split"] == "all" and metrics["cache_dir"] == str(other)
    with (trained_run / "eval_other_scenes" / "predictions.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10
    assert "Every clip of the cache" in (trained_run / "eval_other_scenes" / "report.md").read_text()
    from vidcls.features.cache import CHECKSUM_KEY, fingerprint_digest

    info = json.loads((other / "cache.json").read_text())
    made_otherwise = {**info, "image_size": 64}  # as extraction at 64 px writes it, checksum included
    (other / "cache.json").write_text(json.dumps({**made_otherwise, CHECKSUM_KEY: fingerprint_digest(made_otherwise)}))
    with pytest.raises(VidclsError, match=r"holds other features than .* \(image_size: run's 32, this cache's 64\)"):
        evaluate(trained_run, cache_dir=other)


def test_curves_of_a_run_without_validation(tmp_path):
    # CSVLogger writes val_* as NA when a run has no validation split (data.val_fraction 0).
    from vidcls.evaluation.plots import plot_curves
    from vidcls.run_dir import RunDir

    run = RunDir(tmp_path)
    run.history_path.write_text("epoch,accuracy,learning_rate,loss,val_accuracy,val_learning_rate,val_loss\n"
                                "0,0.5,0.0005,1.04,NA,NA,NA\n1,0.68,0.001,0.77,NA,NA,NA\n")
    assert plot_curves(run.history(), tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_SIGNATURE


def _probabilities(eval_dir):
    with (eval_dir / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    columns = [key for key in rows[0] if key.startswith("prob_")]
    return {row["clip_id"]: np.array([float(row[key]) for key in columns]) for row in rows}


def test_an_ensemble_of_two_different_runs_is_the_mean_of_their_probabilities(trained_run, cache_dir, tmp_path):
    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    other = tmp_path / "other"  # same splits (same seed), another model
    train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "train.epochs": 2, "train.batch_size": 4,
                                      "model.name": "mean_pool", "model.adapter_units": 16}), other)
    evaluate(trained_run, "test", out_dir=tmp_path / "a")
    evaluate(other, "test", out_dir=tmp_path / "b")
    evaluate([trained_run, other], "test", out_dir=tmp_path / "both")
    first, second, both = (_probabilities(tmp_path / name) for name in ("a", "b", "both"))
    assert any(np.abs(first[clip] - second[clip]).max() > 1e-3 for clip in first)  # the members differ
    for clip in both:
        np.testing.assert_allclose(both[clip], (first[clip] + second[clip]) / 2, atol=2e-6)


def test_tta_averages_crops_that_differ(trained_run, tmp_path):
    evaluate(trained_run, "test", tta=1, out_dir=tmp_path / "one")
    evaluate(trained_run, "test", tta=3, out_dir=tmp_path / "three")
    one, three = _probabilities(tmp_path / "one"), _probabilities(tmp_path / "three")
    assert max(np.abs(one[clip] - three[clip]).max() for clip in one) > 1e-4
