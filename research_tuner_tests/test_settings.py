"""Profiles: the paper profile is the paper's numbers, overrides merge, bad settings and nonsense values fail
clearly, naming the key."""

import pytest

from research_tuner.preflight import preflight
from research_tuner.lib.shared.taxonomy import load_taxonomy
from research_tuner.settings import LLAMA_PROJECTIONS, SettingsError, load_profile, parse_assignments


def test_paper_profile_is_the_papers_setup():
    p = load_profile("paper")
    assert (p.teacher.backend, p.teacher.model) == ("openai", "gpt-4.1-mini")
    assert p.generation.questions_per_subdomain == 200 and p.generation.subdomains_per_field is None
    assert p.split.validation_fraction == 0.25
    t = p.training
    assert t.base_model == "meta-llama/Llama-3.2-3B-Instruct"
    assert (t.lora_r, t.lora_dropout, t.learning_rate, t.lr_scheduler) == (16, 0.05, 2e-4, "cosine")
    assert sorted(t.target_modules) == sorted(LLAMA_PROJECTIONS) and len(t.target_modules) == 7
    assert t.effective_batch_size == 8 and t.epochs == 2
    assert p.evaluation.questions_per_subdomain == 2


def test_demo_profile_is_offline_and_small():
    p = load_profile("demo")
    assert p.teacher.backend == "local" and p.teacher.model.startswith("embedded:")
    assert p.training.base_model.startswith("embedded:")
    assert p.generation.subdomains_per_field * p.generation.questions_per_subdomain * 8 <= 200


def test_taxonomy_has_8_fields_and_61_balanced_subdomains():
    fields = load_taxonomy()
    sizes = [len(f.subdomains) for f in fields]
    assert len(fields) == 8 and sum(sizes) == 61 and max(sizes) - min(sizes) <= 1
    formal = next(f for f in fields if f.key == "formal_sciences")
    assert {"mathematics", "statistics", "computer science", "logic", "data science"} <= set(formal.subdomains)


def test_overrides_and_config_file_merge_in_order(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("training:\n  epochs: 3\n  lora_r: 8\n")
    p = load_profile("paper", config, parse_assignments(["training.lora_r=32", "teacher.model=gpt-4.1"]))
    assert (p.training.epochs, p.training.lora_r, p.teacher.model) == (3, 32, "gpt-4.1")
    assert p.training.learning_rate == 2e-4  # untouched knobs keep the profile's value


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("training.lora_rank=8", "training.lora_rank: Extra inputs are not permitted"),
        ("training.lora_dropout=1.5", "training.lora_dropout"),
        ("teacher.backend=anthropic", "teacher.backend"),
        ("evaluation.judge.backend=anthropic", "evaluation.judge.backend: .*unknown judge backend"),
        ("evaluation.judge.price_input_per_mtok=-1", "evaluation.judge.price_input_per_mtok"),
        # Nonsense a lax parser would take: infinities, NaN, booleans and fractions as counts, numbers as text.
        ("training.epochs=.inf", "training.epochs: Input should be a finite number"),
        ("training.learning_rate=.nan", "training.learning_rate: Input should be a finite number"),
        ("teacher.request_timeout_s=.inf", "teacher.request_timeout_s: Input should be a finite number"),
        ("teacher.budget_usd=.inf", "teacher.budget_usd: Input should be a finite number"),
        ("evaluation.judge.requests_per_minute=.inf", "evaluation.judge.requests_per_minute: .*finite"),
        ("dedup.semantic_threshold=.nan", "dedup.semantic_threshold: Input should be a finite number"),
        ("training.lora_r=true", r"training.lora_r: Input should be a valid integer \(got True\)"),
        ("training.gradient_accumulation_steps=false", "training.gradient_accumulation_steps: .*valid integer"),
        ("generation.questions_per_subdomain=true", "generation.questions_per_subdomain: .*valid integer"),
        ("teacher.max_concurrency=2.5", "teacher.max_concurrency: Input should be a valid integer"),
        ("training.epochs=true", "training.epochs: Input should be a valid number"),
        ("training.lora_r='16'", r"training.lora_r: Input should be a valid integer \(got '16'\)"),
        ("training.compile=yes please", "training.compile: Input should be a valid boolean"),
        ("training.processes=false", "training.processes: Input should be a valid integer or 'auto'"),
        ("training.processes=0", "training.processes: Input should be greater than or equal to 1"),
        ("evaluation.batch_size=0", "evaluation.batch_size: Input should be greater than or equal to 1"),
        ("teacher.generation_round=1", "teacher.generation_round"),  # a round is a partition now, not a setting
        ("training.seed=-3", "training.seed: Input should be greater than or equal to 0"),
        ("evaluation.seed=4294967296", "evaluation.seed: Input should be less than or equal to 4294967295"),
        ("training.base_model='  '", "training.base_model: must not be empty"),
        ("training.target_modules=[q_proj, '']", r"training.target_modules\[1\]: must not be empty"),
        ("training.lr_scheduler=cosine_annealing", "training.lr_scheduler: Input should be 'linear'"),
        ("training.hf_token_env=hf_abc-123", "training.hf_token_env: must be the name of an environment variable"),
        ("evaluation.judge.base_url=127.0.0.1:8001", "evaluation.judge.base_url: must be an http"),
        ("teacher.batch_completion_window=1d", "teacher.batch_completion_window: String should match"),
        ("dedup.semantic_max_threshold=0.5", "dedup.semantic_max_threshold=0.5 is below dedup.semantic_threshold"),
    ],
)
def test_bad_settings_name_the_key(assignment, message):
    with pytest.raises(SettingsError, match=message):
        load_profile("demo", overrides=parse_assignments([assignment]))


def test_unknown_profile_and_missing_file():
    with pytest.raises(SettingsError, match="choose one of demo, paper"):
        load_profile("huge")
    with pytest.raises(SettingsError, match="does not exist"):
        load_profile("demo", "/nonexistent/settings.yaml")


def test_paper_profile_preflight_says_what_is_missing(monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    problems = "\n".join(preflight(load_profile("paper")).problems)
    assert "OPENAI_API_KEY is not set" in problems
    assert "HF_TOKEN" in problems
    demo = preflight(load_profile("demo"))
    assert (demo.problems, demo.warnings) == ([], [])


def test_the_judge_is_the_teacher_unless_its_own_endpoint_is_set():
    p = load_profile("paper")
    assert p.evaluation.judge.pairwise and not p.evaluation.judge.enabled
    same = p.evaluation.judge.teacher_settings(p.teacher)
    assert (same.model, same.base_url, same.api_key_env, same.price_input_per_mtok) == (
        "gpt-4.1-mini", None, "OPENAI_API_KEY", 0.40)
    assert not p.evaluation.judge.is_independent(p.teacher)
    own = load_profile("paper", overrides=parse_assignments([
        "evaluation.judge.base_url=http://127.0.0.1:8001/v1", "evaluation.judge.model=qwen2.5:72b",
        "evaluation.judge.api_key_env=JUDGE_KEY", "evaluation.judge.price_input_per_mtok=2.0",
        "evaluation.judge.budget_usd=3", "teacher.budget_usd=50"]))
    judge = own.evaluation.judge.teacher_settings(own.teacher)
    assert (judge.base_url, judge.model, judge.api_key_env) == ("http://127.0.0.1:8001/v1", "qwen2.5:72b", "JUDGE_KEY")
    assert (judge.price_input_per_mtok, judge.price_output_per_mtok) == (2.0, 1.60)  # the unset one is the teacher's
    assert judge.budget_usd == 3 and own.teacher.budget_usd == 50  # its own budget, never the teacher's
    assert own.evaluation.judge.is_independent(own.teacher)
    with pytest.raises(SettingsError, match="evaluation.judge.model: an embedded: model"):
        load_profile("paper", overrides=parse_assignments(["evaluation.judge.model=embedded:SmolLM2-135M-Instruct"]))


def test_preflight_names_a_missing_judge_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-teacher")
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    own = load_profile("paper", overrides=parse_assignments(["evaluation.judge.api_key_env=JUDGE_KEY"]))
    problems = "\n".join(preflight(own, will_train=False, contact_servers=False).problems)
    assert "the evaluation.judge is 'gpt-4.1-mini' on OpenAI, but the environment variable JUDGE_KEY is not set" \
        in problems
    off = load_profile("paper", overrides=parse_assignments(["evaluation.judge.api_key_env=JUDGE_KEY",
                                                             "evaluation.judge.pairwise=false"]))
    assert preflight(off, will_train=False, contact_servers=False).problems == []  # a judge that is off needs no key


def test_numbers_in_exponent_form_are_numbers():
    """YAML 1.1 reads `1e-4` as text; the strict settings would refuse it, so the loader reads it as YAML 1.2 does."""
    p = load_profile("demo", overrides=parse_assignments(["training.learning_rate=1e-4", "teacher.budget_usd=5E+1"]))
    assert (p.training.learning_rate, p.teacher.budget_usd) == (1e-4, 50.0)
    assert parse_assignments(["teacher.model=1e3x"]) == {"teacher": {"model": "1e3x"}}


def test_an_error_message_never_echoes_a_secret_variable_value():
    with pytest.raises(SettingsError) as caught:
        load_profile("demo", overrides=parse_assignments(["evaluation.judge.api_key_env=sk-live-0123456789"]))
    assert "evaluation.judge.api_key_env: must be the name of an environment variable" in str(caught.value)
    assert "sk-live" not in str(caught.value)


def test_conflicting_overrides_are_an_error_not_a_crash():
    with pytest.raises(SettingsError, match="conflicts with an earlier one that set training to a value"):
        parse_assignments(["training=1", "training.epochs=2"])
    with pytest.raises(SettingsError, match="conflicts with an earlier one that set keys under training"):
        parse_assignments(["training.epochs=2", "training=1"])
