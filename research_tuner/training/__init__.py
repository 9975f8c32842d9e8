"""The training stage (asset group `training`): the LoRA adapter trained on every field's train split. Logic in
research_tuner/lib/training/."""
