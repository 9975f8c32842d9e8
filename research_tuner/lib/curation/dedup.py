"""Question clusters: every question's near-duplicate cluster and the one question each cluster keeps.

Every question ends up in a cluster: the connected component of the "is a duplicate of" pairs found by
the three passes (lib/shared/similarity). One question per cluster is kept by a stable rule (a question kept by
an earlier run first, then the earliest generation round, then the smallest question id), so adding questions
later never replaces one that downstream assets already used. Every removed question keeps a pointer to the kept
question of its cluster, the pair that matched it, its kind and its similarity, so a person can audit
what was dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from research_tuner.lib.generation.questions import RAW_QUESTIONS
from research_tuner.lib.shared.schema import RowSchema
from research_tuner.lib.shared.similarity.pairs import KINDS, DuplicatePairs, clusters_of, duplicate_pairs

if TYPE_CHECKING:
    from research_tuner.settings import DedupSettings

#: The `question_clusters` table: every raw question with its cluster and, when removed, the pair that matched it.
QUESTION_CLUSTERS = RAW_QUESTIONS.extend("question_clusters", {
    "cluster": "object", "keep": "bool", "duplicate_of": "object", "matched_question_id": "object",
    "kind": "object", "similarity": "float64",
})
#: A removed question beside the kept question it duplicates (metadata previews).
REMOVED_PAIRS = RowSchema("removed_pairs", {
    "field": "object", "question": "object", "kind": "object", "similarity": "float64",
    "duplicate_of_field": "object", "duplicate_of_question": "object",
})
#: The `deduped_questions` table: the kept questions of one field.
DEDUPED_QUESTIONS = RAW_QUESTIONS.extend("deduped_questions", {})


def restore_rounds(questions: pd.DataFrame, earlier_clusters: pd.DataFrame | None,
                   lost: set[tuple[str, int]]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """`questions` plus, for each (field, round) of `lost` (whose raw questions could not be read), its rows from
    the last clusters table: (questions, rounds restored, rounds that table does not hold either), each named
    "field round N"."""
    held = set()
    if earlier_clusters is not None and len(earlier_clusters):
        held = set(zip(earlier_clusters["field"], earlier_clusters["generation_round"].astype(int)))
    restored, unrecoverable = sorted(lost & held), sorted(lost - held)
    names = [f"{field} round {round_}" for field, round_ in restored]
    missing = [f"{field} round {round_}" for field, round_ in unrecoverable]
    if not restored:
        return questions, names, missing
    keys = pd.Series(list(zip(earlier_clusters["field"], earlier_clusters["generation_round"].astype(int))),
                     index=earlier_clusters.index)
    rows = earlier_clusters.loc[keys.isin(restored), RAW_QUESTIONS.columns]
    return pd.concat([questions, rows], ignore_index=True), names, missing


def kept_before(earlier_clusters: pd.DataFrame | None, questions: pd.DataFrame) -> frozenset[str]:
    """The questions the last clusters table kept from rounds older than the newest one in `questions`: they stay
    kept (with their approach and split side) whatever a later round brings. The newest round's own choices are
    left to the rule (earliest round, then smallest id), so fields of one round clustered in any order, or in
    parallel runs, end with the same table as one run over all of them."""
    if earlier_clusters is None or not len(earlier_clusters) or not len(questions):
        return frozenset()
    newest = int(questions["generation_round"].max())
    older = earlier_clusters["keep"] & (earlier_clusters["generation_round"].astype(int) < newest)
    return frozenset(earlier_clusters.loc[older, "question_id"])


def cluster_questions(
    questions: pd.DataFrame, cfg: DedupSettings, previously_kept: set[str] | frozenset[str] = frozenset(),
    pairs: DuplicatePairs | None = None,
) -> tuple[pd.DataFrame, DuplicatePairs]:
    """`questions` plus the audit columns of `QUESTION_CLUSTERS`, and the pairs found.

    `keep` is True for exactly one question per cluster; `cluster` is the kept question's id, so it stays
    the same when more questions join the cluster later. For a removed question, `duplicate_of` is that
    kept question, and (`matched_question_id`, `kind`, `similarity`) describe the pair that put it in the
    cluster: its pair with the kept question when there is one, else its closest pair. `pairs`, when given, are
    the duplicate pairs among `questions` (row positions) found beforehand.
    """
    frame = questions.reset_index(drop=True).copy()
    n = len(frame)
    pairs = duplicate_pairs(frame["question"], cfg) if pairs is None else pairs
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


def _duplicates(audit: pd.DataFrame) -> pd.DataFrame:
    """The rows removed as a duplicate of a kept question (not those a content gate rejected: curate.py)."""
    return audit[~audit["keep"] & audit["duplicate_of"].notna()]


def dedup_summary(audit: pd.DataFrame) -> dict[str, int]:
    """Counts in and out and removed as duplicates, by kind."""
    removed = _duplicates(audit)
    return {"questions_in": len(audit), "questions_kept": int(audit["keep"].sum()), "removed": len(removed),
            **{f"removed_{kind}": int((removed["kind"] == kind).sum()) for kind in KINDS}}


def removed_pairs(audit: pd.DataFrame) -> pd.DataFrame:
    """Removed questions side by side with the question that matched them, most similar first (`REMOVED_PAIRS`)."""
    removed = _duplicates(audit)
    by_id = audit.drop_duplicates("question_id").set_index("question_id")
    matched = by_id.reindex(removed["matched_question_id"])
    return pd.DataFrame({
        "field": removed["field"].to_numpy(), "question": removed["question"].to_numpy(),
        "kind": removed["kind"].to_numpy(), "similarity": removed["similarity"].round(3).to_numpy(),
        "duplicate_of_field": matched["field"].to_numpy(), "duplicate_of_question": matched["question"].to_numpy(),
    }, columns=REMOVED_PAIRS.columns).sort_values("similarity", ascending=False, kind="stable")


def kept_questions(audit: pd.DataFrame, field: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the field's kept questions as `DEDUPED_QUESTIONS`, all its rows in the audit)."""
    mine = audit[audit["field"] == field]
    kept = mine[mine["keep"]]
    return kept[[c for c in DEDUPED_QUESTIONS.columns if c in kept.columns]].reset_index(drop=True), mine
