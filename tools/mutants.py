"""Mutation check of the test suite: break one thing at a time, see whether a test notices.

Each mutation replaces one exact piece of vidcls's code (it must occur exactly once, so a
mutation that no longer applies fails loudly instead of passing for nothing) in a
temporary copy of the repository, then runs only the tests that cover it. A mutation is
*caught* when one of those tests fails, *missed* when all pass.

    python tools/mutants.py               # every mutation
    python tools/mutants.py --list        # names only
    python tools/mutants.py NAME [NAME]   # some of them

Prints one line per mutation (caught, by which test / MISSED) and the total; exits 1 if
any is missed. Not part of `make test` (it runs tests many times: ~7 minutes on 2
cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("vidcls", "tests", "benchmarks", "configs", "setup.cfg", "pyproject.toml")


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids or files that should notice


MUTATIONS = (
    Mutation("train.balance_groups ignored", "vidcls/training/objectives.py",
             "    if not config.balance_groups:\n        return by_class\n", "    return by_class\n",
             ("tests/training/test_options_take_effect.py::test_balanced_groups_change_the_loss",)),
    Mutation("best.keras saved with the optimizer's state", "vidcls/training/callbacks.py",
             "    model.optimizer, model.compiled = None, False\n", "",
             ("tests/training/test_engine.py::test_periodic_checkpoints_timing_and_tensorboard_extras",)),
    Mutation("optimizer not restored after saving best.keras", "vidcls/training/callbacks.py",
             "        model.optimizer, model.compiled = optimizer, True\n", "        pass\n",
             ("tests/training/test_engine.py::test_periodic_checkpoints_timing_and_tensorboard_extras",)),
    Mutation("augmentation skipped although turned on", "vidcls/data/augment.py",
             "    return config != type(config)()", "    return False",
             ("tests/data/test_pipeline.py::test_each_augmentation_alone_changes_training_batches",)),
    Mutation("class weights all 1", "vidcls/training/objectives.py",
             "columns.append(weights[labels[:, column]])", "columns.append(np.ones_like(weights)[labels[:, column]])",
             ("tests/training/test_options_take_effect.py::test_class_weights_change_the_loss",)),
    Mutation("focal_alpha_balanced ignored", "vidcls/training/objectives.py",
             "if config.focal_alpha_balanced else config.focal_alpha", "if False else config.focal_alpha",
             ("tests/training/test_options_take_effect.py::test_balanced_focal_alpha_changes_the_loss",)),
    Mutation("atomic_write_bytes writes in place", "vidcls/fileio.py",
             "    temporary = temp_name(path)\n    with temporary.open(\"wb\") as handle:\n        handle.write(data)\n"
             "        handle.flush()\n        os.fsync(handle.fileno())\n    os.replace(temporary, path)",
             "    with path.open(\"wb\") as handle:\n        handle.write(data)\n        handle.flush()\n"
             "        os.fsync(handle.fileno())",
             ("tests/test_fileio.py",)),
    Mutation("file lock does nothing", "vidcls/fileio.py",
             "        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)\n", "        pass\n",
             ("tests/test_fileio.py",)),
    Mutation("TFLite parity compares a file with itself", "vidcls/exporting/exporter.py",
             "float(np.mean(outputs[target].argmax(1) == reference[target].argmax(1)))",
             "float(np.mean(outputs[target].argmax(1) == outputs[target].argmax(1)))",
             ("tests/exporting/test_export.py::test_quantized_variants_meet_their_parity_and_size_targets",)),
    Mutation("--tta ignored", "vidcls/evaluation/evaluate.py",
             "views = [(features, data.masks)] if tta == 1 else", "views = [(features, data.masks)] if True else",
             ("tests/evaluation/test_evaluate.py::test_tta_averages_crops_that_differ",)),
    Mutation("ensemble uses its first member", "vidcls/evaluation/evaluate.py",
             "probabilities = {target: np.mean([member[1][target] for member in members], axis=0) for target in space}\n"
             "    metrics = score_predictions(data.labels, probabilities, space, split",
             "probabilities = {target: np.mean([member[1][target] for member in members[:1]], axis=0) for target in space}\n"
             "    metrics = score_predictions(data.labels, probabilities, space, split",
             ("tests/evaluation/test_evaluate.py::test_an_ensemble_of_two_different_runs_is_the_mean_of_their_probabilities",)),
    Mutation("backbone preprocessing removed", "vidcls/features/backbones.py",
             "return tf.cast(model(self.preprocess(tf.cast(frames, tf.float32)), training=False), tf.float32)",
             "return tf.cast(model(tf.cast(frames, tf.float32), training=False), tf.float32)",
             ("tests/features/test_backbones.py::test_embedding_applies_the_backbones_preprocessing",)),
    Mutation("early stopping off", "vidcls/training/trainer.py",
             "patience=train.early_stopping_patience,", "patience=10**9,",
             ("tests/training/test_options_take_effect.py::test_early_stopping_stops_when_val_loss_stops_improving",)),
    Mutation("gradient clipping off", "vidcls/training/objectives.py",
             "global_clipnorm=config.gradient_clip if config.gradient_clip > 0 else None,", "global_clipnorm=None,",
             ("tests/training/test_options_take_effect.py::test_gradient_clipping_bounds_the_updates",)),
    Mutation("best.keras saved every epoch", "vidcls/training/callbacks.py",
             "if value is not None and np.isfinite(float(value)) and float(value) < self.best:",
             "if value is not None:",
             ("tests/training/test_options_take_effect.py::test_best_model_is_saved_only_on_improvement_also_across_a_resume",)),
    # Ten more, across the stages.
    Mutation("grouped split ignores groups", "vidcls/data/splits.py",
             "    if groups is None:\n        return [([clip_id], label)",
             "    if True:\n        return [([clip_id], label)",
             ("tests/data/test_splits.py",)),
    Mutation("packed reader returns zeros", "vidcls/features/packed.py",
             "        return out\n", "        return np.zeros_like(out)\n",
             ("tests/features/test_packed.py",)),
    Mutation("segment centres become the first frames", "vidcls/features/sampling.py",
             "indices = np.floor(segment * (np.arange(num_frames) + 0.5)).astype(np.int64)",
             "indices = np.arange(num_frames).astype(np.int64)",
             ("tests/features/test_video.py",)),
    Mutation("a gap in seconds rounds to the nearest frame, halves up", "vidcls/features/sampling.py",
             "return max(1, math.ceil(fps * self.seconds - 0.5))", "return max(1, round(fps * self.seconds + 1e-9))",
             ("tests/features/test_streams.py::test_a_gap_in_seconds_spans_the_same_time_at_any_frame_rate",)),
    Mutation("feature normalization not adapted", "vidcls/training/trainer.py",
             "        adapt_normalization(model, train_features)\n", "        pass\n",
             ("tests/training/test_train.py::test_feature_statistics_come_from_the_training_clips",)),
    Mutation("frame differences not taken", "vidcls/models/blocks.py",
             '        if self.mode == "none":\n            return inputs', '        if True:\n            return inputs',
             ("tests/models/test_models.py::test_frame_transforms_compute_differences_and_centring_over_real_frames",)),
    Mutation("events never merged", "vidcls/serving/predictor.py",
             'if events and events[-1]["label"] == window["label"]:', "if False:",
             ("tests/serving/test_predict.py::test_consecutive_windows_with_one_label_merge_into_events",)),
    Mutation("upload size unchecked while streaming", "vidcls/serving/server.py",
             "        if self.size + end - start > self.limit:", "        if False:",
             ("tests/serving/test_server.py::test_the_upload_limit_is_exact",)),
    Mutation("window count unbounded", "vidcls/features/windows.py",
             "if max_windows and len(starts) > max_windows:", "if False:",
             ("tests/features/test_windows.py",)),
    Mutation("no tail window", "vidcls/features/windows.py",
             "        if starts[-1] + num_frames < count:\n", "        if False:\n",
             ("tests/features/test_windows.py",)),
    Mutation("stream skips its tail window", "vidcls/exporting/stream.py",
             "elif not self.window_starts or self.window_starts[-1] + length < count:", "elif not self.window_starts:",
             ("tests/exporting/test_streaming.py",)),
    Mutation("streaming encoder not standardised", "vidcls/exporting/streaming.py",
             'return {"features": (features - mean) / scale}', 'return {"features": features}',
             ("tests/exporting/test_streaming.py::test_the_encoder_reproduces_the_cached_features_on_a_real_recording",)),
    Mutation("normalisation dropped, not folded", "vidcls/features/folding.py",
             "    return [kernel, (bias - normalisation.moving_mean.numpy()) * scale + beta]",
             "    return [convolution.kernel.numpy(), bias + 0 * scale]",
             ("tests/features/test_precision.py::test_folded_networks_compute_what_the_loaded_ones_do",)),
    Mutation("one decoding pass trusts the container's count", "vidcls/features/video.py",
             "    if not wanted <= decoded.keys():\n", "    if False:\n",
             ("tests/features/test_video.py",)),
    Mutation("predict ignores the cache's precision", "vidcls/features/encoder.py",
             'precision=fingerprint.get("precision", "float32"))', 'precision="float32")',
             ("tests/features/test_precision.py::test_a_bfloat16_cache_records_its_format_and_predict_embeds_in_it",)),
    Mutation("cache settings not compared", "vidcls/features/cache.py",
             "            if differences:\n", "            if False:\n",
             ("tests/features/test_extract.py",)),
    Mutation("NaN features accepted", "vidcls/features/cache.py",
             "        if not finite.all():\n", "        if False:\n",
             ("tests/features/test_cache_trust.py",)),
    Mutation("balanced accuracy is plain accuracy", "vidcls/evaluation/evaluate.py",
             '"balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),',
             '"balanced_accuracy": float(np.mean(labels == predicted)),',
             ("tests/evaluation/test_evaluate.py::test_metrics_match_a_hand_computed_example",)),
    Mutation("exported labels.txt in reverse order", "vidcls/exporting/exporter.py",
             '"".join(f"{name}\\n" for name in names)', '"".join(f"{name}\\n" for name in reversed(names))',
             ("tests/exporting/test_export.py::test_tflite_matches_keras_with_builtin_ops_only",)),
    Mutation("label smoothing ignored", "vidcls/training/objectives.py",
             "    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)",
             "    return keras.losses.CategoricalCrossentropy()",
             ("tests/training/test_options_take_effect.py::test_label_smoothing_changes_the_loss",)),
    Mutation("LSTM's unrolled loop ignores the mask", "vidcls/models/lstm.py",
             "            if valid is None:\n                hidden, carry = new_hidden, new_carry",
             "            if True:\n                hidden, carry = new_hidden, new_carry",
             ("tests/models/test_lstm.py",)),
    Mutation("LSTM's backward direction runs forward", "vidcls/models/lstm.py",
             "range(num_frames - 1, -1, -1) if self.go_backwards else range(num_frames)", "range(num_frames)",
             ("tests/models/test_lstm.py",)),
    Mutation("LoRA merged through the compute-dtype kernel", "vidcls/training/lora.py",
             "merged_values[base_kernel(layer).path] = _merged_kernel(layer)",
             "merged_values[base_kernel(layer).path] = np.asarray(layer.kernel)",
             ("tests/training/test_lora.py::test_merging_under_a_mixed_policy_keeps_the_float32_kernel",)),
    Mutation("--json leaves file descriptor 1 on stdout", "vidcls/cli/output.py",
             "    os.dup2(2, 1)\n    try:", "    try:",
             ("tests/test_scripting.py::test_json_output_moves_file_descriptor_1_to_stderr",)),
    Mutation("Keras loading does not register vidcls's classes", "vidcls/_keras_hook.py",
             "            sys.meta_path.remove(self.finder)\n        _register()",
             "            sys.meta_path.remove(self.finder)",
             ("tests/test_api.py::test_a_vidcls_keras_file_loads_with_plain_keras_after_import_vidcls",)),
    Mutation("timing.csv written before the epoch's checkpoints", "vidcls/training/trainer.py",
             "    callbacks.append(throughput.closing())", "    callbacks.insert(5, throughput.closing())",
             ("tests/training/test_engine.py::test_periodic_checkpoints_timing_and_tensorboard_extras",)),
    Mutation("EpochSync sets the epoch at every epoch (prefetch repeats one)", "vidcls/training/callbacks.py",
             "        if not self._started:\n            self.source.epoch = epoch",
             "        if True:\n            self.source.epoch = epoch",
             ("tests/training/test_train.py::test_one_iterator_reads_every_epoch_in_its_own_order",)),
    Mutation("a new training iterator every epoch", "vidcls/training/trainer.py",
             "make_dataset(train_source).repeat()", "make_dataset(train_source)",
             ("tests/training/test_train.py::test_one_iterator_reads_every_epoch_in_its_own_order",)),
    Mutation("an early-stopped run's last confusion picture not drawn", "vidcls/training/tensorboard_extras.py",
             "picture\n                self._draw_pending()", "picture\n                pass",
             ("tests/training/test_options_take_effect.py::test_early_stopping_stops_when_val_loss_stops_improving",)),
    Mutation("TensorBoard's confusion matrix not written", "vidcls/training/tensorboard_extras.py",
             "            _write_confusion_image(tag, truth, predicted, names, epoch)", "            pass",
             ("tests/training/test_engine.py::test_periodic_checkpoints_timing_and_tensorboard_extras",)),
    Mutation("FusedAdamW skips the weight decay", "vidcls/models/optimizer.py",
             "                variable.assign_sub(variable * tf.cast(rate, variable.dtype))", "                pass",
             ("tests/training/test_optimizer.py",)),
    Mutation("FusedAdamW's bias correction one step behind", "vidcls/models/optimizer.py",
             'step = tf.cast(self.iterations + 1, "float32")', 'step = tf.cast(self.iterations + 2, "float32")',
             ("tests/training/test_optimizer.py",)),
    Mutation("FusedAdamW updates only the first replica's moments", "vidcls/models/optimizer.py",
             "    return _tf_variable(variable).handle",
             "    return getattr(_tf_variable(variable), \"_primary\", _tf_variable(variable)).handle",
             ("tests/training/test_optimizer.py::test_the_same_under_a_two_replica_mirrored_strategy",)),
    Mutation("evaluation predicts in training mode (dropout on)", "vidcls/models/outputs.py",
             "for x in inputs], training=False)", "for x in inputs], training=True)",
             ("tests/evaluation/test_evaluate.py",)),
)


def _copy_repository(work: Path) -> Path:
    """The repository's code and tests under `work/repo`, with `work/shared` pointing at the
    real ../shared (the tests find real clips there)."""
    repo = work / "repo"
    repo.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif source.is_file():
            shutil.copy2(source, repo / name)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (work / "shared").symlink_to(shared)
    return repo


def _apply(repo: Path, mutation: Mutation) -> str:
    path = repo / mutation.path
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"mutation {mutation.name!r}: expected its code once in {mutation.path}, found it {count} "
                         "times; update tools/mutants.py to today's code")
    path.write_text(text.replace(mutation.old, mutation.new))
    return text


def _run(repo: Path, tests: tuple[str, ...]) -> tuple[bool, str]:
    """Whether a test failed (the mutation was caught), and which."""
    env = {**os.environ, "PYTHONPATH": str(repo), "TF_CPP_MIN_LOG_LEVEL": "3"}
    completed = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-o",
                                "addopts=", *tests], cwd=repo, env=env, capture_output=True, text=True)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", completed.stdout, flags=re.MULTILINE)
    if completed.returncode == 0:
        return False, ""
    if completed.returncode not in (1,) and not failed:
        raise SystemExit(f"pytest could not run {tests} (exit {completed.returncode}):\n{completed.stdout[-3000:]}"
                         f"{completed.stderr[-2000:]}")
    return True, failed[0] if failed else "(collection)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutation names and exit")
    args = parser.parse_args()
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.name}  ({mutation.path})")
        return 0
    chosen = [mutation for mutation in MUTATIONS if not args.names or mutation.name in args.names]
    unknown = set(args.names) - {mutation.name for mutation in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutation(s) {sorted(unknown)}; see --list")
    started = time.perf_counter()
    missed = 0
    with tempfile.TemporaryDirectory(prefix="vidcls_mutants_") as work:
        repo = _copy_repository(Path(work))
        for mutation in chosen:
            original = _apply(repo, mutation)
            try:
                began = time.perf_counter()
                caught, by = _run(repo, mutation.tests)
            finally:
                (repo / mutation.path).write_text(original)
            missed += not caught
            verdict = f"caught by {by}" if caught else "MISSED"
            print(f"{mutation.name:45s} {verdict}  ({time.perf_counter() - began:.0f} s)", flush=True)
    print(f"{len(chosen) - missed} of {len(chosen)} mutations caught, {missed} missed, "
          f"{time.perf_counter() - started:.0f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
