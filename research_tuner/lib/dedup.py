"""Duplicate removal: exact (same text after normalising), lexical (MinHash/LSH) and semantic (embeddings).

Every question ends up in a cluster: the connected component of the "is a duplicate of" pairs found by
the three passes. One question per cluster is kept by a stable rule (a question kept by an earlier run
first, then the earliest generation round, then the smallest question id), so adding questions later never
replaces one that downstream assets already used. Every removed question keeps a pointer to the kept
question of its cluster, the pair that matched it, its kind and its similarity, so a person can audit
what was dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from research_tuner.lib.minhash import lexical_near_duplicates
from research_tuner.lib.questions import normalize_question
from research_tuner.settings import DedupSettings

REMOVED_COLUMNS = ["question_id", "field", "subdomain", "question", "duplicate_of", "similarity", "kind"]
AUDIT_COLUMNS = ["cluster", "keep", "duplicate_of", "matched_question_id", "kind", "similarity"]
KINDS = ("exact", "lexical", "semantic")  # in order of precedence when one pair is found by several passes


def remove_exact_duplicates(questions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, removed). The first occurrence in row order is kept; order is otherwise preserved."""
    kept_rows, removed_rows = [], []
    first_by_norm: dict[str, dict] = {}
    for row in questions.to_dict("records"):
        norm = normalize_question(row["question"])
        if not norm:
            continue
        original = first_by_norm.get(norm)
        if original is None:
            first_by_norm[norm] = row
            kept_rows.append(row)
        else:
            removed_rows.append({
                **{k: row[k] for k in ("question_id", "field", "subdomain", "question")},
                "duplicate_of": original["question_id"],
                "similarity": 1.0,
                "kind": "exact",
            })
    kept = pd.DataFrame(kept_rows, columns=questions.columns).reset_index(drop=True)
    return kept, pd.DataFrame(removed_rows, columns=REMOVED_COLUMNS)


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
    from research_tuner.lib.semantic import (content_jaccard, embed, required_cosine,
                                             semantic_near_duplicates)

    vectors = embed(texts, cfg.embedding_batch_size, cfg.embedding_precision)
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


def cluster_questions(
    questions: pd.DataFrame, cfg: DedupSettings, previously_kept: set[str] | frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, DuplicatePairs]:
    """`questions` plus the audit columns (AUDIT_COLUMNS), and the pairs found.

    `keep` is True for exactly one question per cluster; `cluster` is the kept question's id, so it stays
    the same when more questions join the cluster later. For a removed question, `duplicate_of` is that
    kept question, and (`matched_question_id`, `kind`, `similarity`) describe the pair that put it in the
    cluster: its pair with the kept question when there is one, else its closest pair.
    """
    frame = questions.reset_index(drop=True).copy()
    n = len(frame)
    pairs = duplicate_pairs(frame["question"], cfg)
    labels = clusters_of(n, pairs)
    ids = frame["question_id"].astype(str).to_numpy()
    rounds = frame["generation_round"].fillna(0).to_numpy() if "generation_round" in frame else np.zeros(n)
    not_kept_before = np.array([qid not in previously_kept for qid in ids])  # False sorts first
    order = np.lexsort((np.arange(n), ids, rounds, not_kept_before, labels))
    keeper_of_label = {}
    for pos in order:
        keeper_of_label.setdefault(labels[pos], pos)
    keeper = np.array([keeper_of_label[label] for label in labels], dtype=np.int64)
    keep = keeper == np.arange(n)

    edges = pairs.frame()
    both = pd.concat([edges.rename(columns={"a": "row", "b": "other"}),
                      edges.rename(columns={"b": "row", "a": "other"})], ignore_index=True)
    both = both[~keep[both["row"].to_numpy()]]
    both["to_keeper"] = both["other"].to_numpy() == keeper[both["row"].to_numpy()]
    both["rank"] = both["kind"].map({k: i for i, k in enumerate(KINDS)})
    best = (both.sort_values(["row", "to_keeper", "similarity", "rank"], ascending=[True, False, False, True])
            .drop_duplicates("row").set_index("row"))
    frame["cluster"] = ids[keeper]
    frame["keep"] = keep
    frame["duplicate_of"] = pd.Series(np.where(keep, None, ids[keeper]), dtype=object)
    matched = best["other"].reindex(range(n))
    frame["matched_question_id"] = pd.Series(
        [ids[int(m)] if not pd.isna(m) else None for m in matched], dtype=object)
    frame["kind"] = best["kind"].reindex(range(n)).astype(object).where(~keep, None)
    frame["similarity"] = best["similarity"].reindex(range(n)).astype(float).where(~keep)
    return frame, pairs


def dedup_summary(audit: pd.DataFrame) -> dict[str, int]:
    """Counts in and out and removed by kind."""
    removed = audit[~audit["keep"]]
    return {"questions_in": len(audit), "questions_kept": int(audit["keep"].sum()), "removed": len(removed),
            **{f"removed_{kind}": int((removed["kind"] == kind).sum()) for kind in KINDS}}
