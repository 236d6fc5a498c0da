"""The number format the backbone computes in during extraction (`--precision`).

`auto` picks the fastest format the hardware has kernels for: float16 on GPUs with tensor
cores (compute capability 7.0 or newer), bfloat16 on CPUs with AMX or AVX512-BF16 (oneDNN
runs bfloat16 convolutions on them several times faster than float32), float32 elsewhere.
The cache records the format it was filled in; `predict`, `serve` and `export` embed with
the same one, so a model always sees features computed as its training features were.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidcls.errors import VidclsError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """The chosen format and why, for the extraction summary and the logs."""

    name: str
    reason: str


def resolve_precision(requested: str) -> Precision:
    """`requested` (one of `PRECISIONS`) as the format the backbone will use here.

    Raises:
        VidclsError: an unknown format.
    """
    if requested not in PRECISIONS:
        raise VidclsError(f"Expected --precision (extract.precision) to be one of {', '.join(PRECISIONS)}; "
                          f"received '{requested}'")
    gpus = _tensor_core_gpus()
    if requested == "auto":
        if gpus:
            return Precision("float16", f"auto: a GPU with tensor cores ({gpus[0]})")
        flags = cpu_bf16_flags()
        if flags:
            return Precision("bfloat16", f"auto: the CPU has {', '.join(flags)}")
        return Precision("float32", "auto: no GPU with tensor cores and no bfloat16 instructions on this CPU")
    if requested == "bfloat16" and not gpus and not cpu_bf16_flags():
        return Precision("bfloat16", "as asked; this CPU has no bfloat16 instructions, so it is emulated (slow)")
    if requested == "float16" and not gpus:
        return Precision("float16", "as asked; CPUs have no fast float16 convolutions (float32 or bfloat16 is faster)")
    return Precision(requested, "as asked")


def cpu_bf16_flags() -> list[str]:
    """The CPU's bfloat16 instruction sets, from /proc/cpuinfo (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            line = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        return []
    flags = set(line.partition(":")[2].split())
    return [flag for flag in CPU_BF16_FLAGS if flag in flags]


def _tensor_core_gpus() -> list[str]:
    """Names of the visible GPUs of compute capability 7.0 or newer."""
    import tensorflow as tf

    names = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if tuple(details.get("compute_capability") or (0, 0)) >= (7, 0):
            names.append(details.get("device_name", gpu.name))
    return names
