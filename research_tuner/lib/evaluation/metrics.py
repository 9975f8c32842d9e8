"""The metric registry: every score an evaluation answer gets, defined once, read by the scorer (scoring.py), the
summary and comparison tables, the figures, the `research-tuner table` command and the code versions.

A metric scores answers against the teacher's reference approach, a batch at a time. Adding one is an entry in
`METRICS` (its function may live in another module of this package): `eval_scores` then computes it, and only
`eval_scores` and what follows it turn stale; the answers in `eval_generations` are not generated again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from research_tuner.lib.evaluation import text_overlap
from research_tuner.lib.shared.sections import section_coverage

#: (answers, references) -> one score per answer.
Scorer = Callable[[Sequence[str], Sequence[str]], list[float]]


@dataclass(frozen=True)
class Metric:
    name: str  # its column in eval_scores and its row in the comparison table
    title: str  # how tables and figures label it
    description: str
    score: Scorer | None  # None: not computed from the texts (the judge's grade)
    figure: str | None = None  # eval_report's PNG of it, per field (the paper's Figures 1 and 2)
    version: int = 1  # bump when the computation changes what it gives: eval_scores turns stale

    def compute(self, answers: Sequence[str], references: Sequence[str]) -> list[float]:
        """One score per answer; a ValueError when the two lists differ in length or the metric is the judge's."""
        if self.score is None:
            raise ValueError(f"{self.name} is not computed from the texts")
        if len(answers) != len(references):
            raise ValueError(f"{self.name}: {len(answers)} answers but {len(references)} references")
        scores = self.score(answers, references)
        if len(scores) != len(answers):
            raise ValueError(f"{self.name} gave {len(scores)} scores for {len(answers)} answers")
        return scores


def _rouge_l(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    return [text_overlap.rouge_l(a, r) for a, r in zip(answers, references, strict=True)]


def _meteor(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    if answers:
        text_overlap.require_wordnet()  # one clear error before any answer is scored
    return [text_overlap.meteor(a, r) for a, r in zip(answers, references, strict=True)]


def _section_coverage(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    return [section_coverage(a) for a in answers]


ROUGE_L = Metric("rouge_l", "ROUGE-L", "F-measure of the longest common subsequence with the reference "
                 "(rouge-score, no stemming: evaluate's rouge)", _rouge_l, "figure1_rouge_l.png")
METEOR = Metric("meteor", "METEOR", "unigram matches with the reference, with stems and WordNet synonyms "
                "(NLTK, alpha 0.9, beta 3, gamma 0.5: evaluate's meteor)", _meteor, "figure2_meteor.png")
SECTION_COVERAGE = Metric("section_coverage", "Section coverage", "share of the 7 sections present with content",
                          _section_coverage)
#: The metrics eval_scores computes from the answers, in table order.
METRICS: tuple[Metric, ...] = (ROUGE_L, METEOR, SECTION_COVERAGE)
#: The optional LLM judge's mean grade of an answer (eval_judgements), beside the metrics when the judge ran.
JUDGE_SCORE = Metric("judge_score", "LLM-judge score (0-5)", "mean of the judge's 8 integer grades", None,
                     "figure3_judge_score.png")


def metric_names() -> list[str]:
    return [m.name for m in METRICS]


def metric(name: str) -> Metric:
    for m in (*METRICS, JUDGE_SCORE):
        if m.name == name:
            return m
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(m.name for m in (*METRICS, JUDGE_SCORE))}")


def version_inputs() -> list[dict]:
    """What of the registry shapes eval_scores (research_tuner/versions.py hashes it)."""
    return [{"name": m.name, "version": m.version} for m in METRICS]
