"""ROUGE-L F-measure of each answer against its reference, as evaluate's `rouge` computes it (rouge-score, no
stemming): an evaluate module around research_tuner.lib.evaluation.text_overlap.rouge_l."""

import evaluate

from research_tuner.lib.evaluation import text_overlap
from research_tuner.lib.evaluation.metric_modules._base import info


class RougeL(evaluate.Metric):
    def _info(self):
        return info("F-measure of the longest common subsequence with the reference (rouge-score, use_stemmer="
                    "False, as evaluate's rouge with use_aggregator=False gives for rougeL).")

    def _compute(self, predictions, references):
        return {"scores": [text_overlap.rouge_l(p, r) for p, r in zip(predictions, references, strict=True)]}
