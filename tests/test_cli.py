"""Every command through `vidcls.cli.main`, as a user would type it, on tiny data."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_corrupt_video
from vidcls.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_whole_chain_through_the_command_line(tmp_path, capsys):
    # Needs nothing outside the repository, so it runs in a clone without ../shared too;
    # real recordings through predict are tests/serving/test_predict.py's.
    videos, cache, run = tmp_path / "videos", tmp_path / "cache", tmp_path / "run"
    assert main(["synth", str(videos), "--num-videos", "16", "--seed", "3"]) == 0
    assert main(["extract", "--data-dir", str(videos), "--cache-dir", str(cache), "--backbone", "resnet50",
                 "--weights", "none", "--num-frames", "6", "--image-size", "32", "--batch-size", "24"]) == 0
    assert "extracted 16 clips" in capsys.readouterr().out
    preset = tmp_path / "preset.yaml"
    preset.write_text("model:\n  adapter_units: 16\n  hidden_units: 8\n  attention_units: 8\ndata:\n  val_fraction: 0.25\n  test_fraction: 0.25\n")
    assert main(["train", "--cache-dir", str(cache), "--run-dir", str(run), "--epochs", "2", "--batch-size", "4",
                 "--learning-rate", "0.003", "--warmup-epochs", "1", "--use-class-weights", "--label-smoothing", "0.05",
                 "--seed", "7", "--config", str(preset), "--set", "train.weight_decay=0.001"]) == 0
    config = (run / "config.yaml").read_text()
    for expected in ("learning_rate: 0.003", "weight_decay: 0.001", "hidden_units: 8", "use_class_weights: true", "seed: 7"):
        assert expected in config, expected
    assert main(["evaluate", "--run-dir", str(run), "--split", "val"]) == 0
    assert "val: accuracy" in capsys.readouterr().out
    assert main(["export", "--run-dir", str(run)]) == 0
    assert "float32: model_float32.tflite" in capsys.readouterr().out
    picked = [next((videos / name).glob("*.mp4")) for name in ("grow", "shrink")]
    assert main(["predict", "--run-dir", str(run), "--json", *map(str, picked)]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["video"] for r in results] == [str(video) for video in picked]
    assert all(r["label"] in r["probabilities"] for r in results)


def test_extract_fails_on_unreadable_videos_unless_allowed(video_dir, tmp_path, capsys):
    data = tmp_path / "videos"
    shutil.copytree(video_dir, data)
    write_corrupt_video(data / "grow" / "broken.mp4")
    common = ["extract", "--data-dir", str(data), "--backbone", "resnet50", "--weights", "none",
              "--num-frames", "4", "--image-size", "32"]
    assert main([*common, "--cache-dir", str(tmp_path / "a")]) == 1
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.out and "1 failed" in captured.out
    assert "1 video(s) could not be read" in captured.err and "--allow-failures" in captured.err
    assert main([*common, "--cache-dir", str(tmp_path / "b"), "--allow-failures"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["extract", "--data-dir", "/no/such/dir", "--cache-dir", "c", "--weights", "none"], "Data directory /no/such/dir does not exist"),
    (["extract", "--data-dir", ".", "--cache-dir", "c", "--backbone", "alexnet"], "Unknown backbone 'alexnet'; choose one of: vgg16, vgg19, vgg16_conv, vgg19_conv, resnet50"),
    (["train", "--run-dir", "r"], "Expected a cache folder (--cache-dir, or cache_dir= in Python"),
    (["evaluate", "--run-dir", "/no/such/run"], "is not a finished training run"),
])
def test_bad_input_is_a_one_line_error_with_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_unknown_model_names_the_choices(cache_dir, tmp_path, capsys):
    assert main(["train", "--cache-dir", str(cache_dir), "--run-dir", str(tmp_path / "r"), "--model", "gpt"]) == 2
    assert "Unknown model 'gpt'; choose one of: attention_lstm, bilstm, gru, transformer, mean_pool" in capsys.readouterr().err


def test_empty_data_dir(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert main(["extract", "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c"), "--weights", "none"]) == 2
    assert "holds no videos" in capsys.readouterr().err


def test_predict_reports_a_corrupt_video_and_exits_1(trained_run, tmp_path, capsys):
    bad = write_corrupt_video(tmp_path / "bad.mp4")
    assert main(["predict", "--run-dir", str(trained_run), str(bad)]) == 1
    assert f"{bad}:" in capsys.readouterr().err


def test_help_lists_every_model():
    from vidcls.cli import build_parser
    from vidcls.models import MODELS

    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert all(name in train_help for name in MODELS)


def test_help_does_not_import_tensorflow():
    code = "import sys, vidcls.cli as c; c.build_parser().format_help(); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["False", "False"]


def test_train_dual_gpu_wrapper_has_the_train_flags():
    wrapper = subprocess.run([sys.executable, str(ROOT / "train_dual_gpu.py"), "--help"], capture_output=True, text=True, check=True)
    for flag in ("--mixed-precision", "--no-mixed-precision", "--xla", "--use-focal-loss", "--use-class-weights",
                 "--batch-size", "--warmup-epochs", "--label-smoothing", "--config", "--set"):
        assert flag in wrapper.stdout, flag
