"""What the metric modules share: the text-pair features and the MetricInfo of a metric scoring each answer
against its reference (evaluate copies each module on its own, so this is imported by absolute name)."""

from __future__ import annotations

import datasets
import evaluate

FEATURES = datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")})

INPUTS = """
Args:
    predictions: the answers, one string each.
    references: the reference approaches, one per answer.
Returns:
    scores: one float per answer, in order (no aggregate: the pipeline pairs answers per question).
"""


def info(description: str, citation: str = "") -> evaluate.MetricInfo:
    return evaluate.MetricInfo(description=description, citation=citation, inputs_description=INPUTS,
                               features=FEATURES)
