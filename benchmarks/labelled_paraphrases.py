"""Precision/recall/F1 of the whole dedup on the hand-labelled quads, with thresholds chosen by cross-validation.

Each topic of research_tuner_tests/data/paraphrase_quads.tsv holds a question, a paraphrase and a light
edit (three duplicates of each other) and a same-topic hard negative. Quality is pairwise over all the
texts evaluated together (cross-topic merges count as false positives): a pair is predicted duplicate
when the dedup puts both texts in one cluster.

Thresholds of the semantic rule (`semantic_threshold`, `semantic_overlap_slope`, `semantic_max_threshold`)
are chosen on training topics only and scored on the held-out topics (k folds over topics, repeated with
several shuffles); the held-out numbers, pooled over folds, are the headline. Fitting scores every grid
point from pairs precomputed once (the pipeline's own exact, lexical and semantic functions on all texts);
held-out scoring calls `duplicate_pairs` itself on the held-out texts with the fold's chosen settings.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

QUADS = Path(__file__).resolve().parent.parent / "research_tuner_tests" / "data" / "paraphrase_quads.tsv"
ROLES = ["question", "paraphrase", "light_edit", "hard_negative"]
GRID = {"semantic_threshold": np.round(np.arange(0.60, 0.921, 0.01), 2),
        "semantic_overlap_slope": np.round(np.arange(0.0, 0.61, 0.05), 2),
        "semantic_max_threshold": [0.9, 0.95, 1.0]}


def load_quads() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, topic, role) with texts ordered role by role."""
    quads = pd.read_csv(QUADS, sep="\t", comment="#")
    texts = [t for role in ROLES for t in quads[role]]
    n = len(quads)
    return texts, np.tile(np.arange(n), 4), np.repeat(np.arange(4), n)


def pair_counts(labels: np.ndarray, topic: np.ndarray, role: np.ndarray) -> tuple[int, int, int]:
    """(true positives, predicted pairs, true pairs) over all pairs of the given texts."""
    truth = (topic[:, None] == topic[None, :]) & (role[:, None] < 3) & (role[None, :] < 3)
    same = labels[:, None] == labels[None, :]
    upper = np.triu_indices(len(labels), 1)
    t, p = truth[upper], same[upper]
    return int((t & p).sum()), int(p.sum()), int(t.sum())


def scores(tp: int, predicted: int, true: int) -> dict:
    precision, recall = tp / max(1, predicted), tp / max(1, true)
    return {"precision": round(precision, 3), "recall": round(recall, 3),
            "f1": round(2 * precision * recall / max(1e-9, precision + recall), 3)}


class PrecomputedPairs:
    """Exact + lexical pairs and every semantic candidate (cosine >= the grid's lowest) with its overlap."""

    def __init__(self, texts: list[str], cfg) -> None:
        from research_tuner.lib.shared.similarity.embeddings import embed
        from research_tuner.lib.shared.similarity.pairs import duplicate_pairs
        from research_tuner.lib.shared.similarity.semantic import _brute_force, content_jaccard

        fixed = duplicate_pairs(texts, cfg.model_copy(update={"semantic": False}))
        self.fixed = np.stack([fixed.a, fixed.b], axis=1)
        vectors = embed(texts, cfg.embedding_model, cfg.embedding_batch_size, cfg.embedding_precision)
        found = _brute_force(vectors, float(min(GRID["semantic_threshold"])))
        self.pairs, self.cosine = found.pairs, found.similarity
        self.overlap = content_jaccard(texts, found.pairs)

    def labels(self, rows: np.ndarray, threshold: float, slope: float, cap: float) -> np.ndarray:
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        from research_tuner.lib.shared.similarity.semantic import required_cosine

        semantic = self.pairs[self.cosine >= required_cosine(self.overlap, threshold, slope, cap)]
        edges = np.concatenate([self.fixed, semantic])
        inside = np.isin(edges, rows).all(axis=1)
        local = np.searchsorted(rows, edges[inside])
        graph = coo_matrix((np.ones(len(local)), (local[:, 0], local[:, 1])), shape=(len(rows), len(rows)))
        return connected_components(graph, directed=False)[1]


def fit(pre: PrecomputedPairs, rows: np.ndarray, topic: np.ndarray, role: np.ndarray) -> tuple[dict, float]:
    """The grid point with the best F1 on `rows` (ties: the simplest rule, then the lowest thresholds)."""
    best, best_f1 = None, -1.0
    for slope, cap, threshold in itertools.product(GRID["semantic_overlap_slope"], GRID["semantic_max_threshold"][::-1],
                                                   GRID["semantic_threshold"]):
        if slope == 0 and cap != 1.0:
            continue  # the cap only matters with a slope
        f1 = scores(*pair_counts(pre.labels(rows, threshold, slope, cap), topic[rows], role[rows]))["f1"]
        if f1 > best_f1:
            best, best_f1 = {"semantic_threshold": float(threshold), "semantic_overlap_slope": float(slope),
                             "semantic_max_threshold": float(cap)}, f1
    return best, best_f1


def cross_validated_quality(folds: int = 5, repeats: int = 4, plain_cosine_only: bool = False) -> dict:
    """Held-out precision/recall/F1 pooled over `folds` x `repeats` splits of the topics."""
    from research_tuner.lib.shared.similarity.pairs import clusters_of, duplicate_pairs
    from research_tuner.settings import DedupSettings

    texts, topic, role = load_quads()
    default = DedupSettings()
    pre = PrecomputedPairs(texts, default)
    topics = np.unique(topic)
    totals, chosen, per_repeat = np.zeros(3, np.int64), [], []
    for repeat in range(repeats):
        order = np.random.default_rng(repeat).permutation(topics)
        repeat_totals = np.zeros(3, np.int64)
        for k in range(folds):
            held = np.isin(topic, order[k::folds])
            train_rows, test_rows = np.flatnonzero(~held), np.flatnonzero(held)
            if plain_cosine_only:
                saved = dict(GRID)
                GRID.update(semantic_overlap_slope=[0.0], semantic_max_threshold=[1.0])
                try:
                    params, _ = fit(pre, train_rows, topic, role)
                finally:
                    GRID.update(saved)
            else:
                params, _ = fit(pre, train_rows, topic, role)
            chosen.append(params)
            cfg = default.model_copy(update=params)
            held_texts = [texts[i] for i in test_rows]
            labels = clusters_of(len(held_texts), duplicate_pairs(held_texts, cfg))
            counts = np.array(pair_counts(labels, topic[test_rows], role[test_rows]))
            repeat_totals += counts
        totals += repeat_totals
        per_repeat.append(scores(*repeat_totals)["f1"])
    picked = pd.DataFrame(chosen)
    return {"folds": folds, "repeats": repeats, "held_out": scores(*totals),
            "held_out_f1_per_repeat": per_repeat,
            "thresholds_chosen": {c: {"min": float(picked[c].min()), "median": float(picked[c].median()),
                                      "max": float(picked[c].max())} for c in picked}}


def later_topics_quality(first: int = 38) -> dict:
    """Thresholds fitted on the first `first` topics (the set as first written) and scored on the topics
    added later, which were written before the overlap rule existed: a second held-out view."""
    from research_tuner.lib.shared.similarity.pairs import clusters_of, duplicate_pairs
    from research_tuner.settings import DedupSettings

    texts, topic, role = load_quads()
    default = DedupSettings()
    pre = PrecomputedPairs(texts, default)
    old, new = np.flatnonzero(topic < first), np.flatnonzero(topic >= first)
    out = {"fitted_on_topics": first, "scored_on_topics": int(len(np.unique(topic[new])))}
    for name, grid in {"overlap_rule": {}, "plain_cosine": {"semantic_overlap_slope": [0.0],
                                                           "semantic_max_threshold": [1.0]}}.items():
        saved = dict(GRID)
        GRID.update(grid)
        try:
            params, _ = fit(pre, old, topic, role)
        finally:
            GRID.update(saved)
        held_texts = [texts[i] for i in new]
        labels = clusters_of(len(held_texts), duplicate_pairs(held_texts, default.model_copy(update=params)))
        out[name] = {"thresholds": params, **scores(*pair_counts(labels, topic[new], role[new]))}
    return out
