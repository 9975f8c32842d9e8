"""Inference with a local Hugging Face model: batched chat generation (the in-process teacher, the evaluation, the
`answer` command) and the fine-tuned model loaded from its adapter.

Prompts are sorted by length and padded on the left, so a batch wastes little compute on padding and
every sequence's next token sits in the last column. Results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LogitsProcessorList

from research_tuner.lib.shared.chat import ChatPrompt, render_prompt
from research_tuner.lib.shared.models import hub_token, load_causal_lm, load_tokenizer
from research_tuner.lib.shared.sampling import PerRequestSampler


@dataclass(frozen=True)
class GenerationOutput:
    text: str  # the completion only, without the assistant prefix
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" at an end-of-sequence token, "length" at the token limit


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
    seeds: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[GenerationOutput]:
    """Generate a completion for every prompt; greedy unless `do_sample`, which samples each prompt from its own
    seed (`seeds`, one per prompt: sampling.py) rather than from one stream per batch."""
    if do_sample and (seeds is None or len(seeds) != len(prompts)):
        raise ValueError("sampling needs one seed per prompt")
    if tokenizer.padding_side != "left":
        tokenizer.padding_side = "left"
    texts = [render_prompt(tokenizer, p) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    eos_ids = _eos_ids(model, tokenizer)
    results: list[GenerationOutput | None] = [None] * len(texts)
    # sampling too decodes greedily: the sampler leaves each row one finite score, its drawn token
    greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    done = 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        batch = batch.to(model.device)
        sampler = [PerRequestSampler([seeds[i] for i in idx], temperature, top_p)] if do_sample else []
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_ids,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList(sampler),
            **greedy,
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


#: The two models of an evaluation, both from one loaded model: the base (adapter switched off) and the adapter's.
MODELS = ("base", "fine_tuned")


def generate_as(model: str, peft_model, tokenizer, prompts: Sequence[ChatPrompt], **kwargs) -> list[GenerationOutput]:
    """Answers from 'base' (the adapter switched off) or 'fine_tuned', from the one loaded model."""
    import contextlib

    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    with peft_model.disable_adapter() if model == "base" else contextlib.nullcontext():
        return generate_batched(peft_model, tokenizer, prompts, **kwargs)


def _tokenizer_dir_for(adapter_dir: Path) -> Path:
    for candidate in (adapter_dir, adapter_dir.parent / "tokenizer"):
        if (candidate / "tokenizer_config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no saved tokenizer next to the adapter in {adapter_dir}")


def load_for_inference(
    base_model: str, adapter_dir: Path, precision: str = "auto", *, token: str | None = None
):
    """(peft_model, tokenizer): the base model with the adapter applied, in eval mode, and the tokenizer saved
    with the adapter (left padding, pad distinct from EOS).

    `with model.disable_adapter():` gives the base model's outputs from the same loaded weights.
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    token = token if token is not None else hub_token()
    tokenizer = load_tokenizer(str(_tokenizer_dir_for(adapter_dir)), padding_side="left")
    base = load_causal_lm(base_model, precision=precision, token=token, tokenizer=tokenizer)
    model = PeftModel.from_pretrained(base, str(adapter_dir), is_trainable=False)
    model.eval()
    return model, tokenizer
