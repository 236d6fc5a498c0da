"""A run that did not really finish never looks finished: best.keras is written
atomically, a resumed run checks it loads, and a diverged run is refused."""

import json
import shutil
import signal
import subprocess
import sys

import pytest

from vidcls.config import ExperimentConfig
from vidcls.errors import VidclsError
from vidcls.evaluation import evaluate
from vidcls.training import train


def _command(cache_dir, run_dir, *extra):
    return [sys.executable, "-m", "vidcls", "train", "--cache-dir", str(cache_dir), "--run-dir", str(run_dir),
            "--model", "mean_pool", "--epochs", "3", "--batch-size", "4", "--learning-rate", "0",
            "--set", "model.adapter_units=8", *extra]


def _killed_on_write(path, command):
    """Runs `command` under strace, SIGKILLed at its third write() to `path`."""
    return subprocess.run(["strace", "-f", "-o", "/dev/null", "-P", str(path), "-e", "trace=write",
                           "-e", "inject=write:signal=SIGKILL:when=3", *command], capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed: it injects the kill mid-write")
def test_kill_while_saving_best_model_then_resume_and_evaluate(cache_dir, tmp_path):
    # The reproduction: writes to best.keras itself. Nothing writes it in place
    # any more, so the injection never fires and the run finishes.
    run_dir = tmp_path / "in_place"
    completed = _killed_on_write(run_dir / "best.keras", _command(cache_dir, run_dir))
    assert completed.returncode == 0, completed.stderr[-2000:]

    # A kill in the middle of writing the new best model (to its temporary name).
    run_dir = tmp_path / "run"
    completed = _killed_on_write(run_dir / ".best.partial.keras", _command(cache_dir, run_dir))
    assert completed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), completed.stderr[-2000:]
    assert not (run_dir / "result.json").exists()
    assert not (run_dir / "best.keras").exists()  # the first save was the one killed: no half file

    # The same command again: epoch 0 is trained and saved again, and the run ends whole.
    completed = subprocess.run(_command(cache_dir, run_dir), capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert json.loads((run_dir / "result.json").read_text())["epochs_run"] == 3
    assert 0 <= evaluate(run_dir)["accuracy"] <= 1


def test_finished_run_with_damaged_best_model_is_not_finished(trained_run, cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    data = (run_dir / "best.keras").read_bytes()
    (run_dir / "best.keras").write_bytes(data[: len(data) // 3])  # as a kill during an in-place save left it
    config = ExperimentConfig().replace({
        "data.cache_dir": str(cache_dir), "train.epochs": 3, "train.batch_size": 4,
        "model.adapter_units": 32, "model.hidden_units": 16, "model.attention_units": 8,
    })
    with pytest.raises(VidclsError, match=r"claims to be finished \(result.json\) but .*best.keras does not load"):
        train(config, run_dir)
    with pytest.raises(VidclsError, match=r"Model file .*best.keras does not load"):
        evaluate(run_dir)


def test_unfinished_run_is_refused_by_later_stages(trained_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run, run_dir)
    (run_dir / "result.json").unlink()  # killed after saving a best model, before the end
    with pytest.raises(VidclsError, match=r"not a finished training run: .*result.json is missing"):
        evaluate(run_dir)


def test_diverged_run_is_not_done(cache_dir, tmp_path):
    """A loss that becomes NaN stops the run (TerminateOnNaN); it must not exit as finished."""
    run_dir = tmp_path / "run"
    config = ExperimentConfig().replace({
        "data.cache_dir": str(cache_dir), "train.epochs": 3, "train.batch_size": 4, "model.name": "mean_pool",
        "model.adapter_units": 8, "train.learning_rate": 1e38, "train.weight_decay": 0.0})
    with pytest.raises(VidclsError, match=r"Training diverged: (val_)?loss is nan at epoch 0"):
        train(config, run_dir)
    assert not (run_dir / "result.json").exists()


def test_a_row_cut_short_by_a_kill_is_dropped_before_the_run_resumes(tmp_path):
    """timing.csv's row is written after the epoch's backup, so a kill in the middle of it
    leaves an unfinished line for an epoch that is not trained again; the next append would
    run on from it."""
    from vidcls.run_dir import RunDir
    from vidcls.training.history import trim_logs

    run = RunDir(tmp_path)
    run.timing_path.write_text("epoch,epoch_seconds,samples_per_second\n0,1.5000,950.0\n1,1.4000,1000.0\n2,1.3")
    run.history_path.write_text("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n")
    trim_logs(run, resume_epoch=3)  # the backup recorded epoch 2 as done
    assert run.timing_path.read_text() == "epoch,epoch_seconds,samples_per_second\n0,1.5000,950.0\n1,1.4000,1000.0\n"
    assert run.history_path.read_text() == "epoch,loss\n0,0.9\n1,0.8\n2,0.7\n"
