"""Research-question generation: every subdomain's requests, sent through the teacher, parsed into rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.generation.question_strategies import question_strategy
from research_tuner.lib.shared.ids import question_id
from research_tuner.lib.shared.schema import RowSchema
from research_tuner.lib.teacher.base import OVERSIZE, Teacher, TeacherFailure, Usage

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

#: The `raw_questions` table: one row per question the teacher wrote.
RAW_QUESTIONS = RowSchema("raw_questions", {
    "question_id": "object", "field": "object", "subdomain": "object", "question": "object",
    "teacher_model": "object", "generation_round": "int64",
})


def generate_questions(
    teacher: Teacher,
    field: str,
    subdomains: list[str],
    cfg: TeacherSettings,
    questions_per_subdomain: int,
    usage: Usage,
    progress=None,
    generation_round: int = 0,
) -> pd.DataFrame:
    """Ask the teacher for questions on every subdomain; one row per parsed question (`RAW_QUESTIONS`).

    `generation_round` is part of every request's seed, so each round asks the teacher for new questions.
    Responses that yield no question (malformed, refused, cut off) are counted in `usage` as failures
    and never become rows.
    """
    strategy = question_strategy(cfg.question_strategy)
    planned = [p for subdomain in subdomains
               for p in strategy.plan(field, subdomain, questions_per_subdomain, cfg, generation_round)]
    responses = teacher.complete([p.request for p in planned], usage, progress)
    rows = []
    for plan, response in zip(planned, responses, strict=True):
        if isinstance(response, TeacherFailure):
            continue
        if response.finish_reason == OVERSIZE:
            usage.record_failure("oversize answer")
            continue
        questions = strategy.parse(plan, response.text)
        if not questions:
            usage.record_failure("no question in response")
        for q in questions[:questions_per_subdomain]:
            rows.append({
                "question_id": question_id(field, plan.subdomain, q),
                "field": field,
                "subdomain": plan.subdomain,
                "question": q,
                "teacher_model": teacher.model,
                "generation_round": generation_round,
            })
    return RAW_QUESTIONS.frame(rows)
