"""The share of the 7 research-approach sections an answer has, with content (the reference is not read): an
evaluate module around research_tuner.lib.shared.sections.section_coverage."""

import evaluate

from research_tuner.lib.evaluation.metric_modules._base import info
from research_tuner.lib.shared.sections import section_coverage


class SectionCoverage(evaluate.Metric):
    def _info(self):
        return info("Share of the 7 sections (hypothesis ... ethical considerations) present with content.")

    def _compute(self, predictions, references):
        return {"scores": [section_coverage(p) for p in predictions]}
