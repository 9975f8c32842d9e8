"""Training batches with little padding: a deterministic length-bucketing sampler, padding-free rows, and
padding accounting.

A batch is padded to its longest example, so a batch of one 180-token and one 570-token example spends
most of its compute on padding. `LengthBucketSampler` puts examples of similar length into the same
optimizer step: it shuffles (seeded, per epoch), cuts the shuffled order into mega-batches, sorts each
mega-batch by length, cuts it into optimizer-step batches, and shuffles the order of those batches so
that the run does not see short examples first and long ones last.

Padding-free rows (`training.padding_free`, `padding_free_collator`): each micro-batch's examples are
concatenated into one row whose `position_ids` restart at 0 for every example, with no attention mask; the
first label of each example is masked, so no example predicts from another's last token. transformers 5 turns
restarting `position_ids` into a per-example mask (`masking_utils.find_packed_sequence_indices`, when there is
no attention mask and no KV cache, as in training): for FlexAttention a block-sparse document mask that skips
the blocks between examples, for FlashAttention 2 varlen boundaries (the collator's `cu_seq_lens`), and for
SDPA and eager a dense block-diagonal mask, which is correct (research_tuner_tests/training/ checks each against
the padded batch) but computes every one of the L x L scores of the row, most of them masked away. So on a CPU,
whose only training kernels are SDPA and eager, bucketing is the default: padding is already a few percent, and
attention stays per example.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

#: Mega-batches hold this many optimizer-step batches (as transformers' LengthGroupedSampler), or the whole
#: data set when it is smaller than 4 of them, so that small data sets are bucketed too.
MEGABATCH_STEPS = 50


class LengthBucketSampler(Sampler[int]):
    """Indices such that each run of `step_size` consecutive indices (one optimizer step: batch size x
    gradient accumulation) holds examples of similar length. Same seed and epoch, same order."""

    def __init__(self, lengths: Sequence[int], step_size: int, seed: int = 0):
        if step_size < 1:
            raise ValueError("step_size must be at least 1")
        self.lengths = [int(n) for n in lengths]
        self.step_size = step_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # the Trainer calls it at the start of every epoch
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        mega = self.step_size * MEGABATCH_STEPS
        if len(order) < 4 * mega:
            mega = len(order) or 1
        batches: list[list[int]] = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start : start + mega], key=lambda i: self.lengths[i])
            batches.extend(chunk[k : k + self.step_size] for k in range(0, len(chunk), self.step_size))
        # the last (short) batch keeps its place at the end, so that every other batch is a full step
        full = [b for b in batches if len(b) == self.step_size]
        rest = [b for b in batches if len(b) != self.step_size]
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        return iter([i for batch in shuffled + rest for i in batch])


def padding_free_collator(pad_token_id: int):
    """TRL's language-modelling collator in its padding-free mode: one row per micro-batch, restarting
    `position_ids`, the first label of each example masked, and the varlen boundaries FlashAttention reads.
    Given to the trainer as its collator, so TRL's own truncation to `max_length` still applies."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=True)


def batch_token_counts(batch: dict) -> tuple[int, int]:
    """(real tokens, tokens in the batch tensor) of one collated training batch. Real tokens are those the
    attention mask keeps; a padding-free batch (no mask) is all real."""
    input_ids = batch["input_ids"]
    total = int(input_ids.numel())
    mask = batch.get("attention_mask")
    return (int(mask.sum()) if mask is not None else total), total


@dataclass
class PaddingStats:
    """Running count of real and padded tokens over the training batches."""

    real_tokens: int = 0
    batch_tokens: int = 0
    batches: int = 0

    def add(self, batch: dict) -> None:
        real, total = batch_token_counts(batch)
        self.real_tokens += real
        self.batch_tokens += total
        self.batches += 1

    @property
    def padding_waste(self) -> float | None:
        """Padded tokens / all tokens in the batches (0 = no padding)."""
        if self.batch_tokens == 0:
            return None
        return 1.0 - self.real_tokens / self.batch_tokens
