"""Training on the hardware at hand: the hardware plan (incl. a pretend GPU), length bucketing, the faster LoRA
dropout, packed rows under SDPA, the fixed chat-template date, and the merged export from the asset."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from research_tuner.lib.shared.hardware import plan_hardware
from research_tuner.lib.training.batching import LengthBucketSampler, PaddingStats, batch_token_counts
from research_tuner.lib.training.lora_fast import CpuDropout

# --- hardware plan ---------------------------------------------------------------------------------


def test_plan_on_an_ampere_gpu_with_flash_attention():
    plan = plan_hardware("auto", cuda_capability=(8, 0), cpu_bf16=False, flash_attn=True, cores=2)
    assert (plan.device, plan.precision, plan.tf32) == ("cuda", "bf16", True)
    assert plan.attn_implementation == "flash_attention_2" and plan.optim == "adamw_torch_fused"
    assert plan.pin_memory and plan.threads is None


def test_plan_on_an_older_gpu_or_without_flash_attention():
    turing = plan_hardware("auto", cuda_capability=(7, 5), cpu_bf16=False, flash_attn=True, cores=2)
    assert (turing.precision, turing.tf32, turing.attn_implementation) == ("fp32", False, "sdpa")
    ampere = plan_hardware("auto", cuda_capability=(8, 6), cpu_bf16=False, flash_attn=False, cores=2)
    assert (ampere.precision, ampere.attn_implementation) == ("bf16", "sdpa")
    forced = plan_hardware("fp32", cuda_capability=(9, 0), cpu_bf16=False, flash_attn=True, cores=2)
    assert forced.precision == "fp32" and forced.attn_implementation == "sdpa"  # flash attention needs half


def test_plan_on_a_cpu():
    with_bf16 = plan_hardware("auto", cuda_capability=None, cpu_bf16=True, flash_attn=False, cores=8)
    assert (with_bf16.device, with_bf16.precision, with_bf16.threads) == ("cpu", "bf16", 8)
    assert with_bf16.attn_implementation == "sdpa" and not with_bf16.tf32 and with_bf16.dataloader_workers == 0
    without = plan_hardware("auto", cuda_capability=None, cpu_bf16=False, flash_attn=False, cores=2)
    assert without.precision == "fp32"
    assert plan_hardware("bf16-mixed", cuda_capability=None, cpu_bf16=False, flash_attn=False,
                         cores=2).precision == "bf16-mixed"


# --- batching --------------------------------------------------------------------------------------


def _padding_waste(order: list[int], lengths: list[int], micro: int) -> float:
    stats = PaddingStats()
    for start in range(0, len(order), micro):
        chunk = [lengths[i] for i in order[start : start + micro]]
        longest = max(chunk)
        mask = torch.zeros(len(chunk), longest, dtype=torch.long)
        for row, n in enumerate(chunk):
            mask[row, :n] = 1
        stats.add({"input_ids": torch.zeros_like(mask), "attention_mask": mask})
    return stats.padding_waste


def test_length_bucket_sampler_groups_lengths_deterministically():
    generator = torch.Generator().manual_seed(1)
    lengths = torch.randint(150, 600, (64,), generator=generator).tolist()
    sampler = LengthBucketSampler(lengths, step_size=8, seed=0)
    first = list(sampler)
    assert sorted(first) == list(range(64))  # a permutation
    assert list(LengthBucketSampler(lengths, step_size=8, seed=0)) == first  # same seed, same order
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == list(range(64))  # a new order every epoch
    random_order = torch.randperm(64, generator=torch.Generator().manual_seed(0)).tolist()
    assert _padding_waste(first, lengths, 4) < 0.05 < _padding_waste(random_order, lengths, 4)
    # steps are not in length order (no short-to-long curriculum)
    step_means = [sum(lengths[i] for i in first[k : k + 8]) / 8 for k in range(0, 64, 8)]
    assert step_means != sorted(step_means)


def test_length_bucket_sampler_keeps_a_short_last_step_last():
    order = list(LengthBucketSampler([10, 50, 20, 40, 30], step_size=2, seed=3))
    assert sorted(order) == [0, 1, 2, 3, 4] and len(order) == 5


def test_batch_token_counts():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert batch_token_counts({"input_ids": torch.zeros(2, 4), "attention_mask": mask}) == (7, 8)
    assert batch_token_counts({"input_ids": torch.zeros(1, 9)}) == (9, 9)  # padding-free: all real


# --- LoRA dropout ------------------------------------------------------------------------------------


def test_cpu_dropout_matches_dropout_statistics_and_follows_torchs_seed():
    torch.manual_seed(0)
    dropout = CpuDropout(0.05)
    x = torch.ones(200, 1000, dtype=torch.bfloat16)
    y = dropout(x)
    kept = (y != 0).float().mean().item()
    assert y.dtype == torch.bfloat16
    assert kept == pytest.approx(0.95, abs=0.005)
    assert torch.allclose(y[y != 0].float(), torch.tensor(1 / 0.95), rtol=1e-2)
    assert y.float().mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased, like nn.Dropout
    assert not torch.equal(dropout(x), y)  # a new mask every call
    torch.manual_seed(0)
    assert torch.equal(dropout(x), y)  # the same seed, the same masks (a resumed run's checkpointed RNG)
    dropout.eval()
    assert torch.equal(dropout(x), x)
    assert torch.equal(CpuDropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        CpuDropout(1.0)


# --- packed rows under SDPA (why bucketing rather than packing on a CPU) ---------------------------------


def test_sdpa_packed_row_does_not_attend_across_examples(tiny_model_dir):
    """transformers 5 builds a block-diagonal mask from position_ids that restart at 0, so a padding-free row
    gives each example the logits it has alone (the lib/batching.py docstring relies on this)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    a, b = torch.tensor([[5, 17, 99, 3, 42]]), torch.tensor([[7, 8, 1000, 12]])
    packed = torch.cat([a, b], dim=1)
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])
    with torch.no_grad():
        alone = torch.cat([model(input_ids=a).logits, model(input_ids=b).logits], dim=1)
        together = model(input_ids=packed, position_ids=positions, use_cache=False).logits  # as in training
        leaking = model(input_ids=packed, use_cache=False).logits  # one long sequence: b sees a
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(leaking[:, 5:], alone[:, 5:], atol=1e-3)


# --- chat template date -------------------------------------------------------------------------------

DATED_TEMPLATE = (
    "{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
    "{%- for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{%- if message['role'] == 'system' %}Today Date: {{ date_string }}\n{%- endif %}"
    "{{ message['content'] }}<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}"
)


def test_chat_template_date_is_fixed_at_training_and_inference(tiny_model_dir, tmp_path):
    """A Llama-3-style template that writes today's date: training and generation both render the fixed
    date, and the training example's prompt tokens are exactly the generation prompt's."""
    from transformers import AutoTokenizer

    from research_tuner.lib.shared.chat import CHAT_TEMPLATE_KWARGS, ChatPrompt, render_prompt, student_messages
    from research_tuner.lib.training.trainer import build_trainer
    from research_tuner.settings import TrainingSettings

    model_dir = tmp_path / "dated"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config["chat_template"] = DATED_TEMPLATE
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    (model_dir / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert "Today Date:" in tokenizer.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)

    question = "How does soil moisture affect yield?"
    data = pd.DataFrame({"question": [question], "approach": ["## Hypothesis\nIt raises yield."]})
    settings = TrainingSettings(base_model=str(model_dir), precision="fp32", per_device_batch_size=1,
                                gradient_accumulation_steps=1, max_length=256)
    trainer = build_trainer(data, data, settings, tmp_path / "out")
    batch = next(iter(trainer.get_train_dataloader()))
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    start = next(k for k, label in enumerate(labels) if label != -100)
    train_prompt = trainer.processing_class.decode(ids[:start])
    fixed = f"Today Date: {CHAT_TEMPLATE_KWARGS['date_string']}"
    assert fixed in train_prompt

    inference_prompt = render_prompt(tokenizer, ChatPrompt(tuple(student_messages(question))))
    assert fixed in inference_prompt
    assert ids[:start] == tokenizer(inference_prompt, add_special_tokens=False)["input_ids"]


# --- merged export from the asset ----------------------------------------------------------------------


def test_asset_exports_a_merged_model_equal_to_the_adapter_model(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from research_tuner.lib.shared.inference import load_for_inference
    from research_tuner.lib.training.trainer import build_trainer
    from research_tuner.resources import PipelineSettings
    from research_tuner.training.assets import lora_adapter

    monkeypatch.setenv("RESEARCH_TUNER_WORK", str(tmp_path / "work"))
    rows = [
        {"question_id": f"q{i}", "field": "arts", "subdomain": "music", "question": f"How does tempo {i} matter?",
         "approach": f"## Hypothesis\nTempo {i} matters.\n## Methodology\nA listening test.",
         "split": "validation" if i % 4 == 0 else "train"}
        for i in range(8)
    ]
    settings = PipelineSettings(profile="demo", training={
        "base_model": str(tiny_model_dir), "export_merged": True, "precision": "fp32", "learning_rate": 5e-3,
        "max_length": 128, "eval_on_start": False, "per_device_batch_size": 2, "gradient_accumulation_steps": 1,
        "epochs": 1, "save_steps": 100})
    context = dg.build_asset_context()
    export = lora_adapter(context, settings=settings, dataset_split=pd.DataFrame(rows))

    merged_dir = export / "merged"
    assert (merged_dir / "model.safetensors").is_file() and (merged_dir / "tokenizer_config.json").is_file()
    manifest = json.loads((export / "manifest.json").read_text())
    result = manifest["result"]
    # the manifest's figures are the run's: the adapter's own size, every train token seen once, the last loss
    adapter = load_file(export / "adapter" / "adapter_model.safetensors")
    assert result["trainable_params"] == sum(t.numel() for t in adapter.values())
    train = pd.DataFrame([r for r in rows if r["split"] == "train"])
    tokenized = build_trainer(train, train.iloc[:0], settings.resolve().training, tmp_path / "count").train_dataset
    assert result["global_step"] == 3 and result["tokens_seen"] == sum(len(ids) for ids in tokenized["input_ids"])
    log = pd.read_parquet(export / "training_log.parquet")
    assert result["final_train_loss"] == log["loss"].dropna().iloc[-1]

    model, tokenizer = load_for_inference(str(tiny_model_dir), export / "adapter", precision="fp32")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    assert AutoTokenizer.from_pretrained(merged_dir).pad_token_id == tokenizer.pad_token_id
    batch = tokenizer(["Research question: why?", "A longer research question: how so?"], return_tensors="pt",
                      padding=True)
    with torch.no_grad():
        tuned = model(**batch).logits
        with model.disable_adapter():
            base = model(**batch).logits
        merged_logits = merged(**batch).logits
    assert not torch.allclose(tuned, base, atol=1e-4)
    torch.testing.assert_close(merged_logits, tuned, atol=1e-4, rtol=1e-4)


def test_bf16_training_reports_speed_and_padding(tiny_model_dir, tmp_path):
    """The tokens, padding and speed a run reports are those of the batches it trained on."""
    from research_tuner.lib.training.train import train_lora
    from research_tuner.lib.training.trainer import build_trainer
    from research_tuner.settings import TrainingSettings

    data = pd.DataFrame({"question": [f"Why {i}?" for i in range(4)],
                         "approach": [f"## Hypothesis\nBecause {' and so' * (4 * i)}." for i in range(4)]})
    settings = TrainingSettings(base_model=str(tiny_model_dir), precision="bf16", per_device_batch_size=2,
                                gradient_accumulation_steps=1, max_length=128, eval_on_start=False)
    # the batches the run will train on: the same trainer's dataloader, with the same seeded sampler
    batches = list(build_trainer(data, data, settings, tmp_path / "peek", max_steps=2).get_train_dataloader())
    real = sum(int(b["attention_mask"].sum()) for b in batches)
    total = sum(b["attention_mask"].numel() for b in batches)
    assert len(batches) == 2 and real < total  # the lengths differ, so the batches carry padding

    result = train_lora(data, data, settings, tmp_path / "run", max_steps=2)
    assert result.hardware.precision == "bf16" and result.global_step == 2
    assert result.tokens_seen == real
    assert result.padding_waste == pytest.approx(1 - real / total)
    assert 0 < result.train_time_s < result.wall_time_s  # steps only: loading and saving are left out
    assert result.tokens_per_second == pytest.approx(real / result.train_time_s)


def test_build_trainer_swaps_lora_dropout_on_a_cpu(tiny_model_dir, tmp_path):
    from peft.tuners.lora import LoraLayer

    from research_tuner.lib.training.trainer import build_trainer
    from research_tuner.settings import TrainingSettings

    data = pd.DataFrame({"question": ["Why?"], "approach": ["Because."]})
    trainer = build_trainer(data, data, TrainingSettings(base_model=str(tiny_model_dir), precision="bf16"), tmp_path)
    layers = [m for m in trainer.model.modules() if isinstance(m, LoraLayer)]
    assert layers and all(isinstance(d, CpuDropout) and d.p == 0.05
                          for m in layers for d in m.lora_dropout.values())
    assert all(m.cast_input_dtype_enabled for m in layers)  # switched off only while training runs
