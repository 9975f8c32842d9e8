"""The response shape a capable teacher is asked for: one JSON object with a list of questions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from research_tuner.lib.teacher.structured import response_schema


class QuestionList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    questions: list[str]


QUESTIONS_SCHEMA = response_schema(QuestionList)
