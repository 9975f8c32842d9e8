"""The per-request sampler (lib/shared/sampling.py): each row drawn from its own seed, among the top-k tokens and
inside the nucleus, with the frequencies the probabilities say; and through `generate_batched`, a request's
answer that does not depend on its batch-mates (float32, where rounding does not move a draw)."""

import math

import pytest
import torch

from research_tuner.lib.shared.chat import ChatPrompt, student_messages
from research_tuner.lib.shared.inference import generate_batched
from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer
from research_tuner.lib.shared.sampling import TOP_K, PerRequestSampler


def _pick(sampler: PerRequestSampler, scores: torch.Tensor) -> list[int]:
    out = sampler(torch.zeros((scores.shape[0], 1), dtype=torch.long), scores)
    assert torch.isfinite(out).sum(dim=-1).tolist() == [1] * scores.shape[0]  # one finite score per row
    return out.argmax(dim=-1).tolist()


def test_draws_follow_the_probabilities_within_the_nucleus():
    # four likely tokens (0.4, 0.3, 0.2, 0.1) and 96 unlikely ones; top_p 0.85 keeps the first three
    probs = torch.full((100,), 1e-6)
    probs[:4] = torch.tensor([0.4, 0.3, 0.2, 0.1])
    scores = probs.log().repeat(4000, 1)
    picked = _pick(PerRequestSampler(range(4000), temperature=1.0, top_p=0.85), scores)
    counts = [picked.count(t) for t in range(4)]
    assert counts[3] == 0 and len(set(picked)) == 3  # outside the nucleus: never
    kept = torch.tensor([0.4, 0.3, 0.2]) / 0.9
    for count, p in zip(counts, kept.tolist()):
        sd = math.sqrt(4000 * p * (1 - p))
        assert abs(count - 4000 * p) < 5 * sd  # the seeds are fixed, so this is deterministic too


def test_only_the_top_k_tokens_are_candidates():
    scores = torch.zeros(2000, TOP_K + 50)  # all equally likely: the nucleus keeps all top-k
    scores[:, TOP_K:] = -0.001  # a hair less likely: outside the top k
    picked = _pick(PerRequestSampler(range(2000), temperature=1.0, top_p=1.0), scores)
    assert max(picked) < TOP_K and len(set(picked)) > TOP_K // 2


def test_a_row_depends_on_its_seed_only():
    scores = torch.randn(8, 300, generator=torch.Generator().manual_seed(0))
    alone = [_pick(PerRequestSampler([7], 1.0, 0.95), scores[i:i + 1])[0] for i in range(8)]
    together = _pick(PerRequestSampler([7] * 8, 1.0, 0.95), scores)
    assert together == alone
    shuffled = _pick(PerRequestSampler([7] * 8, 1.0, 0.95), scores.flip(0))
    assert shuffled == alone[::-1]
    other_seeds = [_pick(PerRequestSampler([s], 1.0, 0.95), scores[:1])[0] for s in range(40)]
    assert len(set(other_seeds)) > 3  # another seed, another draw


def test_a_sampler_needs_a_positive_temperature_and_a_seed_per_row():
    with pytest.raises(ValueError, match="temperature"):
        PerRequestSampler([1], temperature=0.0, top_p=1.0)
    with pytest.raises(ValueError, match="2 rows of scores for 1 seeds"):
        PerRequestSampler([1], 1.0, 1.0)(torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 10))


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    tokenizer = load_tokenizer(str(tiny_model_dir))
    return load_causal_lm(str(tiny_model_dir), precision="fp32", tokenizer=tokenizer), tokenizer


def _prompts(n: int) -> list[ChatPrompt]:
    return [ChatPrompt(tuple(student_messages(f"How could study {i} measure {'change ' * (i % 5)}reliably?")))
            for i in range(n)]


def test_a_sampled_answer_is_the_same_in_any_batch(model):
    lm, tokenizer = model
    prompts, seeds = _prompts(9), [100 + i for i in range(9)]
    kwargs = {"max_new_tokens": 10, "do_sample": True, "temperature": 1.0, "top_p": 0.95}
    together = generate_batched(lm, tokenizer, prompts, batch_size=9, seeds=seeds, **kwargs)
    in_threes = generate_batched(lm, tokenizer, prompts, batch_size=3, seeds=seeds, **kwargs)
    alone = [generate_batched(lm, tokenizer, [p], batch_size=1, seeds=[s], **kwargs)[0]
             for p, s in zip(prompts, seeds)]
    assert [o.text for o in together] == [o.text for o in in_threes] == [o.text for o in alone]
    reseeded = generate_batched(lm, tokenizer, prompts, batch_size=9, seeds=[s + 1 for s in seeds], **kwargs)
    assert sum(a.text != b.text for a, b in zip(together, reseeded)) >= 5  # the seed is what decides


def test_sampling_without_a_seed_per_prompt_is_refused(model):
    lm, tokenizer = model
    with pytest.raises(ValueError, match="one seed per prompt"):
        generate_batched(lm, tokenizer, _prompts(2), max_new_tokens=4, do_sample=True, seeds=[1])
