"""What `vidcls train` returns (and writes to result.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    epochs_run: int
    best_val_loss: float | None
    best_val_accuracy: float | None
    seconds: float
    parameters: int
    trainable_parameters: int | None = None
    flops_per_clip: int | None = None
    initialised_from: str | None = None
    model: str | None = None  # absent from runs trained before 0.1.0's result.json had it
    lora_rank: int = 0
    already_done: bool = False

    def to_dict(self) -> dict:
        return {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(self).items()}

    def describe(self) -> str:
        """One line for the command line."""
        if self.already_done:
            return f"{self.run_dir} was finished before ({self.epochs_run} epochs; {self._validation()})"
        if self.lora_rank:
            share = 100.0 * (self.trainable_parameters or 0) / max(self.parameters, 1)
            return (f"fine-tuned {self.model} with LoRA rank {self.lora_rank}: {self.trainable_parameters:,} trainable "
                    f"parameters of {self.parameters:,} ({share:.2f}%), {self.epochs_run} epochs in {self.seconds:.1f} s; "
                    f"{self._validation()}; merged model in {self.run_dir}/best.keras")
        return (f"trained {self.model} for {self.epochs_run} epochs in {self.seconds:.1f} s; {self._validation()}; "
                f"run in {self.run_dir}")

    def _validation(self) -> str:
        if self.best_val_loss is None and self.best_val_accuracy is None:
            return "no validation split (best.keras: the lowest training loss)"
        return f"best val loss {self.best_val_loss}, val accuracy {self.best_val_accuracy}"
