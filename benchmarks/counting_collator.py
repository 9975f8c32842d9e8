"""A data collator wrapper that counts real and padded tokens, for a trainer that has no padding accounting of
its own (the benchmark's TRL baselines)."""

from __future__ import annotations

from research_tuner.lib.training.batching import PaddingStats


class CountingCollator:
    """Wraps a data collator and counts the tokens of every batch it makes (for a trainer that has no
    evaluation while it trains, such as the benchmark's baseline)."""

    def __init__(self, collator, stats: PaddingStats | None = None):
        self.collator = collator
        self.stats = stats or PaddingStats()

    def __call__(self, examples):
        batch = self.collator(examples)
        self.stats.add(batch)
        return batch
