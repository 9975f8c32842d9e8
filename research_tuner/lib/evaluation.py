"""Evaluation: the base model and the fine-tuned model answer the same validation questions, scored
against the teacher's approach with ROUGE-L, METEOR and section coverage."""

from __future__ import annotations

import contextlib

import pandas as pd

from research_tuner.lib.generation import ChatPrompt, generate_batched
from research_tuner.lib.metrics import score_pairs
from research_tuner.lib.prompts import student_messages
from research_tuner.lib.sections import section_coverage

MODELS = ("base", "fine_tuned")
GENERATION_COLUMNS = [
    "question_id", "field", "subdomain", "question", "reference", "model", "response",
    "finish_reason", "completion_tokens", "rouge_l", "meteor", "section_coverage",
]


def generate_as(model: str, peft_model, tokenizer, prompts: list[ChatPrompt], **kwargs):
    """Answers from 'base' (the adapter switched off) or 'fine_tuned', from the one loaded model."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, not {model!r}")
    with peft_model.disable_adapter() if model == "base" else contextlib.nullcontext():
        return generate_batched(peft_model, tokenizer, prompts, **kwargs)


def answer_both(peft_model, tokenizer, sample: pd.DataFrame, *, max_new_tokens: int, batch_size: int,
                progress=None) -> pd.DataFrame:
    """Greedy answers from the base model (adapter disabled) and the fine-tuned model, same token limit.

    One base model is loaded; the adapter is switched off for the base answers instead of loading a
    second copy.
    """
    prompts = [ChatPrompt(tuple(student_messages(q))) for q in sample["question"]]
    rows = []
    for name in MODELS:
        outputs = generate_as(name, peft_model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                              batch_size=batch_size, progress=progress)
        for record, out in zip(sample.to_dict("records"), outputs, strict=True):
            rows.append({
                "question_id": record["question_id"], "field": record["field"], "subdomain": record["subdomain"],
                "question": record["question"], "reference": record["approach"], "model": name,
                "response": out.text, "finish_reason": out.finish_reason, "completion_tokens": out.completion_tokens,
            })
    frame = pd.DataFrame(rows)
    scores = score_pairs(frame["response"].tolist(), frame["reference"].tolist())
    frame["rouge_l"] = scores["rouge_l"].to_numpy()
    frame["meteor"] = scores["meteor"].to_numpy()
    frame["section_coverage"] = [section_coverage(t) for t in frame["response"]]
    return frame[GENERATION_COLUMNS]


def with_judge_scores(generations: pd.DataFrame, judgements: pd.DataFrame | None) -> pd.DataFrame:
    """The generations with a judge_score column (nan where the judgement failed) when any judgement
    succeeded; unchanged, with no such column, when the judge was off."""
    if judgements is None or not (judgements["status"] == "ok").any():
        return generations
    ok = judgements.loc[judgements["status"] == "ok", ["question_id", "model", "judge_score"]]
    return generations.merge(ok, on=["question_id", "model"], how="left", validate="one_to_one")


def summarise(generations: pd.DataFrame, judgements: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (field, model): n, mean ROUGE-L, METEOR, section coverage, share stopped at the limit;
    with judge scores, their mean over the answers graded (judge_n) and the failed judgements."""
    grouped = generations.groupby(["field", "model"], sort=True)
    table = grouped.agg(
        n=("question_id", "size"),
        rouge_l=("rouge_l", "mean"),
        meteor=("meteor", "mean"),
        section_coverage=("section_coverage", "mean"),
        hit_token_limit=("finish_reason", lambda s: float((s == "length").mean())),
    ).reset_index()
    if judgements is not None and (judgements["status"] == "ok").any():
        judged = judgements.groupby(["field", "model"], sort=True).agg(
            judge_score=("judge_score", "mean"),  # nan rows (failures) are skipped by the mean
            judge_n=("status", lambda s: int((s == "ok").sum())),
            judge_failed=("status", lambda s: int((s == "failed").sum())),
        ).reset_index()
        table = table.merge(judged, on=["field", "model"], how="left")
    return table
