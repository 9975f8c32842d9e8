"""LoRA training on a tiny random Llama with the real SmolLM2 tokenizer (fast; CPU)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from research_tuner.lib.shared.inference import load_for_inference
from research_tuner.lib.training.train import train_lora
from research_tuner.lib.training.trainer import build_trainer
from research_tuner.settings import LLAMA_PROJECTIONS
from research_tuner_tests.support.tiny_training import tiny_training_settings

N_LAYERS = 2  # of the tiny model in conftest


def _examples(n: int = 8) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "question": [f"How does factor {i} affect crop yield in dry regions?" for i in range(n)],
            "approach": [
                f"## Hypothesis\nFactor {i} raises yield.\n## Methodology\nA field trial with {i + 2} plots."
                for i in range(n)
            ],
        }
    )


class _WeightWatcher(TrainerCallback):
    """Copies every parameter when training starts and ends."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {name: p.detach().clone() for name, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    watcher = _WeightWatcher()
    events: list[dict] = []
    data = _examples()
    result = train_lora(
        data, data.iloc[:4], tiny_training_settings(tiny_model_dir), out,
        progress=events.append, merge=True, callbacks=[watcher],
    )
    return result, watcher, events, out


def test_loss_goes_down(trained):
    result, _, _, _ = trained
    losses = result.log["loss"].dropna()
    evals = result.log["eval_loss"].dropna()
    assert len(losses) == result.global_step == 8
    assert losses.iloc[-1] < losses.iloc[0] - 0.3
    assert evals.iloc[-1] < evals.iloc[0] - 0.3  # evals.iloc[0]: before the first step
    assert result.final_train_loss == pytest.approx(losses.iloc[-1])
    assert result.final_eval_loss == pytest.approx(evals.iloc[-1])


def test_outputs_exist(trained):
    result, _, events, out = trained
    assert (result.adapter_dir / "adapter_config.json").is_file()
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (result.tokenizer_dir / "tokenizer_config.json").is_file()
    assert result.loss_curve_png.is_file() and result.loss_curve_png.stat().st_size > 1000
    log = pd.read_parquet(out / "training_log.parquet")
    assert {"step", "epoch", "loss", "eval_loss", "learning_rate", "tokens_per_second"} <= set(log.columns)
    assert log["eval_loss"].notna().sum() >= 4 + 1  # 2 per epoch and one before training
    assert log["tokens_per_second"].dropna().gt(0).all()
    assert result.tokens_seen > 0 and result.tokens_per_second == pytest.approx(result.tokens_seen / result.train_time_s)
    adapter = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert result.trainable_params == sum(t.numel() for t in adapter.values()) < result.total_params
    assert result.resumed_from_step is None
    assert (result.device, result.dtype) == ("cpu", "float32")
    train_events = [e for e in events if e["kind"] == "train"]
    assert [e["step"] for e in train_events] == list(range(1, 9))
    assert all(e["max_steps"] == 8 and "loss" in e and "tokens_per_second" in e for e in train_events)
    assert any(e["kind"] == "eval" and "eval_loss" in e for e in events)


def test_lora_weights_change_and_base_weights_do_not(trained):
    _, watcher, _, _ = trained
    lora = [n for n in watcher.before if "lora_" in n]
    base = [n for n in watcher.before if "lora_" not in n]
    assert lora and base
    assert all(not torch.equal(watcher.before[n], watcher.after[n]) for n in lora)
    assert all(torch.equal(watcher.before[n], watcher.after[n]) for n in base)
    assert all(watcher.after[n].abs().sum() > 0 for n in lora if "lora_B" in n)  # B starts at zero


def test_target_modules_are_the_seven_projections(trained):
    result, _, _, _ = trained
    config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(LLAMA_PROJECTIONS)
    assert config["r"] == 8 and config["lora_alpha"] == 16 and config["task_type"] == "CAUSAL_LM"
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    adapted = {name.split(".lora_")[0] for name in weights}
    assert len(adapted) == len(LLAMA_PROJECTIONS) * N_LAYERS
    assert {name.rsplit(".", 1)[-1] for name in adapted} == set(LLAMA_PROJECTIONS)


def test_load_for_inference_and_merged_model(trained, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    result, _, _, _ = trained
    model, tokenizer = load_for_inference(str(tiny_model_dir), result.adapter_dir, precision="fp32")
    assert not model.training
    assert tokenizer.padding_side == "left" and tokenizer.pad_token_id != tokenizer.eos_token_id
    batch = tokenizer(["Research question: how?", "A longer research question: why not?"], return_tensors="pt",
                      padding=True)
    with torch.no_grad():
        tuned = model(**batch).logits
        with model.disable_adapter():
            base = model(**batch).logits
        merged = AutoModelForCausalLM.from_pretrained(result.merged_dir, dtype=torch.float32)(**batch).logits
    assert not torch.allclose(tuned, base, atol=1e-3)
    torch.testing.assert_close(merged, tuned, atol=1e-4, rtol=1e-4)


def test_only_assistant_tokens_carry_loss(tiny_model_dir, tmp_path):
    data = pd.DataFrame(
        {
            "question": ["How does X affect Y?", "Why do cats purr loudly at night in winter?"],
            "approach": ["## Hypothesis\nX raises Y.", "## Hypothesis\nPurring signals comfort."],
        }
    )
    trainer = build_trainer(data, data, tiny_training_settings(tiny_model_dir, per_device_batch_size=2), tmp_path)
    tokenizer = trainer.processing_class
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.pad_token_id != im_end
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 2
    for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"].tolist()):
        text = tokenizer.decode(ids)
        trained_ids = [i for i, label in zip(ids, labels) if label != -100]
        assert all(label in (-100, i) for i, label in zip(ids, labels))
        # the approach and its end-of-turn token are in the loss; system and user turns are not
        approach = next(a for a in data["approach"] if a in text)
        assert tokenizer.decode(trained_ids).rstrip("\n") == approach + "<|im_end|>"
        start = next(k for k, label in enumerate(labels) if label != -100)
        prompt = tokenizer.decode(ids[:start])
        assert prompt.endswith("<|im_start|>assistant\n") and "<|im_start|>user" in prompt
        assert ids[:start].count(im_end) == 2  # the system's and the user's, both masked
        assert im_end in trained_ids


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes(tiny_model_dir, tmp_path):
    data = _examples()
    settings = tiny_training_settings(tiny_model_dir, epochs=3, save_steps=2)
    full = train_lora(data, data.iloc[:4], settings, tmp_path / "full")

    def kill_after_first_checkpoint(event):
        if event["kind"] == "train" and event["step"] >= 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_lora(data, data.iloc[:4], settings, tmp_path / "cut", progress=kill_after_first_checkpoint)
    assert not (tmp_path / "cut" / "adapter").exists()
    resumed = train_lora(data, data.iloc[:4], settings, tmp_path / "cut")

    assert resumed.resumed_from_step == 2
    assert resumed.global_step == full.global_step == 6
    assert resumed.tokens_seen == full.tokens_seen
    assert resumed.log["step"].tolist() == full.log["step"].tolist()
    a = load_file(full.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-4, rtol=1e-3)
    assert resumed.final_eval_loss == pytest.approx(full.final_eval_loss, abs=1e-3)

    # other data: the checkpoints do not belong to it, so training starts over
    other = train_lora(_examples(4), data.iloc[:4], settings, tmp_path / "cut")
    assert other.resumed_from_step is None and other.global_step == 3


def _losses(model_dir, out, precision: str):
    data = _examples(4)
    result = train_lora(data, data, tiny_training_settings(model_dir, precision=precision), out, max_steps=4)
    return result, result.log["loss"].dropna().tolist()


@pytest.fixture(scope="module")
def fp32_losses(tiny_model_dir, tmp_path_factory):
    """Training losses of 4 float32 steps: what the bf16 runs must reproduce up to bf16 rounding."""
    return _losses(tiny_model_dir, tmp_path_factory.mktemp("fp32"), "fp32")[1]


def _assert_trains_like_fp32(losses: list[float], reference: list[float]) -> None:
    # The untrained model's loss is about 10.8 (ln of the 49k vocabulary); 4 steps take fp32 down by ~0.26.
    assert len(losses) == len(reference) == 4
    assert losses[0] == pytest.approx(reference[0], abs=0.02)  # the same loss before any update
    assert losses[-1] == pytest.approx(reference[-1], abs=0.02)  # and the same updates
    assert losses[-1] < losses[0] - 0.15  # it learns


def test_bf16_on_cpu(tiny_model_dir, tmp_path, fp32_losses):
    """bf16 weights with bf16 autocast; transformers only accepts bf16 without a GPU when told it is a CPU run."""
    result, losses = _losses(tiny_model_dir, tmp_path, "bf16")
    assert result.dtype == "bfloat16" and result.hardware.precision == "bf16" and result.global_step == 4
    _assert_trains_like_fp32(losses, fp32_losses)


def test_bf16_mixed_keeps_float32_weights(tiny_model_dir, tmp_path, fp32_losses):
    """bf16-mixed: float32 LoRA and base weights, bfloat16 autocast for the compute."""
    from research_tuner.lib.training.trainer import build_trainer

    data = _examples(4)
    settings = tiny_training_settings(tiny_model_dir, precision="bf16-mixed")
    trainer = build_trainer(data, data, settings, tmp_path, max_steps=1)
    assert trainer.args.bf16 and {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    result, losses = _losses(tiny_model_dir, tmp_path / "run", "bf16-mixed")
    assert result.global_step == 4
    _assert_trains_like_fp32(losses, fp32_losses)
