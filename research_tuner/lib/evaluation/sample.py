"""The evaluation sample: a seeded, fixed number of validation questions per subdomain; train rows are never drawn.

Once drawn, a sample stays: as later generation rounds add validation rows, the questions an earlier sample drew
(and that are still validation rows) are drawn again first, so successive adapters are scored on the same
questions. A new seed (`evaluation.seed`) asks for a new sample.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

import pandas as pd

from research_tuner.lib.shared.ids import rank_key


def evaluation_sample(rows: pd.DataFrame, per_subdomain: int, seed: int, drawn: Collection[str] = ()) -> pd.DataFrame:
    """Up to `per_subdomain` validation rows per subdomain; train rows can never be drawn. Questions in `drawn`
    (an earlier sample's ids) come before any other, so a subdomain only gets a new one where it has too few."""
    drawn = set(drawn)
    validation = rows[rows["split"] == "validation"].reset_index(drop=True)
    picked = []
    for _, group in validation.groupby("subdomain", sort=True):
        ranked = sorted(group.index, key=lambda i: (group.at[i, "question_id"] not in drawn,
                                                    rank_key(seed, "eval", group.at[i, "question_id"])))
        picked.extend(ranked[:per_subdomain])
    return validation.loc[picked].reset_index(drop=True)


def sample_id(question_ids: Collection[str]) -> str:
    """A short name for a sample (the same questions: the same name), for metadata and reports."""
    return hashlib.sha256("\n".join(sorted(set(question_ids))).encode()).hexdigest()[:12]
