"""Every use of Keras's private surface, in one place (KerasTuner's is no longer used:
its TrialStatus is imported from the public `keras_tuner.engine.trial`).

vidcls needs a few names that Keras does not make public: each is listed in
`PRIVATE_SYMBOLS` with the reason and the upstream issue it works around, and used only
through a function of this module. setup.cfg pins Keras to the minor version these were
checked against; `missing_private_symbols()` (run by tests/test_keras_compat.py, and by
`vidcls train` before it starts) names any that a Keras upgrade removed.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from vidcls.errors import VidclsError


@dataclass(frozen=True)
class PrivateSymbol:
    owner: str  # importable module, or "module:Class"
    name: str
    why: str


PRIVATE_SYMBOLS = (
    PrivateSymbol("keras:Model", "_flatten_layers",
                  "every nested layer of a model; `Model.layers` lists only direct children (LoRA, finalize_layers)"),
    PrivateSymbol("keras.layers:Dense", "_kernel",
                  "a LoRA-enabled Dense's frozen base kernel W; `kernel` returns W + A B (merge_lora)"),
    PrivateSymbol("keras:Model", "_maybe_symbolic_build",
                  "builds metrics from a batch reduced with strategy.reduce, which fails under "
                  "MultiWorkerMirroredStrategy (keras-team/keras#20585); overridden in TemporalClassifier"),
    PrivateSymbol("keras:Model", "_symbolic_build", "what _maybe_symbolic_build calls once it has a batch"),
    PrivateSymbol("keras.src.backend.tensorflow.trainer", "reduce_per_replica",
                  "averages scalar logs with axis=0 under MultiWorkerMirroredStrategy and fails "
                  "(keras-team/keras#20585); wrapped by patch_multi_worker_reduce"),
    PrivateSymbol("keras.callbacks:BackupAndRestore", "_save_model",
                  "overwrites its weights file in place, so a kill mid-write leaves no usable backup; "
                  "AtomicBackupAndRestore overrides it (and _load_model) to write a new file and rename it"),
    PrivateSymbol("keras.callbacks:BackupAndRestore", "_load_model", "see _save_model"),
    PrivateSymbol("keras.callbacks:BackupAndRestore", "_training_metadata_path",
                  "where BackupAndRestore records the epoch (set in __init__; checked on an instance)"),
    PrivateSymbol("keras.callbacks:BackupAndRestore", "_current_epoch", "the epoch AtomicBackupAndRestore records"),
    PrivateSymbol("keras.callbacks:BackupAndRestore", "_last_batch_seen", "the batch AtomicBackupAndRestore records"),
    PrivateSymbol("keras:Model", "_distribute_strategy", "the strategy a model was built under (build_from_local_replica)"),
    PrivateSymbol("keras.src.backend.tensorflow.trainer:TensorFlowTrainer.fit", "_initial_epoch",
                  "the epoch fit() starts at, which a restore sets (set_initial_epoch); checked in fit's source"),
    # FusedAdamW (vidcls/models/optimizer.py): Keras's AdamW evaluates the learning-rate
    # schedule once per variable; these let it do the same update in a fraction of the ops.
    PrivateSymbol("keras.optimizers:AdamW", "_apply_weight_decay", "overridden by FusedAdamW (schedule once per step)"),
    PrivateSymbol("keras.optimizers:AdamW", "_backend_update_step",
                  "overridden by FusedAdamW (bias-correction powers once per step)"),
    PrivateSymbol("keras.optimizers:AdamW", "_use_weight_decay", "which variables AdamW decays (decays_weight)"),
    PrivateSymbol("keras.optimizers:AdamW", "_get_variable_index", "a variable's slot index (adam_slots)"),
    PrivateSymbol("keras.optimizers:AdamW", "_momentums", "Adam's first moments (adam_slots)"),
    PrivateSymbol("keras.optimizers:AdamW", "_velocities", "Adam's second moments (adam_slots)"),
    PrivateSymbol("keras.optimizers:AdamW", "_distribution_strategy", "the strategy updates run under (merge_updates)"),
    PrivateSymbol("tensorflow:__internal__.distribute.interim", "maybe_merge_call",
                  "how Keras's TensorFlow optimizer updates each replica's variables (merge_updates)"),
)


def missing_private_symbols() -> list[str]:
    """`owner.name — why` of every private symbol the installed Keras no longer has."""
    import keras

    missing = []
    for symbol in PRIVATE_SYMBOLS:
        module_name, _, path = symbol.owner.partition(":")
        try:
            owner = importlib.import_module(module_name)
            for part in filter(None, path.split(".")):
                owner = getattr(owner, part)
        except (ImportError, AttributeError):
            missing.append(f"{symbol.owner} (module, class or method gone) - {symbol.why}")
            continue
        if path == "BackupAndRestore":  # instance attributes, set in __init__
            owner = owner(backup_dir="/nonexistent-vidcls-check")
        elif path == "Dense":  # an attribute of a built layer
            owner = keras.layers.Dense(1)
            owner.build((None, 1))
        elif path == "AdamW":  # a built optimizer's slots
            owner = keras.optimizers.AdamW()
            owner.build([keras.Variable([0.0])])
        elif path == "Model" and symbol.name == "_distribute_strategy":
            owner = keras.Sequential([keras.layers.Dense(1)])
        if callable(owner) and path.endswith(".fit"):
            present = symbol.name in inspect.getsource(owner)
        else:
            present = hasattr(owner, symbol.name)
        if not present:
            missing.append(f"{symbol.owner}.{symbol.name} - {symbol.why}")
    return missing


def check_private_symbols() -> None:
    """Raises VidclsError naming every private symbol the installed Keras lacks."""
    missing = missing_private_symbols()
    if missing:
        import keras

        raise VidclsError(f"Keras {keras.__version__} lacks private names vidcls relies on (setup.cfg pins the tested "
                          "version): " + "; ".join(missing))


def flatten_layers(model) -> list:
    """Every layer inside `model`, nested ones included (not `model` itself)."""
    return list(model._flatten_layers(include_self=False))


def base_kernel(layer):
    """The frozen kernel W of a LoRA-enabled Dense/EinsumDense (its `kernel` is W + A B)."""
    return layer._kernel


def adam_slots(optimizer, variable) -> tuple:
    """Adam's first and second moment variables of `variable`."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def decays_weight(optimizer, variable) -> bool:
    """Whether AdamW applies weight decay to `variable` (its exclusion lists)."""
    return optimizer._use_weight_decay(variable)


def merge_updates(optimizer, function, *args):
    """Calls `function(distribution, *args)` where each replica's variables can be updated,
    as Keras's TensorFlow optimizer does (one replica: at once)."""
    import tensorflow as tf

    return tf.__internal__.distribute.interim.maybe_merge_call(function, optimizer._distribution_strategy, *args)


def set_initial_epoch(model, epoch: int) -> None:
    """Tells `fit()` to start at `epoch`, as Keras's own BackupAndRestore does on restore."""
    model._initial_epoch = int(epoch)


def patch_multi_worker_reduce() -> None:
    """Keras 3.15's training step averages each replica's logs under a multi-worker
    strategy with `strategy.reduce("MEAN", value, axis=0)`, which fails for the scalar
    loss and metrics ("Invalid reduction dimension 0 for input with 0 dimensions",
    keras-team/keras#20585). This wraps Keras's `reduce_per_replica` so that, under
    MultiWorkerMirroredStrategy only, scalars are averaged across replicas (axis None);
    everything else goes to Keras's own function."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica
    if getattr(original, "_vidcls_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            return original(values, strategy, reduction)

        def reduce(value):
            if not isinstance(value, tf.distribute.DistributedValues):
                return value
            rank = strategy.experimental_local_results(value)[0].shape.rank
            return strategy.reduce("MEAN", value, axis=0 if rank else None)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica._vidcls_patched = True
    keras_trainer.reduce_per_replica = reduce_per_replica


def build_from_local_replica(model, iterator, keras_build) -> None:
    """`Model._maybe_symbolic_build` with several replicas: Keras sums the first batch
    across replicas (AddN) before building the metrics, which fails under
    MultiWorkerMirroredStrategy (keras-team/keras#20585) and, under MirroredStrategy,
    whenever the replicas' shares differ: a validation set smaller than the global batch
    and not divisible by the replicas (19 clips on 2 devices: 10 + 9). Only shapes and
    dtypes matter, so this builds from the first replica's batch. With one replica it
    calls `keras_build` (Keras's own method)."""
    import tensorflow as tf

    strategy = getattr(model, "_distribute_strategy", None)
    if iterator is None or strategy is None or strategy.num_replicas_in_sync == 1:
        keras_build()
        return
    for _, _, batches in iterator:
        batch = next(batches)
        data_batch = tf.nest.map_structure(
            lambda value: strategy.experimental_local_results(value)[0]
            if isinstance(value, tf.distribute.DistributedValues) else value, batch)
        break
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)
