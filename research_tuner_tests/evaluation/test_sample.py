"""The evaluation sample: validation rows only, a fixed number per subdomain."""

import pandas as pd

from research_tuner.lib.curation.split import split_by_subdomain
from research_tuner.lib.evaluation.sample import evaluation_sample, sample_id
from research_tuner.lib.shared.ids import question_id


def frame(questions, subdomain="logic"):
    return pd.DataFrame([
        {"question_id": question_id("formal_sciences", subdomain, q), "field": "formal_sciences",
         "subdomain": subdomain, "question": q} for q in questions
    ])


def test_evaluation_sample_reads_only_validation_rows():
    rows = split_by_subdomain(frame([f"Question number {i} on logic?" for i in range(20)]), 0.25, seed=0)
    sample = evaluation_sample(rows, per_subdomain=2, seed=0)
    assert len(sample) == 2 and (sample["split"] == "validation").all()


def test_a_drawn_sample_stays_as_later_rounds_add_validation_rows():
    """Round 2 adds 80 questions to a subdomain of 20: without the earlier sample, the seeded ranking would draw
    new questions; with it, the same 2 questions are drawn, and a new seed draws a new sample."""
    first = split_by_subdomain(frame([f"Question number {i} on logic?" for i in range(20)]), 0.25, seed=0)
    drawn = evaluation_sample(first, per_subdomain=2, seed=0)
    previous = dict(zip(first["question_id"], first["split"]))
    grown = split_by_subdomain(frame([f"Question number {i} on logic?" for i in range(100)]), 0.25, seed=0,
                               previous=previous)
    assert len(grown) == 100 and (grown["split"] == "validation").sum() > 20
    fresh = evaluation_sample(grown, per_subdomain=2, seed=0)
    assert set(fresh["question_id"]) != set(drawn["question_id"])  # the growth would change an undrawn sample
    kept = evaluation_sample(grown, per_subdomain=2, seed=0, drawn=set(drawn["question_id"]))
    assert set(kept["question_id"]) == set(drawn["question_id"])
    assert sample_id(kept["question_id"]) == sample_id(drawn["question_id"]) != sample_id(fresh["question_id"])
    # a subdomain that now asks for more keeps the drawn ones and adds new ones
    more = evaluation_sample(grown, per_subdomain=4, seed=0, drawn=set(drawn["question_id"]))
    assert len(more) == 4 and set(drawn["question_id"]) < set(more["question_id"])
