"""Embedding similarity of an answer to its reference: the cosine of their unit sentence embeddings, from the
model `dedup.embedding_model` names (all-MiniLM-L6-v2 from its wheel by default, offline). A meaning-level
signal beside ROUGE-L and METEOR, which count shared words."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from research_tuner.lib.shared.similarity.embeddings import DEFAULT_EMBEDDING_MODEL, embed, load_embedder


def embedding_similarity(answers: Sequence[str], references: Sequence[str],
                         model: str = DEFAULT_EMBEDDING_MODEL) -> list[float]:
    """One cosine per (answer, reference) pair, in fp32 (scores are compared across runs, so no bf16 autocast).

    The model reads each text up to its maximum sequence length (256 word pieces for MiniLM, the first
    paragraphs of an approach): the score says whether an answer opens on the same ground as the reference.
    """
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers but {len(references)} references")
    if not answers:
        return []
    a = embed(list(answers), model, precision="fp32")
    b = embed(list(references), model, precision="fp32")
    return [float(x) for x in np.clip((a * b).sum(axis=1), -1.0, 1.0)]


def max_sequence_length(model: str = DEFAULT_EMBEDDING_MODEL) -> int:
    """Word pieces the embedding model reads of each text (what metric metadata records)."""
    return int(load_embedder(model).max_seq_length)
