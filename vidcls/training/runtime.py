"""Choosing the distribution strategy, numeric precision and XLA for this machine.

Each choice that cannot be honoured here is downgraded with a message that says why,
instead of failing deep inside TensorFlow. `resolve_runtime` must run before any other
TensorFlow operation of the process: logical CPU devices and the multi-worker cluster
can only be set up before TensorFlow starts.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

from vidcls.config import TrainConfig
from vidcls.errors import VidclsError
from vidcls.keras_compat import patch_multi_worker_reduce

logger = logging.getLogger("vidcls")

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
# Short names accepted by --precision.
PRECISION_ALIASES = {"float32": "float32", "fp32": "float32", "float16": "mixed_float16", "fp16": "mixed_float16",
                     "bfloat16": "mixed_bfloat16", "bf16": "mixed_bfloat16"}
# The policy `auto` takes for the number format features.resolve_precision picks on this machine.
AUTO_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# Measured on the 2-core development CPU: attention-BiLSTM, batch 64, one device (~2x) and
# two logical devices (benchmarks/gpu_bench.py: 265 -> 15.5 samples/s).
CPU_MIXED_PRECISION_SLOWDOWN = "2-17x slower"
# Measured here: attention_lstm, T=16, D=2048, batch 32: 470 samples/s with XLA, 1230 without.
CPU_XLA_SLOWDOWN = "~2.6x slower"


@dataclass
class Runtime:
    strategy: object
    precision: str
    jit_compile: bool
    gpus: int
    notes: list[str] = field(default_factory=list)
    workers: int = 1
    worker_index: int = 0
    is_chief: bool = True
    deterministic: bool = False

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def describe(self) -> dict:
        import tensorflow as tf

        multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        return {
            # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy; say what was asked for.
            "strategy": "MultiWorkerMirroredStrategy" if multi_worker else type(self.strategy).__name__,
            "replicas": self.replicas,
            "workers": self.workers,
            "worker_index": self.worker_index,
            "gpus": self.gpus,
            "precision": self.precision,
            "xla": self.jit_compile,
            "deterministic": self.deterministic,
            "notes": self.notes,
        }


def normalise_precision(value: str) -> str:
    """`train.precision` or a --precision short name as a Keras dtype policy name."""
    policy = PRECISION_ALIASES.get(value, value)
    if policy not in PRECISIONS:
        raise VidclsError(f"Expected train.precision to be one of {', '.join(PRECISIONS)} (or float16, bfloat16); "
                          f"received '{value}'")
    return policy


def resolve_runtime(config: TrainConfig) -> Runtime:
    """Picks the strategy (MultiWorkerMirroredStrategy when TF_CONFIG is set;
    MirroredStrategy over several GPUs, or over `devices` logical CPU devices; else the
    default), sets the global dtype policy, and decides whether XLA can be used."""
    import keras
    import tensorflow as tf

    precision = normalise_precision(config.precision)
    if config.grad_accum_steps < 1:
        raise VidclsError(f"Expected train.grad_accum_steps >= 1; received {config.grad_accum_steps}")
    cluster = _cluster()
    gpus = tf.config.list_physical_devices("GPU")
    notes = []
    if cluster:
        if config.devices:
            notes.append(f"train.devices={config.devices} is ignored under TF_CONFIG: each worker uses all its GPUs (or its CPU)")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        patch_multi_worker_reduce()
    else:
        devices = _devices(config.devices, gpus)
        strategy = tf.distribute.MirroredStrategy(devices) if len(devices) > 1 else tf.distribute.get_strategy()
    precision, reason = _choose_precision(precision, gpus)
    if reason:
        notes.append(reason)
    keras.config.set_dtype_policy(precision)
    jit_compile = config.xla
    if jit_compile and strategy.num_replicas_in_sync > 1 and not gpus:
        jit_compile = False
        notes.append("XLA is not supported with several replicas on CPU devices (TensorFlow cannot place the "
                     "replicas' variables); training without XLA")
    elif jit_compile and not gpus:
        notes.append(f"XLA on CPU is {CPU_XLA_SLOWDOWN} than without for the recurrent models; it pays off on GPUs; "
                     "continuing as asked")
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    for note in notes:
        logger.warning(note)
    return Runtime(strategy=strategy, precision=precision, jit_compile=jit_compile, gpus=len(gpus), notes=notes,
                   deterministic=config.deterministic, **(cluster or {}))


def _choose_precision(precision: str, gpus: list) -> tuple[str, str]:
    """The Keras policy to train in, and a note when it is slow on this machine.

    `auto`: mixed_float16 on GPUs with tensor cores, mixed_bfloat16 on CPUs with AMX or
    AVX512-BF16 (with vidcls's LSTM its training step is ~1.5x cheaper than float32
    there), float32 elsewhere.
    """
    from vidcls.features import cpu_bf16_flags, resolve_precision

    if precision == "auto":
        chosen = resolve_precision("auto")
        logger.info("Training precision %s (%s)", AUTO_POLICIES[chosen.name], chosen.reason)
        return AUTO_POLICIES[chosen.name], ""
    if gpus or precision == "float32":
        return precision, ""
    if precision == "mixed_float16":
        return precision, (f"mixed_float16 requested but no GPU is visible: on CPU it runs {CPU_MIXED_PRECISION_SLOWDOWN} "
                           "than float32 (it pays off on GPUs with tensor cores); continuing as asked")
    if not cpu_bf16_flags():
        return precision, ("mixed_bfloat16 requested on a CPU without bfloat16 instructions: it is emulated and slower "
                           "than float32; continuing as asked")
    return precision, ""


def _devices(requested: int, gpus: list) -> list[str]:
    """The devices to mirror over: the first `requested` GPUs (all when 0), or without
    GPUs, `requested` logical CPU devices."""
    if requested < 0:
        raise VidclsError(f"Expected train.devices >= 0 (0: all GPUs); received {requested}")
    if gpus:
        count = requested or len(gpus)
        if count > len(gpus):
            raise VidclsError(f"--devices (train.devices) {count} asks for more GPUs than the {len(gpus)} visible "
                              f"({', '.join(gpu.name for gpu in gpus)}); check CUDA_VISIBLE_DEVICES")
        return [f"/gpu:{index}" for index in range(count)]
    if requested <= 1:
        return []
    _split_cpu(requested)
    return [f"/cpu:{index}" for index in range(requested)]


def _split_cpu(count: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        existing = len(tf.config.list_logical_devices("CPU"))
        if existing != count:
            raise VidclsError(
                f"--devices (train.devices) {count}: TensorFlow already started in this process with {existing} CPU device(s); "
                "logical devices can only be set before it starts (run `vidcls train` in a new process)") from None
    logger.info("no GPU visible: the CPU is split into %d logical devices, one replica each", count)


def _cluster() -> dict | None:
    """This process's place in the TF_CONFIG cluster, or None without TF_CONFIG."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        task_type, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise VidclsError(f"TF_CONFIG is set but is not a cluster spec with a task ({error}); received {text!r}") from None
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    # The chief writes the run directory: the "chief" task, or worker 0 when there is none.
    is_chief = task_type == "chief" or (task_type == "worker" and index == 0 and "chief" not in cluster)
    position = index + (1 if task_type == "worker" and "chief" in cluster else 0)
    return {"workers": workers, "worker_index": position, "is_chief": is_chief}
