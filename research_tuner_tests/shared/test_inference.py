"""Batched greedy generation (`generate_batched`, what the evaluation and the local teacher call) gives each prompt the
answer it gets alone, on prompts of widely varied length (long left padding) from every field in one batch."""

import pytest

from research_tuner.lib.shared.chat import ChatPrompt, student_messages
from research_tuner.lib.shared.inference import generate_batched
from research_tuner.lib.shared.models import load_causal_lm, load_tokenizer
from research_tuner.lib.shared.taxonomy import load_taxonomy

BACKGROUND = "Earlier studies of {s} used small samples from one site, measured at irregular intervals."


def prompts() -> list[ChatPrompt]:
    """Two prompts per field, fields in turn, with 0 to 15 sentences of background: about 75 to 330 tokens."""
    out = []
    for i, field in enumerate(load_taxonomy() * 2):
        subdomain = field.subdomains[i % len(field.subdomains)]
        background = " ".join([BACKGROUND.format(s=subdomain)] * ((7 * i) % 16))
        question = f"{background} How could research in {subdomain} measure change more reliably?".strip()
        out.append(ChatPrompt(tuple(student_messages(question))))
    return out


@pytest.fixture(scope="module")
def alone(tiny_model_dir):
    """The model, its tokenizer, the prompts, and each prompt's greedy answer generated alone (no padding)."""
    tokenizer = load_tokenizer(str(tiny_model_dir))
    model = load_causal_lm(str(tiny_model_dir), precision="fp32", tokenizer=tokenizer)
    chat = prompts()
    answers = [generate_batched(model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0] for p in chat]
    return model, tokenizer, chat, answers


@pytest.mark.parametrize("batch_size", [16, 5])
def test_batched_greedy_answers_equal_one_at_a_time(alone, batch_size):
    model, tokenizer, chat, answers = alone
    batched = generate_batched(model, tokenizer, chat, max_new_tokens=12, batch_size=batch_size)
    lengths = [o.prompt_tokens for o in answers]
    assert max(lengths) > 4 * min(lengths)  # the shortest prompts of a batch sit behind long left padding
    assert [o.prompt_tokens for o in batched] == lengths  # results come back in the caller's order
    assert [(o.text, o.completion_tokens, o.finish_reason) for o in batched] == [
        (o.text, o.completion_tokens, o.finish_reason) for o in answers]
