"""What one training run returns: where the outputs are, how long it took, what it saw, on what hardware."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from research_tuner.lib.shared.hardware import HardwarePlan


@dataclass(frozen=True)
class TrainingResult:
    adapter_dir: Path
    tokenizer_dir: Path
    log: pd.DataFrame
    loss_curve_png: Path
    base_model: str
    trainable_params: int
    total_params: int
    tokens_seen: int
    wall_time_s: float
    final_train_loss: float | None
    final_eval_loss: float | None
    resumed_from_step: int | None
    device: str
    dtype: str
    #: Optimizer steps done in total (across resumed runs) and planned.
    global_step: int = 0
    max_steps: int = 0
    #: Seconds spent in training steps in this call (no evaluation, checkpointing or loading), and the
    #: training tokens per second over them.
    train_time_s: float = 0.0
    tokens_per_second: float | None = None
    quantized_4bit: bool = False
    merged_dir: Path | None = None
    #: Padded tokens / all tokens in this call's training batches (0 = no padding).
    padding_waste: float | None = None
    #: The precision `auto` resolved to, the attention kernel, and the other choices for this machine.
    hardware: HardwarePlan | None = None
    #: Data-parallel training processes (1: trained in the calling process).
    processes: int = 1
    #: Whether activations were recomputed in the backward pass, and the memory estimate that decided it when
    #: training.gradient_checkpointing is 'auto' (lib/training/memory.py; None otherwise).
    gradient_checkpointing: bool = False
    memory_estimate: dict | None = None
