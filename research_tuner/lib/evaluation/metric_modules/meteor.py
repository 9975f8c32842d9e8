"""METEOR of each answer against its reference, as evaluate's `meteor` computes it (NLTK, alpha 0.9, beta 3,
gamma 0.5, WordNet synonyms): an evaluate module around research_tuner.lib.evaluation.text_overlap.meteor."""

import evaluate

from research_tuner.lib.evaluation import text_overlap
from research_tuner.lib.evaluation.metric_modules._base import info


class Meteor(evaluate.Metric):
    def _info(self):
        return info("Unigram matches with the reference, with stems and WordNet synonyms (NLTK single_meteor_score, "
                    "alpha 0.9, beta 3, gamma 0.5: evaluate's meteor per answer, before its mean).")

    def _compute(self, predictions, references):
        if predictions:
            text_overlap.require_wordnet()  # one clear error before any answer is scored
        return {"scores": [text_overlap.meteor(p, r) for p, r in zip(predictions, references, strict=True)]}
