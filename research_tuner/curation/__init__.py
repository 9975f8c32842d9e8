"""Curation stage: duplicate removal and the train/validation split, with their quality gates."""
