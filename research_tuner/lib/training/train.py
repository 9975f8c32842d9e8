"""LoRA fine-tuning of the student with TRL's SFTTrainer (plain Python, no Dagster): the entry points.

Each example is a conversational prompt-completion pair: the prompt is `student_messages(question)` and the
completion is the assistant's approach, so that the loss covers only the approach tokens and the assistant's
end-of-turn token (TRL's default `completion_only_loss` for prompt-completion data; the pad token differs from
EOS, see `load_tokenizer`, so the end-of-turn token is not masked out as padding).

Checkpoints go to `output_dir/checkpoints`; calling `train_lora` again with the same data and settings resumes
from the last one (checkpoints.py). The outputs are `adapter/`, `tokenizer/`, `training_log.parquet` and
`loss_curve.png`.

With `settings.processes` above 1, `train_lora` starts that many data-parallel processes (distributed.py);
each runs `train_in_process`, and only the first (rank 0) writes the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from research_tuner.lib.shared.models import preferred_dtype
from research_tuner.lib.training.callbacks import progress_callback
from research_tuner.lib.training.checkpoints import checkpoint_step, prepare_checkpoints
from research_tuner.lib.training.distributed import check_processes, run_distributed
from research_tuner.lib.training.outputs import last_value, log_frame, plot_loss_curve, write_merged
from research_tuner.lib.training.result import TrainingResult
from research_tuner.lib.training.trainer import build_trainer, world_size

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings


def train_lora(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    settings: TrainingSettings,
    output_dir: Path,
    *,
    progress: Callable[[dict], None] | None = None,
    merge: bool = False,
    max_steps: int | None = None,
    callbacks: Sequence[Any] = (),
    report_to: str = "none",
) -> TrainingResult:
    """Train a LoRA adapter on `train` (columns question, approach), with validation loss on `validation`.

    Resumes from the last checkpoint in `output_dir/checkpoints` when one exists from a run with the same data
    and settings (other checkpoints are discarded). `max_steps` caps the optimizer steps (benchmarks, tests);
    `callbacks` are extra `transformers.TrainerCallback`s (single-process training only); `report_to` is the
    trainer's (`"mlflow"`: TRL's MLflow callback, inside `MlflowTracker.reporting_to`, lib/shared/tracking.py).

    With `settings.processes` above 1 (or 'auto' on a machine with several GPUs), training runs in that many
    data-parallel processes started with Accelerate's launcher (distributed.py); `progress` still gets
    every log entry and the result is the same kind.
    """
    started = time.perf_counter()
    output_dir = Path(output_dir)
    if world_size() > 1:
        raise RuntimeError(
            f"train_lora was called in a process of a distributed launch (WORLD_SIZE={world_size()}): call it from "
            "one process with training.processes set, and it starts the data-parallel processes itself"
        )
    processes = check_processes(settings)
    if processes > 1 and callbacks:
        raise ValueError("callbacks run only in single-process training: they cannot be sent to other processes")
    resume_from = prepare_checkpoints(train, validation, settings, output_dir, max_steps)
    if processes > 1:
        return run_distributed(
            train, validation, settings, output_dir, processes=processes, resume_from=resume_from,
            progress=progress, merge=merge, max_steps=max_steps, started=started, report_to=report_to,
        )
    result = train_in_process(
        train, validation, settings, output_dir, resume_from=resume_from, progress=progress, merge=merge,
        max_steps=max_steps, callbacks=callbacks, started=started, report_to=report_to,
    )
    assert result is not None  # a single process is rank 0
    return result


def train_in_process(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    settings: TrainingSettings,
    output_dir: Path,
    *,
    resume_from: Path | None,
    progress: Callable[[dict], None] | None = None,
    merge: bool = False,
    max_steps: int | None = None,
    callbacks: Sequence[Any] = (),
    started: float | None = None,
    report_to: str = "none",
) -> TrainingResult | None:
    """Train in this process, from `resume_from` if given, and write the outputs. In a data-parallel launch
    every process calls it; only rank 0 writes the outputs and gets a result (the others get None)."""
    started = time.perf_counter() if started is None else started
    output_dir = Path(output_dir)
    tracker = progress_callback(progress)
    trainer = build_trainer(
        train,
        validation,
        settings,
        output_dir,
        callbacks=[tracker, *callbacks],
        max_steps=max_steps,
        eval_on_start=resume_from is None and settings.eval_on_start,
        report_to=report_to,
    )
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if not trainer.is_world_process_zero():
        return None

    model = trainer.model
    quantized = bool(getattr(model.get_base_model(), "is_loaded_in_4bit", False))
    adapter_dir = output_dir / "adapter"
    tokenizer_dir = output_dir / "tokenizer"
    model.save_pretrained(adapter_dir)
    tokenizer = trainer.processing_class
    tokenizer.padding_side = "left"  # the saved tokenizer serves generation
    tokenizer.save_pretrained(tokenizer_dir)

    frame = log_frame(trainer.state.log_history)
    frame.to_parquet(output_dir / "training_log.parquet", index=False)
    loss_png = plot_loss_curve(frame, output_dir / "loss_curve.png", title=f"LoRA on {settings.base_model}")

    trainable, total = model.get_nb_trainable_parameters()
    param = next(p for p in model.get_base_model().parameters() if p.is_floating_point())
    compute_dtype = preferred_dtype(trainer.hardware.precision)
    device_name = str(param.device)

    merged_dir = None
    if merge:
        merged_dir = output_dir / "merged"
        write_merged(model, settings, adapter_dir, tokenizer, merged_dir, quantized)

    session_tokens = tracker.session_tokens
    return TrainingResult(
        adapter_dir=adapter_dir,
        tokenizer_dir=tokenizer_dir,
        log=frame,
        loss_curve_png=loss_png,
        base_model=settings.base_model,
        trainable_params=int(trainable),
        total_params=int(total),
        tokens_seen=int(trainer.state.num_input_tokens_seen),
        wall_time_s=time.perf_counter() - started,
        final_train_loss=last_value(frame, "loss"),
        final_eval_loss=last_value(frame, "eval_loss"),
        resumed_from_step=checkpoint_step(resume_from),
        device=device_name,
        dtype=str(compute_dtype).removeprefix("torch."),
        global_step=int(trainer.state.global_step),
        max_steps=int(trainer.state.max_steps),
        train_time_s=tracker.train_time_s,
        tokens_per_second=session_tokens / tracker.train_time_s if tracker.train_time_s > 0 else None,
        quantized_4bit=quantized,
        merged_dir=merged_dir,
        padding_waste=trainer.padding.padding_waste,
        hardware=trainer.hardware,
        processes=int(trainer.args.world_size),
        gradient_checkpointing=bool(getattr(trainer.args, "activation_checkpointing",
                                            getattr(trainer.args, "gradient_checkpointing", False))),
        memory_estimate=trainer.memory.summary() if trainer.memory is not None else None,
    )
