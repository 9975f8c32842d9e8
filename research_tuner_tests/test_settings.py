"""Profiles: the paper profile is the paper's numbers, overrides merge, bad settings fail clearly."""

import pytest

from research_tuner.cli import preflight
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
    problems = "\n".join(preflight(load_profile("paper")))
    assert "OPENAI_API_KEY is not set" in problems
    assert "HF_TOKEN" in problems
    assert preflight(load_profile("demo")) == []
