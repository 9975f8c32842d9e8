"""Sampling with one random stream per request, so that a prompt's completion depends on its own seed, not on
the prompts it happens to share a batch with.

`model.generate(do_sample=True)` draws every row of a batch from the one global generator, over the whole
vocabulary (a sort and an exponential per vocabulary entry and step). Then the answer to a request depends on its
batch-mates and on where it sits in its batch. This sampler gives each row its own `torch.Generator`, seeded from
the request, and draws one uniform number per row and step, among the `TOP_K` likeliest tokens only (what
transformers' sampling keeps by default). It costs much less than the global sampler: a batch of 64 of the demo's
section prompts runs 1.76x as fast, a batch of 4 1.37x (benchmarks/results/sampling.json).

In float32 a request's answer is then the same in any batch (16 of 16 prompts, batches of 16 against 4; and
test_sampling.py). In bfloat16, padding a prompt into another batch changes the rounding of its logits enough to
move draws: none of 64 answers of 40 tokens stayed the same between batches of 64 and 4, as with the global
sampler. So batching stays part of what decides a bfloat16 teacher's text; the seed is the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

#: Candidates per step: the likeliest tokens, as transformers' sampling keeps by default (`top_k=50`).
TOP_K = 50


class PerRequestSampler(LogitsProcessor):
    """Picks each row's next token with its own generator; returns scores where only that token is finite, so
    greedy decoding (`do_sample=False`) keeps exactly the sampled token."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, top_k: int = TOP_K):
        if temperature <= 0:
            raise ValueError(f"temperature must be above 0 to sample, not {temperature}")
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self._generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.shape[0] != len(self._generators):
            raise ValueError(f"{scores.shape[0]} rows of scores for {len(self._generators)} seeds")
        values, candidates = torch.topk(scores.float() / self.temperature, min(self.top_k, scores.shape[-1]), dim=-1)
        probs = torch.softmax(values, dim=-1)
        # nucleus: the likeliest candidates until their mass reaches top_p (the first one always stays)
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= self.top_p, 0.0)
        cdf = probs.cumsum(-1)
        draws = torch.cat([torch.rand(1, generator=g) for g in self._generators]).to(cdf.device) * cdf[:, -1]
        picked = torch.searchsorted(cdf, draws[:, None], right=True).clamp_max(cdf.shape[-1] - 1)
        tokens = candidates.gather(-1, picked)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens, 0.0)
