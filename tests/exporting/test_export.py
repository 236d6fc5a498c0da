import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from vidcls.exporting import export


def test_tflite_matches_keras_with_builtin_ops_only(trained_run):
    report = export(trained_run)
    out = trained_run / "export"
    assert json.loads((out / "export_report.json").read_text()) == report
    variant = report["variants"][0]
    for key in ("name", "path", "size_bytes", "ops", "top1_agreement", "max_abs_diff", "latency_ms"):
        assert key in variant, key
    assert variant["top1_agreement"] == 1.0 and variant["max_abs_diff"] < 1e-4
    assert not [op for op in variant["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    assert "FULLY_CONNECTED" in variant["ops"]
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert (out / "labels.txt").read_text().split() == json.loads((trained_run / "labels.json").read_text())
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["inputs"]["features"]["shape"] == [1, 8, 2048] and metadata["inputs"]["mask"]["shape"] == [1, 8]
    assert metadata["backbone"] == "resnet50"

    # The file on disk runs on its own in the LiteRT interpreter, inputs by name, and
    # agrees with the trained model as loaded from best.keras.
    runner = Interpreter(model_path=str(out / variant["path"])).get_signature_runner()
    from vidcls.features import FeatureCache
    from vidcls.models import load_model

    cache = FeatureCache(json.loads((trained_run / "features.json").read_text())["cache_dir"])
    clips = np.stack([cache.load_features(entry) for entry in cache.entries[:6]]).astype(np.float32)
    trained = np.asarray(load_model(trained_run / "best.keras")([clips, np.ones((6, 8), np.float32)]))
    exported = np.concatenate([next(iter(runner(features=clip[None], mask=np.ones((1, 8), np.float32)).values()))
                               for clip in clips])
    np.testing.assert_allclose(exported, trained, atol=1e-4)
    features = np.random.default_rng(0).normal(size=(1, 8, 2048)).astype(np.float32)
    full = next(iter(runner(features=features, mask=np.ones((1, 8), np.float32)).values()))
    assert full.shape == (1, 4) and abs(full.sum() - 1) < 1e-5
    mask = np.array([[1, 1, 1, 1, 1, 0, 0, 0]], np.float32)  # a short clip: junk in masked frames is ignored
    junk = features.copy()
    junk[0, 5:] = 1e3
    np.testing.assert_allclose(next(iter(runner(features=junk, mask=mask).values())),
                               next(iter(runner(features=features, mask=mask).values())), atol=1e-6)


@pytest.mark.parametrize("name, hyperparameters", [
    ("bilstm", {"model.hidden_units": 8}),
    ("gru", {"model.hidden_units": 8, "model.pooling": "mean"}),
    ("transformer", {"model.hidden_units": 8, "model.num_heads": 2, "model.mlp_units": 16}),
    ("mean_pool", {}),
    ("mean_pool", {"model.input_transform": "features_and_differences"}),  # the fight recipe's input
])
def test_every_model_trains_and_exports_to_a_matching_tflite_file(name, hyperparameters, cache_dir, tmp_path):
    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    run_dir = tmp_path / name
    train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "model.name": name, "train.epochs": 1,
                                      "train.batch_size": 4, "model.adapter_units": 16, **hyperparameters}), run_dir)
    variant = export(run_dir)["variants"][0]
    assert variant["top1_agreement"] == 1.0 and variant["max_abs_diff"] < 1e-4, variant
    assert not [op for op in variant["ops"] if op.startswith("Flex") or op == "CUSTOM"]


def test_quantized_variants_meet_their_parity_and_size_targets(cache_dir, tmp_path):
    from vidcls.cli import main
    from vidcls.config import ExperimentConfig
    from vidcls.training import train

    # The default model size: int8 weights shrink a file only where the weights dominate it.
    run = tmp_path / "run"
    train(ExperimentConfig().replace({"data.cache_dir": str(cache_dir), "train.epochs": 1, "train.batch_size": 4}), run)
    assert main(["export", "--run-dir", str(run), "--quantize", "float16,dynamic"]) == 0
    report = json.loads((run / "export" / "export_report.json").read_text())
    variants = {variant["name"]: variant for variant in report["variants"]}
    assert list(variants) == ["float32", "float16", "dynamic_int8"]
    for name, variant in variants.items():
        assert (run / "export" / variant["path"]).is_file()
        assert not [op for op in variant["ops"] if op.startswith("Flex") or op == "CUSTOM"], name
    assert variants["float32"]["top1_agreement"] == 1.0 and variants["float32"]["max_abs_diff"] < 1e-4
    assert variants["float16"]["top1_agreement"] == 1.0 and variants["float16"]["size_vs_float32"] > 1.8
    assert variants["dynamic_int8"]["top1_agreement"] >= 0.99 and variants["dynamic_int8"]["size_vs_float32"] >= 3
    assert all(variant["kernels"] == "xnnpack" for variant in variants.values())  # as a phone app runs them
    metadata = json.loads((run / "export" / "metadata.json").read_text())
    assert metadata["files"]["dynamic_int8"] == "model_dynamic_int8.tflite"

    # Each file run here, in the interpreter, against best.keras on the same held-out
    # clips: the report's figures must be what the files really do.
    from vidcls.data import load_labelled_features
    from vidcls.features import FeatureCache
    from vidcls.models import load_model

    cache = FeatureCache(cache_dir)
    data = load_labelled_features(cache, json.loads((run / "splits.json").read_text())["test"], ["blue_to_red", "grow", "red_to_blue", "shrink"])
    features, masks = data.features.astype(np.float32), data.masks
    trained = np.asarray(load_model(run / "best.keras")([features, masks]))
    for name, variant in variants.items():
        interpreter = Interpreter(model_path=str(run / "export" / variant["path"]), num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        runner = interpreter.get_signature_runner()
        outputs = np.concatenate([next(iter(runner(features=features[row:row + 1], mask=masks[row:row + 1]).values()))
                                  for row in range(len(features))])
        agreement = float(np.mean(outputs.argmax(1) == trained.argmax(1)))
        difference = float(np.abs(outputs - trained).max())
        assert variant["top1_agreement"] == pytest.approx(agreement), name
        assert variant["max_abs_diff"] == pytest.approx(difference, rel=0.25, abs=1e-6), name
    assert variants["dynamic_int8"]["max_abs_diff"] > 1e-6  # quantized: not the float model itself

    # Every file above agrees with the model on every clip, so a check that compared a file
    # with itself would report the same 1.0. Against a reference that disagrees on some
    # clips (each clip's scores rolled by one class), the figure must drop to what it is.
    from vidcls.exporting.exporter import _check_tflite

    rolled = np.roll(trained, 1, axis=1)
    expected = float(np.mean(trained.argmax(1) == rolled.argmax(1)))
    assert expected < 1.0
    checked = _check_tflite(run / "export" / variants["float32"]["path"], {"features": features, "mask": masks},
                            {"label": rolled})
    assert checked["top1_agreement"] == pytest.approx(expected)


def test_unknown_quantization_is_a_clear_error(trained_run, capsys):
    from vidcls.cli import main

    assert main(["export", "--run-dir", str(trained_run), "--quantize", "int4"]) == 2
    assert "Unknown --quantize 'int4'; choose from: none, float16, dynamic" in capsys.readouterr().err
    # Full integer int8 is refused before any work, with what was measured and what to use instead.
    assert main(["export", "--run-dir", str(trained_run), "--quantize", "dynamic,int8", "--streaming"]) == 2
    error = capsys.readouterr().err
    assert "--quantize int8 (full integer" in error and "Use --quantize dynamic" in error


def test_end_to_end_model_runs_on_raw_frames_like_vidcls_predict(trained_run, tmp_path):
    import shutil

    from vidcls.exporting.exporter import export_end_to_end
    from vidcls.serving import Predictor

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("export", "eval*"))
    entry = export_end_to_end(run, videos=3)
    assert entry["top1_agreement"] == 1.0 and entry["max_abs_diff"] < 1e-4 and entry["checked_on_videos"] == 3
    assert "CONV_2D" in entry["ops"] and not [op for op in entry["ops"] if op.startswith("Flex") or op == "CUSTOM"]
    assert json.loads((run / "export" / "export_report.json").read_text())["end_to_end"] == entry
    # The file on its own: raw uint8 frames in, the probabilities vidcls predict gives out.
    predictor = Predictor(run)
    video = json.loads((run / "features.json").read_text())["cache_dir"]
    from vidcls.features import FeatureCache

    clip_video = FeatureCache(video).entries[0]["video"]
    clip = predictor.read(clip_video)
    runner = Interpreter(model_path=str(run / "export" / entry["path"])).get_signature_runner()
    output = next(iter(runner(frames=clip.frames[None], mask=np.ones((1, 8), np.float32)).values()))[0]
    expected = predictor.predict(clip_video)["probabilities"]
    np.testing.assert_allclose(output, [expected[name] for name in predictor.label_space["label"]], atol=1e-4)
