"""Curation of all fields' questions: the content gates (gates.py) first, then near-duplicate clusters (dedup.py)
among the questions that pass (with, optionally, the teacher's verdict on borderline pairs: borderline.py).

A rejected question is never silently dropped: it stays in the `question_clusters` audit with `keep` False, the
gate that rejected it and the reason, and no cluster (it takes part in no duplicate search, so a degenerate question
can neither be kept for a cluster nor push a good duplicate out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from research_tuner.lib.curation.borderline import teacher_pairs
from research_tuner.lib.curation.dedup import QUESTION_CLUSTERS, cluster_questions
from research_tuner.lib.curation.question_gates import QUESTION_GATES, off_topic_scores, text_gate
from research_tuner.lib.shared.similarity.pairs import DuplicatePairs, duplicate_pairs
from research_tuner.lib.teacher.base import Teacher, Usage

if TYPE_CHECKING:
    from research_tuner.settings import DedupSettings
    from research_tuner.settings.gates import QuestionGateSettings

#: The audit with the gates' verdicts: `gate` (None when passed) and `gate_reason`; `topic_similarity` is the
#: off-topic gate's cosine (NaN when it did not run).
QUESTION_AUDIT = QUESTION_CLUSTERS.extend("question_clusters", {
    "gate": "object", "gate_reason": "object", "topic_similarity": "float64",
})


def gate_verdicts(questions: pd.DataFrame, gates: QuestionGateSettings, dedup: DedupSettings) -> pd.DataFrame:
    """`gate`, `gate_reason` and `topic_similarity` for every row of `questions` (same index)."""
    out = pd.DataFrame({"gate": pd.Series([None] * len(questions), dtype=object, index=questions.index),
                        "gate_reason": pd.Series([None] * len(questions), dtype=object, index=questions.index),
                        "topic_similarity": float("nan")}, index=questions.index)
    if not gates.enabled or questions.empty:
        return out
    verdicts = [text_gate(str(q), gates) for q in questions["question"]]
    out["gate"] = pd.Series([v[0] if v else None for v in verdicts], dtype=object, index=questions.index)
    out["gate_reason"] = pd.Series([v[1] if v else None for v in verdicts], dtype=object, index=questions.index)
    if gates.on_topic:
        todo = out.index[out["gate"].isna()]
        rows = questions.loc[todo]
        scores = off_topic_scores(rows["question"].astype(str).tolist(), rows["subdomain"].astype(str).tolist(),
                                  dedup.embedding_model, dedup.embedding_batch_size, dedup.embedding_precision)
        out.loc[todo, "topic_similarity"] = scores.astype(float)
        low = todo[scores < gates.on_topic_threshold]
        out.loc[low, "gate"] = "off_topic"
        out.loc[low, "gate_reason"] = [
            f"cosine {s:.2f} to its subdomain, below {gates.on_topic_threshold}"
            for s in out.loc[low, "topic_similarity"]]
    return out


def curate_questions(
    questions: pd.DataFrame, dedup: DedupSettings, gates: QuestionGateSettings,
    previously_kept: set[str] | frozenset[str] = frozenset(), teacher: Teacher | None = None,
    usage: Usage | None = None,
) -> tuple[pd.DataFrame, DuplicatePairs]:
    """The `QUESTION_AUDIT` table of every question, and the duplicate pairs among those that passed the gates
    (row positions into the passing questions, in their order in the audit). With `dedup.teacher_borderline`,
    `teacher` is asked about the borderline pairs (borderline.py), its usage counted in `usage`."""
    frame = questions.reset_index(drop=True)
    verdicts = gate_verdicts(frame, gates, dedup)
    passed = verdicts["gate"].isna().to_numpy()
    texts = frame.loc[passed, "question"].astype(str).tolist()
    pairs = duplicate_pairs(texts, dedup)
    if dedup.teacher_borderline and dedup.semantic and teacher is not None:
        pairs, _ = teacher_pairs(teacher, texts, dedup, pairs, usage if usage is not None else Usage())
    clustered, pairs = cluster_questions(frame[passed], dedup, previously_kept, pairs)
    rejected = frame[~passed].assign(cluster=None, keep=False, duplicate_of=None, matched_question_id=None,
                                     kind=None, similarity=float("nan"))
    audit = pd.concat([clustered.assign(**verdicts[passed].reset_index(drop=True)),
                       rejected.assign(**verdicts[~passed])], ignore_index=True)
    for col in ("cluster", "duplicate_of", "matched_question_id", "kind", "gate", "gate_reason"):
        audit[col] = audit[col].astype(object).where(audit[col].notna(), None)
    return audit[[c for c in QUESTION_AUDIT.columns if c in audit.columns]], pairs


def gate_summary(audit: pd.DataFrame) -> dict[str, int]:
    """Questions each gate removed (all fields)."""
    gate = audit["gate"] if "gate" in audit else pd.Series(dtype=object)
    counts = {f"rejected_{g}": int((gate == g).sum()) for g in QUESTION_GATES}
    return counts | {"rejected_by_gates": int(gate.notna().sum())}


def counts_per_field(audit: pd.DataFrame) -> pd.DataFrame:
    """Per field: questions in, kept, removed as duplicates, and rejected by each gate that rejected any."""
    gate = audit["gate"] if "gate" in audit else pd.Series([None] * len(audit), index=audit.index, dtype=object)
    table = pd.DataFrame({"questions_in": audit.groupby("field").size(),
                          "kept": audit.groupby("field")["keep"].sum(),
                          "removed_as_duplicates": audit[audit["duplicate_of"].notna() & ~audit["keep"]]
                          .groupby("field").size()}).fillna(0).astype(int)
    by_gate = pd.crosstab(audit["field"], gate).reindex(index=table.index, fill_value=0) if gate.notna().any() else None
    if by_gate is not None:
        table = table.join(by_gate.add_prefix("rejected_")[[f"rejected_{g}" for g in QUESTION_GATES
                                                            if g in by_gate.columns]])
    return table
