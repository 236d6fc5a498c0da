"""Scripting conventions of every command: --json prints one JSON document on stdout (logs
on stderr, at the file-descriptor level), -q/-v, defaults in --help, documented exit codes."""

import argparse
import json
import logging
import shutil

import pytest

from vidcls.cli import build_parser, main
from vidcls.cli.output import HelpFormatter


def _subcommands():
    action = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return action.choices


def test_json_commands_print_one_document_on_stdout(trained_run, video_dir, tmp_path, capfd):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    capfd.readouterr()

    assert main(["evaluate", "--run-dir", str(run), "--split", "val", "--json"]) == 0
    metrics = json.loads(capfd.readouterr().out)
    assert metrics["split"] == "val" and 0.0 <= metrics["accuracy"] <= 1.0

    assert main(["compare", str(run), str(trained_run), "--json"]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert [row["run"] for row in rows] == [str(run), str(trained_run)]

    assert main(["export", "--run-dir", str(run), "--json"]) == 0
    report = json.loads(capfd.readouterr().out)
    assert report["variants"][0]["name"] == "float32"


def test_json_output_moves_file_descriptor_1_to_stderr(capfd):
    # What a C++ library (LiteRT's "Created TensorFlow Lite XNNPACK delegate") or Keras
    # prints while a --json command works must not reach stdout.
    import os

    from vidcls.cli.output import json_output

    with json_output(argparse.Namespace(json=True)):
        os.write(1, b"from C++\n")
        print("from Python")
    print("the document")
    captured = capfd.readouterr()
    assert captured.out == "the document\n" and "from C++" in captured.err and "from Python" in captured.err


def test_extract_and_train_json_keep_progress_off_stdout(cache_dir, video_dir, tmp_path, capfd):
    subset = tmp_path / "videos"
    shutil.copytree(video_dir / "grow", subset / "grow")
    shutil.copytree(video_dir / "shrink", subset / "shrink")
    assert main(["extract", "--data-dir", str(subset), "--cache-dir", str(tmp_path / "cache"), "--backbone", "resnet50",
                 "--weights", "none", "--num-frames", "4", "--image-size", "32", "--streams", "appearance", "--json"]) == 0
    captured = capfd.readouterr()
    summary = json.loads(captured.out)
    assert summary["extracted"] == 12 and summary["failures"] == [] and summary["cache_dir"] == str(tmp_path / "cache")
    assert "12/12" in captured.err  # the progress bar, on stderr

    assert main(["train", "--cache-dir", str(cache_dir), "--run-dir", str(tmp_path / "run"), "--epochs", "2",
                 "--batch-size", "8", "--model", "mean_pool", "--json"]) == 0
    captured = capfd.readouterr()
    result = json.loads(captured.out)
    assert result["epochs_run"] == 2 and result["model"] == "mean_pool"
    assert "Epoch 2/2" in captured.err  # Keras prints epoch lines on stdout; with --json they go to stderr


def test_quiet_prints_the_result_only(video_dir, tmp_path, capfd):
    subset = tmp_path / "videos"
    shutil.copytree(video_dir / "grow", subset / "grow")
    shutil.copytree(video_dir / "shrink", subset / "shrink")
    capfd.readouterr()
    assert main(["extract", "-q", "--data-dir", str(subset), "--cache-dir", str(tmp_path / "cache"), "--backbone",
                 "resnet50", "--weights", "none", "--num-frames", "4", "--image-size", "32", "--streams", "appearance"]) == 0
    captured = capfd.readouterr()
    assert captured.out.startswith("extracted 12 clips")
    assert "12/12" not in captured.err and "vidcls: " not in captured.err, captured.err


def test_verbose_logs_debug_messages(trained_run, capfd):
    logger = logging.getLogger("vidcls")
    try:
        assert main(["compare", "-v", str(trained_run)]) == 0
        assert logger.level == logging.DEBUG
        assert main(["compare", "-q", str(trained_run)]) == 0
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(logging.INFO)


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "-q", "-v", "run"])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_help_explains_every_flag_and_shows_its_default(command):
    parser = _subcommands()[command]
    for action in parser._actions:
        assert action.help or not action.option_strings, (command, action.option_strings)
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS, []):
            continue
        formatter = HelpFormatter(prog=parser.prog)
        formatter.add_argument(action)
        assert "default" in formatter.format_help(), (command, action.option_strings)
    assert "-q, --quiet" in parser.format_help() and "-v, --verbose" in parser.format_help()


def test_top_level_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "130 "):
        assert f"\n  {code}" in text, code


def test_json_is_strict_for_jq():
    import numpy as np

    from vidcls.cli.output import to_json

    text = to_json({"val_accuracy": float("nan"), "scores": [np.float32(0.5), float("inf")], "clips": np.int64(3)})
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON")) == {
        "val_accuracy": None, "scores": [0.5, None], "clips": 3}
