"""Research-approach generation: one Markdown approach with the 7 sections per question.

Each question's parts (the whole approach, or its 7 sections) are asked for in one pass over all questions; a
part whose response is rejected is asked again with a new seed, a bounded number of times
(`teacher.max_retries`). An approach that is still incomplete after the retries is returned as a failure row
with its reason, never as a valid one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.approaches.strategies import APPROACH_STRATEGIES
from research_tuner.lib.shared.schema import RowSchema
from research_tuner.lib.teacher.base import Teacher, Usage

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

_QUESTION = {"question_id": "object", "field": "object", "subdomain": "object", "question": "object"}
#: The `approaches` table: one row per question with a valid approach.
APPROACHES = RowSchema("approaches", {**_QUESTION, "approach": "object", "teacher_model": "object"})
#: Questions whose approach stayed invalid after the retries, with the last reason (the asset's metadata).
FAILED_APPROACHES = RowSchema("failed_approaches", {**_QUESTION, "error": "object"})


def generate_approaches(
    teacher: Teacher, questions: pd.DataFrame, cfg: TeacherSettings, usage: Usage, progress=None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid approaches, failures): one row per question in exactly one of the two tables."""
    strategy = APPROACH_STRATEGIES[cfg.approach_strategy]
    records = questions.to_dict("records")
    accepted: dict[tuple[int, object], str] = {}
    last_error: dict[int, str] = {}
    for attempt in range(cfg.max_retries + 1):
        jobs = [(row, part) for row in range(len(records)) for part in strategy.parts if (row, part) not in accepted]
        if not jobs:
            break
        if attempt:
            usage.retries += len(jobs)
        requests = [strategy.request(records[row], part, cfg, attempt) for row, part in jobs]
        responses = teacher.complete(requests, usage, progress)
        for (row, part), response in zip(jobs, responses, strict=True):
            text, error = strategy.accept(part, response)
            if text is not None:
                accepted[(row, part)] = text
            else:
                last_error[row] = error

    valid, failed = [], []
    for row, q in enumerate(records):
        texts = {part: accepted[(row, part)] for part in strategy.parts if (row, part) in accepted}
        approach, error = strategy.assemble(texts) if len(texts) == len(strategy.parts) else (None, None)
        if error:
            last_error[row] = error
        base = {k: q[k] for k in _QUESTION}
        if approach is not None:
            valid.append({**base, "approach": approach, "teacher_model": teacher.model})
        else:
            reason = last_error.get(row, "invalid approach")
            usage.record_failure(reason.split(":")[0])
            failed.append({**base, "error": reason})
    return APPROACHES.frame(valid), FAILED_APPROACHES.frame(failed)
