"""Choosing the distribution strategy, numeric precision and XLA for this machine.

Each choice that cannot be honoured here is downgraded with a message that says why,
instead of failing deep inside TensorFlow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from vidcls.config import TrainConfig

logger = logging.getLogger("vidcls")

# Measured on the 2-core development CPU (ENVIRONMENT.md): attention-BiLSTM, batch 64.
CPU_MIXED_PRECISION_SLOWDOWN = "~2x slower"


@dataclass
class Runtime:
    strategy: object
    precision: str
    jit_compile: bool
    gpus: int
    notes: list[str] = field(default_factory=list)

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def describe(self) -> dict:
        return {
            "strategy": type(self.strategy).__name__,
            "replicas": self.replicas,
            "gpus": self.gpus,
            "precision": self.precision,
            "xla": self.jit_compile,
            "notes": self.notes,
        }


def resolve_runtime(config: TrainConfig) -> Runtime:
    """Picks MirroredStrategy over all GPUs when there are several, else the default
    strategy; sets the global dtype policy; decides whether XLA can be used."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    notes = []
    precision = "float32"
    if config.mixed_precision:
        precision = "mixed_float16"
        if not gpus:
            notes.append(
                f"mixed_float16 requested but no GPU is visible: on CPU it runs {CPU_MIXED_PRECISION_SLOWDOWN} "
                "than float32 (it pays off on GPUs with tensor cores); continuing as asked"
            )
    keras.config.set_dtype_policy(precision)
    jit_compile = config.xla
    if jit_compile and strategy.num_replicas_in_sync > 1 and not gpus:
        jit_compile = False
        notes.append("XLA is not supported with several replicas on CPU devices; training without XLA")
    for note in notes:
        logger.warning(note)
    return Runtime(strategy=strategy, precision=precision, jit_compile=jit_compile, gpus=len(gpus), notes=notes)
