"""LoRA fine-tuning of the student model with TRL's SFTTrainer (plain Python, no Dagster).

Each example is a conversational prompt-completion pair: the prompt is `student_messages(question)` and the
completion is the assistant's approach, so that the loss covers only the approach tokens and the assistant's
end-of-turn token (TRL's default `completion_only_loss` for prompt-completion data; the pad token differs from
EOS, see `load_tokenizer`, so the end-of-turn token is not masked out as padding).

Checkpoints go to `output_dir/checkpoints`; calling `train_lora` again with the same data and settings resumes
from the last one. The outputs are `adapter/`, `tokenizer/`, `training_log.parquet` and `loss_curve.png`.

With `settings.processes` above 1, `train_lora` starts that many data-parallel processes (lib/distributed.py);
each runs `train_in_process`, and only the first (rank 0) writes the outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from research_tuner.lib.batching import LengthBucketSampler, PaddingStats
from research_tuner.lib.completion_loss import can_use as completion_loss_can_use
from research_tuner.lib.completion_loss import completion_nll
from research_tuner.lib.generation import CHAT_TEMPLATE_KWARGS
from research_tuner.lib.hardware import HardwarePlan, apply_process_settings, detect_hardware
from research_tuner.lib.lora_fast import no_input_cast_while_training, swap_lora_dropout
from research_tuner.lib.models import (
    hub_token,
    load_causal_lm,
    load_tokenizer,
    preferred_dtype,
    resolve_model,
)
from research_tuner.lib.prompts import student_messages
from research_tuner.settings import TrainingSettings

log = logging.getLogger(__name__)

#: Checkpoints kept in output_dir/checkpoints (the newest ones).
SAVE_TOTAL_LIMIT = 3
_FINGERPRINT_FILE = "run_fingerprint.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
#: Settings that do not change what is trained, so changing them does not discard checkpoints.
#: `processes` is one of them: the effective batch, the examples of each optimizer step and the loss
#: normalisation are the same for any number of processes (up to float rounding), so a run can resume on more
#: or fewer GPUs.
_NOT_IN_FINGERPRINT = {"save_steps", "logging_steps", "hf_token_env", "evals_per_epoch", "export_merged", "processes"}
#: Columns of training_log.parquet that always exist (NaN where a step has no such value).
LOG_COLUMNS = ["step", "epoch", "loss", "eval_loss", "learning_rate", "tokens_per_second"]


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


# --- data ------------------------------------------------------------------------------------------


def to_prompt_completion(frame: pd.DataFrame):
    """A `datasets.Dataset` of conversational prompt-completion examples from `question`/`approach` columns."""
    from datasets import Dataset

    missing = {"question", "approach"} - set(frame.columns)
    if missing:
        raise ValueError(f"training data lacks the column(s) {sorted(missing)}")
    return Dataset.from_dict(
        {
            "prompt": [student_messages(str(q)) for q in frame["question"]],
            "completion": [[{"role": "assistant", "content": str(a)}] for a in frame["approach"]],
            # TRL passes these to apply_chat_template: the same fixed date as at inference (lib/generation.py)
            "chat_template_kwargs": [dict(CHAT_TEMPLATE_KWARGS)] * len(frame),
        }
    )


def _fingerprint(train: pd.DataFrame, validation: pd.DataFrame, settings: TrainingSettings, max_steps) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(settings.model_dump(mode="json", exclude=_NOT_IN_FINGERPRINT), sort_keys=True).encode())
    digest.update(f"max_steps={max_steps}".encode())
    for frame in (train, validation):
        for column in ("question", "approach"):
            for value in frame[column]:
                digest.update(str(value).encode())
                digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()[:16]


def _last_checkpoint(checkpoint_dir: Path) -> Path | None:
    if not checkpoint_dir.is_dir():
        return None
    found = [
        (int(m.group(1)), path)
        for path in checkpoint_dir.iterdir()
        if path.is_dir() and (m := _CHECKPOINT_RE.match(path.name)) and (path / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


# --- model -----------------------------------------------------------------------------------------


def _can_load_4bit() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def _load_base_model(settings: TrainingSettings, plan: HardwarePlan, tokenizer, token: str | None):
    """The base model to train: 4-bit quantized (QLoRA) when asked for and possible, else in the plan's
    precision (float32 weights for bf16-mixed, whose bfloat16 comes from autocast)."""
    dtype = preferred_dtype(plan.precision)
    if settings.load_in_4bit and not _can_load_4bit():
        log.warning("training.load_in_4bit needs CUDA and bitsandbytes; training a full-precision LoRA instead")
    if settings.load_in_4bit and _can_load_4bit():  # pragma: no cover - needs a GPU
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        compute = dtype if dtype != torch.float32 else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model(settings.base_model),
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            ),
            dtype=compute,
            device_map={"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))},  # this rank's GPU
            attn_implementation=plan.attn_implementation,
            token=token,
        )
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=settings.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
        return model
    weights = "fp32" if plan.precision == "bf16-mixed" else plan.precision  # autocast does the rest
    return load_causal_lm(
        settings.base_model,
        precision=weights,
        token=token,
        tokenizer=tokenizer,
        attn_implementation=plan.attn_implementation,
    )


def lora_config(settings: TrainingSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


# --- the trainer -----------------------------------------------------------------------------------


def _steps_per_epoch(n_examples: int, settings: TrainingSettings) -> int:
    batches = math.ceil(n_examples / settings.per_device_batch_size)
    return max(1, math.ceil(batches / settings.gradient_accumulation_steps))


def world_size() -> int:
    """Processes of the data-parallel launch this process belongs to (1 when not launched that way)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def accumulation_per_process(settings: TrainingSettings, processes: int) -> int:
    """Batches each process accumulates per optimizer step, so that per_device_batch_size x accumulation x
    processes is the effective batch of the settings."""
    if settings.gradient_accumulation_steps % processes:
        from research_tuner.settings import SettingsError, accumulation_problem

        raise SettingsError(accumulation_problem(settings, processes))
    return settings.gradient_accumulation_steps // processes


def build_trainer(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    settings: TrainingSettings,
    output_dir: Path,
    *,
    callbacks: Sequence[Any] = (),
    max_steps: int | None = None,
    eval_on_start: bool = True,
):
    """The configured `SFTTrainer` (LoRA-wrapped model, prepared datasets), without training it.

    `trainer.hardware` is the plan it was configured with and `trainer.padding` counts the real and padded
    tokens of the training batches (of this process's batches, under data parallelism).

    In a data-parallel launch (WORLD_SIZE > 1) each process accumulates gradient_accumulation_steps / processes
    batches, so the effective batch is that of the settings.
    """
    from transformers import PrinterCallback
    from trl import SFTConfig

    if len(train) == 0:
        raise ValueError("no training examples")
    token = hub_token(settings.hf_token_env)
    plan = detect_hardware(settings.precision)
    apply_process_settings(plan)
    dtype = preferred_dtype(plan.precision)
    processes = world_size()
    accumulation = accumulation_per_process(settings, processes)
    tokenizer = load_tokenizer(settings.base_model, token=token)
    model = _load_base_model(settings, plan, tokenizer, token)

    has_eval = len(validation) > 0
    if not has_eval:
        log.warning("no validation examples: training without validation loss")
    steps_per_epoch = _steps_per_epoch(len(train), settings)
    eval_steps = max(1, math.ceil(steps_per_epoch / settings.evals_per_epoch))

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
        **_checkpointing_args(SFTConfig, settings.gradient_checkpointing),  # TRL's default is on
        bf16=dtype == torch.bfloat16,  # TRL's default is True, even for a float32 model on a CPU
        fp16=dtype == torch.float16,
        tf32=plan.tf32 or None,
        optim=plan.optim,
        use_cpu=plan.device == "cpu",  # transformers refuses bf16 without a GPU unless told it is a CPU run
        # data: batches of similar-length examples (see lib/batching.py); no packing, so attention stays
        # within an example on every attention kernel
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
        report_to="none",
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
    )
    trainer.remove_callback(PrinterCallback)  # with tqdm off it prints every log dict; `progress` reports instead
    trainer.hardware = plan
    if plan.device == "cpu":
        swap_lora_dropout(trainer.model)
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
                result = completion_nll(model.get_base_model(), inputs, num_items_in_batch)
            mode = "train" if model.training else "eval"
            n = max(result.n_tokens, 1)
            self._metrics[mode]["entropy"].append(result.entropy_sum / n)
            self._metrics[mode]["mean_token_accuracy"].append(result.n_correct / n)
            if mode == "train":
                self._total_train_tokens += int(inputs["attention_mask"].sum())
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return result.loss

        def _completion_loss_applies(self, model, inputs) -> bool:
            """The project's completion loss (lib/completion_loss.py) on a CPU run in one process with the
            plain next-token loss; TRL's fused head otherwise (its GPU kernel already skips unlabelled
            positions, and a DDP wrapper must see the forward call)."""
            return (
                self.hardware.completion_loss
                and isinstance(model, PeftModel)
                and "attention_mask" in inputs
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


def _progress_callback(progress: Callable[[dict], None] | None):
    from transformers import TrainerCallback

    class _Progress(TrainerCallback):
        """Times the training steps (leaving out evaluation and checkpointing), adds tokens/s and timing to
        every training log entry (in the trainer state, so it survives a resume), forces a log at the last
        step, and reports each log entry to `progress`."""

        def __init__(self):
            self.train_time_s = 0.0
            self._mark = time.perf_counter()
            self._since_log_s = 0.0
            self._tokens_at_log = 0
            self._tokens_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self._mark = time.perf_counter()
            self._tokens_at_log = self._tokens_at_start = state.num_input_tokens_seen

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.train_time_s += now - self._mark
            self._since_log_s += now - self._mark
            self._mark = now
            if state.global_step >= state.max_steps:
                control.should_log = True  # the final training loss, whatever logging_steps is

        def on_evaluate(self, args, state, control, **kwargs):
            self._mark = time.perf_counter()

        def on_save(self, args, state, control, **kwargs):
            self._mark = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            entry = state.log_history[-1] if state.log_history else {}
            if "loss" in logs:
                tokens = state.num_input_tokens_seen
                extra = {
                    "tokens_seen": tokens,
                    "tokens_per_second": (tokens - self._tokens_at_log) / self._since_log_s
                    if self._since_log_s > 0
                    else None,
                    "train_time_s": self.train_time_s,
                }
                entry.update(extra)
                logs.update(extra)
                self._tokens_at_log, self._since_log_s = tokens, 0.0
                kind = "train"
            elif "eval_loss" in logs:
                kind = "eval"
            else:
                kind = "summary"
            self._mark = time.perf_counter()
            if progress is not None:
                progress({"kind": kind, "step": state.global_step, "max_steps": state.max_steps, **logs})

        @property
        def session_tokens(self) -> int:
            return self._tokens_at_log - self._tokens_at_start

    return _Progress()


# --- outputs ---------------------------------------------------------------------------------------


def log_frame(log_history: list[dict]) -> pd.DataFrame:
    """One row per logged step: the training log entry and the evaluation at that step, merged."""
    rows = [e for e in log_history if "loss" in e or "eval_loss" in e]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in LOG_COLUMNS})
    frame = pd.DataFrame(rows)
    frame = frame.groupby("step", as_index=False, sort=True).first()  # first non-null value of each column
    for column in LOG_COLUMNS:
        if column not in frame.columns:
            frame[column] = float("nan")
    frame["step"] = frame["step"].astype("int64")
    ordered = LOG_COLUMNS + sorted(c for c in frame.columns if c not in LOG_COLUMNS)
    return frame[ordered].reset_index(drop=True)


def plot_loss_curve(frame: pd.DataFrame, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    train = frame.dropna(subset=["loss"])
    evals = frame.dropna(subset=["eval_loss"])
    if len(train):
        ax.plot(train["step"], train["loss"], marker=".", label="training loss")
    if len(evals):
        ax.plot(evals["step"], evals["eval_loss"], marker="o", label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (per completion token)")
    ax.set_title(title or "LoRA fine-tuning")
    ax.grid(alpha=0.3)
    if len(train) or len(evals):
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _last_value(frame: pd.DataFrame, column: str) -> float | None:
    values = frame[column].dropna()
    return float(values.iloc[-1]) if len(values) else None


# --- entry points ----------------------------------------------------------------------------------


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
) -> TrainingResult:
    """Train a LoRA adapter on `train` (columns question, approach), with validation loss on `validation`.

    Resumes from the last checkpoint in `output_dir/checkpoints` when one exists from a run with the same data
    and settings (other checkpoints are discarded). `max_steps` caps the optimizer steps (benchmarks, tests);
    `callbacks` are extra `transformers.TrainerCallback`s (single-process training only).

    With `settings.processes` above 1 (or 'auto' on a machine with several GPUs), training runs in that many
    data-parallel processes started with Accelerate's launcher (lib/distributed.py); `progress` still gets
    every log entry and the result is the same kind.
    """
    from research_tuner.lib.distributed import check_processes, run_distributed

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
    resume_from = _prepare_checkpoints(train, validation, settings, output_dir, max_steps)
    if processes > 1:
        return run_distributed(
            train, validation, settings, output_dir, processes=processes, resume_from=resume_from,
            progress=progress, merge=merge, max_steps=max_steps, started=started,
        )
    result = train_in_process(
        train, validation, settings, output_dir, resume_from=resume_from, progress=progress, merge=merge,
        max_steps=max_steps, callbacks=callbacks, started=started,
    )
    assert result is not None  # a single process is rank 0
    return result


def _prepare_checkpoints(train, validation, settings: TrainingSettings, output_dir: Path, max_steps) -> Path | None:
    """The checkpoint to resume from, if its run had the same data and settings; other checkpoints are removed
    and this run's fingerprint is recorded."""
    checkpoint_dir = output_dir / "checkpoints"
    output_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(train, validation, settings, max_steps)
    resume_from = _last_checkpoint(checkpoint_dir)
    fingerprint_file = checkpoint_dir / _FINGERPRINT_FILE
    if resume_from is not None:
        previous = json.loads(fingerprint_file.read_text()).get("fingerprint") if fingerprint_file.is_file() else None
        if previous != fingerprint:
            log.warning("checkpoints in %s are from other data or settings: starting over", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
            resume_from = None
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    fingerprint_file.write_text(json.dumps({"fingerprint": fingerprint}))
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    return resume_from


def checkpoint_step(checkpoint: Path | None) -> int | None:
    return int(_CHECKPOINT_RE.match(checkpoint.name).group(1)) if checkpoint is not None else None


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
) -> TrainingResult | None:
    """Train in this process, from `resume_from` if given, and write the outputs. In a data-parallel launch
    every process calls it; only rank 0 writes the outputs and gets a result (the others get None)."""
    started = time.perf_counter() if started is None else started
    output_dir = Path(output_dir)
    tracker = _progress_callback(progress)
    trainer = build_trainer(
        train,
        validation,
        settings,
        output_dir,
        callbacks=[tracker, *callbacks],
        max_steps=max_steps,
        eval_on_start=resume_from is None and settings.eval_on_start,
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
        _merge(model, settings, adapter_dir, tokenizer, merged_dir, quantized)

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
        final_train_loss=_last_value(frame, "loss"),
        final_eval_loss=_last_value(frame, "eval_loss"),
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
    )


def _merge(model, settings: TrainingSettings, adapter_dir: Path, tokenizer, merged_dir: Path, quantized: bool):
    """Write base + adapter as one plain model (in the training precision) to `merged_dir`."""
    if quantized:  # pragma: no cover - needs a GPU; merging into 4-bit weights would round them
        model, _ = load_for_inference(settings.base_model, adapter_dir, precision=settings.precision)
    merged = model.merge_and_unload()
    if merged_dir.exists():
        shutil.rmtree(merged_dir)
    merged.save_pretrained(merged_dir)
    tokenizer.save_pretrained(merged_dir)


def _tokenizer_dir_for(adapter_dir: Path) -> Path:
    for candidate in (adapter_dir, adapter_dir.parent / "tokenizer"):
        if (candidate / "tokenizer_config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no saved tokenizer next to the adapter in {adapter_dir}")


def load_for_inference(
    base_model: str, adapter_dir: Path, precision: str = "auto", *, token: str | None = None
):
    """(peft_model, tokenizer): the base model with the adapter applied, in eval mode, and the tokenizer saved
    with the adapter (left padding, pad distinct from EOS).

    `with model.disable_adapter():` gives the base model's outputs from the same loaded weights.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    token = token if token is not None else hub_token()
    tokenizer = load_tokenizer(str(_tokenizer_dir_for(adapter_dir)), padding_side="left")
    base = load_causal_lm(base_model, precision=precision, token=token, tokenizer=tokenizer)
    model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    model.eval()
    return model, tokenizer
