"""The train/validation split, deterministic given a seed, stable across rounds, and its checks.

Within each subdomain, questions (or whole groups of near-duplicates) are ranked by a seeded hash of
their id and go to validation until the subdomain has round(n x fraction) validation rows: the split is
stratified by subdomain, independent of row order, and the same on every machine. Rows an earlier run
already placed keep their side, so a later generation round only adds rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from research_tuner.lib.generation.approaches import APPROACHES
from research_tuner.lib.shared.ids import rank_key
from research_tuner.lib.shared.similarity.pairs import DuplicatePairs

#: The `dataset_split` table: the question/approach pairs with their side and the rule that placed them.
DATASET_SPLIT = APPROACHES.without("pairs", {"teacher_model"}).extend("dataset_split", {
    "split": "object", "split_seed": "int64", "validation_fraction": "float64",
})
SPLIT_SIDES = ("train", "validation")
#: How far a subdomain's validation share may stray from the target. Small subdomains may instead be off
#: by one question from the target count (rounding, and near-duplicate groups are placed whole).
SPLIT_TOLERANCE = 0.15


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
        ranked = sorted(candidates, key=lambda m: rank_key(seed, "split", min(ids.loc[m])))
        for members in ranked:
            if abs(have + len(members) - target) < abs(have - target):
                out.loc[members, "split"] = "validation"
                have += len(members)
    return out


def split_deviation(frame: pd.DataFrame, validation_fraction: float) -> pd.DataFrame:
    """Per subdomain: train, validation, target validation count, share, and whether it is within tolerance."""
    table = frame.groupby("subdomain")["split"].value_counts().unstack(fill_value=0)
    for col in SPLIT_SIDES:
        if col not in table:
            table[col] = 0
    table = table[list(SPLIT_SIDES)].copy()
    size = table.sum(axis=1)
    table["target"] = [validation_target(int(s), validation_fraction) for s in size]
    table["validation_share"] = (table["validation"] / size).round(3)
    table["within_tolerance"] = ((table["validation_share"] - validation_fraction).abs() <= SPLIT_TOLERANCE) | (
        (table["validation"] - table["target"]).abs() <= 1)
    return table


def leaking_pairs(frame: pd.DataFrame, pairs: DuplicatePairs) -> pd.DataFrame:
    """The near-duplicate `pairs` (row positions of `frame`) with one side in train and one in validation."""
    edges = pairs.frame()
    split = frame["split"].to_numpy()
    crossing = edges[split[edges["a"].to_numpy()] != split[edges["b"].to_numpy()]]
    questions = frame["question"].to_numpy()
    return pd.DataFrame({"question_a": questions[crossing["a"].to_numpy()],
                         "question_b": questions[crossing["b"].to_numpy()],
                         "kind": crossing["kind"].to_numpy(), "similarity": crossing["similarity"].to_numpy()})
