"""The seeded, stratified split (the stable split and leakage tests are in test_dedup.py beside the
near-duplicate passes they rely on)."""

import pandas as pd

from research_tuner.lib.curation.split import split_by_subdomain
from research_tuner.lib.shared.ids import question_id


def frame(questions, subdomain="logic"):
    return pd.DataFrame([
        {"question_id": question_id("formal_sciences", subdomain, q), "field": "formal_sciences",
         "subdomain": subdomain, "question": q} for q in questions
    ])


def test_split_is_stratified_deterministic_and_order_free():
    rows = pd.concat([frame([f"Question {i} about topic {s}?" for i in range(12)], s) for s in ("a", "b", "c")])
    first = split_by_subdomain(rows, 0.25, seed=7)
    shuffled = split_by_subdomain(rows.sample(frac=1, random_state=1), 0.25, seed=7)
    assert first.set_index("question_id")["split"].equals(shuffled.set_index("question_id")["split"].loc[first["question_id"]])
    assert (first.groupby("subdomain")["split"].apply(lambda s: (s == "validation").sum()) == 3).all()
    assert not split_by_subdomain(rows, 0.25, seed=8)["split"].equals(first["split"])
