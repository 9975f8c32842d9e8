"""The evaluation sample: a seeded, fixed number of validation questions per subdomain; train rows are never drawn."""

from __future__ import annotations

import pandas as pd

from research_tuner.lib.shared.ids import rank_key


def evaluation_sample(rows: pd.DataFrame, per_subdomain: int, seed: int) -> pd.DataFrame:
    """Up to `per_subdomain` validation rows per subdomain; train rows can never be drawn."""
    validation = rows[rows["split"] == "validation"].reset_index(drop=True)
    picked = []
    for _, group in validation.groupby("subdomain", sort=True):
        ranked = sorted(group.index, key=lambda i: rank_key(seed, "eval", group.at[i, "question_id"]))
        picked.extend(ranked[:per_subdomain])
    return validation.loc[picked].reset_index(drop=True)
