"""The waste-removal settings on a CPU with a tiny model, each against the plain path: padding-free rows train to
the same losses and weights (SDPA) and give the same loss under FlexAttention (forward; it has no CPU backward),
regional compilation trains to the same losses, the memory estimate behind gradient checkpointing 'auto'
extends to longer batches, and the hardware plan refuses what a machine cannot run, saying what would."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.lib.shared.hardware import plan_hardware
from research_tuner.lib.training.batching import padding_free_collator
from research_tuner.lib.training.completion_loss import completion_nll
from research_tuner.lib.training.memory import MemoryEstimate, estimate_memory, saved_activation_bytes
from research_tuner.lib.training.train import train_lora
from research_tuner.lib.training.trainer import build_trainer
from research_tuner.settings import TrainingSettings
from research_tuner_tests.support.tiny_training import tiny_training_settings


def _examples(n: int = 8) -> pd.DataFrame:
    """Approaches of clearly different lengths, so padded batches carry padding."""
    return pd.DataFrame({
        "question": [f"How does factor {i} affect crop yield in dry regions?" for i in range(n)],
        "approach": [f"## Hypothesis\nFactor {i} raises yield.\n## Methodology\n" + "A field trial with plots. " * (1 + 3 * i)
                     for i in range(n)],
    })


def _train(model_dir, out, **overrides):
    settings = tiny_training_settings(model_dir, lora_dropout=0.0, per_device_batch_size=2,
                                      gradient_accumulation_steps=2, eval_on_start=False, **overrides)
    data = _examples()
    return train_lora(data, data.iloc[:2], settings, out, max_steps=2)


def _losses(result) -> list[float]:
    return result.log["loss"].dropna().tolist()


def _adapter(result) -> dict[str, torch.Tensor]:
    return load_file(result.adapter_dir / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def padded_run(tiny_model_dir, tmp_path_factory):
    return _train(tiny_model_dir, tmp_path_factory.mktemp("padded"))


@pytest.mark.parametrize("loss_kernel", ["chunked", "trl"])
def test_padding_free_rows_train_like_padded_batches(tiny_model_dir, tmp_path, padded_run, loss_kernel):
    """The project's loss and TRL's fused head (the GPU default) both read the padding-free row."""
    packed = _train(tiny_model_dir, tmp_path / "packed", padding_free=True, loss_kernel=loss_kernel)
    assert padded_run.padding_waste > 0.05 and packed.padding_waste == 0.0
    assert packed.tokens_seen == padded_run.tokens_seen  # the same real tokens, without the padding
    assert _losses(packed) == pytest.approx(_losses(padded_run), rel=1e-4)
    ours, theirs = _adapter(packed), _adapter(padded_run)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-3, atol=1e-5)


def _tokenized(tokenizer, n: int = 3) -> list[dict]:
    """Examples as TRL's dataset preparation leaves them: input_ids, and labels -100 on the prompt."""
    examples = []
    for i in range(n):
        prompt = tokenizer(f"Question {i}: how does soil moisture change yields?")["input_ids"]
        answer = tokenizer(" Because roots take up water." * (i + 1))["input_ids"]
        examples.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    return examples


def _lora(model_dir, attention: str):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation=attention)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05, generator=torch.Generator().manual_seed(1))
    return model.eval()


def test_flex_attention_on_a_padding_free_row_gives_the_padded_loss(tiny_model_dir):
    from transformers import AutoTokenizer
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = _tokenized(tokenizer)
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    row = padding_free_collator(tokenizer.pad_token_id)(examples)
    assert row["input_ids"].shape[0] == 1 and "attention_mask" not in row
    with torch.no_grad():
        plain = completion_nll(_lora(tiny_model_dir, "sdpa").get_base_model(), padded)
        flex = completion_nll(_lora(tiny_model_dir, "flex_attention").get_base_model(), row)
    assert flex.n_tokens == plain.n_tokens
    assert float(flex.loss) == pytest.approx(float(plain.loss), rel=1e-5)


@pytest.mark.slow  # inductor's CPU compilation: about a minute of CPU time
def test_compiled_decoder_layers_train_to_the_same_losses(tiny_model_dir, tmp_path, padded_run):
    from torch._dynamo.utils import counters

    compiled_before = counters["stats"]["unique_graphs"]
    compiled = _train(tiny_model_dir, tmp_path / "compiled", compile=True)
    assert counters["stats"]["unique_graphs"] > compiled_before  # the layers really ran compiled
    assert _losses(compiled) == pytest.approx(_losses(padded_run), rel=1e-4)


def test_the_memory_estimate_extends_the_probe_to_longer_batches(tiny_model_dir):
    model = _lora(tiny_model_dir, "sdpa")
    estimate = estimate_memory(model, tokens=512, device_bytes=2**40, probe_tokens=(32, 64))
    measured = saved_activation_bytes(model, 512)
    assert estimate.activation_bytes == pytest.approx(measured, rel=0.05)
    assert estimate.activation_bytes_per_token > 0 and not model.training  # the mode is restored
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert estimate.weights_bytes == params
    assert not estimate.needs_checkpointing  # a terabyte holds it
    tight = MemoryEstimate(**{**estimate.__dict__, "device_bytes": int(estimate.total_bytes)})
    assert tight.needs_checkpointing  # the estimate must fit in HEADROOM of the device
    assert tight.summary()["gradient_checkpointing"] is True


def test_checkpointing_auto_stays_off_on_a_cpu(tiny_model_dir, tmp_path):
    settings = tiny_training_settings(tiny_model_dir, gradient_checkpointing="auto")
    data = _examples(4)
    trainer = build_trainer(data, data, settings, tmp_path / "run")
    assert trainer.memory is None and not trainer.args.activation_checkpointing


def test_the_plan_takes_the_kernels_the_settings_name():
    gpu = dict(cuda_capability=(9, 0), cpu_bf16=False, flash_attn=False, cores=16)
    assert plan_hardware("auto", **gpu).loss_kernel == "trl"
    assert plan_hardware("auto", **gpu, loss_kernel="chunked").completion_loss
    assert plan_hardware("auto", **gpu, attention="flex_attention").attn_implementation == "flex_attention"
    assert plan_hardware("auto", **gpu, loss_kernel="liger", liger=True).loss_kernel == "liger"
    cpu = dict(cuda_capability=None, cpu_bf16=False, flash_attn=False, cores=2)
    assert plan_hardware("auto", **cpu).loss_kernel == "chunked"
    assert plan_hardware("auto", **cpu, loss_kernel="trl").loss_kernel == "trl"
    assert plan_hardware("auto", **cpu, attention="eager").attn_implementation == "eager"


@pytest.mark.parametrize("machine, kwargs, message", [
    ("cpu", {"loss_kernel": "liger", "liger": True}, "needs a CUDA GPU"),
    ("gpu", {"loss_kernel": "liger", "liger": False}, "liger-kernel is not installed"),
    ("cpu", {"attention": "flex_attention"}, "cannot train on a CPU"),
    ("gpu", {"attention": "flash_attention_2"}, "flash-attn missing"),
])
def test_the_plan_refuses_what_the_machine_cannot_run(machine, kwargs, message):
    where = {"cuda_capability": (9, 0) if machine == "gpu" else None}
    with pytest.raises(SettingsError, match=message):
        plan_hardware("auto", **where, cpu_bf16=False, flash_attn=False, cores=2, **kwargs)


def test_settings_refuse_flash_attention_in_full_precision():
    with pytest.raises(ValueError, match="flash_attention_2 needs half-precision weights"):
        TrainingSettings(base_model="m", attention="flash_attention_2", precision="fp32")
    assert TrainingSettings(base_model="m", gradient_checkpointing="auto").gradient_checkpointing == "auto"
