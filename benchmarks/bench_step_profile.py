"""Benchmark: where a CPU training step of the project's trainer goes, and what each CPU-specific choice saves.

It builds the trainer the `lora_adapter` asset trains with (`lib/training/trainer.build_trainer`, the embedded
SmolLM2-135M-Instruct, LoRA r=16 on the 7 projections, bf16 on a CPU that has it) on batches of `--batch`
synthetic examples of about `--tokens` tokens each (the examples of benchmarks/training_data.py closest to that
length), and trains `--steps` optimizer steps after one warm-up step in each of these variants:

- `project`: as the asset trains (the completion-only LM head of lib/training/completion_loss.py, `CpuDropout`);
- `trl_lm_head`: TRL's own loss path instead of the completion-only head;
- `nn_dropout`, `torch_rand_dropout`, `no_dropout`: the LoRA dropout as `nn.Dropout`, as a mask drawn with
  `torch.rand` (else the same as `CpuDropout`), or none (p = 0), to give dropout's share of a step.

Reported: the median step time of each variant (from step begin to step end: forward, backward, optimizer),
the share of a step each dropout takes ((t - t_no_dropout) / t), the time to draw one dropout mask of a LoRA
input's shape with each generator, and a torch.profiler breakdown of one `project` step by kind of operation
(self CPU time). Results go to benchmarks/results/step_profile.json.

    python benchmarks/bench_step_profile.py [--batch 4] [--tokens 473] [--steps 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import machine, write_results  # noqa: E402
from training_data import synthetic_pairs  # noqa: E402

from research_tuner.settings import EMBEDDED_MODEL, TrainingSettings  # noqa: E402

VARIANTS = ("project", "trl_lm_head", "nn_dropout", "torch_rand_dropout", "no_dropout")
#: Operation kinds of the profile, by the start of the aten op's name (first match wins).
KINDS = {
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"),
    "attention": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
    "casts and copies": ("aten::to", "aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous"),
    "log-softmax and loss": ("aten::_log_softmax", "aten::log_softmax", "aten::nll_loss", "aten::exp",
                             "aten::cross_entropy"),
    "dropout masks": ("aten::bernoulli", "aten::rand", "aten::masked_fill", "aten::from_numpy", "aten::lt"),
    "optimizer": ("aten::_fused_adamw", "Optimizer.step"),
}


class RandDropout(nn.Module):
    """`CpuDropout` with its mask drawn by `torch.rand` (torch's CPU generator) instead of NumPy's SFC64."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        drop = torch.rand(x.shape, device=x.device) < self.p
        return x.masked_fill(drop, 0).mul_(1.0 / (1.0 - self.p))


def set_lora_dropout(model, make) -> int:
    """Put `make(p)` in place of every LoRA layer's dropout; returns how many were replaced."""
    from peft.tuners.lora import LoraLayer

    replaced = 0
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name, dropout in list(module.lora_dropout.items()):
                p = getattr(dropout, "p", 0.0)
                if p > 0:
                    module.lora_dropout[name] = make(p)
                    replaced += 1
    return replaced


def settings(model: str, batch: int, seed: int = 0) -> TrainingSettings:
    return TrainingSettings(base_model=model, lora_r=16, lora_alpha=32, lora_dropout=0.05, learning_rate=2e-4,
                            per_device_batch_size=batch, gradient_accumulation_steps=1, epochs=1, max_length=1024,
                            seed=seed, gradient_checkpointing=False, precision="auto", batching="length_grouped",
                            eval_on_start=False, save_steps=10_000, logging_steps=10_000)


def examples_near(tokens: int, count: int, model: str):
    """The `count` synthetic pairs whose chat-formatted length is closest to `tokens`, and their lengths."""
    from research_tuner.lib.shared.chat import CHAT_TEMPLATE_KWARGS, student_messages
    from research_tuner.lib.shared.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    pool = synthetic_pairs(max(400, 20 * count), seed=1)
    texts = [tokenizer.apply_chat_template(student_messages(q) + [{"role": "assistant", "content": a}],
                                           tokenize=False, **CHAT_TEMPLATE_KWARGS)
             for q, a in zip(pool["question"], pool["approach"])]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    pool["tokens"] = lengths
    pool["distance"] = (pool["tokens"] - tokens).abs()
    chosen = pool.sort_values(["distance", "tokens"]).head(count).reset_index(drop=True)
    return chosen[["question", "approach"]], chosen["tokens"].tolist()


def step_timer(profile_step: int | None = None):
    """A callback that times every optimizer step and, at `profile_step`, records a torch.profiler profile."""
    from transformers import TrainerCallback

    class _Timer(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []
            self.profile = None
            self._profiling = False

        def on_step_begin(self, args, state, control, **kwargs):
            if profile_step is not None and state.global_step == profile_step:  # steps done so far
                self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                self.profile.start()
                self._profiling = True
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._start)
            if self._profiling:
                self.profile.stop()
                self._profiling = False

    return _Timer()


def run_variant(variant: str, data, model: str, batch: int, steps: int, work: Path, profile: bool) -> dict:
    from research_tuner.lib.training.trainer import build_trainer

    timer = step_timer(profile_step=1 if profile else None)
    trainer = build_trainer(data, data.iloc[:0], settings(model, batch), work / variant, callbacks=[timer],
                            max_steps=steps + 1 + int(profile), eval_on_start=False)
    if variant == "trl_lm_head":
        trainer.hardware = dataclasses.replace(trainer.hardware, loss_kernel="trl")  # TRL's head and loss
    makers = {"nn_dropout": nn.Dropout, "torch_rand_dropout": RandDropout, "no_dropout": lambda p: nn.Identity()}
    if variant in makers:
        set_lora_dropout(trainer.model, makers[variant])
    kinds = {type(d).__name__ for m in trainer.model.modules() if hasattr(m, "lora_dropout")
             for d in m.lora_dropout.values()}
    trainer.train()
    measured = timer.seconds[1 + int(profile):]  # the first step warms up; a profiled step is not timed
    out = {"step_seconds": [round(s, 3) for s in measured], "median_step_s": round(statistics.median(measured), 3),
           "lora_dropout": sorted(kinds), "completion_loss": trainer.hardware.completion_loss,
           "precision": trainer.hardware.precision}
    if timer.profile is not None:
        out["profile"] = op_shares(timer.profile)
    return out


def op_shares(profile) -> dict:
    """Self CPU time of one step by kind of operation, as shares of the step's total self CPU time."""
    totals = dict.fromkeys([*KINDS, "other"], 0.0)
    for event in profile.key_averages():
        kind = next((k for k, prefixes in KINDS.items() if event.key.startswith(prefixes)), "other")
        totals[kind] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {"self_cpu_s": round(whole / 1e6, 2), "shares": {k: round(v / whole, 3) for k, v in totals.items()}}


def mask_seconds(shape: tuple[int, ...], repeats: int) -> dict:
    """Seconds to apply one LoRA dropout (p = 0.05) to a bfloat16 tensor of `shape`, by each generator."""
    from research_tuner.lib.training.lora_fast import CpuDropout

    x = torch.ones(shape, dtype=torch.bfloat16)
    out = {}
    for name, module in (("nn_dropout", nn.Dropout(0.05)), ("torch_rand", RandDropout(0.05)),
                         ("cpu_dropout", CpuDropout(0.05))):
        module.train()
        module(x)
        start = time.perf_counter()
        for _ in range(repeats):
            module(x)
        out[name] = round((time.perf_counter() - start) / repeats, 5)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=473, help="length of each example, about")
    parser.add_argument("--steps", type=int, default=3, help="measured steps per variant, after one warm-up")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--mask-repeats", type=int, default=50)
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; choose from {','.join(VARIANTS)}")

    from research_tuner.lib.shared.models import resolve_model

    resolve_model(args.model)
    data, lengths = examples_near(args.tokens, args.batch * (args.steps + 2), args.model)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            runs[variant] = run_variant(variant, data, args.model, args.batch, args.steps, Path(tmp),
                                        profile=variant == "project")
            print(f"{variant}: {runs[variant]['median_step_s']} s a step", flush=True)
    step = {v: r["median_step_s"] for v, r in runs.items()}
    shares = {}
    if "no_dropout" in step:
        for variant in ("nn_dropout", "torch_rand_dropout", "project"):
            if variant in step:
                shares[variant] = round((step[variant] - step["no_dropout"]) / step[variant], 3)
    from transformers import AutoConfig

    hidden = AutoConfig.from_pretrained(resolve_model(args.model)).hidden_size
    masks = mask_seconds((args.batch, args.tokens, hidden), args.mask_repeats)
    result = {
        "model": args.model,
        "batch": f"{args.batch} examples of {min(lengths)} to {max(lengths)} tokens (target {args.tokens})",
        "measured_steps_per_variant": args.steps,
        "variants": runs,
        "step_seconds": step,
        "completion_loss_speedup": round(step["trl_lm_head"] / step["project"], 2)
        if {"trl_lm_head", "project"} <= set(step) else None,
        "dropout_share_of_a_step": shares,
        "mask_seconds": {"shape": [args.batch, args.tokens, hidden], **masks},
        "mask_speedup": {"torch_rand_vs_nn_dropout": round(masks["nn_dropout"] / masks["torch_rand"], 2),
                         "cpu_dropout_vs_torch_rand": round(masks["torch_rand"] / masks["cpu_dropout"], 2)},
        "machine": machine(),
    }
    print(f"wrote {write_results('step_profile', result)}")
    print({k: result[k] for k in ("step_seconds", "dropout_share_of_a_step", "mask_speedup")})
    if "project" in runs and "profile" in runs["project"]:
        print(runs["project"]["profile"])


if __name__ == "__main__":
    main()
