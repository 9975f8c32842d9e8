"""The `evaluation` section: how many validation questions are answered, and the optional LLM judge."""

from __future__ import annotations

from pydantic import Field

from research_tuner.settings.base import Strict


class JudgeSettings(Strict):
    """The optional LLM-as-judge: the teacher's backend grades every evaluation answer against a rubric."""

    enabled: bool = Field(
        default=False, description="Off: no judge request is sent and no judge score is written."
    )
    model: str | None = Field(
        default=None, description="The judge's model on the teacher's backend; None: teacher.model."
    )
    max_tokens: int = Field(default=400, ge=32, description="Per judgement: a short rationale and 8 scores.")
    max_retries: int = Field(
        default=2, ge=0, description="Further attempts for an answer that cannot be read as the 8 scores."
    )


class EvaluationSettings(Strict):
    questions_per_subdomain: int = Field(default=2, ge=1)
    max_new_tokens: int = Field(default=768, ge=8)
    batch_size: int = Field(default=8, ge=1)
    seed: int = 0
    judge: JudgeSettings = JudgeSettings()
