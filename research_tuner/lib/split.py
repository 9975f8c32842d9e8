"""The train/validation split and the evaluation sample, deterministic given a seed.

Within each subdomain, questions (or whole groups of near-duplicates) are ranked by a seeded hash of
their id and go to validation until the subdomain has round(n x fraction) validation rows: the split is
stratified by subdomain, independent of row order, and the same on every machine. Rows an earlier run
already placed keep their side, so a later generation round only adds rows.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def _rank_key(seed: int, salt: str, question_id: str) -> str:
    return hashlib.sha256(f"{seed}|{salt}|{question_id}".encode()).hexdigest()


def validation_target(size: int, validation_fraction: float) -> int:
    """Validation rows a subdomain of `size` rows should have; one with 2+ rows gets at least one of each."""
    target = int(round(size * validation_fraction))
    return min(max(target, 1), size - 1) if size >= 2 else 0


def split_by_subdomain(
    rows: pd.DataFrame,
    validation_fraction: float,
    seed: int,
    groups: pd.Series | np.ndarray | None = None,
    previous: dict[str, str] | None = None,
) -> pd.DataFrame:
    """`rows` with a `split` column, 'train' or 'validation'.

    `groups` (one label per row, e.g. near-duplicate clusters) are assigned whole, so a group never
    straddles the split. `previous` maps question ids to the split an earlier run gave them: those rows
    keep it (a group with earlier members follows the side most of them were on, ties to train, so a
    later duplicate cannot leak), and only new groups are placed, in seeded-hash order, into validation
    while that brings the subdomain closer to its target count, else into train.
    """
    out = rows.reset_index(drop=True)  # positions below must be unique, whatever index came in
    previous = previous or {}
    labels = pd.Series(np.arange(len(out)) if groups is None else np.asarray(groups), index=out.index)
    out["split"] = "train"
    ids = out["question_id"].astype(str)
    earlier = ids.map(previous)
    new_groups = []
    for _, members in out.groupby(labels, sort=False).groups.items():
        before = earlier.loc[members].dropna()
        if len(before):
            side = "validation" if (before == "validation").sum() > (before == "train").sum() else "train"
            out.loc[members, "split"] = side
        else:
            new_groups.append(members)
    subdomain_of = {}
    for members in new_groups:
        subdomain_of.setdefault(out.at[members[0], "subdomain"], []).append(members)
    sizes = out.groupby("subdomain").size()
    assigned_validation = (out["split"] == "validation") & earlier.notna()
    for subdomain, candidates in subdomain_of.items():
        target = validation_target(int(sizes[subdomain]), validation_fraction)
        have = int(assigned_validation[out["subdomain"] == subdomain].sum())
        ranked = sorted(candidates, key=lambda m: _rank_key(seed, "split", min(ids.loc[m])))
        for members in ranked:
            if abs(have + len(members) - target) < abs(have - target):
                out.loc[members, "split"] = "validation"
                have += len(members)
    return out


def evaluation_sample(rows: pd.DataFrame, per_subdomain: int, seed: int) -> pd.DataFrame:
    """Up to `per_subdomain` validation rows per subdomain; train rows can never be drawn."""
    validation = rows[rows["split"] == "validation"].reset_index(drop=True)
    picked = []
    for _, group in validation.groupby("subdomain", sort=True):
        ranked = sorted(group.index, key=lambda i: _rank_key(seed, "eval", group.at[i, "question_id"]))
        picked.extend(ranked[:per_subdomain])
    return validation.loc[picked].reset_index(drop=True)
