"""Benchmark: the local teacher's per-request sampler against transformers' own sampling, in one run, with how
often each way's answer to a request changes when its batch changes.

Same model (the embedded SmolLM2-135M-Instruct in bfloat16, as the demo's teacher runs it), same prompts (the
demo's one-section-at-a-time approach prompts over questions of all 8 fields), same token limit, temperature and
top_p, same batching (`generate_batched`'s length-sorted, left-padded batches):

- `global_sampler`: `model.generate(do_sample=True)` with `torch.manual_seed` before each batch: what a
  competent user writes, and what the local teacher did before (transformers keeps the 50 likeliest tokens by
  default, then the nucleus, then draws every row from the one global generator);
- `per_request`: `generate_batched(..., seeds=...)` (lib/shared/sampling.py): the same top-50 and nucleus, each
  row drawn from its own generator seeded from its request.

Timed at the batch sizes the demo's approaches step sends: `--batch-size` (its first pass) and `--small-batch`
(its retry passes); and the per-request sampler alone at 1, `--small-batch` and `--free-rows` rows, what a
retry pass costs by its size. Then batch independence: every prompt's answer in one batch of `--batch-size` against its
answer in batches of `--small-batch`, for both ways (for the global sampler the seed of a batch is the first
request's, as the teacher used it); and the per-request sampler's again in float32 over the first
`--float32-prompts` prompts, where rounding is finer. Results go to benchmarks/results/sampling.json.

    python benchmarks/bench_sampling.py [--prompts 64] [--batch-size 64] [--small-batch 4] [--max-new-tokens 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import machine, write_results  # noqa: E402

from research_tuner.lib.generation import approach_prompts  # noqa: E402
from research_tuner.lib.shared.chat import ChatPrompt, render_prompt  # noqa: E402
from research_tuner.lib.shared.ids import stable_seed  # noqa: E402
from research_tuner.lib.shared.inference import generate_batched  # noqa: E402
from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer  # noqa: E402
from research_tuner.lib.shared.taxonomy import load_taxonomy  # noqa: E402
from research_tuner.settings import EMBEDDED_MODEL  # noqa: E402

QUESTION = "How could research in {s} measure change over time more reliably, and at what cost?"


def section_prompts(n: int) -> list[ChatPrompt]:
    """Approach-section prompts as the demo's teacher gets them: fields and sections in turn."""
    fields = load_taxonomy()
    sections = list(approach_prompts.SECTION_INSTRUCTIONS.values())
    out = []
    for i in range(n):
        field = fields[i % len(fields)]
        subdomain = field.subdomains[(i // len(fields)) % len(field.subdomains)]
        user = approach_prompts.SECTION_USER.format(question=QUESTION.format(s=subdomain),
                                                    instruction=sections[i % len(sections)])
        out.append(ChatPrompt(({"role": "system", "content": approach_prompts.SECTION_SYSTEM},
                               {"role": "user", "content": user})))
    return out


@torch.inference_mode()
def global_sampler(model, tokenizer, prompts, seeds, *, batch_size, max_new_tokens, temperature, top_p) -> list[str]:
    """transformers' sampling in generate_batched's batches (sorted by length), one manual_seed per batch."""
    tokenizer.padding_side = "left"
    texts = [render_prompt(tokenizer, p) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out: list[str] = [""] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seeds[idx[0]])
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                                   top_p=top_p, eos_token_id=tokenizer.eos_token_id,
                                   pad_token_id=tokenizer.pad_token_id)
        for row, text in zip(idx, tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:],
                                                         skip_special_tokens=True)):
            out[row] = text
    return out


def per_request(model, tokenizer, prompts, seeds, *, batch_size, max_new_tokens, temperature, top_p) -> list[str]:
    return [o.text for o in generate_batched(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                             batch_size=batch_size, do_sample=True, temperature=temperature,
                                             top_p=top_p, seeds=seeds)]


WAYS = {"global_sampler": global_sampler, "per_request": per_request}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="the demo teacher's batch (max_concurrency)")
    parser.add_argument("--small-batch", type=int, default=4, help="a retry pass's batch")
    parser.add_argument("--max-new-tokens", type=int, default=40, help="the demo's tokens per section")
    parser.add_argument("--temperature", type=float, default=0.7, help="the demo's section temperature")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per way and batch size (best kept)")
    parser.add_argument("--float32-prompts", type=int, default=16)
    parser.add_argument("--free-rows", type=int, default=16, help="the batch compared with one row")
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    args = parser.parse_args()

    tokenizer = load_tokenizer(args.model)
    model = load_causal_lm(args.model, precision="bf16", tokenizer=tokenizer)
    prompts = section_prompts(args.prompts)
    seeds = [stable_seed("bench_sampling", i) for i in range(len(prompts))]
    small = prompts[:args.small_batch], seeds[:args.small_batch]
    options = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p}
    per_request(model, tokenizer, prompts[:2], seeds[:2], batch_size=2, max_new_tokens=4,
                temperature=args.temperature, top_p=args.top_p)  # warm-up

    timings: dict[str, dict] = {}
    answers: dict[str, dict[int, list[str]]] = {name: {} for name in WAYS}
    for label, (these, their_seeds) in {"batch": (prompts, seeds), "small_batch": small}.items():
        for name, way in WAYS.items():  # interleaved, best of `repeats`
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                texts = way(model, tokenizer, these, their_seeds, batch_size=args.batch_size, **options)
                best = min(best, time.perf_counter() - t0)
            timings.setdefault(label, {})[name] = round(best, 2)
            if label == "batch":
                answers[name][args.batch_size] = texts
    by_rows = {}  # what a retry pass costs by its size: the local teacher's free rows (FREE_BATCH_ROWS)
    for rows in sorted({1, args.small_batch, args.free_rows}):
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            per_request(model, tokenizer, prompts[:rows], seeds[:rows], batch_size=rows, **options)
            best = min(best, time.perf_counter() - t0)
        by_rows[rows] = round(best, 2)
    for name, way in WAYS.items():
        answers[name][args.small_batch] = way(model, tokenizer, prompts, seeds, batch_size=args.small_batch,
                                              **options)

    def unchanged(big: list[str], little: list[str]) -> str:
        return f"{sum(a == b for a, b in zip(big, little, strict=True))}/{len(big)}"

    model = load_causal_lm(args.model, precision="fp32", tokenizer=tokenizer)
    few, few_seeds = prompts[:args.float32_prompts], seeds[:args.float32_prompts]
    float32 = [per_request(model, tokenizer, few, few_seeds, batch_size=size, **options)
               for size in (args.float32_prompts, args.small_batch)]

    result = {
        "model": args.model,
        "precision": "bf16",
        "prompts": args.prompts,
        "prompt_tokens_mean": round(sum(len(tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)
                                            ["input_ids"]) for p in prompts) / len(prompts), 1),
        **options,
        "seconds": {f"{args.batch_size if k == 'batch' else args.small_batch}_prompts": v for k, v in timings.items()},
        "speedup": {f"{args.batch_size if k == 'batch' else args.small_batch}_prompts":
                    round(v["global_sampler"] / v["per_request"], 2) for k, v in timings.items()},
        "per_request_seconds_by_rows": by_rows,
        f"{args.free_rows}_rows_vs_1_row": round(by_rows[args.free_rows] / by_rows[1], 2),
        f"answers_unchanged_from_batches_of_{args.batch_size}_to_{args.small_batch}":
            {name: unchanged(answers[name][args.batch_size], answers[name][args.small_batch]) for name in WAYS},
        f"float32_per_request_answers_unchanged_from_batches_of_{args.float32_prompts}_to_{args.small_batch}":
            unchanged(*float32),
        "machine": machine(),
    }
    print(f"wrote {write_results('sampling', result)}")
    print({k: result[k] for k in result if k != "machine"})


if __name__ == "__main__":
    main()
