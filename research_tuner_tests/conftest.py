"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A persistent cache, so that the embedded SmolLM2 is converted from GGUF at most once across test sessions.
os.environ.setdefault("RESEARCH_TUNER_CACHE", str(REPO / ".cache"))
# Processes the tests start (Dagster step workers, `dagster dev`, the CLI, worker scripts) import this checkout's
# research_tuner and research_tuner_tests, whatever is installed in the environment.
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
# Offline: MLflow's usage telemetry off in this process and the tracking servers it starts (as the tracker does).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny randomly initialised Llama (2 layers, hidden 64) with the real SmolLM2 tokenizer, saved to a
    folder usable as `TrainingSettings.base_model`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from research_tuner.lib.shared.models import resolve_model
    from research_tuner.settings import EMBEDDED_MODEL

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(EMBEDDED_MODEL))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
