"""The train/validation split and the evaluation sample, deterministic given a seed.

Within each subdomain, questions are ranked by a seeded hash of their id and the first
round(n x fraction) go to validation: the split is stratified by subdomain, independent of row order,
and the same on every machine.
"""

from __future__ import annotations

import hashlib

import pandas as pd


def _rank_key(seed: int, salt: str, question_id: str) -> str:
    return hashlib.sha256(f"{seed}|{salt}|{question_id}".encode()).hexdigest()


def split_by_subdomain(rows: pd.DataFrame, validation_fraction: float, seed: int) -> pd.DataFrame:
    """`rows` with a `split` column, 'train' or 'validation'."""
    out = rows.reset_index(drop=True)  # positions below must be unique, whatever index came in
    out["split"] = "train"
    for _, group in out.groupby("subdomain", sort=False):
        n_validation = int(round(len(group) * validation_fraction))
        if len(group) >= 2:  # a subdomain with one question keeps it for training
            n_validation = min(max(n_validation, 1), len(group) - 1)
        ranked = sorted(group.index, key=lambda i: _rank_key(seed, "split", out.at[i, "question_id"]))
        out.loc[ranked[:n_validation], "split"] = "validation"
    return out


def evaluation_sample(rows: pd.DataFrame, per_subdomain: int, seed: int) -> pd.DataFrame:
    """Up to `per_subdomain` validation rows per subdomain; train rows can never be drawn."""
    validation = rows[rows["split"] == "validation"].reset_index(drop=True)
    picked = []
    for _, group in validation.groupby("subdomain", sort=True):
        ranked = sorted(group.index, key=lambda i: _rank_key(seed, "eval", group.at[i, "question_id"]))
        picked.extend(ranked[:per_subdomain])
    return validation.loc[picked].reset_index(drop=True)
