"""The training stage: LoRA fine-tuning of the student with TRL + PEFT, in one process or data-parallel."""
