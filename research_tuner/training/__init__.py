"""Training stage: the LoRA adapter trained on every field's train split."""
