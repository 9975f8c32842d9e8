"""The adapter's model card: the YAML header the Hub reads, the training facts, the evaluation table with its
intervals from the real report functions, and the limits; the base model's licence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import ModelCard

from research_tuner.lib.evaluation.report import comparison_table
from research_tuner.lib.evaluation.win_rate import WIN_RATES
from research_tuner.lib.shared.models import hub_model_id
from research_tuner.lib.training.card import LIMITS, EvaluationTables, base_license, model_card
from research_tuner.settings import TrainingSettings

VERDICT = "Over 8 validation questions, ROUGE-L rose. The judge is the teacher (self-preference)."


def manifest(base_model: str = "meta-llama/Llama-3.2-3B-Instruct") -> dict:
    return {
        "base_model": base_model, "train_rows": 96, "validation_rows": 32, "fields": ["arts", "humanities"],
        "teacher_model": "gpt-4.1-mini",
        "training": TrainingSettings(base_model=base_model).model_dump(mode="json"),
        "result": {"trainable_params": 24_313_856, "total_params": 3_237_063_680, "tokens_seen": 123_456,
                   "wall_time_s": 612.3, "final_train_loss": 1.234, "final_eval_loss": 1.456, "global_step": 24,
                   "tokens_per_second": 2345.6, "train_time_s": 540.0, "precision": "bf16",
                   "attn_implementation": "sdpa", "loss_kernel": "trl", "threads": None, "processes": 1,
                   "device": "cuda:0", "hardware": "NVIDIA H100 80GB HBM3"},
    }


def evaluation() -> EvaluationTables:
    rng = np.random.default_rng(0)
    rows = [{"field": field, "question_id": f"{field}-{i}", "model": model,
             "rouge_l": rng.uniform(0.1, 0.2) + (0.1 if model == "fine_tuned" else 0.0)}
            for field in ("arts", "humanities") for i in range(4) for model in ("base", "fine_tuned")]
    comparison = comparison_table(pd.DataFrame(rows), names=("rouge_l",))
    wins = WIN_RATES.frame([{
        "field": "all", "opponent": "base", "n": 8, "wins": 6, "ties": 1, "losses": 1, "failed": 0,
        "win_rate": 0.8125, "win_rate_ci_low": 0.51, "win_rate_ci_high": 0.95, "preferred_or_tied": 0.875,
        "inconsistency_rate": 0.125, "words_fine_tuned": 300.0, "words_opponent": 250.0, "lc_win_rate": 0.77,
        "lc_win_rate_ci_low": 0.4, "lc_win_rate_ci_high": 0.9}])
    return EvaluationTables(comparison=comparison, win_rates=wins, verdict=VERDICT)


def test_the_header_is_what_the_hub_reads(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(model_card(manifest(), license="llama3.2", evaluation=evaluation(), dataset_repo_id="me/data"))
    card = ModelCard.load(path)  # huggingface_hub's own parser, as the Hub does
    assert card.data.base_model == "meta-llama/Llama-3.2-3B-Instruct"
    assert card.data.library_name == "peft" and card.data.license == "llama3.2"
    assert card.data.datasets == ["me/data"]
    assert {"lora", "trl", "base_model:adapter:meta-llama/Llama-3.2-3B-Instruct"} <= set(card.data.tags)
    assert card.text.lstrip().startswith("# Research-approach writer")


def test_the_card_states_how_it_was_trained_and_what_the_evaluation_found():
    report = evaluation()
    text = model_card(manifest(), license="llama3.2", evaluation=report)
    for fact in ("123,456", "612.3 s", "(in training steps: 540 s)", "2346", "NVIDIA H100 80GB HBM3", "gpt-4.1-mini", "96 / 32", "| lora_r ",
                 "0.0002", "q_proj, k_proj"):
        assert fact in text, fact
    overall = report.comparison[report.comparison["field"] == "all"].iloc[0]
    interval = f"{overall.delta:+.4f} [{overall.delta_ci_low:+.4f}, {overall.delta_ci_high:+.4f}]"
    assert interval in text  # the paired delta with its bootstrap interval, as eval_report computed it
    assert "0.812 [0.510, 0.950]" in text and "6/1/1" in text  # the win rate with its Wilson interval
    assert VERDICT in text and all(limit in text for limit in LIMITS)
    assert "Not evaluated yet" in model_card(manifest(), license="other")
    zero = EvaluationTables(report.comparison.assign(base=0.0, improvement_pct=float("nan")), report.win_rates, "")
    assert "nan" not in model_card(manifest(), license="other", evaluation=zero)  # a gain in % from 0 is "-"


def test_a_merged_model_card_is_a_transformers_card(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(model_card(manifest(), license="llama3.2", library_name="transformers"))
    card = ModelCard.load(path)
    assert card.data.library_name == "transformers"
    assert not any(t.startswith("base_model:adapter:") for t in card.data.tags)
    assert "PeftModel" not in card.text


@pytest.mark.parametrize(("name", "hub_id", "licence"), [
    ("embedded:SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    ("meta-llama/Llama-3.2-3B-Instruct", "meta-llama/Llama-3.2-3B-Instruct", "llama3.2"),
    ("someone/unknown-model", "someone/unknown-model", "other"),
])
def test_the_base_models_hub_id_and_licence(name, hub_id, licence):
    assert hub_model_id(name) == hub_id
    assert base_license(name) == licence


def test_a_local_base_has_no_hub_id_and_its_own_cards_licence(tmp_path):
    assert hub_model_id(str(tmp_path)) is None
    assert base_license(str(tmp_path), tmp_path) == "other"
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# a model\n")
    assert base_license(str(tmp_path), tmp_path) == "mit"
    card = model_card(manifest(str(tmp_path)), license="mit")
    assert "base_model:" not in card.split("---")[1]  # a local path is no Hub id
