"""Benchmark: the project's LoRA training against TRL `SFTTrainer` with its defaults, in one run.

Both train the embedded SmolLM2-135M-Instruct with the same LoRA adapter (r=16, alpha=32, dropout 0.05, the 7
projections) on the same synthetic question + 7-section approach pairs (~180 to ~570 tokens each, see
benchmarks/training_data.py), for the same number of optimizer steps of 4 examples x 2 accumulation steps,
with the same optimisation (lr 2e-4, cosine, 3% warm-up, seed 0). Each way runs in its own fresh process, one
after the other.

- "TRL defaults" is `SFTConfig(output_dir, use_cpu=True, max_steps, per_device_train_batch_size=4,
  gradient_accumulation_steps=2, learning_rate=2e-4, lr_scheduler_type="cosine", warmup_steps=0.03, seed=0,
  report_to="none")` and the model given as a path, so TRL loads it itself. Every other setting is TRL's
  default: float32 weights with bfloat16 autocast (`bf16=True`; `use_cpu=True` is what transformers needs to
  accept bf16 without a GPU), gradient checkpointing on, random batches padded to their longest example,
  torch's default threads. The batch, steps and optimisation are the project's, so that the losses compare.
- "project" is `research_tuner.lib.training.train_lora`, the function the `lora_adapter` asset calls, with
  `precision: auto` (bf16 base weights on a CPU with native bfloat16), `batching: length_grouped`,
  gradient checkpointing off.

Reported for each: training tokens per second (real, non-padding tokens of the training batches, over the
time spent in training steps), padding waste (padded tokens / all tokens in the batches), the mean training
loss over the run and the validation loss of the trained adapter on 8 held-out pairs (the same float32
evaluation for both). The project's rate is also given as a fraction of the bfloat16 matmul peak
(4 x parameters FLOPs per token for LoRA: forward 2N, backward through the frozen weights 2N), with the
peak from ../shared/FACTS.md (184 GFLOP/s) and as measured in this run. Results go to
benchmarks/results/training.json.

    python benchmarks/bench_training.py [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from training_data import synthetic_pairs  # noqa: E402

from research_tuner.settings import EMBEDDED_MODEL, TrainingSettings  # noqa: E402

RESULTS = HERE / "results" / "training.json"
FACTS_BF16_PEAK_GFLOPS = 184.0  # ../shared/FACTS.md: 2048x2048 bfloat16 matmul on this machine kind
BATCH, ACCUMULATION = 4, 2
N_TRAIN, N_VALIDATION = 32, 8


def settings(**overrides) -> TrainingSettings:
    values = dict(
        base_model=EMBEDDED_MODEL,
        lora_r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        learning_rate=2e-4,
        lr_scheduler="cosine",
        warmup_ratio=0.03,
        per_device_batch_size=BATCH,
        gradient_accumulation_steps=ACCUMULATION,
        epochs=1,
        max_length=1024,  # TRL's default; no example is longer
        seed=0,
        gradient_checkpointing=False,
        precision="auto",
        batching="length_grouped",
        eval_on_start=False,
        evals_per_epoch=1,
        save_steps=10_000,
    )
    values.update(overrides)
    return TrainingSettings(**values)


def data():
    frame = synthetic_pairs(N_TRAIN + N_VALIDATION, seed=0)
    return frame.iloc[:N_TRAIN].reset_index(drop=True), frame.iloc[N_TRAIN:].reset_index(drop=True)


@torch.inference_mode()
def validation_loss(adapter_dir: Path, frame) -> float:
    """Mean loss per approach token (the assistant's completion) of base + adapter, in float32, one example
    at a time (no padding), for either way's adapter."""
    from research_tuner.lib.shared.chat import student_messages
    from research_tuner.lib.shared.inference import load_for_inference

    model, tokenizer = load_for_inference(EMBEDDED_MODEL, adapter_dir, precision="fp32")
    total, count = 0.0, 0
    for question, approach in zip(frame["question"], frame["approach"]):
        prompt = student_messages(question)
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(
            prompt + [{"role": "assistant", "content": approach}], tokenize=False
        )
        prompt_len = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
        ids = torch.tensor([tokenizer(full_text, add_special_tokens=False)["input_ids"]])
        labels = ids.clone()
        labels[:, :prompt_len] = -100
        n = int((labels[:, 1:] != -100).sum())
        total += float(model(input_ids=ids, labels=labels).loss) * n
        count += n
    return total / count


def run_baseline(steps: int, work: Path) -> dict:
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from research_tuner.lib.shared.models import load_tokenizer, resolve_model
    from research_tuner.lib.training.base_model import lora_config
    from counting_collator import CountingCollator
    from research_tuner.lib.training.data import to_prompt_completion

    train, validation = data()
    tokenizer = load_tokenizer(EMBEDDED_MODEL)  # the project's (pad distinct from EOS): same token stream

    class Timer(TrainerCallback):
        seconds = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_train_end(self, args, state, control, **kwargs):
            Timer.seconds = time.perf_counter() - self._start

    args = SFTConfig(
        output_dir=str(work / "checkpoints"),
        use_cpu=True,
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=ACCUMULATION,
        learning_rate=2e-4,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        seed=0,
        report_to="none",
    )
    trainer = SFTTrainer(
        model=resolve_model(EMBEDDED_MODEL),
        args=args,
        train_dataset=to_prompt_completion(train),
        processing_class=tokenizer,
        peft_config=lora_config(settings()),
        callbacks=[Timer()],
    )
    counter = CountingCollator(trainer.data_collator)
    trainer.data_collator = counter
    output = trainer.train()
    trainer.model.save_pretrained(work / "adapter")
    tokenizer.save_pretrained(work / "tokenizer")
    trainable, total = trainer.model.get_nb_trainable_parameters()
    stats = counter.stats
    return {
        "config": {
            "gradient_checkpointing": bool(args.gradient_checkpointing if hasattr(args, "gradient_checkpointing")
                                           else args.activation_checkpointing),
            "bf16_autocast": args.bf16,
            "weights_dtype": str(next(trainer.model.parameters()).dtype).removeprefix("torch."),
            "sampler": args.train_sampling_strategy,
            "threads": torch.get_num_threads(),
            "optim": str(args.optim),
        },
        "steps": int(trainer.state.global_step),
        "train_seconds": Timer.seconds,
        "real_tokens": stats.real_tokens,
        "batch_tokens": stats.batch_tokens,
        "padding_waste": stats.padding_waste,
        "base_params": int(total - trainable),
        "trainable_params": int(trainable),
        "mean_train_loss": float(output.training_loss),
        "validation_loss": validation_loss(work / "adapter", validation),
    }


def run_project(steps: int, work: Path) -> dict:
    from research_tuner.lib.training.train import train_lora

    train, validation = data()
    result = train_lora(train, validation, settings(), work, max_steps=steps)
    losses = result.log["loss"].dropna()
    plan = result.hardware
    return {
        "config": {
            "precision": plan.precision,
            "gradient_checkpointing": False,
            "batching": "length_grouped",
            "attn_implementation": plan.attn_implementation,
            "threads": plan.threads,
            "optim": plan.optim,
        },
        "steps": result.global_step,
        "train_seconds": result.train_time_s,
        "real_tokens": result.tokens_seen,
        "padding_waste": result.padding_waste,
        "base_params": result.total_params - result.trainable_params,
        "trainable_params": result.trainable_params,
        # train_lora logs every `logging_steps`; the mean of the per-step losses it logged
        "mean_train_loss": float(losses.mean()) if len(losses) else None,
        "final_train_loss": result.final_train_loss,
        "validation_loss": validation_loss(result.adapter_dir, validation),
    }


def bf16_matmul_gflops(size: int = 2048, repeats: int = 20) -> float:
    a = torch.randn(size, size, dtype=torch.bfloat16)
    b = torch.randn(size, size, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have spent busy since boot (/proc/stat)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child(way: str, steps: int, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{way}-") as work:
        result = (run_baseline if way == "trl_defaults" else run_project)(steps, Path(work))
    result["tokens_per_s"] = result["real_tokens"] / result["train_seconds"]
    out.write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps for each way")
    parser.add_argument("--child", choices=["trl_defaults", "project"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps, args.out)
        return

    from research_tuner.lib.shared.models import resolve_model

    resolve_model(EMBEDDED_MODEL)  # convert once, outside the timed runs
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in ("trl_defaults", "project"):
            out = Path(tmp) / f"{way}.json"
            started, busy, own = time.perf_counter(), _busy_cpu_seconds(), _children_cpu_seconds()
            subprocess.run([sys.executable, __file__, "--child", way, "--steps", str(args.steps), "--out", str(out)],
                           check=True)
            runs[way] = json.loads(out.read_text())
            runs[way]["process_seconds"] = round(time.perf_counter() - started, 1)
            # CPU time other processes took meanwhile: a quiet machine gives ~0; more means the timing is low
            other = (_busy_cpu_seconds() - busy) - (_children_cpu_seconds() - own)
            runs[way]["other_processes_cpu_seconds"] = round(max(0.0, other), 1)
            print(f"{way}: {runs[way]['tokens_per_s']:.1f} tokens/s", flush=True)
    base, project = runs["trl_defaults"], runs["project"]
    measured_peak = bf16_matmul_gflops()
    flops_per_token = 4 * project["base_params"]
    achieved = project["tokens_per_s"] * flops_per_token / 1e9
    result = {
        "model": EMBEDDED_MODEL,
        "examples": {"train": N_TRAIN, "validation": N_VALIDATION, "generator": "benchmarks/training_data.py"},
        "optimizer_steps": args.steps,
        "batch": f"{BATCH} x {ACCUMULATION} accumulation",
        "trl_defaults": _rounded(base),
        "project": _rounded(project),
        "speedup": round(project["tokens_per_s"] / base["tokens_per_s"], 2),
        "peak": {
            "flops_per_token": flops_per_token,
            "project_gflops": round(achieved, 1),
            "facts_bf16_peak_gflops": FACTS_BF16_PEAK_GFLOPS,
            "fraction_of_facts_peak": round(achieved / FACTS_BF16_PEAK_GFLOPS, 3),
            "measured_bf16_peak_gflops": round(measured_peak, 1),
            "fraction_of_measured_peak": round(achieved / measured_peak, 3),
        },
        "validation_loss_no_worse": project["validation_loss"] <= base["validation_loss"] + 0.01,
        "targets": {"speedup_at_least_2x": project["tokens_per_s"] >= 2 * base["tokens_per_s"],
                    "at_least_60pct_of_facts_peak": achieved >= 0.6 * FACTS_BF16_PEAK_GFLOPS},
        "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _rounded(run: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in run.items()}


if __name__ == "__main__":
    main()
