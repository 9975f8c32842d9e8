"""Duplicate pairs among texts by the three passes (exact, lexical, semantic), and their clusters.

Exact duplicates (the same normalised text) are linked to one representative; the lexical (minhash.py) and
semantic (semantic.py, over embeddings.py) passes run on one representative per distinct text. Each pair is
reported once, under the first pass in `KINDS` order that found it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from research_tuner.lib.shared.ids import normalize_question
from research_tuner.lib.shared.similarity.minhash import lexical_near_duplicates

if TYPE_CHECKING:
    from research_tuner.settings import DedupSettings

#: In order of precedence when one pair is found by several passes; "teacher" pairs are borderline semantic pairs
#: the teacher called the same study (lib/curation/borderline.py), never found by `duplicate_pairs`.
KINDS = ("exact", "lexical", "semantic", "teacher")


@dataclass
class DuplicatePairs:
    """Pairs (a < b, row positions) found by any pass, with the pass that found them and their similarity."""

    a: np.ndarray
    b: np.ndarray
    kind: np.ndarray  # index into KINDS
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"a": self.a, "b": self.b, "kind": np.asarray(KINDS)[self.kind],
                             "similarity": self.similarity})


def semantic_pairs(texts: list[str], cfg: DedupSettings) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, cosine) of paraphrases among `texts` by the configured rule (see `required_cosine`).

    The blocked neighbour search returns every pair at or above the lowest cosine the rule can accept
    (`semantic_threshold`); each is then held to the bar its content-word overlap sets.
    """
    from research_tuner.lib.shared.similarity.embeddings import embed
    from research_tuner.lib.shared.similarity.semantic import content_jaccard, required_cosine, semantic_near_duplicates

    vectors = embed(texts, cfg.embedding_model, cfg.embedding_batch_size, cfg.embedding_precision)
    found = semantic_near_duplicates(vectors, cfg.semantic_threshold, cfg.probes)
    if cfg.semantic_overlap_slope == 0 or len(found.pairs) == 0:
        return found.pairs, found.similarity
    bar = required_cosine(content_jaccard(texts, found.pairs), cfg.semantic_threshold,
                          cfg.semantic_overlap_slope, cfg.semantic_max_threshold)
    keep = found.similarity >= bar
    return found.pairs[keep], found.similarity[keep]


def duplicate_pairs(texts: list[str] | pd.Series, cfg: DedupSettings) -> DuplicatePairs:
    """All duplicate pairs among `texts` (row positions): exact, then lexical and semantic among distinct texts.

    Lexical and semantic passes run on one representative per distinct normalised text; exact duplicates
    are linked to their representative.
    """
    texts = list(texts)
    norms = pd.Series([normalize_question(t) for t in texts], dtype=object)
    codes, uniques = pd.factorize(norms)
    positions = np.arange(len(texts))
    first = pd.Series(positions).groupby(codes).min().to_numpy()  # representative row of each distinct text
    rep = first[codes]
    dup = positions != rep
    parts = [(rep[dup], positions[dup], np.zeros(int(dup.sum()), np.int64), np.ones(int(dup.sum()), np.float32))]
    rep_texts = [texts[i] for i in first]
    nonempty = np.array([bool(u) for u in uniques], dtype=bool)
    if len(first) >= 2:
        lexical = lexical_near_duplicates(rep_texts, cfg.lexical_threshold, cfg.num_perm, cfg.shingle_words)
        parts.append((first[lexical.pairs[:, 0]], first[lexical.pairs[:, 1]],
                      np.ones(len(lexical.pairs), np.int64), lexical.similarity))
        if cfg.semantic:
            idx = np.flatnonzero(nonempty)
            pairs, cosine = semantic_pairs([rep_texts[i] for i in idx], cfg)
            parts.append((first[idx[pairs[:, 0]]], first[idx[pairs[:, 1]]],
                          np.full(len(pairs), 2, np.int64), cosine))
    a, b, kind, sim = (np.concatenate(x) for x in zip(*parts))
    a, b = np.minimum(a, b), np.maximum(a, b)
    # One entry per pair: the first kind in KINDS order that found it.
    order = np.lexsort((kind, b, a))
    a, b, kind, sim = a[order], b[order], kind[order], sim[order]
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return DuplicatePairs(a[keep], b[keep], kind[keep], sim[keep].astype(np.float32))


def clusters_of(n: int, pairs: DuplicatePairs) -> np.ndarray:
    """Connected-component label of each of n rows (union-find over the pairs, via scipy's csgraph)."""
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs.a, pairs.b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]
