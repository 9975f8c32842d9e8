"""The configured TRL `SFTTrainer`: the LoRA-wrapped model, the datasets, the hardware plan's fast paths, and a
subclass that samples length-grouped batches, counts padding and runs the loss over labelled positions only
(completion_loss.py) where the plan says so; padding-free rows, regional compilation and gradient checkpointing
'auto' as the settings say."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from research_tuner.lib.shared.hardware import apply_process_settings, detect_hardware
from research_tuner.lib.shared.models import hub_token, load_tokenizer, preferred_dtype
from research_tuner.lib.training.base_model import load_base_model, lora_config
from research_tuner.lib.training.batching import (
    LengthBucketSampler,
    PaddingStats,
    batch_token_counts,
    padding_free_collator,
)
from research_tuner.lib.training.checkpoints import SAVE_TOTAL_LIMIT
from research_tuner.lib.training.compiled import compile_decoder_layers
from research_tuner.lib.training.completion_loss import can_use as completion_loss_can_use
from research_tuner.lib.training.completion_loss import completion_nll
from research_tuner.lib.training.data import to_prompt_completion
from research_tuner.lib.training.lora_fast import no_input_cast_while_training, swap_lora_dropout
from research_tuner.lib.training.memory import estimate_memory

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings

log = logging.getLogger(__name__)


def steps_per_epoch(n_examples: int, settings: TrainingSettings) -> int:
    batches = math.ceil(n_examples / settings.per_device_batch_size)
    return max(1, math.ceil(batches / settings.gradient_accumulation_steps))


def world_size() -> int:
    """Processes of the data-parallel launch this process belongs to (1 when not launched that way)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def build_trainer(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    settings: TrainingSettings,
    output_dir: Path,
    *,
    callbacks: Sequence[Any] = (),
    max_steps: int | None = None,
    eval_on_start: bool = True,
    report_to: str = "none",
):
    """The configured `SFTTrainer` (LoRA-wrapped model, prepared datasets), without training it.

    `trainer.hardware` is the plan it was configured with, `trainer.padding` counts the real and padded
    tokens of the training batches (of this process's batches, under data parallelism), and
    `trainer.memory` is the estimate that decided gradient checkpointing 'auto' (None otherwise).

    In a data-parallel launch (WORLD_SIZE > 1) each process accumulates gradient_accumulation_steps / processes
    batches, so the effective batch is that of the settings.
    """
    from transformers import PrinterCallback
    from trl import SFTConfig

    if len(train) == 0:
        raise ValueError("no training examples")
    token = hub_token(settings.hf_token_env)
    plan = detect_hardware(settings.precision, attention=settings.attention, loss_kernel=settings.loss_kernel)
    apply_process_settings(plan)
    dtype = preferred_dtype(plan.precision)
    processes = world_size()
    accumulation = settings.accumulation_per_process(processes)
    tokenizer = load_tokenizer(settings.base_model, token=token)
    model = load_base_model(settings, plan, tokenizer, token)

    has_eval = len(validation) > 0
    if not has_eval:
        log.warning("no validation examples: training without validation loss")
    epoch_steps = steps_per_epoch(len(train), settings)
    eval_steps = max(1, math.ceil(epoch_steps / settings.evals_per_epoch))

    args = SFTConfig(
        output_dir=str(Path(output_dir) / "checkpoints"),
        # optimisation
        learning_rate=settings.learning_rate,
        lr_scheduler_type=settings.lr_scheduler,
        warmup_steps=settings.warmup_ratio,  # transformers 5: a float below 1 is a fraction of the steps
        per_device_train_batch_size=settings.per_device_batch_size,
        per_device_eval_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=settings.epochs,
        max_steps=max_steps if max_steps is not None else -1,
        seed=settings.seed,
        # TRL's default is on; 'auto' starts off and is decided once the LoRA model exists (below)
        **_checkpointing_args(SFTConfig, settings.gradient_checkpointing is True),
        bf16=dtype == torch.bfloat16,  # TRL's default is True, even for a float32 model on a CPU
        fp16=dtype == torch.float16,
        tf32=plan.tf32 or None,
        optim=plan.optim,
        use_cpu=plan.device == "cpu",  # transformers refuses bf16 without a GPU unless told it is a CPU run
        # data: batches of similar-length examples (see lib/batching.py); no packing, so each step holds the
        # effective batch's examples; padding-free rows come from our collator (TRL's flag refuses max_length)
        max_length=settings.max_length,
        packing=False,
        padding_free=False,
        completion_only_loss=True,  # TRL's default for prompt-completion data, made explicit
        assistant_only_loss=False,
        dataloader_num_workers=plan.dataloader_workers,
        dataloader_pin_memory=plan.pin_memory,
        dataloader_persistent_workers=plan.dataloader_workers > 0,
        # every LoRA weight gets a gradient at every step: no search for unused parameters under DDP
        ddp_find_unused_parameters=False if processes > 1 else None,
        # evaluation, logging, checkpoints
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps if has_eval else None,
        eval_on_start=eval_on_start and has_eval,
        logging_strategy="steps",
        logging_steps=settings.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=SAVE_TOTAL_LIMIT,
        include_num_input_tokens_seen="non_padding",
        report_to=report_to,  # "mlflow": TRL's MLflow callback (lib/shared/tracking.py sets its variables)
        disable_tqdm=True,
        push_to_hub=False,
    )
    trainer = _trainer_class(settings.batching == "length_grouped")(
        model=model,
        args=args,
        train_dataset=to_prompt_completion(train),
        eval_dataset=to_prompt_completion(validation) if has_eval else None,
        processing_class=tokenizer,
        peft_config=lora_config(settings),
        callbacks=list(callbacks),
        data_collator=padding_free_collator(tokenizer.pad_token_id) if settings.padding_free else None,
    )
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints every log dict; `progress` reports instead
    trainer.hardware = plan
    trainer.memory = None
    if settings.gradient_checkpointing == "auto" and plan.device == "cuda":
        trainer.memory = estimate_memory(
            trainer.model,
            tokens=settings.per_device_batch_size * settings.max_length,
            device_bytes=torch.cuda.get_device_properties(model.device).total_memory,
            autocast_dtype=dtype if dtype != torch.float32 else None,
        )
        if trainer.memory.needs_checkpointing:  # Trainer.train() turns it on from the arguments
            for name, value in _checkpointing_args(SFTConfig, True).items():
                setattr(trainer.args, name, value)
        log.info("gradient checkpointing %s: %s", "on" if trainer.memory.needs_checkpointing else "off",
                 trainer.memory.summary())
    if plan.device == "cpu":
        swap_lora_dropout(trainer.model)
    if settings.compile:
        compile_decoder_layers(trainer.model)
    if (args.bf16 or args.fp16) and not getattr(model, "is_loaded_in_4bit", False):
        trainer.add_callback(no_input_cast_while_training())
    return trainer


def _trainer_class(length_grouped: bool):
    """`SFTTrainer` that counts the padding of its training batches and, when `length_grouped`, samples
    training examples with `LengthBucketSampler`."""
    from peft import PeftModel
    from trl import SFTTrainer

    class _SFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            self.padding = PaddingStats()
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if not length_grouped or dataset is None or "input_ids" not in dataset.column_names:
                return super()._get_train_sampler(train_dataset)
            # one optimizer step over all processes: Accelerate hands the per-device batches of this order to
            # the processes in turn, so each step's examples (all ranks together) have similar lengths
            step = self.args.train_batch_size * self.args.gradient_accumulation_steps * self.args.world_size
            lengths = [len(ids) for ids in dataset["input_ids"]]
            return LengthBucketSampler(lengths, step_size=step, seed=self.args.seed)

        def training_step(self, model, inputs, *args, **kwargs):
            self.padding.add(inputs)
            return super().training_step(model, inputs, *args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs or not self._completion_loss_applies(model, inputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            # accelerate puts autocast around the model's forward; this path calls the decoder directly
            with self.accelerator.autocast():
                result = completion_nll(model.get_base_model(), inputs, num_items_in_batch, self.hardware.loss_kernel)
            mode = "train" if model.training else "eval"
            n = max(result.n_tokens, 1)
            if not math.isnan(result.entropy_sum):  # Liger computes no entropy
                self._metrics[mode]["entropy"].append(result.entropy_sum / n)
            self._metrics[mode]["mean_token_accuracy"].append(result.n_correct / n)
            if mode == "train":
                self._total_train_tokens += batch_token_counts(inputs)[0]
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return result.loss

        def _completion_loss_applies(self, model, inputs) -> bool:
            """The project's completion loss (lib/completion_loss.py) where the plan chose it (on a CPU by
            default), in one process with the plain next-token loss; TRL's fused head otherwise (its GPU kernel
            already skips unlabelled positions, and a DDP wrapper must see the forward call)."""
            return (
                self.hardware.completion_loss
                and isinstance(model, PeftModel)
                and ("attention_mask" in inputs or "position_ids" in inputs)
                and self.args.loss_type == "nll"
                and self.label_smoother is None
                and self.compute_loss_func is None
                and not self.aux_loss_enabled
                and completion_loss_can_use(model.get_base_model())
            )

    return _SFTTrainer


def _checkpointing_args(config_class, enabled: bool) -> dict[str, Any]:
    """Activation (gradient) checkpointing arguments under the name this transformers version uses."""
    kwargs = {"use_reentrant": False} if enabled else None
    if "activation_checkpointing" in config_class.__dataclass_fields__:  # transformers >= 5.x renamed them
        return {"activation_checkpointing": enabled, "activation_checkpointing_kwargs": kwargs}
    return {"gradient_checkpointing": enabled, "gradient_checkpointing_kwargs": kwargs}
