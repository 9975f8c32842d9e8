"""Benchmark: the project's LoRA training against TRL `SFTTrainer`, with its defaults and tuned, in one run.

Every way trains the embedded SmolLM2-135M-Instruct with the same LoRA adapter (r=16, alpha=32, dropout 0.05, the 7
projections) on the same synthetic question + 7-section approach pairs (~180 to ~570 tokens each, see
benchmarks/training_data.py), for the same optimizer steps of 4 examples x 2 accumulation steps, with the same
optimisation (lr 2e-4, cosine, 3% warm-up). There are steps x 8 training examples, so every way sees every
example exactly once and trains on the same tokens. The ways (benchmarks/trl_baselines.py):

- `trl_defaults`: TRL's defaults (float32 weights, bf16 autocast, gradient checkpointing, random batches);
- `trl_tuned_grouped` and `trl_tuned_padding_free`: TRL as a competent CPU user sets it up (bf16 weights through
  `model_init_kwargs`, no gradient checkpointing, length-grouped or padding-free batches); the faster of the two
  is "the tuned TRL baseline" the targets are measured against;
- `project`: `research_tuner.lib.training.train_lora`, the function the `lora_adapter` asset calls
  (`precision: auto`, `batching: length_grouped`, no gradient checkpointing).

Each way runs `--seeds` times (seeds 0, 1, 2, ...), each run in its own fresh process, the ways interleaved
seed by seed so that a change in the machine's load touches all of them alike. Every way is timed by the same
code, the project's progress callback: time in training steps, without evaluation, logging or checkpoint saves.

Reported per way, over the seeds: training tokens per second (real, non-padding tokens over the time in
training steps), padding waste, the validation loss of the trained adapter on 16 held-out pairs (mean per
approach token, float32, one example at a time, the same code for every way) and its spread, beside the
untrained model's validation loss for scale. The speed as model FLOP/s and a fraction of the bfloat16 matmul peak
measured in this same run (2048 x 2048, before and after the training runs, the higher kept; and at the shape
of the model's MLP projections): the FLOPs count is 4 x the decoder's projection weights for every real token
(prompt and completion: forward and the backward through the frozen weights) plus 4 x the LM head's weights
for every completion token (the positions that carry a label); attention scores, LoRA's own low-rank products
and element-wise work are not counted. Results go to benchmarks/results/training.json.

    python benchmarks/bench_training.py [--steps 4] [--seeds 3] [--ways trl_defaults,...,project]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_io import busy_cpu_seconds, children_cpu_seconds, machine, matmul_gflops, write_results  # noqa: E402
from training_data import synthetic_pairs  # noqa: E402
from trl_baselines import TUNED, WAYS, train_trl  # noqa: E402

from research_tuner.settings import EMBEDDED_MODEL, TrainingSettings  # noqa: E402

BATCH, ACCUMULATION = 4, 2
N_VALIDATION = 16
ALL_WAYS = (*WAYS, "project")
TARGET_SPEEDUP_VS_TUNED = 1.5


def settings(model: str, seed: int, **overrides) -> TrainingSettings:
    values = dict(
        base_model=model,
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
        seed=seed,
        gradient_checkpointing=False,
        precision="auto",
        batching="length_grouped",
        eval_on_start=False,
        evals_per_epoch=1,
        save_steps=10_000,
    )
    values.update(overrides)
    return TrainingSettings(**values)


def data(steps: int):
    """(train, validation): steps x 8 training pairs, so that one epoch is the run, and the validation pairs."""
    n_train = steps * BATCH * ACCUMULATION
    frame = synthetic_pairs(n_train + N_VALIDATION, seed=0)
    return frame.iloc[:n_train].reset_index(drop=True), frame.iloc[n_train:].reset_index(drop=True)


@torch.inference_mode()
def validation_loss(model, tokenizer, frame) -> float:
    """Mean loss per approach token (the assistant's completion), in float32, one example at a time (no
    padding): the same measurement for every way's adapter and for the untrained model."""
    from research_tuner.lib.shared.chat import CHAT_TEMPLATE_KWARGS, student_messages

    total, count = 0.0, 0
    for question, approach in zip(frame["question"], frame["approach"]):
        prompt = student_messages(question)
        prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True,
                                                    **CHAT_TEMPLATE_KWARGS)
        full_text = tokenizer.apply_chat_template(prompt + [{"role": "assistant", "content": approach}],
                                                  tokenize=False, **CHAT_TEMPLATE_KWARGS)
        prompt_len = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
        ids = torch.tensor([tokenizer(full_text, add_special_tokens=False)["input_ids"]])
        labels = ids.clone()
        labels[:, :prompt_len] = -100
        n = int((labels[:, 1:] != -100).sum())
        total += float(model(input_ids=ids, labels=labels).loss) * n
        count += n
    return total / count


def adapter_validation_loss(base_model: str, adapter_dir: Path, frame) -> float:
    from research_tuner.lib.shared.inference import load_for_inference

    model, tokenizer = load_for_inference(base_model, adapter_dir, precision="fp32")
    return validation_loss(model, tokenizer, frame)


def run_trl_way(way: str, model: str, steps: int, seed: int, work: Path) -> dict:
    from research_tuner.lib.shared.models import load_tokenizer, resolve_model
    from research_tuner.lib.training.base_model import lora_config
    from research_tuner.lib.training.data import to_prompt_completion

    train, validation = data(steps)
    cfg = settings(model, seed)
    result = train_trl(way, to_prompt_completion(train), resolve_model(model),
                       load_tokenizer(model),  # the project's (pad distinct from EOS): same token stream
                       lora_config(cfg), work, max_steps=steps, batch=BATCH, accumulation=ACCUMULATION, seed=seed,
                       learning_rate=cfg.learning_rate, scheduler=cfg.lr_scheduler, warmup=cfg.warmup_ratio)
    result["validation_loss"] = adapter_validation_loss(model, Path(result.pop("adapter_dir")), validation)
    return result


def run_project(model: str, steps: int, seed: int, work: Path) -> dict:
    from research_tuner.lib.training.train import train_lora

    train, validation = data(steps)
    result = train_lora(train, validation, settings(model, seed), work, max_steps=steps)
    losses = result.log["loss"].dropna()
    plan = result.hardware
    padded = result.tokens_seen / (1 - result.padding_waste) if result.padding_waste is not None else None
    return {
        "config": {
            "precision": plan.precision,
            "gradient_checkpointing": False,
            "batching": "length_grouped",
            "attn_implementation": plan.attn_implementation,
            "completion_loss": plan.completion_loss,
            "threads": plan.threads,
            "optim": plan.optim,
        },
        "steps": result.global_step,
        "train_seconds": result.train_time_s,  # the same progress callback as the TRL ways
        "real_tokens": result.tokens_seen,
        "batch_tokens": round(padded) if padded is not None else None,
        "padding_waste": result.padding_waste,
        "base_params": result.total_params - result.trainable_params,
        "trainable_params": result.trainable_params,
        # train_lora logs every `logging_steps`; the mean of the per-step losses it logged
        "mean_train_loss": float(losses.mean()) if len(losses) else None,
        "final_train_loss": result.final_train_loss,
        "validation_loss": adapter_validation_loss(model, result.adapter_dir, validation),
    }


def peak_now() -> dict:
    """The bfloat16 matmul rates this machine gives right now: 2048^2 and the model's MLP shapes (a 4 x 512-token
    micro-batch through the 576 -> 1,536 and 1,536 -> 576 projections)."""
    return {"square_2048_gflops": round(matmul_gflops(2048, 2048, 2048), 1),
            "mlp_shape_gflops": round((matmul_gflops(2048, 576, 1536) + matmul_gflops(2048, 1536, 576)) / 2, 1)}


def counted_weights(name: str) -> dict:
    """Weights whose products the FLOPs count counts: the decoder's projections and the LM head (and the model, in
    float32, for the untrained validation loss)."""
    from torch import nn

    from research_tuner.lib.shared.models import load_causal_lm

    model = load_causal_lm(name, precision="fp32")
    head = model.get_output_embeddings()
    projections = sum(m.weight.numel() for m in model.get_decoder().modules() if isinstance(m, nn.Linear))
    return {"model": model, "decoder_projection_params": projections, "lm_head_params": head.weight.numel()}


def child(way: str, model: str, steps: int, seed: int, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=f"bench-train-{way}-") as work:
        result = (run_project(model, steps, seed, Path(work)) if way == "project"
                  else run_trl_way(way, model, steps, seed, Path(work)))
    result["tokens_per_s"] = result["real_tokens"] / result["train_seconds"]
    out.write_text(json.dumps(result))


def run_child(way: str, model: str, steps: int, seed: int, tmp: Path) -> dict:
    out = tmp / f"{way}-{seed}.json"
    started, busy, own = time.perf_counter(), busy_cpu_seconds(), children_cpu_seconds()
    subprocess.run([sys.executable, __file__, "--child", way, "--model", model, "--steps", str(steps),
                    "--seed", str(seed), "--out", str(out)], check=True)
    run = json.loads(out.read_text())
    run["seed"] = seed
    run["process_seconds"] = round(time.perf_counter() - started, 1)
    # CPU time other processes took meanwhile: a quiet machine gives ~0; more means the timing is low
    other = (busy_cpu_seconds() - busy) - (children_cpu_seconds() - own)
    run["other_processes_cpu_seconds"] = round(max(0.0, other), 1)
    print(f"{way} seed {seed}: {run['tokens_per_s']:.1f} tokens/s, validation loss {run['validation_loss']:.4f}",
          flush=True)
    return run


def spread(values: list[float]) -> dict:
    return {"values": [round(v, 4) for v in values], "mean": round(statistics.fmean(values), 4),
            "median": round(statistics.median(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            "min": round(min(values), 4), "max": round(max(values), 4)}


def summarize(runs: list[dict], flops_per_run: float | None, peak: dict) -> dict:
    rates = [r["tokens_per_s"] for r in runs]
    first = runs[0]
    summary = {
        "config": first["config"],
        "seeds": [r["seed"] for r in runs],
        "tokens_per_s": spread(rates),
        "train_seconds": spread([r["train_seconds"] for r in runs]),
        "validation_loss": spread([r["validation_loss"] for r in runs]),
        "mean_train_loss": spread([r["mean_train_loss"] for r in runs if r["mean_train_loss"] is not None]),
        "padding_waste": round(statistics.fmean(r["padding_waste"] for r in runs), 4),
        "real_tokens": first["real_tokens"],
        "runs": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items() if k != "config"}
                 for r in runs],
    }
    if flops_per_run:
        gflops = statistics.median(flops_per_run / r["train_seconds"] / 1e9 for r in runs)
        summary["model_gflops"] = round(gflops, 1)
        summary["fraction_of_peak"] = {name: round(gflops / value, 3) for name, value in peak.items()}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps for each way (x 8 training examples)")
    parser.add_argument("--seeds", type=int, default=3, help="runs of each way, seeds 0..N-1")
    parser.add_argument("--ways", default=",".join(ALL_WAYS), help="comma-separated subset of " + ",".join(ALL_WAYS))
    parser.add_argument("--model", default=EMBEDDED_MODEL,
                        help="the base model (default: the embedded SmolLM2-135M-Instruct; a folder for a smoke run)")
    parser.add_argument("--child", choices=ALL_WAYS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model, args.steps, args.seed, args.out)
        return
    ways = [w for w in args.ways.split(",") if w]
    if unknown := set(ways) - set(ALL_WAYS):
        parser.error(f"unknown ways {sorted(unknown)}; choose from {','.join(ALL_WAYS)}")

    from research_tuner.lib.shared.models import load_tokenizer, resolve_model

    resolve_model(args.model)  # convert once, outside the timed runs
    peak_before = peak_now()
    runs: dict[str, list[dict]] = {w: [] for w in ways}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for way in ways:
                runs[way].append(run_child(way, args.model, args.steps, seed, Path(tmp)))
    peak_after = peak_now()
    peak = {key: max(peak_before[key], peak_after[key]) for key in peak_before}

    counted = counted_weights(args.model)
    train, validation = data(args.steps)
    untrained = validation_loss(counted.pop("model"), load_tokenizer(args.model), validation)
    trl_run = next((runs[w][0] for w in WAYS if w in runs), None)
    tokens = trl_run["dataset_tokens"] if trl_run else None
    flops = None
    if tokens:
        flops = (4 * counted["decoder_projection_params"] * tokens["all"]
                 + 4 * counted["lm_head_params"] * tokens["completion"])
    ways_out = {w: summarize(r, flops, peak) for w, r in runs.items()}
    same_tokens = len({r["real_tokens"] for rs in runs.values() for r in rs}) == 1

    tuned = [w for w in TUNED if w in ways_out]
    strong = max(tuned, key=lambda w: ways_out[w]["tokens_per_s"]["median"]) if tuned else None
    comparison = {}
    if "project" in ways_out:
        project = ways_out["project"]
        for name, way in (("vs_trl_defaults", "trl_defaults"), ("vs_tuned_trl", strong)):
            if way not in ways_out:
                continue
            base = ways_out[way]
            noise = max(base["validation_loss"]["sd"] or 0.0, project["validation_loss"]["sd"] or 0.0)
            delta = project["validation_loss"]["mean"] - base["validation_loss"]["mean"]
            comparison[name] = {
                "baseline": way,
                "speedup": round(project["tokens_per_s"]["median"] / base["tokens_per_s"]["median"], 2),
                "speedup_range": [round(project["tokens_per_s"]["min"] / base["tokens_per_s"]["max"], 2),
                                  round(project["tokens_per_s"]["max"] / base["tokens_per_s"]["min"], 2)],
                "validation_loss_delta": round(delta, 4),
                "validation_loss_seed_sd": round(noise, 4),
                "validation_loss_no_worse": delta <= noise,
            }
    result = {
        "model": args.model,
        "examples": {"train": len(train), "validation": len(validation), "generator": "benchmarks/training_data.py"},
        "optimizer_steps": args.steps,
        "batch": f"{BATCH} x {ACCUMULATION} accumulation",
        "seeds": args.seeds,
        "timing": "the project's progress callback (lib/training/callbacks.py) for every way: seconds in training "
                  "steps, without evaluation, logging or checkpoint saves",
        "same_real_tokens_in_every_run": same_tokens,
        "untrained_validation_loss": round(untrained, 4),
        "ways": ways_out,
        "strong_baseline": strong,
        "comparison": comparison,
        "peak": {
            "measured_in_this_run": "bfloat16 matmuls, before and after the training runs; the higher kept",
            "before": peak_before, "after": peak_after, "used": peak,
            "flops_counted": "4 x decoder projection weights per real token (prompt + completion) + 4 x LM head "
                             "weights per completion token; not attention scores, LoRA products, element-wise work",
            **counted,
            "tokens": tokens,
            "flops_per_run": flops,
        },
        "targets": {
            f"speedup_vs_tuned_trl_at_least_{TARGET_SPEEDUP_VS_TUNED}x":
                comparison["vs_tuned_trl"]["speedup"] >= TARGET_SPEEDUP_VS_TUNED if "vs_tuned_trl" in comparison
                else None,
            "validation_loss_no_worse_than_tuned_trl":
                comparison["vs_tuned_trl"]["validation_loss_no_worse"] if "vs_tuned_trl" in comparison else None,
        },
        "machine": machine(),
    }
    print(f"wrote {write_results('training', result)}")
    print(json.dumps({k: result[k] for k in ("comparison", "targets", "untrained_validation_loss")}, indent=2))


if __name__ == "__main__":
    main()
