"""The evaluation sample: validation rows only, a fixed number per subdomain."""

import pandas as pd

from research_tuner.lib.curation.split import split_by_subdomain
from research_tuner.lib.evaluation.sample import evaluation_sample
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
