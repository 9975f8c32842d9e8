"""Batched chat generation with a local Hugging Face model: the in-process teacher and the evaluation.

Prompts are sorted by length and padded on the left, so a batch wastes little compute on padding and
every sequence's next token sits in the last column. Results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation to continue; `assistant_prefix` is text the answer is forced to start with."""

    messages: tuple[dict[str, str], ...]
    assistant_prefix: str = ""


@dataclass(frozen=True)
class GenerationOutput:
    text: str  # the completion only, without the assistant prefix
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" at an end-of-sequence token, "length" at the token limit


#: Extra variables for every chat template, at training and at inference alike. Llama 3.x templates write
#: "Today Date: <date>" into the system turn, today's date unless `date_string` is given; a fixed date keeps
#: the prompts of the training day and the evaluation day identical. This one is the templates' own fallback.
CHAT_TEMPLATE_KWARGS: dict[str, str] = {"date_string": "26 Jul 2024"}


def render_prompt(tokenizer, prompt: ChatPrompt) -> str:
    """The model's own chat template, ending where the assistant's answer (after the prefix) begins."""
    text = tokenizer.apply_chat_template(
        list(prompt.messages), tokenize=False, add_generation_prompt=True, **CHAT_TEMPLATE_KWARGS
    )
    return text + prompt.assistant_prefix


def _eos_ids(model, tokenizer) -> list[int]:
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None)


@torch.inference_mode()
def generate_batched(
    model,
    tokenizer,
    prompts: Sequence[ChatPrompt],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[GenerationOutput]:
    """Generate a completion for every prompt; greedy unless `do_sample`."""
    if tokenizer.padding_side != "left":
        tokenizer.padding_side = "left"
    texts = [render_prompt(tokenizer, p) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    eos_ids = _eos_ids(model, tokenizer)
    results: list[GenerationOutput | None] = [None] * len(texts)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if do_sample else {
        "do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    done = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        if do_sample:
            torch.manual_seed(seed + start)
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_ids,
            pad_token_id=tokenizer.pad_token_id,
            **sampling,
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        for row, i in enumerate(idx):
            tokens = new_tokens[row].tolist()
            stop_at = next((k for k, t in enumerate(tokens) if t in eos_ids), None)
            kept = tokens if stop_at is None else tokens[:stop_at]
            kept = [t for t in kept if t != tokenizer.pad_token_id]
            results[i] = GenerationOutput(
                text=tokenizer.decode(kept, skip_special_tokens=True),
                prompt_tokens=lengths[i],
                completion_tokens=len(kept) + (0 if stop_at is None else 1),
                finish_reason="length" if stop_at is None else "stop",
            )
        done += len(idx)
        if progress:
            progress(done, len(texts))
    return results  # type: ignore[return-value]
