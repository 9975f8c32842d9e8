"""Code versions of the assets, derived from what shapes each one: prompts, settings, and a logic version.

Dagster marks an asset stale in the UI when its code version differs from the one its last
materialization recorded. Here each asset's version is a short hash of
- `LOGIC_VERSIONS[asset]`: bump it by hand when the asset's code changes what it produces;
- the prompt templates it sends, from its stage's prompt module (`PROMPTS[asset]`, read by name at
  call time, so an edited template changes the hash), and the structured-output schemas it asks for;
- for `eval_scores`, the metric registry (names and versions: a new metric makes only scoring stale);
- the profile settings it reads (`SETTINGS[asset]`: whole sections, or a section minus the fields that
  only steer how fast or where the work runs - concurrency, retries, timeouts, prices, checkpoint
  cadence - which cannot change the result);
- data files it reads (the taxonomy).

So a changed question prompt makes `raw_questions` stale (and, through it, what follows), while a
changed LoRA rank makes only `lora_adapter` stale and leaves the generated data fresh.

The profile is the one `definitions.py` resolves at import (RESEARCH_TUNER_PROFILE / RESEARCH_TUNER_CONFIG):
overrides given per run in the launchpad are not part of the code version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import resources
from types import ModuleType
from typing import Any

import dagster as dg

from research_tuner.lib.curation import prompts as curation_prompts
from research_tuner.lib.evaluation import metrics
from research_tuner.lib.evaluation.judge import pairwise_prompts, verdict
from research_tuner.lib.evaluation.judge import prompts as judge_prompts
from research_tuner.lib.evaluation.judge import schema as judge_schema
from research_tuner.lib.generation import approach_grade, approach_prompts, question_prompts, question_schemas
from research_tuner.lib.shared import chat
from research_tuner.lib.shared.sections import SECTIONS
from research_tuner.settings import Profile

#: Bump an asset's number when its code changes what it writes (not for refactors that keep the output).
LOGIC_VERSIONS: dict[str, int] = {
    "subdomains": 1,
    "raw_questions": 1,
    "question_clusters": 2,  # 2: content gates before the duplicate search (gate, gate_reason columns)
    "deduped_questions": 1,
    "approaches": 2,  # 2: content gates on every approach
    "dataset_split": 1,
    "lora_adapter": 1,
    "eval_generations": 2,  # 2: answers only; the scores moved to eval_scores
    "eval_judgements": 1,
    "eval_preferences": 1,
    "eval_scores": 2,  # 2: one row per answer with every metric of the registry
    "eval_report": 3,  # 3: reads eval_preferences too (win rates, verdict)
    "model_release": 1,
}

_STUDENT = ((chat, ("STUDENT_SYSTEM_PROMPT", "CHAT_TEMPLATE_KWARGS")),)

#: The constants each asset sends or trains on: (module, names) pairs - its stage's prompt module, and the
#: module of the structured-output schema it asks for.
PROMPTS: dict[str, tuple[tuple[ModuleType, tuple[str, ...]], ...]] = {
    "raw_questions": ((question_prompts, ("QUESTION_LIST_SYSTEM", "QUESTION_LIST_USER", "QUESTION_ANGLES",
                                          "QUESTION_ONE_SYSTEM", "QUESTION_ONE_USER", "QUESTION_OPENINGS",
                                          "QUESTION_TOPICS")),
                      (question_schemas, ("QUESTIONS_SCHEMA",))),
    "question_clusters": ((curation_prompts, ("SAME_STUDY_SYSTEM", "SAME_STUDY_USER")),),
    "approaches": ((approach_prompts, ("APPROACH_SYSTEM", "APPROACH_USER", "SECTION_SYSTEM", "SECTION_INSTRUCTIONS",
                                       "SECTION_USER", "GRADE_SYSTEM", "GRADE_USER")),
                   (approach_grade, ("GRADE_SCHEMA",))),
    "lora_adapter": _STUDENT,
    "eval_generations": _STUDENT,
    "eval_judgements": ((judge_prompts, ("JUDGE_SYSTEM", "RUBRIC", "CRITERIA", "RETRY_REMINDER", "RESPONSE_OPEN",
                                         "RESPONSE_CLOSE")),
                        (judge_schema, ("JUDGEMENT_SCHEMA",))),
    "eval_preferences": ((pairwise_prompts, ("VERDICTS", "PAIRWISE_SYSTEM", "PAIRWISE_INSTRUCTIONS", "FIRST_OPEN",
                                             "FIRST_CLOSE", "SECOND_OPEN", "SECOND_CLOSE",
                                             "PAIRWISE_RETRY_REMINDER")),
                         (verdict, ("VERDICT_SCHEMA",))),
}

#: Teacher fields that steer throughput, cost accounting or where the server is, not what it writes.
_TEACHER_OPERATIONAL = {"base_url", "api_key_env", "max_concurrency", "max_retries", "request_timeout_s",
                        "price_input_per_mtok", "price_output_per_mtok", "requests_per_minute", "tokens_per_minute",
                        "budget_usd", "mode", "batch_price_factor", "batch_poll_interval_s",
                        "batch_completion_window", "batch_max_requests", "check_server",
                        "expected_tokens_per_question", "expected_approach_fill"}
#: Dedup fields of the teacher's verdict on borderline pairs: curation only, the split's leakage check has none.
_BORDERLINE = {"teacher_borderline", "borderline_margin", "borderline_max_pairs"}
_QUESTION_ONLY = {"question_strategy", "questions_per_request", "max_tokens_question"}
_APPROACH_ONLY = {"approach_strategy", "max_tokens_approach"}
#: Judge fields that steer where its server is, how fast, what it costs, or whether the other kind of judge runs.
_JUDGE_OPERATIONAL = {"base_url", "api_key_env", "price_input_per_mtok", "price_output_per_mtok", "budget_usd",
                      "max_concurrency", "requests_per_minute", "tokens_per_minute", "mode"}
_POINTWISE_ONLY = {"enabled", "max_tokens"}
_PAIRWISE_ONLY = {"pairwise", "pairwise_max_tokens"}
#: Training fields that change logging, checkpoint cadence, credentials, how many GPUs share the work (the
#: effective batch stays the same) or which kernels compute the same maths, not the adapter.
_TRAINING_OPERATIONAL = {"save_steps", "logging_steps", "hf_token_env", "evals_per_epoch", "eval_on_start",
                         "processes", "gradient_checkpointing", "padding_free", "attention", "loss_kernel",
                         "compile"}


def _section(name: str, *, without: Iterable[str] = (), only: Iterable[str] | None = None) -> tuple:
    """A profile section (or a dotted sub-section: 'evaluation.judge'), minus `without`, or just the fields in
    `only`."""
    return name, frozenset(without), frozenset(only) if only is not None else None


#: The profile sections (minus the listed fields) each asset reads.
SETTINGS: dict[str, tuple[tuple, ...]] = {
    "subdomains": (_section("generation", without={"questions_per_subdomain"}),),
    "raw_questions": (_section("teacher", without=_TEACHER_OPERATIONAL | _APPROACH_ONLY),
                      _section("generation", without={"subdomains_per_field"})),
    # the off-topic gate embeds with the dedup section's model
    "approaches": (_section("teacher", without=_TEACHER_OPERATIONAL | _QUESTION_ONLY), _section("gates.approaches"),
                   _section("dedup", only={"embedding_model"})),
    # batch size and precision of the embedding model steer speed, not which pairs pass the thresholds
    "question_clusters": (_section("dedup", without={"embedding_batch_size"}), _section("gates.questions")),
    # the split places near-duplicate groups together and checks leakage with the same passes
    "dataset_split": (_section("split"), _section("dedup", without={"embedding_batch_size", *_BORDERLINE})),
    "lora_adapter": (_section("training", without=_TRAINING_OPERATIONAL),),
    # the base model comes from the adapter's manifest; only the inference precision is read from training
    "eval_generations": (_section("evaluation", without={"judge"}), _section("training", only={"precision"})),
    # the judge's model (and backend) default to the teacher's
    "eval_judgements": (_section("evaluation.judge", without=_JUDGE_OPERATIONAL | _PAIRWISE_ONLY),
                        _section("teacher", only={"model", "backend"})),
    "eval_preferences": (_section("evaluation.judge", without=_JUDGE_OPERATIONAL | _POINTWISE_ONLY),
                         _section("teacher", only={"model", "backend"})),
    # the embedding similarity reads the dedup section's embedding model
    "eval_scores": (_section("dedup", only={"embedding_model"}),),
    # the cards' licences and the dataset's repository (the model card links it); where and whether to push
    # change no file, and the settings the dataset card lists already shape dataset_split upstream
    "model_release": (_section("release", without={"hub"}), _section("release.hub", only={"dataset_repo_id"})),
}

#: Profile sections that say where results are reported (an MLflow server), never what an asset writes.
UNVERSIONED_SECTIONS = frozenset({"tracking"})

#: Package data files each asset reads.
DATA_FILES: dict[str, tuple[str, ...]] = {"subdomains": ("taxonomy.yaml",)}


def _prompt_values(sources: Iterable[tuple[ModuleType, tuple[str, ...]]]) -> dict[str, Any]:
    values = {}
    for module, names in sources:
        for name in names:
            if not hasattr(module, name):
                raise AttributeError(f"research_tuner/versions.py names prompt {name!r}, which {module.__name__} "
                                     "no longer has")
            values[name] = getattr(module, name)
    return values


def _settings_values(profile: Profile, sections: Iterable[tuple]) -> dict[str, Any]:
    dumped = profile.model_dump(mode="json")

    def at(path: str) -> dict[str, Any]:
        node = dumped
        for part in path.split("."):
            node = node[part]
        return node

    return {
        name: {k: v for k, v in at(name).items() if k not in without and (only is None or k in only)}
        for name, without, only in sections
    }


def version_inputs(asset: str, profile: Profile) -> dict[str, Any]:
    """Everything that goes into `asset`'s code version, as plain data (what the hash is of)."""
    if asset not in LOGIC_VERSIONS:
        raise KeyError(f"no code version inputs for asset {asset!r}: add it to LOGIC_VERSIONS in versions.py")
    return {
        "logic": LOGIC_VERSIONS[asset],
        "prompts": _prompt_values(PROMPTS.get(asset, ())),
        "sections": list(SECTIONS) if asset in PROMPTS else [],
        "settings": _settings_values(profile, SETTINGS.get(asset, ())),
        "data": {name: resources.files("research_tuner.data").joinpath(name).read_text()
                 for name in DATA_FILES.get(asset, ())},
        **({"metrics": metrics.version_inputs()} if asset == "eval_scores" else {}),
    }


def code_version(asset: str, profile: Profile) -> str:
    """`v<logic>-<12 hex digits>`: readable in the UI, and changes whenever an input changes."""
    blob = json.dumps(version_inputs(asset, profile), sort_keys=True, default=list).encode()
    return f"v{LOGIC_VERSIONS[asset]}-{hashlib.sha256(blob).hexdigest()[:12]}"


def code_versions(profile: Profile) -> Mapping[str, str]:
    return {asset: code_version(asset, profile) for asset in LOGIC_VERSIONS}


def with_code_versions(assets: Iterable[dg.AssetsDefinition], profile: Profile) -> list[dg.AssetsDefinition]:
    """The same assets with each spec's code_version set from `profile` and the current prompts."""
    versions = code_versions(profile)

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        name = spec.key.to_user_string()
        if name not in versions:
            raise KeyError(f"asset {name!r} has no code version inputs: add it to LOGIC_VERSIONS in versions.py")
        return spec.replace_attributes(code_version=versions[name])

    return [a.map_asset_specs(apply) if isinstance(a, dg.AssetsDefinition) else a for a in assets]
