"""Verb + noun (EPIC-KITCHENS style) runs: two output heads from cache to phone."""

import csv
import json

import numpy as np
import pytest

from tests.conftest import TINY_FEATURES
from vidcls.config import AugmentConfig, ExperimentConfig
from vidcls.data import BatchSource, build_label_space, encode_labels, make_dataset
from vidcls.data.augment import augment_batch
from vidcls.errors import VidclsError
from vidcls.evaluation.evaluate import multi_target_metrics
from vidcls.videos import SYNTH_VERB_NOUN, VERB_NOUN_CSV

SPACE = {"verb": ["close", "open", "take"], "noun": ["cup", "door"]}


@pytest.fixture(scope="module")
def verb_noun_run(video_dir, tmp_path_factory):
    from vidcls.config import FeatureConfig
    from vidcls.features import extract
    from vidcls.training import train

    root = tmp_path_factory.mktemp("verb_noun")
    summary = extract(FeatureConfig(annotations=str(video_dir / VERB_NOUN_CSV), data_dir=str(video_dir),
                                    cache_dir=str(root / "cache"), **TINY_FEATURES))
    assert summary.extracted == 24
    config = ExperimentConfig().replace({
        "data.cache_dir": str(root / "cache"), "data.targets": "verb,noun", "train.epochs": 3,
        "train.batch_size": 4, "train.use_class_weights": True,
        "model.adapter_units": 32, "model.hidden_units": 16, "model.attention_units": 8,
    })
    result = train(config, root / "run")
    assert result.best_val_accuracy is not None
    return root / "run"


def test_label_space_and_encoding():
    entries = [{"clip_id": "a", "verb": "open", "noun": "door"}, {"clip_id": "b", "verb": "take", "noun": "cup"},
               {"clip_id": "c", "verb": "close", "noun": "door"}]
    assert build_label_space(entries, ["verb", "noun"], "cache") == SPACE
    assert encode_labels(entries, SPACE).tolist() == [[1, 1], [2, 0], [0, 1]]
    with pytest.raises(VidclsError, match=r"includes 'participant' but 3 clip\(s\) of cache have no such manifest value \(first: a\)"):
        build_label_space(entries, ["verb", "participant"], "cache")
    with pytest.raises(VidclsError, match=r"Label\(s\) \['wash'\] of 'verb' are not in the run's label map"):
        encode_labels([{"clip_id": "d", "verb": "wash", "noun": "cup"}], SPACE)


def test_batches_carry_one_target_tensor_and_weight_per_head():
    features = np.random.default_rng(0).normal(size=(6, 4, 3)).astype(np.float16)
    labels = np.array([[0, 1], [1, 0], [2, 1], [0, 0], [1, 1], [2, 0]])
    weights = np.stack([np.arange(6), 10 + np.arange(6)], axis=1).astype(np.float32)
    source = BatchSource(features, labels, [3, 2], batch_size=4, training=True, seed=3, sample_weights=weights,
                         target_names=["verb", "noun"])
    batches = list(make_dataset(source))
    (_, targets, batch_weights) = batches[0]
    assert set(targets) == {"verb", "noun"} and targets["verb"].shape == (4, 3) and targets["noun"].shape == (4, 2)
    order = batch_weights["verb"].numpy().astype(int)  # the weights identify each sample after shuffling
    np.testing.assert_array_equal(targets["verb"].numpy().argmax(1), labels[order, 0])
    np.testing.assert_array_equal(targets["noun"].numpy().argmax(1), labels[order, 1])
    np.testing.assert_array_equal(batch_weights["noun"].numpy(), weights[order, 1])


def test_mixing_keeps_every_target_a_distribution():
    rng = np.random.default_rng(0)
    source = BatchSource(np.zeros((8, 4, 3), np.float16), rng.integers(0, 2, size=(8, 2)), [2, 2], 8, training=True)
    config = AugmentConfig(mixup_alpha=0.4, cutmix_prob=1.0)
    _, _, targets, weights = augment_batch(rng.normal(size=(8, 4, 3)).astype(np.float32), np.ones((8, 4), np.float32),
                                           source.targets, np.ones((8, 2), np.float32), rng, config)
    np.testing.assert_allclose(targets[:, :2].sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(targets[:, 2:].sum(1), 1, atol=1e-6)
    assert weights.shape == (8, 2)


def test_action_metrics_on_a_worked_example():
    # Verb right on clips 0, 1, 2; noun right on 0 and 2: the action only on 0 and 2.
    labels = np.array([[1, 1], [2, 0], [0, 1], [1, 0]])
    verb = np.array([[.1, .8, .1], [.1, .1, .8], [.7, .2, .1], [.5, .05, .45]])
    noun = np.array([[.3, .7], [.4, .6], [.2, .8], [.1, .9]])
    metrics = multi_target_metrics(labels, {"verb": verb, "noun": noun}, SPACE)
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["targets"]["verb"]["accuracy"] == pytest.approx(0.75)
    assert metrics["targets"]["noun"]["accuracy"] == pytest.approx(0.5)
    # Action top-5 ranks the 6 (verb, noun) pairs by p(verb) * p(noun). Clip 1's true
    # pair (take, cup) scores .8 * .4 = .32, second; clip 3's (open, cup) .05 * .1 = .005,
    # the last of the six: 3 of 4 clips.
    assert metrics["top5_accuracy"] == pytest.approx(0.75)
    # Balanced over the actions present: open/door 1/1, take/cup 0/1, close/door 1/1, open/cup 0/1.
    assert metrics["balanced_accuracy"] == pytest.approx(0.5)
    assert metrics["targets"]["verb"]["per_class"][2] == {
        "class": "take", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}


def test_explicit_class_weights_need_a_single_target(cache_dir, tmp_path):
    from vidcls.training import train

    config = ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "data.targets": ["label", "video"],
                                         "train.use_class_weights": True, "train.class_weights": {"grow": 2}})
    with pytest.raises(VidclsError, match="names the classes of one target"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_verb_noun_run_trains_evaluates_exports_and_predicts(verb_noun_run, video_dir):
    from vidcls.evaluation import evaluate
    from vidcls.exporting import export
    from vidcls.serving import Predictor

    assert json.loads((verb_noun_run / "labels.json").read_text()) == {
        "verb": ["decrease", "increase"], "noun": ["redness", "size"]}
    with (verb_noun_run / "history.csv").open() as handle:
        columns = next(csv.reader(handle))
    assert {"verb_accuracy", "noun_accuracy", "val_verb_loss", "val_noun_accuracy"} <= set(columns)

    metrics = evaluate(verb_noun_run, "test")
    with (verb_noun_run / "eval" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert metrics["accuracy"] == pytest.approx(np.mean([row["label"] == row["predicted"] for row in rows]))
    for column, target in enumerate(("verb", "noun")):
        agree = np.mean([row["label"].split("/")[column] == row["predicted"].split("/")[column] for row in rows])
        assert metrics["targets"][target]["accuracy"] == pytest.approx(agree)
    assert all(abs(sum(float(row[f"prob_verb/{v}"]) for v in ("decrease", "increase")) - 1) < 1e-4 for row in rows)
    for name in ("confusion.png", "confusion_verb.png", "confusion_noun.png", "curves.png"):
        assert (verb_noun_run / "eval" / name).is_file(), name

    report = export(verb_noun_run, parity_samples=8)
    variant = report["variants"][0]
    assert set(variant["per_output"]) == {"verb", "noun"} and variant["top1_agreement"] == 1.0
    assert variant["max_abs_diff"] < 1e-4
    metadata = json.loads((verb_noun_run / "export" / "metadata.json").read_text())
    assert metadata["outputs"]["noun"]["labels"] == ["redness", "size"]
    assert (verb_noun_run / "export" / "labels_verb.txt").read_text().split() == ["decrease", "increase"]

    video = next((video_dir / "grow").iterdir())
    result = Predictor(verb_noun_run).predict(video)
    verb, noun = result["targets"]["verb"], result["targets"]["noun"]
    assert result["label"] == f"{verb['label']}/{noun['label']}"
    assert result["score"] == pytest.approx(verb["score"] * noun["score"])
    assert set(SYNTH_VERB_NOUN["grow"]) <= set(verb["probabilities"]) | set(noun["probabilities"])


def test_a_two_class_run_reports_roc_pr_and_thresholds(verb_noun_run, tmp_path):
    from vidcls.evaluation import evaluate
    from vidcls.training import train

    cache = json.loads((verb_noun_run / "features.json").read_text())["cache_dir"]
    run_dir = tmp_path / "verb_only"
    train(ExperimentConfig().replace({"data.cache_dir": cache, "data.targets": ["verb"], "train.epochs": 2,
                                      "train.batch_size": 4, "model.adapter_units": 16, "model.hidden_units": 8}), run_dir)
    metrics = evaluate(run_dir, "test", positive_class="increase", target_recall=0.5)
    binary = metrics["binary"]
    assert binary["positive_class"] == "increase" and 0 <= binary["roc_auc"] <= 1 and 0 <= binary["pr_auc"] <= 1
    assert binary["at_recall"]["recall"] >= 0.5 and binary["at_fpr"]["false_positive_rate"] <= 0.05
    assert (run_dir / "eval" / "roc_pr.png").read_bytes()[:4] == b"\x89PNG"
    assert "](roc_pr.png)" in (run_dir / "eval" / "report.md").read_text()
    with pytest.raises(VidclsError, match="--positive-class 'fight' is not a class of the run"):
        evaluate(run_dir, "test", positive_class="fight")


def test_the_streaming_pair_has_one_output_and_label_file_per_target(verb_noun_run, tmp_path):
    import shutil

    from vidcls.exporting import StreamRunner, export_streaming, read_metadata, read_standard_metadata
    from vidcls.run_dir import RunDir

    run = tmp_path / "run"
    shutil.copytree(verb_noun_run, run, ignore=shutil.ignore_patterns("export", "eval*"))
    report = export_streaming(run, ["float32"], stride_sec=0.5)
    variant = report["variants"][0]
    assert variant["top1_agreement"] == 1.0 and variant["max_abs_diff"] < 1e-4  # each target's, against predict
    head = run / "export" / "streaming" / "head_float32.tflite"
    space = RunDir(run).label_space()
    assert read_metadata(head)["targets"] == space and read_metadata(head)["target_order"] == ["verb", "noun"]
    standard = read_standard_metadata(head)
    assert sorted(standard["outputs"]) == ["noun", "verb"]
    assert {name: text.split() for name, text in standard["files"].items()} == {
        "labels_verb.txt": space["verb"], "labels_noun.txt": space["noun"]}
    result = StreamRunner(run / "export" / "streaming").run(RunDir(run).cache().entries[0]["video"])
    window = result["windows"][0]
    assert set(window["targets"]) == {"verb", "noun"} and window["label"] == "/".join(
        window["targets"][target]["label"] for target in ("verb", "noun"))
