"""The `evaluation` section: how many validation questions are answered, and the LLM judge (pointwise grades and
pairwise preferences) with its own endpoint, model, prices and budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from research_tuner.lib.teacher.registry import BACKENDS
from research_tuner.settings.base import EnvVarName, HttpUrl, Name, Seed, Strict, registered
from research_tuner.settings.teacher import TeacherSettings

#: JudgeSettings fields that, when set, replace the teacher's field of the same name in the judge's client.
_ENDPOINT_FIELDS = ("backend", "model", "base_url", "api_key_env", "price_input_per_mtok", "price_output_per_mtok",
                    "max_concurrency", "requests_per_minute", "tokens_per_minute")


class JudgeSettings(Strict):
    """The LLM judge. By default it is the teacher (same server, model and prices); every endpoint field set here
    makes it another client, so the judge can be another provider or model family than the teacher (a judge
    that wrote the references favours them, and the student that imitates them: self-preference)."""

    enabled: bool = Field(
        default=False, description="Pointwise grades (eval_judgements): 0-5 per section and feasibility. "
        "Off: no grading request is sent and no judge score is written."
    )
    pairwise: bool = Field(
        default=False, description="Pairwise preferences (eval_preferences): fine-tuned vs base and fine-tuned "
        "vs the teacher's reference, each judged in both orders. Off: nothing is sent."
    )
    backend: str | None = Field(default=None, description="A name in lib/teacher/registry.py; None: teacher.backend.")
    model: Name | None = Field(default=None, description="The judge's model; None: teacher.model.")
    base_url: HttpUrl | None = Field(
        default=None, description="The judge's OpenAI-compatible server (vLLM, Ollama, another vendor). "
        "None: the teacher's server.")
    api_key_env: EnvVarName | None = Field(
        default=None, description="Name of the variable holding the judge's API key (never the key itself). "
        "None: teacher.api_key_env.")
    price_input_per_mtok: float | None = Field(default=None, ge=0, description="USD per million prompt tokens "
                                               "at the judge; None: the teacher's price.")
    price_output_per_mtok: float | None = Field(default=None, ge=0, description="USD per million completion "
                                                "tokens at the judge; None: the teacher's price.")
    budget_usd: float | None = Field(
        default=None, gt=0, description="Dollars one judge step (asset partition) may spend in a run, at the "
        "judge's prices. None: no cap.")
    max_concurrency: int | None = Field(default=None, ge=1, description="None: teacher.max_concurrency.")
    requests_per_minute: float | None = Field(default=None, gt=0, description="None: teacher.requests_per_minute.")
    tokens_per_minute: float | None = Field(default=None, gt=0, description="None: teacher.tokens_per_minute.")
    mode: Literal["online", "batch"] = Field(
        default="online", description="'batch': the judge's requests through the OpenAI Batch API.")
    max_tokens: int = Field(default=400, ge=32, description="Per pointwise judgement: a short rationale and 8 scores.")
    pairwise_max_tokens: int = Field(default=200, ge=16, description="Per pairwise verdict: a reason and a verdict.")
    max_retries: int = Field(
        default=2, ge=0, description="Further attempts for an answer that cannot be read (scores or verdict)."
    )

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str | None) -> str | None:
        return None if name is None else registered(name, BACKENDS, "judge backend")

    @property
    def any_enabled(self) -> bool:
        return self.enabled or self.pairwise

    def teacher_settings(self, teacher: TeacherSettings) -> TeacherSettings:
        """The judge's client settings: the teacher's, with every endpoint field set here in its place, the
        judge's own budget and mode, and sampling that plays no part (each judge request sets temperature 0)."""
        update = {name: getattr(self, name) for name in _ENDPOINT_FIELDS if getattr(self, name) is not None}
        return TeacherSettings.model_validate({
            **teacher.model_dump(), **update, "budget_usd": self.budget_usd, "mode": self.mode,
        })

    def is_independent(self, teacher: TeacherSettings) -> bool:
        """Whether the judge is another model or server than the teacher that wrote the references."""
        judge = self.teacher_settings(teacher)
        return (judge.backend, judge.model, judge.base_url) != (teacher.backend, teacher.model, teacher.base_url)


class EvaluationSettings(Strict):
    """Base and fine-tuned answers to a fixed sample of validation questions, and how they are scored."""

    questions_per_subdomain: int = Field(
        default=2, ge=1, description="Validation questions answered per subdomain (the paper: 2).")
    max_new_tokens: int = Field(default=768, ge=8, description="Tokens each model may write per answer.")
    batch_size: int = Field(default=8, ge=1, description="Prompts generated together.")
    seed: Seed = Field(default=0, description="Seed of the sample's first draw (a drawn sample stays).")
    judge: JudgeSettings = JudgeSettings()
