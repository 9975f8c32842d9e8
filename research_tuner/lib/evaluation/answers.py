"""The evaluation answers: the base model (adapter switched off) and the fine-tuned model answer the same
validation questions, greedy, with the same token limit. Scoring them is another step (scoring.py)."""

from __future__ import annotations

import pandas as pd

from research_tuner.lib.shared.chat import student_prompt
from research_tuner.lib.shared.inference import MODELS, generate_as
from research_tuner.lib.shared.schema import RowSchema

#: The `eval_generations` table: one answer per (question, model).
GENERATIONS = RowSchema("eval_generations", {
    "question_id": "object", "field": "object", "subdomain": "object", "question": "object", "reference": "object",
    "model": "object", "response": "object", "finish_reason": "object", "completion_tokens": "int64",
    "sample_seed": "int64",
})


def answer_both(peft_model, tokenizer, sample: pd.DataFrame, *, max_new_tokens: int, batch_size: int,
                sample_seed: int = 0, progress=None) -> pd.DataFrame:
    """Greedy answers from the base model (adapter disabled) and the fine-tuned model, same token limit.

    One base model is loaded; the adapter is switched off for the base answers instead of loading a
    second copy. `sample_seed` is the seed that drew `sample`, kept with each row so the next run can tell
    whether to keep the same sample.
    """
    prompts = [student_prompt(q) for q in sample["question"]]
    rows = []
    for name in MODELS:
        outputs = generate_as(name, peft_model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                              batch_size=batch_size, progress=progress)
        for record, out in zip(sample.to_dict("records"), outputs, strict=True):
            rows.append({
                "question_id": record["question_id"], "field": record["field"], "subdomain": record["subdomain"],
                "question": record["question"], "reference": record["approach"], "model": name,
                "response": out.text, "finish_reason": out.finish_reason, "completion_tokens": out.completion_tokens,
                "sample_seed": sample_seed,
            })
    return GENERATIONS.frame(rows)
