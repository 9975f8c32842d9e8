"""The model LoRA trains: the base model in the hardware plan's precision (or 4-bit for QLoRA), and the adapter's
configuration."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import torch

from research_tuner.lib.shared.hardware import HardwarePlan
from research_tuner.lib.shared.models import load_causal_lm, preferred_dtype, resolve_model

if TYPE_CHECKING:
    from research_tuner.settings import TrainingSettings

log = logging.getLogger(__name__)


def can_load_4bit() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def load_base_model(settings: TrainingSettings, plan: HardwarePlan, tokenizer, token: str | None):
    """The base model to train: 4-bit quantized (QLoRA) when asked for and possible, else in the plan's
    precision (float32 weights for bf16-mixed, whose bfloat16 comes from autocast)."""
    dtype = preferred_dtype(plan.precision)
    if settings.load_in_4bit and not can_load_4bit():
        log.warning("training.load_in_4bit needs CUDA and bitsandbytes; training a full-precision LoRA instead")
    if settings.load_in_4bit and can_load_4bit():  # pragma: no cover - needs a GPU
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, BitsAndBytesConfig

        compute = dtype if dtype != torch.float32 else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(
            resolve_model(settings.base_model),
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            ),
            dtype=compute,
            device_map={"": int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))},  # this rank's GPU
            attn_implementation=plan.attn_implementation,
            token=token,
        )
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer))
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=settings.gradient_checkpointing is True,  # 'auto': the trainer decides
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
        return model
    weights = "fp32" if plan.precision == "bf16-mixed" else plan.precision  # autocast does the rest
    return load_causal_lm(
        settings.base_model,
        precision=weights,
        token=token,
        tokenizer=tokenizer,
        attn_implementation=plan.attn_implementation,
    )


def lora_config(settings: TrainingSettings):
    from peft import LoraConfig

    return LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
