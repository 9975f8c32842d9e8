"""Training settings for the tiny random Llama of conftest's `tiny_model_dir`: a higher learning rate and a
small rank, so a few steps visibly move the adapter; tests override what they are about."""

from __future__ import annotations

from research_tuner.settings import TrainingSettings


def tiny_training_settings(model_dir, **overrides) -> TrainingSettings:
    values = dict(
        base_model=str(model_dir),
        lora_r=8,
        lora_alpha=16,
        learning_rate=5e-3,
        warmup_ratio=0.0,
        per_device_batch_size=4,
        gradient_accumulation_steps=1,
        epochs=4,
        max_length=256,
        precision="fp32",
        logging_steps=1,
        save_steps=4,
    )
    values.update(overrides)
    return TrainingSettings(**values)
