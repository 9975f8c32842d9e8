"""Benchmark: batched evaluation generation against one-prompt-at-a-time `generate`, in one run.

Same model (the embedded SmolLM2-135M-Instruct), same prompts, greedy decoding, same token limit. Reports
tokens per second for each, their ratio, and how many greedy outputs are identical. Results go to
benchmarks/results/eval_generation.json.

    python benchmarks/bench_eval_generation.py [--prompts 16] [--max-new-tokens 64] [--batch-size 16]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from research_tuner.lib.shared.chat import ChatPrompt, student_messages
from research_tuner.lib.shared.inference import generate_batched
from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer
from research_tuner.lib.shared.taxonomy import load_taxonomy
from research_tuner.settings import EMBEDDED_MODEL

RESULTS = Path(__file__).parent / "results" / "eval_generation.json"


def questions(n: int) -> list[str]:
    subdomains = [s for f in load_taxonomy() for s in f.subdomains]
    forms = ("How does {} research measure change over time?", "What limits current methods in {}?")
    return [forms[i % 2].format(subdomains[i % len(subdomains)]) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    tokenizer = load_tokenizer(EMBEDDED_MODEL)
    model = load_causal_lm(EMBEDDED_MODEL, precision="fp32", tokenizer=tokenizer)
    prompts = [ChatPrompt(tuple(student_messages(q))) for q in questions(args.prompts)]
    generate_batched(model, tokenizer, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    t0 = time.perf_counter()
    one_by_one = [generate_batched(model, tokenizer, [p], max_new_tokens=args.max_new_tokens, batch_size=1)[0]
                  for p in prompts]
    baseline_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = generate_batched(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size)
    batched_s = time.perf_counter() - t0

    tokens = sum(o.completion_tokens for o in one_by_one)
    tokens_batched = sum(o.completion_tokens for o in batched)
    identical = sum(a.text == b.text for a, b in zip(one_by_one, batched))
    result = {
        "model": EMBEDDED_MODEL,
        "prompts": args.prompts,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "one_at_a_time": {"seconds": round(baseline_s, 2), "tokens": tokens, "tokens_per_s": round(tokens / baseline_s, 1)},
        "batched": {"seconds": round(batched_s, 2), "tokens": tokens_batched,
                    "tokens_per_s": round(tokens_batched / batched_s, 1)},
        "speedup": round((tokens_batched / batched_s) / (tokens / baseline_s), 2),
        "identical_greedy_outputs": f"{identical}/{len(prompts)}",
        "machine": {"cpu_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
