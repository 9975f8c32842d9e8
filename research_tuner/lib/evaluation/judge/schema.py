"""The judge's answer as a pydantic model (a rationale, then one integer grade per criterion), used as the
structured-output schema of every judgement request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, create_model

from research_tuner.lib.evaluation.judge.prompts import CRITERIA, SCALE_MAX, SCALE_MIN
from research_tuner.lib.teacher.structured import response_schema

Grade = Literal[tuple(range(SCALE_MIN, SCALE_MAX + 1))]  # type: ignore[valid-type]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: rationale first, so that the grades follow from the reasons and not the reverse
Judgement = create_model("Judgement", __base__=_Strict, rationale=(str, ...), **{c: (Grade, ...) for c in CRITERIA})

JUDGEMENT_SCHEMA = response_schema(Judgement)
