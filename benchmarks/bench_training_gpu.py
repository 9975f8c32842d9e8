"""Benchmark: the paper-size LoRA training on one GPU, TRL `SFTTrainer` defaults against the project's
`train_lora`, and each waste removal measured on top of the project's best so far.

The model is Llama-3.2-3B-Instruct's architecture with random weights (gpu/model.py: nothing downloads; speed
does not depend on the weights), trained with the paper profile's settings (LoRA r=16, alpha 32, dropout 0.05
on the 7 projections, lr 2e-4 cosine, effective batch 8 = 2 x 4 accumulation, 2048-token limit, gradient
checkpointing as the profile says) on synthetic question + approach pairs of about 1,000-1,500 tokens (sized
with the SmolLM2 tokenizer that feeds the model; gpu/model.py says why). All ways run in this one process, one
after the other, on the same model folder and data:

- `trl_defaults`: `SFTTrainer` with its defaults (gpu/ways.py `trl_args`: only the batch, steps, optimisation
  and length are set), given the model folder to load itself;
- `project_paper`: `train_lora` with the paper profile as it is;
- then one group per waste (`GROUPS`): gradient checkpointing 'auto' (on only where the memory estimate says
  it is needed), padding-free rows with FlexAttention's document mask (SDPA's dense mask where Flex cannot
  run), the whole effective batch as one micro-batch, the loss kernel (Liger's fused linear cross-entropy,
  the project's chunked one), torch.compile of the decoder layers. Each option runs on top of the best so far
  and is kept only if its tokens/s interval lies above the best's and its first step's loss matches (LoRA's B
  starts at zero, so step 1 is the base model's loss on the same 8 examples whatever the kernels).

Each way trains `--warmup` + `--steps` optimizer steps; only the last `--steps` are timed (per step, after a CUDA
synchronisation). Reported: real (non-padding) training tokens per second with a 95% bootstrap interval over
steps, peak GPU memory, the FLOP rate as a share of the bf16 matmul peak measured in the same run (8192^3),
counting 4 x base parameters FLOPs per real token: forward 2N and the backward through the frozen weights 2N,
over every real position, prompt and approach alike, the tied LM head counted once at every position although
both trainers run it only where a label is; attention scores and checkpointing's recomputation are not
counted. And the projected wall time of the paper's training (9,148 examples x 2 epochs at the mean length
here; evaluation, checkpoints and loading not included). Results go to benchmarks/results/training_gpu.json,
rewritten after every way, so a killed run keeps what it measured.

    python benchmarks/bench_training_gpu.py                # on a CUDA GPU (benchmarks/gpu/run_on_device.sh)
    python benchmarks/bench_training_gpu.py --dry-run      # the same code path, a tiny model, on a CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from gpu.measure import matmul_peak_flops, missing_on_device, start_import_audit  # noqa: E402
from gpu.model import build_model_folder, token_lengths, training_pairs  # noqa: E402
from gpu.ways import ACCUMULATION, BATCH, Way, missing, run_way  # noqa: E402

RESULTS = HERE / "results" / "training_gpu.json"
PAPER_EXAMPLES, PAPER_EPOCHS = 9148, 2
TARGETS = {"speedup_over_trl_defaults": 1.5, "share_of_bf16_peak": 0.4, "paper_training_minutes": 15.0}
#: The first step's loss may differ by this much between kernels (bf16 rounding) and still be the same loss.
LOSS_TOLERANCE = 0.01

BASELINES = {
    "trl_defaults": Way("trl", note="SFTTrainer defaults; the model loaded by TRL (float32 weights, bf16 autocast)"),
    "project_paper": Way("project", note="train_lora with the paper profile's training section"),
}
#: (group, options): the options of a group are tried in order until one runs; "all" groups try every option.
GROUPS = [
    ("gradient_checkpointing", "first", {
        "checkpointing_auto": Way("project", {"gradient_checkpointing": "auto"},
                                  note="on only where the memory estimate exceeds the GPU"),
    }),
    ("padding_free", "first", {
        "padding_free_flex": Way("project", {"padding_free": True, "attention": "flex_attention"}, needs=("cuda",),
                                 note="one row per micro-batch, FlexAttention document mask"),
        "padding_free_sdpa": Way("project", {"padding_free": True, "attention": "sdpa"},
                                 note="one row per micro-batch, SDPA's dense block-diagonal mask"),
    }),
    ("micro_batch", "first", {
        "micro_batch_8": Way("project", {"per_device_batch_size": BATCH * ACCUMULATION, "gradient_accumulation_steps": 1},
                             note="the effective batch of 8 in one micro-batch"),
    }),
    ("loss_kernel", "all", {
        "loss_liger": Way("project", {"loss_kernel": "liger"}, needs=("cuda", "liger"),
                          note="Liger's fused linear cross-entropy over the labelled positions"),
        "loss_chunked": Way("project", {"loss_kernel": "chunked"}, note="the project's chunked completion loss"),
    }),
    ("compile", "first", {
        "compile": Way("project", {"compile": True}, needs=("cuda",),
                       note="torch.compile of each decoder layer (inductor on a CPU takes minutes: GPU only)"),
    }),
]


def summary(run: dict) -> str:
    if run.get("error"):
        return f"error: {run['error'][:200]}"
    ci = run.get("ci95") or [float("nan")] * 2
    peak = f", peak {run['peak_gpu_gib']:.1f} GiB" if run.get("peak_gpu_gib") is not None else ""
    return (f"{run['tokens_per_s']:.0f} tokens/s (95% CI {ci[0]:.0f}-{ci[1]:.0f}){peak}, "
            f"step-1 loss {run.get('first_step_loss')}")


def helps(candidate: dict, best: dict, reference_loss: float | None) -> tuple[bool, str]:
    """Whether `candidate` beats `best`: its interval above best's, and its first step's loss the reference's."""
    if candidate.get("error") or not candidate.get("tokens_per_s"):
        return False, "did not run to the end"
    if not best.get("tokens_per_s"):
        return True, "the best so far did not run to the end"
    loss = candidate.get("first_step_loss")
    if reference_loss is not None and (loss is None or abs(loss - reference_loss) > LOSS_TOLERANCE * reference_loss):
        return False, f"step-1 loss {loss} differs from the plain path's {reference_loss}"
    if candidate["ci95"][0] <= best["ci95"][1]:
        return False, (f"not clearly faster: {candidate['tokens_per_s']:.0f} vs {best['tokens_per_s']:.0f} tokens/s, "
                       "the 95% intervals overlap" if candidate["tokens_per_s"] > best["tokens_per_s"] else
                       f"slower: {candidate['tokens_per_s']:.0f} vs {best['tokens_per_s']:.0f} tokens/s")
    return True, f"{candidate['tokens_per_s'] / best['tokens_per_s']:.2f}x the best so far"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="a tiny model on whatever device is here")
    parser.add_argument("--model", choices=["llama-3.2-3b", "smollm2-135m"], default="llama-3.2-3b",
                        help="the architecture (smollm2-135m: the CPU benchmark's model, to try the same ways on a CPU)")
    parser.add_argument("--steps", type=int, help="timed optimizer steps per way (default 20; 2 with --dry-run)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3; 1 with --dry-run)")
    parser.add_argument("--budget-s", type=float,
                        help="start no way after this many seconds (default 300, so the run fits a 420 s device "
                        "call; none with --dry-run, whose point is that every way runs, however slow the CPU)")
    parser.add_argument("--groups", help="comma-separated waste groups to try (default: all)")
    parser.add_argument("--out", type=Path, help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    args = parser.parse_args()
    imported = start_import_audit() if args.dry_run else set()  # what the GPU machine will have to import
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = "tiny" if args.dry_run else args.model
    if device == "cpu" and size == "llama-3.2-3b":
        sys.exit("bench_training_gpu.py measures a CUDA GPU and none is visible here: on a CPU, run it with --dry-run "
                 "or --model smollm2-135m")
    steps = args.steps or (2 if args.dry_run else 20)
    budget_s = args.budget_s if args.budget_s is not None else (None if args.dry_run else 300.0)
    warmup = args.warmup if args.warmup is not None else (1 if args.dry_run else 3)
    out = args.out or (Path(tempfile.gettempdir()) / "training_gpu_dry_run.json" if args.dry_run else RESULTS)
    groups = [g for g in GROUPS if not args.groups or g[0] in args.groups.split(",")]
    started = time.perf_counter()

    frame = training_pairs(size, (warmup + steps) * BATCH * ACCUMULATION, seed=0)
    results: dict = {"status": "running", "dry_run": args.dry_run, "model": size, "device": _device(device),
                     "batch": f"{BATCH} x {ACCUMULATION} accumulation", "timed_steps": steps, "warmup_steps": warmup,
                     "ways": {}, "kept": [], "decisions": {}}

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="bench-gpu-model-") as tmp:
        model_dir = build_model_folder(size, Path(tmp) / "model", device)
        from transformers import AutoTokenizer

        lengths = token_lengths(frame, AutoTokenizer.from_pretrained(model_dir))
        results["examples"] = {"n": len(lengths), "tokens_min": min(lengths), "tokens_mean": sum(lengths) / len(lengths),
                               "tokens_max": max(lengths), "tokenizer": "SmolLM2-135M-Instruct (ChatML template)"}
        results["bf16_matmul_peak"] = matmul_peak_flops(device)
        save()

        def measure(name: str, way: Way) -> dict:
            lacking = missing(way, device)
            if lacking:
                run = {"skipped": f"needs {', '.join(lacking)}"}
            elif budget_s is not None and time.perf_counter() - started > budget_s:
                run = {"skipped": f"time budget of {budget_s:.0f} s spent"}
            else:
                run = run_way(way, model_dir, frame, steps=steps, warmup=warmup, device=device)
            run.update(trainer=way.trainer, overrides=way.overrides, note=way.note)
            results["ways"][name] = run
            save()
            print(f"{name}: {run.get('skipped') or summary(run)}", flush=True)
            return run

        for name, way in BASELINES.items():
            measure(name, way)
        best_name, best_overrides = "project_paper", {}
        reference_loss = results["ways"]["project_paper"].get("first_step_loss")
        for group, mode, options in groups:
            tried = []
            for name, option in options.items():
                way = Way("project", {**best_overrides, **option.overrides}, option.needs, option.note)
                run = measure(name, way)
                if "skipped" in run:
                    continue
                run["compared_with"] = best_name
                run["kept"], run["why"] = helps(run, results["ways"][best_name], reference_loss)
                tried.append(name)
                if mode == "first" and not run.get("error"):
                    break
            kept = [n for n in tried if results["ways"][n]["kept"]]
            if kept:
                winner = max(kept, key=lambda n: results["ways"][n]["tokens_per_s"])
                best_name, best_overrides = winner, results["ways"][winner]["overrides"]
                results["kept"].append(winner)
            results["decisions"][group] = best_name if kept else f"kept {best_name} (none of {tried or 'none'} helped)"
            save()

    results["best"] = best_name
    results.update(_figures(results, best_name))
    if args.dry_run:
        results["imports_missing_on_device"] = missing_on_device(imported)
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["status"] = "done"
    save()
    print(json.dumps({k: results[k] for k in ("best", "kept", "figures", "targets") if k in results}, indent=2))


def _figures(results: dict, best_name: str) -> dict:
    """The headline: the best way against TRL's defaults, as a share of the matmul peak, and the paper's run."""
    best, trl = results["ways"][best_name], results["ways"]["trl_defaults"]
    if not best.get("tokens_per_s"):
        return {}
    peak = results["bf16_matmul_peak"]["flops_per_s"]
    flops_per_token = 4 * best["base_params"]
    share = best["tokens_per_s"] * flops_per_token / peak
    paper_tokens = PAPER_EXAMPLES * PAPER_EPOCHS * results["examples"]["tokens_mean"]
    minutes = [paper_tokens / r / 60 for r in (best["tokens_per_s"], best["ci95"][1], best["ci95"][0])]
    speedup = best["tokens_per_s"] / trl["tokens_per_s"] if trl.get("tokens_per_s") else None
    figures = {
        "best_tokens_per_s": best["tokens_per_s"], "best_ci95": best["ci95"],
        "trl_defaults_tokens_per_s": trl.get("tokens_per_s"), "speedup_over_trl_defaults": speedup,
        "flops_per_token": flops_per_token, "achieved_flops_per_s": best["tokens_per_s"] * flops_per_token,
        "share_of_bf16_peak": share, "paper_training_tokens": paper_tokens,
        "paper_training_minutes": minutes[0], "paper_training_minutes_ci95": minutes[1:],
    }
    targets = {
        "speedup_at_least_1.5x": speedup is not None and speedup >= TARGETS["speedup_over_trl_defaults"],
        "at_least_40pct_of_bf16_peak": share >= TARGETS["share_of_bf16_peak"],
        "paper_training_under_15_min": minutes[0] < TARGETS["paper_training_minutes"],
    }
    return {"figures": figures, "targets": targets}


def _device(device: str) -> dict:
    import torch
    import transformers

    info = {"kind": device, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}")
    return info


if __name__ == "__main__":
    main()
