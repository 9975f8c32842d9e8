"""The optional teacher-graded quality score of an approach (`gates.approaches.grade`, off by default): the teacher
reads the question and the approach and answers an integer from 1 to 10; an approach below `grade_threshold` is
rejected like one that failed a content gate (asked again with a new seed, then a failure with its reason).

The grade requests go through the teacher's response cache like every other request, so a rerun pays nothing
for approaches already graded. An answer without a readable score counts as a rejection, never as a pass.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from research_tuner.lib.generation import approach_prompts as prompts
from research_tuner.lib.generation.approach_gates import Rejection
from research_tuner.lib.shared.ids import stable_seed
from research_tuner.lib.shared.sections import SECTIONS
from research_tuner.lib.teacher.base import Teacher, TeacherFailure, TeacherRequest, Usage
from research_tuner.lib.teacher.structured import response_schema

if TYPE_CHECKING:
    from research_tuner.settings.gates import ApproachGateSettings


class Grade(BaseModel):
    model_config = ConfigDict(extra="forbid")

    score: int = Field(ge=1, le=10)


GRADE_SCHEMA = response_schema(Grade)


def grade_request(question: str, approach: str, cfg: ApproachGateSettings) -> TeacherRequest:
    """Temperature 0 and a seed from the texts: the same approach gets the same grade, from the cache."""
    user = prompts.GRADE_USER.format(question=question, approach=approach)
    return TeacherRequest(({"role": "system", "content": prompts.GRADE_SYSTEM}, {"role": "user", "content": user}),
                          cfg.grade_max_tokens, 0.0, 1.0, stable_seed(question, approach, "grade"),
                          json_schema=GRADE_SCHEMA)


def read_score(text: str) -> int | None:
    """The score of a JSON answer, or of a '"score": n' / 'n/10' in prose; None when there is none."""
    try:
        return Grade.model_validate(json.loads(text[text.index("{"): text.rindex("}") + 1])).score
    except ValueError:
        pass
    match = re.search(r"score\"?\s*[:=]\s*(\d{1,2})\b|\b(\d{1,2})\s*/\s*10\b", text, re.IGNORECASE)
    value = int(match.group(1) or match.group(2)) if match else None
    return value if value is not None and 1 <= value <= 10 else None


def grade_approaches(teacher: Teacher, questions: list[str], approaches: list[str], cfg: ApproachGateSettings,
                     usage: Usage) -> list[Rejection | None]:
    """None for each approach graded at or above the threshold, else why it was rejected."""
    responses = teacher.complete([grade_request(q, a, cfg) for q, a in zip(questions, approaches)], usage)
    results: list[Rejection | None] = []
    for response in responses:
        score = None if isinstance(response, TeacherFailure) else read_score(response.text)
        if score is None:
            results.append(Rejection("grade", "the teacher's grade could not be read", SECTIONS))
        elif score < cfg.grade_threshold:
            results.append(Rejection("grade", f"graded {score}/10, below {cfg.grade_threshold}", SECTIONS))
        else:
            results.append(None)
    return results
