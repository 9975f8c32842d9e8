"""The `teacher` section: which LLM writes questions and approaches, where, how fast, and at what price."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from research_tuner.lib.generation.registry import APPROACH_STRATEGIES, QUESTION_STRATEGIES
from research_tuner.lib.teacher.registry import BACKENDS
from research_tuner.settings.base import EnvVarName, HttpUrl, Name, Strict, registered


class TeacherSettings(Strict):
    """The LLM that writes questions and approaches."""

    @model_validator(mode="before")
    @classmethod
    def _no_round_setting(cls, data):
        if isinstance(data, dict) and "generation_round" in data:
            raise ValueError("teacher.generation_round is not a setting any more: a generation round is a partition "
                             "(research-tuner run --round N, or add one in the UI), so each round keeps its own data")
        return data

    backend: str = Field(
        description="A name in lib/teacher/registry.py: 'local', a Hugging Face model in-process; 'openai', any "
        "OpenAI-compatible server."
    )
    model: Name = Field(description="Model name for the server, or a Hub id / local path / embedded: alias.")
    base_url: HttpUrl | None = Field(
        default=None,
        description="Server URL (vLLM, Ollama, ...). None: the OPENAI_BASE_URL variable, else OpenAI itself.",
    )
    api_key_env: EnvVarName = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable that holds the API key (never the key itself).",
    )
    temperature: float = Field(
        default=0.8, ge=0.0, le=2.0, description="Sampling temperature of questions and approaches.")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    question_strategy: str = Field(
        description="'list': one request returns a JSON list of questions (capable teachers); "
        "'one_by_one': one short completion per question with a fixed opening (small teachers)."
    )
    approach_strategy: str = Field(
        description="'whole': one Markdown answer with the 7 headings; "
        "'by_section': one completion per section under a fixed heading (small teachers)."
    )
    questions_per_request: int = Field(default=25, ge=1, le=200, description="Questions one 'list' request asks for.")
    max_tokens_question: int = Field(default=64, ge=8, description="Completion tokens per question ('one_by_one').")
    max_tokens_approach: int = Field(default=1200, ge=32, description="Per approach ('whole') or per section.")
    max_concurrency: int = Field(default=8, ge=1, description="Requests in flight (openai) or batch size (local).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="Local backend only: the dtype the teacher model runs in."
    )
    max_retries: int = Field(default=4, ge=0, description="Retries of a failed or rate-limited request, with backoff.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Seconds one request may take.")
    price_input_per_mtok: float = Field(default=0.40, ge=0, description="USD per million prompt tokens.")
    price_output_per_mtok: float = Field(default=1.60, ge=0, description="USD per million completion tokens.")
    requests_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side cap (openai backend). None: only the server's x-ratelimit-* "
        "headers and 429s pace the requests.")
    tokens_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side cap on prompt + max_tokens per minute, as providers count it.")
    expected_tokens_per_question: int = Field(
        default=30, ge=1, description="Cost estimate only (research-tuner check): completion tokens one question "
        "takes (a one-sentence question is 20-35 tokens).")
    expected_approach_fill: float = Field(
        default=0.6, gt=0, le=1, description="Cost estimate only: the share of max_tokens_approach an approach (or "
        "a section, by_section) is expected to use; 1 is the worst case.")
    budget_usd: float | None = Field(
        default=None, gt=0, description="Dollars one step (asset partition) may spend in a run; each request "
        "reserves its worst case (prompt + max_tokens) first. None: no cap. Cache hits are free.")
    mode: Literal["online", "batch"] = Field(
        default="online", description="'batch': the OpenAI Batch API (files + batches), half price, answers "
        "within the completion window; the batch id is kept in the cache DB, so a restart resumes polling.")
    batch_price_factor: float = Field(default=0.5, gt=0, le=1, description="Batch price as a share of list price.")
    batch_poll_interval_s: float = Field(
        default=60.0, gt=0, description="Seconds between polls of a batch (mode batch).")
    batch_completion_window: str = Field(default="24h", pattern=r"^[1-9][0-9]*h$",
                                         description="Hours, as the Batch API takes them (OpenAI: '24h').")
    batch_max_requests: int = Field(default=50_000, ge=1, description="Requests per batch file (OpenAI: 50,000).")
    check_server: bool = Field(
        default=True, description="openai backend: `check` and the start of `run` ask the server GET /models once "
        "(key accepted, model listed). Off for a server that serves models it does not list.")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        return registered(name, BACKENDS, "teacher backend")

    @field_validator("question_strategy")
    @classmethod
    def _known_question_strategy(cls, name: str) -> str:
        return registered(name, QUESTION_STRATEGIES, "question strategy")

    @field_validator("approach_strategy")
    @classmethod
    def _known_approach_strategy(cls, name: str) -> str:
        return registered(name, APPROACH_STRATEGIES, "approach strategy")
