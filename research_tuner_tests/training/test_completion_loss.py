"""The completion loss (lib/training/completion_loss.py) against the model's own loss: the same value, the same LoRA
gradients, chunked or not, in float32 and under bfloat16 autocast, and in the trainer."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from research_tuner.lib.training import completion_loss
from research_tuner.lib.training.completion_loss import can_use, completion_nll
from research_tuner.lib.training.trainer import build_trainer
from research_tuner.settings import TrainingSettings


def _lora_model(model_dir):
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "down_proj"]))
    for name, param in model.named_parameters():  # LoRA B starts at zero; make the adapter do something
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    return model


def _batch(vocab: int) -> dict:
    """Two rows, the second left shorter by padding; labels -100 on the prompt part and the padding."""
    torch.manual_seed(1)
    input_ids = torch.randint(0, vocab, (2, 23))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 17:] = 0
    labels = input_ids.clone()
    labels[0, :9] = -100
    labels[1, :5] = -100
    labels[attention_mask == 0] = -100
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _reference(model, batch):
    return model(**batch, use_cache=False).loss


def _lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_loss_and_lora_gradients_equal_the_models_own(tiny_model_dir, monkeypatch):
    model = _lora_model(tiny_model_dir)
    batch = _batch(model.config.vocab_size)
    expected = _reference(model, batch)
    expected.backward()
    expected_grads = _lora_grads(model)
    model.zero_grad()

    monkeypatch.setattr(completion_loss, "CHUNK_TOKENS", 7)  # several chunks, the last one short
    result = completion_nll(model.get_base_model(), batch)
    result.loss.backward()
    assert result.n_tokens == int((batch["labels"][:, 1:] != -100).sum())
    assert float(result.loss) == pytest.approx(float(expected), rel=1e-5)
    for name, grad in _lora_grads(model).items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(g.abs().sum() > 0 for g in expected_grads.values())


def test_metrics_and_the_divisor_of_an_accumulated_batch(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    batch = _batch(model.config.vocab_size)
    with torch.no_grad():
        result = completion_nll(model.get_base_model(), batch, num_items_in_batch=100)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != -100
    log_probs = logits[mask].float().log_softmax(-1)
    nll_sum = -log_probs.gather(1, targets[mask][:, None]).sum()
    assert float(result.loss) == pytest.approx(float(nll_sum) / 100, rel=1e-5)
    entropy = -(log_probs.exp() * log_probs).sum()
    assert result.entropy_sum == pytest.approx(float(entropy), rel=1e-4)
    assert result.n_correct == int((log_probs.argmax(-1) == targets[mask]).sum())


def test_bf16_autocast_stays_close_to_float32(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    batch = _batch(model.config.vocab_size)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = _reference(model, batch)
        result = completion_nll(model.get_base_model(), batch)
    assert float(result.loss) == pytest.approx(float(expected), rel=2e-2)


def test_a_batch_without_labels_gives_a_zero_loss_that_backpropagates(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    batch = _batch(model.config.vocab_size)
    batch["labels"][:] = -100
    result = completion_nll(model.get_base_model(), batch)
    result.loss.backward()
    assert float(result.loss) == 0.0 and result.n_tokens == 0


def test_a_trained_lm_head_is_left_to_trl(tiny_model_dir):
    model = _lora_model(tiny_model_dir)
    assert can_use(model.get_base_model())
    model.get_base_model().get_output_embeddings().weight.requires_grad_(True)
    assert not can_use(model.get_base_model())


def test_the_trainer_uses_it_on_a_cpu_and_gets_trls_loss(tiny_model_dir, tmp_path):
    data = pd.DataFrame(
        {
            "question": [f"How does factor {i} change the yield of crops grown in dry soil?" for i in range(4)],
            "approach": [f"## Hypothesis\nFactor {i} raises yield.\n## Methodology\n{i + 2} plots." * (i + 1)
                         for i in range(4)],
        }
    )
    settings = TrainingSettings(base_model=str(tiny_model_dir), precision="fp32", per_device_batch_size=4,
                                gradient_accumulation_steps=1, lora_dropout=0.0)
    trainer = build_trainer(data, data, settings, tmp_path / "run")
    assert trainer.hardware.completion_loss
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.train()
    assert trainer._completion_loss_applies(model, batch)
    ours = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
    trainer.hardware = dataclasses.replace(trainer.hardware, loss_kernel="trl")
    assert not trainer._completion_loss_applies(model, batch)
    trls = trainer.compute_loss(model, dict(batch), num_items_in_batch=None)
    assert float(ours) == pytest.approx(float(trls), rel=1e-5)
    assert trainer._metrics["train"]["mean_token_accuracy"][0] == pytest.approx(
        trainer._metrics["train"]["mean_token_accuracy"][1], abs=1e-6
    )
