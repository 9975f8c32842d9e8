"""The TRL `SFTTrainer` baselines of the training benchmarks: TRL's defaults, and TRL as a competent user tunes it.

Each way trains the same LoRA adapter on the same prompt-completion examples with the same batch, steps and
optimisation as the project's `train_lora`, and is timed by the same code: the project's progress callback
(research_tuner/lib/training/callbacks.py), which counts the time spent in training steps and leaves out
evaluation, logging and checkpoint saves (the end-of-run save included), for every way alike.

- `trl_defaults`: only what the run needs (output dir, steps, batch, optimisation, seed, no reporting) and,
  without a GPU, `use_cpu=True` (transformers accepts bf16 without a GPU only so). Everything else is TRL's
  default: float32 weights with bfloat16 autocast, gradient checkpointing on, random batches padded to their
  longest example.
- `trl_tuned_grouped`: what a competent user sets in a few lines: bfloat16 weights (`model_init_kwargs`),
  gradient checkpointing off, length-grouped batches (`train_sampling_strategy="group_by_length"`).
- `trl_tuned_padding_free`: the same, with padding-free batches (`padding_free=True`) instead of grouping: a
  batch is one row of its examples end to end, with positions restarting at each (transformers then keeps
  attention within each example).

Nothing here is CPU-specific (`use_cpu` is set only without CUDA), so a GPU benchmark can call `train_trl` with
the same ways and pass the GPU's own choices (an attention kernel, say) through `overrides`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

WAYS = ("trl_defaults", "trl_tuned_grouped", "trl_tuned_padding_free")
TUNED = WAYS[1:]

#: The settings each tuned way adds to TRL's defaults, as they are written into SFTConfig.
TUNING: dict[str, dict[str, Any]] = {
    "trl_defaults": {},
    "trl_tuned_grouped": {"model_init_kwargs": {"dtype": "bfloat16"}, "gradient_checkpointing": False,
                          "train_sampling_strategy": "group_by_length"},
    "trl_tuned_padding_free": {"model_init_kwargs": {"dtype": "bfloat16"}, "gradient_checkpointing": False,
                               # TRL enforces no max_length on padding-free rows without packing and asks for None;
                               # the benchmark's examples are all shorter than the default 1,024 tokens
                               "padding_free": True, "max_length": None},
}


def sft_config(way: str, output_dir: Path, *, max_steps: int, batch: int, accumulation: int, seed: int,
               learning_rate: float, scheduler: str, warmup: float, **overrides):
    """The `SFTConfig` of `way`; `overrides` win over both the run's settings and the way's tuning."""
    from trl import SFTConfig

    if way not in TUNING:
        raise ValueError(f"unknown TRL way {way!r}; one of {WAYS}")
    values: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulation,
        learning_rate=learning_rate,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup,  # transformers 5: a float below 1 is a fraction of the steps
        seed=seed,
        report_to="none",
        disable_tqdm=True,
    )
    if not torch.cuda.is_available():
        values["use_cpu"] = True
    values.update(TUNING[way])
    values.update(overrides)
    fields = SFTConfig.__dataclass_fields__
    if values.get("train_sampling_strategy") == "group_by_length" and "train_sampling_strategy" not in fields:
        values.pop("train_sampling_strategy")  # transformers before 5 names it so
        values["group_by_length"] = True
    if "gradient_checkpointing" in values and "activation_checkpointing" in fields:  # transformers 5 renamed it
        values["activation_checkpointing"] = values.pop("gradient_checkpointing")
    return SFTConfig(**values)


def train_trl(way: str, train_dataset, model_path: str, tokenizer, lora_config, output_dir: Path, *,
              max_steps: int, batch: int, accumulation: int, seed: int, learning_rate: float, scheduler: str,
              warmup: float, callbacks: Sequence[Any] = (), **overrides) -> dict:
    """Train `way` on `train_dataset` (prompt-completion rows, as `to_prompt_completion` makes them) and save the
    adapter to `output_dir/adapter`. Returns the run's figures (see the keys); `train_seconds` is the progress
    callback's time in training steps."""
    from counting_collator import CountingCollator
    from transformers import PrinterCallback
    from trl import SFTTrainer

    from research_tuner.lib.training.callbacks import progress_callback

    output_dir = Path(output_dir)
    args = sft_config(way, output_dir / "checkpoints", max_steps=max_steps, batch=batch, accumulation=accumulation,
                      seed=seed, learning_rate=learning_rate, scheduler=scheduler, warmup=warmup, **overrides)
    tracker = progress_callback(None)
    trainer = SFTTrainer(model=model_path, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                         peft_config=lora_config, callbacks=[tracker, *callbacks])
    trainer.remove_callback(PrinterCallback)  # as the project's trainer: it prints every log dict when tqdm is off
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    output = trainer.train()
    trainer.model.save_pretrained(output_dir / "adapter")
    tokenizer.save_pretrained(output_dir / "tokenizer")
    trainable, total = trainer.model.get_nb_trainable_parameters()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "config": {
            "gradient_checkpointing": bool(getattr(args, "activation_checkpointing", None)
                                           or getattr(args, "gradient_checkpointing", False)),
            "bf16_autocast": bool(args.bf16),
            "weights_dtype": str(next(trainer.model.get_base_model().parameters()).dtype).removeprefix("torch."),
            "sampler": getattr(args, "train_sampling_strategy", None)
                       or ("group_by_length" if getattr(args, "group_by_length", False) else "random"),
            "padding_free": bool(args.padding_free),
            "attn_implementation": trainer.model.config._attn_implementation,
            "threads": torch.get_num_threads(),
            "optim": str(getattr(args.optim, "value", args.optim)),
        },
        "steps": int(trainer.state.global_step),
        "train_seconds": tracker.train_time_s,
        "real_tokens": counter.stats.real_tokens,
        "batch_tokens": counter.stats.batch_tokens,
        "padding_waste": counter.stats.padding_waste,
        "base_params": int(total - trainable),
        "trainable_params": int(trainable),
        "mean_train_loss": float(output.training_loss),
        "final_train_loss": float(losses[-1]) if losses else None,
        "dataset_tokens": dataset_tokens(trainer.train_dataset),
        "adapter_dir": str(output_dir / "adapter"),
    }


def dataset_tokens(dataset) -> dict:
    """Tokens of the tokenized training examples: all of them (prompt and completion) and those that carry a label
    (the completion's)."""
    return {"examples": len(dataset), "all": sum(len(ids) for ids in dataset["input_ids"]),
            "completion": sum(sum(label != -100 for label in labels) for labels in dataset["labels"])}
