"""The ways the GPU benchmark trains: TRL `SFTTrainer` baselines and the project's `train_lora`, each a `Way`
(which trainer, what it overrides), run by `run_way` with the same model folder, data, LoRA and step clock.

A baseline is TRL with `SFTConfig` overrides on top of `trl_args` (the shared, measurement-only arguments):
`trl_defaults` overrides nothing; a tuned TRL baseline is another `Way("trl", {...})` with the options it
tunes. A project way is the paper profile's training section with `TrainingSettings` overrides.
"""

from __future__ import annotations

import gc
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from gpu.measure import rate, step_clock

#: The paper profile's batch: 2 examples x 4 accumulation steps = 8 per optimizer step.
BATCH, ACCUMULATION = 2, 4
MAX_LENGTH = 2048


@dataclass(frozen=True)
class Way:
    trainer: str  # "trl" or "project"
    overrides: dict = field(default_factory=dict)
    #: What the machine must have: "cuda", "liger".
    needs: tuple[str, ...] = ()
    note: str = ""


def trl_args(output_dir: Path, steps: int, device: str) -> dict:
    """SFTConfig arguments every TRL way shares: the paper's batch, steps, optimisation and 2048-token limit, and
    what the measurement needs (a loss and a token count at every step, no checkpoints, no reporting). All else
    is TRL's default: float32 weights under bf16 autocast, gradient checkpointing, random batches, SDPA."""
    return dict(
        output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=ACCUMULATION, learning_rate=2e-4, lr_scheduler_type="cosine",
        warmup_steps=0.03, seed=0, max_length=MAX_LENGTH, logging_steps=1, save_strategy="no",
        include_num_input_tokens_seen="non_padding", report_to="none", disable_tqdm=True, use_cpu=device == "cpu",
    )


def paper_settings(model_dir: Path, **overrides):
    """The paper profile's training section for the benchmark's model, with `overrides`, no evaluation and no
    checkpoints inside the timed steps, a loss logged at every step."""
    from research_tuner.settings import load_profile

    training = {"base_model": str(model_dir), "eval_on_start": False, "logging_steps": 1, "save_steps": 10**6,
                **overrides}
    return load_profile("paper", overrides={"training": training}).training


def _run_trl(way: Way, model_dir: Path, frame, steps: int, device: str, work: Path, clock) -> dict:
    from trl import SFTConfig, SFTTrainer

    from research_tuner.lib.shared.models import load_tokenizer
    from research_tuner.lib.training.base_model import lora_config
    from research_tuner.lib.training.data import to_prompt_completion

    args = SFTConfig(**{**trl_args(work, steps, device), **way.overrides})
    trainer = SFTTrainer(
        model=str(model_dir),  # TRL loads it, with its own defaults
        args=args,
        train_dataset=to_prompt_completion(frame),
        processing_class=load_tokenizer(str(model_dir)),  # the project's (pad distinct from EOS): the same tokens
        peft_config=lora_config(paper_settings(model_dir)),
        callbacks=[clock],
    )
    trainer.train()
    trainable, total = trainer.model.get_nb_trainable_parameters()
    weights = next(p for p in trainer.model.parameters() if not p.requires_grad)
    config = {"gradient_checkpointing": bool(getattr(args, "activation_checkpointing", args.gradient_checkpointing)),
              "bf16_autocast": bool(args.bf16), "weights_dtype": str(weights.dtype).removeprefix("torch."),
              "attn_implementation": trainer.model.config._attn_implementation, "padding_free": bool(args.padding_free),
              "per_device_batch": args.per_device_train_batch_size, "accumulation": args.gradient_accumulation_steps}
    result = {"config": config, "base_params": int(total - trainable), "trainable_params": int(trainable)}
    del trainer
    return result


def _run_project(way: Way, model_dir: Path, frame, steps: int, device: str, work: Path, clock) -> dict:
    from research_tuner.lib.training.train import train_lora

    settings = paper_settings(model_dir, **way.overrides)
    result = train_lora(frame, frame.iloc[:0], settings, work, max_steps=steps, callbacks=[clock])
    plan = result.hardware
    config = {"gradient_checkpointing": result.gradient_checkpointing, "precision": plan.precision,
              "attn_implementation": plan.attn_implementation, "loss_kernel": plan.loss_kernel,
              "padding_free": settings.padding_free, "compile": settings.compile, "batching": settings.batching,
              "per_device_batch": settings.per_device_batch_size, "accumulation": settings.gradient_accumulation_steps}
    return {"config": config, "base_params": result.total_params - result.trainable_params,
            "trainable_params": result.trainable_params, "padding_waste": result.padding_waste,
            "memory_estimate": result.memory_estimate}


def missing(way: Way, device: str) -> list[str]:
    """What this machine lacks for `way` (empty when it can run)."""
    import importlib.util

    have = {"cuda": device == "cuda", "liger": importlib.util.find_spec("liger_kernel") is not None}
    return [need for need in way.needs if not have.get(need, False)]


def run_way(way: Way, model_dir: Path, frame, *, steps: int, warmup: int, device: str) -> dict:
    """Train `warmup` + `steps` optimizer steps the way `way` says and time the last `steps` of them.
    An error is recorded, not raised, so the ways after it still run."""
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        start_bytes = torch.cuda.memory_allocated()
    started, cpu_started = time.perf_counter(), time.process_time()
    clock = step_clock(device)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-gpu-") as work:
            run = _run_trl if way.trainer == "trl" else _run_project
            result = run(way, model_dir, frame, warmup + steps, device, Path(work), clock)
    except Exception as exc:  # noqa: BLE001 - recorded in the results, and the next way runs
        result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    result.update(rate(clock.steps, warmup))
    result["steps"] = clock.steps
    result["losses"] = {str(k): v for k, v in sorted(clock.losses.items())}
    result["first_step_loss"] = clock.losses.get(1)
    result["wall_seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu_started  # with wall_seconds, how contended a CPU run was
    if device == "cuda":
        result["peak_gpu_gib"] = (torch.cuda.max_memory_allocated() - start_bytes) / 2**30
        result["allocated_at_start_gib"] = start_bytes / 2**30
    torch._dynamo.reset()  # compiled layers hold the way's model
    gc.collect()
    return result
