"""Benchmark: the evaluation's batched generation against one prompt at a time and plain batched `generate`, in one
run, with the outputs compared.

Same model (the embedded SmolLM2-135M-Instruct, float32), same prompts, greedy decoding, same token limit:

- `one_at_a_time`: each prompt alone (no padding): the naive way, and the reference for the outputs;
- `plain_batched`: what a competent user writes: the prompts in their own order, `batch_size` at a time, padded
  on the left, through `model.generate`;
- `project`: `generate_batched` (lib/shared/inference.py), as the evaluation calls it: sorted by length, then
  batched and left-padded.

The prompts are student prompts over all 8 fields in turn (so every batch mixes fields), with a background
paragraph of 0 to `--max-context` sentences before the question, so prompt lengths vary several-fold and the
shorter prompts of a batch carry long left padding. Reported: tokens per second of each way, ratios, each batched
way's share of padding in its prompt batches and how many fields its batches mix, and how many greedy outputs
equal the one-at-a-time outputs (with the prompt lengths of those that do not). Results go to
benchmarks/results/eval_generation.json.

    python benchmarks/bench_eval_generation.py [--prompts 32] [--max-new-tokens 64] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_io import machine, write_results  # noqa: E402

from research_tuner.lib.shared.chat import ChatPrompt, render_prompt, student_messages  # noqa: E402
from research_tuner.lib.shared.inference import generate_batched  # noqa: E402
from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer  # noqa: E402
from research_tuner.lib.shared.taxonomy import load_taxonomy  # noqa: E402
from research_tuner.settings import EMBEDDED_MODEL  # noqa: E402

CONTEXT = (
    "Earlier work in {s} relied on small samples drawn from a single site.",
    "Measurements were taken at irregular intervals, which makes trends hard to compare.",
    "Several groups have proposed new instruments, but few have been validated independently.",
    "Funding bodies now ask for open data and pre-registered analysis plans.",
    "Practitioners report that the published findings rarely transfer to their settings.",
)


def prompts(n: int, max_context: int) -> tuple[list[ChatPrompt], list[str]]:
    """(prompts, field of each): fields in turn, each prompt with (7 * i) mod (max_context + 1) sentences of
    background before its question."""
    fields = load_taxonomy()
    out, names = [], []
    for i in range(n):
        field = fields[i % len(fields)]
        subdomain = field.subdomains[(i // len(fields)) % len(field.subdomains)]
        sentences = (7 * i) % (max_context + 1)
        background = " ".join(CONTEXT[k % len(CONTEXT)].format(s=subdomain) for k in range(sentences))
        question = f"How could research in {subdomain} measure change over time more reliably?"
        text = f"Background: {background}\n\nQuestion: {question}" if background else question
        out.append(ChatPrompt(tuple(student_messages(text))))
        names.append(field.key)
    return out, names


def eos_ids(model, tokenizer) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None)


@torch.inference_mode()
def plain_batched(model, tokenizer, chat_prompts, *, max_new_tokens: int, batch_size: int) -> tuple[list[str], dict]:
    """Texts of plain batched greedy `generate` in the prompts' own order, and its padding."""
    tokenizer.padding_side = "left"
    texts = [render_prompt(tokenizer, p) for p in chat_prompts]
    out, real, total = [], 0, 0
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        real, total = real + int(batch["attention_mask"].sum()), total + batch["attention_mask"].numel()
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                   top_p=None, top_k=None, eos_token_id=eos_ids(model, tokenizer),
                                   pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return out, {"prompt_padding_share": round(1 - real / total, 3)}


def project_batches(lengths: list[int], fields: list[str], batch_size: int) -> dict:
    """The padding and field mix of the batches `generate_batched` makes (it sorts by length, then cuts)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    real = sum(lengths)
    total = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return {"prompt_padding_share": round(1 - real / total, 3),
            "fields_per_batch": [len({fields[i] for i in b}) for b in batches]}


def parity(reference: list[str], texts: list[str], lengths: list[int]) -> dict:
    differ = [i for i, (a, b) in enumerate(zip(reference, texts)) if a != b]
    return {"identical_greedy_outputs": f"{len(reference) - len(differ)}/{len(reference)}",
            "differing_prompt_lengths": [lengths[i] for i in differ]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-context", type=int, default=20, help="most background sentences before a question")
    parser.add_argument("--model", default=EMBEDDED_MODEL)
    args = parser.parse_args()

    tokenizer = load_tokenizer(args.model)
    model = load_causal_lm(args.model, precision="fp32", tokenizer=tokenizer)
    chat_prompts, fields = prompts(args.prompts, args.max_context)
    lengths = [len(tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"])
               for p in chat_prompts]
    generate_batched(model, tokenizer, chat_prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    t0 = time.perf_counter()
    one_by_one = [generate_batched(model, tokenizer, [p], max_new_tokens=args.max_new_tokens, batch_size=1)[0]
                  for p in chat_prompts]
    one_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plain, plain_padding = plain_batched(model, tokenizer, chat_prompts, max_new_tokens=args.max_new_tokens,
                                         batch_size=args.batch_size)
    plain_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = generate_batched(model, tokenizer, chat_prompts, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size)
    project_s = time.perf_counter() - t0

    # the same tokens for every way when the outputs agree; each way is credited with the reference's count
    tokens = sum(o.completion_tokens for o in one_by_one)
    reference = [o.text for o in one_by_one]

    def rate(seconds: float) -> float:
        return round(tokens / seconds, 1)

    result = {
        "model": args.model,
        "prompts": args.prompts,
        "fields": sorted(set(fields)),
        "prompt_tokens": {"min": min(lengths), "max": max(lengths), "mean": round(sum(lengths) / len(lengths), 1)},
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "generated_tokens": tokens,
        "one_at_a_time": {"seconds": round(one_s, 2), "tokens_per_s": rate(one_s)},
        "plain_batched": {"seconds": round(plain_s, 2), "tokens_per_s": rate(plain_s), **plain_padding,
                          **parity(reference, plain, lengths)},
        "project": {"seconds": round(project_s, 2), "tokens_per_s": rate(project_s),
                    **project_batches(lengths, fields, args.batch_size),
                    **parity(reference, [o.text for o in batched], lengths)},
        "speedup_vs_one_at_a_time": round(one_s / project_s, 2),
        "speedup_vs_plain_batched": round(plain_s / project_s, 2),
        "machine": machine(),
    }
    print(f"wrote {write_results('eval_generation', result)}")
    print({k: result[k] for k in ("prompt_tokens", "one_at_a_time", "plain_batched", "project")})


if __name__ == "__main__":
    main()
