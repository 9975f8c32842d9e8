"""Borderline near-duplicates to the teacher (`dedup.teacher_borderline`, off by default).

The semantic rule (lib/shared/similarity) cannot separate some paraphrases from same-topic questions by cosine
(docs/dedup.md: held-out F1 0.82). Pairs whose cosine lies within `borderline_margin` below the bar their word
overlap sets, and that no pass has linked already, are asked to the teacher as one yes/no question each; a yes
links them as a duplicate of kind "teacher". At most `borderline_max_pairs` pairs are asked (the closest first),
each through the response cache; an answer that is neither yes nor no counts as no (both questions are kept).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from research_tuner.lib.curation import prompts
from research_tuner.lib.shared.ids import stable_seed
from research_tuner.lib.shared.similarity.pairs import KINDS, DuplicatePairs, clusters_of
from research_tuner.lib.teacher.base import Teacher, TeacherFailure, TeacherRequest, Usage

if TYPE_CHECKING:
    from research_tuner.settings import DedupSettings

TEACHER_KIND = KINDS.index("teacher")


def borderline_candidates(texts: list[str], cfg: DedupSettings, found: DuplicatePairs) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, cosine) just below the semantic bar and not in one cluster already, closest first."""
    from research_tuner.lib.shared.similarity.embeddings import embed
    from research_tuner.lib.shared.similarity.semantic import content_jaccard, required_cosine, semantic_near_duplicates

    if len(texts) < 2:
        return np.empty((0, 2), np.int64), np.empty(0, np.float32)
    vectors = embed(texts, cfg.embedding_model, cfg.embedding_batch_size, cfg.embedding_precision)
    near = semantic_near_duplicates(vectors, max(cfg.semantic_threshold - cfg.borderline_margin, 0.0), cfg.probes)
    if len(near.pairs) == 0:
        return near.pairs, near.similarity
    bar = required_cosine(content_jaccard(texts, near.pairs), cfg.semantic_threshold, cfg.semantic_overlap_slope,
                          cfg.semantic_max_threshold)
    labels = clusters_of(len(texts), found)
    keep = ((near.similarity < bar) & (near.similarity >= bar - cfg.borderline_margin)
            & (labels[near.pairs[:, 0]] != labels[near.pairs[:, 1]]))
    pairs, sims = near.pairs[keep], near.similarity[keep]
    order = np.argsort(-sims, kind="stable")[: cfg.borderline_max_pairs]
    return pairs[order], sims[order]


def same_study_request(a: str, b: str) -> TeacherRequest:
    """Temperature 0; the pair in a fixed order, so the same pair is the same request (and cache entry)."""
    a, b = sorted((a, b))
    messages = ({"role": "system", "content": prompts.SAME_STUDY_SYSTEM},
                {"role": "user", "content": prompts.SAME_STUDY_USER.format(a=a, b=b)})
    return TeacherRequest(messages, 4, 0.0, 1.0, stable_seed(a, b, "same study"))


def read_yes(text: str) -> bool:
    """True only for an answer that starts with 'yes'."""
    match = re.match(r"\W*(yes|no)\b", text, re.IGNORECASE)
    return bool(match) and match.group(1).lower() == "yes"


def teacher_pairs(teacher: Teacher, texts: list[str], cfg: DedupSettings, found: DuplicatePairs,
                  usage: Usage) -> tuple[DuplicatePairs, int]:
    """`found` plus the borderline pairs the teacher called the same study (kind "teacher"), and how many it was
    asked."""
    pairs, sims = borderline_candidates(texts, cfg, found)
    if len(pairs) == 0:
        return found, 0
    answers = teacher.complete([same_study_request(texts[a], texts[b]) for a, b in pairs], usage)
    yes = np.array([not isinstance(r, TeacherFailure) and read_yes(r.text) for r in answers], dtype=bool)
    merged = DuplicatePairs(np.concatenate([found.a, pairs[yes, 0]]), np.concatenate([found.b, pairs[yes, 1]]),
                            np.concatenate([found.kind, np.full(int(yes.sum()), TEACHER_KIND, np.int64)]),
                            np.concatenate([found.similarity, sims[yes]]).astype(np.float32))
    return merged, len(pairs)
