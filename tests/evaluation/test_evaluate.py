import csv
import json

import numpy as np
import pytest

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
