"""Duplicate removal: questions that are the same after normalising text.

Every removed question keeps a pointer to the kept question it duplicates and how similar they were,
so a person can audit what was dropped.
"""

from __future__ import annotations

import pandas as pd

from research_tuner.lib.questions import normalize_question

REMOVED_COLUMNS = ["question_id", "field", "subdomain", "question", "duplicate_of", "similarity", "kind"]


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
