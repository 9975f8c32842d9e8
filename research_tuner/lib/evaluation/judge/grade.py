"""LLM-as-judge: the teacher (or evaluation.judge's model) grades each evaluation answer on the 7 sections and
feasibility.

The judge sees the question, the teacher's reference approach (for grounding, not as the only right
answer) and one response, never which model wrote it. It is asked for structured output (schema.py);
servers that ignore the schema are read by a fallback parser (parse.py). An answer that still does not give
all 8 integer scores on the scale is asked again, a bounded number of times, with a reminder; after that the
judgement is recorded as failed with its reason. A score is never filled in, clamped or guessed.

Every request goes through the teacher's cache: the key covers the rubric and the response (both in the
messages), the schema and the judge model, so a rerun sends only what has not been answered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.evaluation.judge.parse import UnreadableJudgement, parse_judgement
from research_tuner.lib.evaluation.judge.prompts import CRITERIA, judge_messages
from research_tuner.lib.evaluation.judge.schema import JUDGEMENT_SCHEMA
from research_tuner.lib.shared.ids import stable_seed
from research_tuner.lib.shared.schema import RowSchema
from research_tuner.lib.teacher.base import Teacher, TeacherFailure, TeacherRequest, TeacherResponse, Usage

if TYPE_CHECKING:
    from research_tuner.settings import JudgeSettings

SCORE_COLUMNS = [f"judge_{c}" for c in CRITERIA]
#: The `eval_judgements` table: one judgement per evaluation answer, 'ok' with the grades or 'failed' with why.
JUDGEMENTS = RowSchema("eval_judgements", {
    "question_id": "object", "field": "object", "model": "object", "judge_model": "object", "status": "object",
    "attempts": "int64", "error": "object", **{c: "float64" for c in SCORE_COLUMNS}, "judge_score": "float64",
    "rationale": "object",
})


def judge_request(row: dict, cfg: JudgeSettings, attempt: int = 0) -> TeacherRequest:
    """Temperature 0: a grade should depend on the answer, not on the draw."""
    return TeacherRequest(
        judge_messages(row["question"], row["reference"], row["response"], attempt),
        max_tokens=cfg.max_tokens,
        temperature=0.0,
        top_p=1.0,
        seed=stable_seed(row["question_id"], row["model"], "judge", attempt),
        json_schema=JUDGEMENT_SCHEMA,
    )


def _problem(response: TeacherResponse | TeacherFailure) -> tuple[str | None, tuple[dict[str, int], str] | None]:
    if isinstance(response, TeacherFailure):
        return f"transport: {response.reason}", None
    if response.finish_reason == "refusal":
        return "refused", None
    try:
        return None, parse_judgement(response.text)
    except UnreadableJudgement as exc:
        cut = " (cut at the token limit)" if response.finish_reason == "length" else ""
        return f"unreadable: {exc}{cut}", None


def empty_judgements() -> pd.DataFrame:
    """The judgements table with no rows: what a partition holds when the judge is off."""
    return JUDGEMENTS.empty()


def judge_responses(
    teacher: Teacher,
    generations: pd.DataFrame,
    cfg: JudgeSettings,
    usage: Usage,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One judgement row per evaluation answer: status 'ok' with the 8 scores and their mean (judge_score,
    on the 0-5 scale), or status 'failed' with the reason and no scores."""
    records = generations.to_dict("records")
    if not records:
        return empty_judgements()
    parsed: dict[int, tuple[dict[str, int], str]] = {}
    last_error: dict[int, str] = {}
    attempts: dict[int, int] = {}
    for attempt in range(cfg.max_retries + 1):
        pending = [i for i in range(len(records)) if i not in parsed]
        if not pending:
            break
        if attempt:
            usage.retries += len(pending)
        responses = teacher.complete([judge_request(records[i], cfg, attempt) for i in pending], usage, progress)
        for i, response in zip(pending, responses, strict=True):
            attempts[i] = attempt + 1
            error, result = _problem(response)
            if result is None:
                last_error[i] = error or "unknown"
            else:
                parsed[i] = result
                last_error.pop(i, None)

    rows = []
    for i, record in enumerate(records):
        row = {"question_id": record["question_id"], "field": record["field"], "model": record["model"],
               "judge_model": teacher.model, "attempts": attempts[i]}
        if i in parsed:
            scores, rationale = parsed[i]
            row |= {"status": "ok", "error": "", "rationale": rationale,
                    **{f"judge_{c}": float(v) for c, v in scores.items()},
                    "judge_score": sum(scores.values()) / len(scores)}
        else:
            usage.record_failure("judge " + last_error[i].split(":")[0])
            row |= {"status": "failed", "error": last_error[i], "rationale": "",
                    **{c: float("nan") for c in SCORE_COLUMNS}, "judge_score": float("nan")}
        rows.append(row)
    return JUDGEMENTS.frame(rows).astype({c: "float64" for c in SCORE_COLUMNS + ["judge_score"]})
