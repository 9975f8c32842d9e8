"""The metric registry: every score an evaluation answer gets, defined once, read by the scorer (scoring.py), the
summary and comparison tables, the figures, the `research-tuner table` command and the code versions.

A metric scores answers against the teacher's reference approach, a batch at a time, through a Hugging Face
`evaluate` module in metric_modules/ (`evaluate.load` of a local file works offline), so the same scores are
at hand from `evaluate` too: `evaluate.load(module_path("rouge_l")).compute(predictions=..., references=...)`.
Adding one is a module there (or a plain scoring function) and an entry in `METRICS`: `eval_scores` then
computes it, and only `eval_scores` and what follows it turn stale; the answers in `eval_generations` are not
generated again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from research_tuner.lib.evaluation.metric_modules import module_path


@cache
def load_module(name: str):
    """The evaluate module `name` of metric_modules/, loaded once per process, results kept in memory (no cache
    files, so parallel steps cannot collide)."""
    import evaluate

    return evaluate.load(module_path(name), keep_in_memory=True)


#: (answers, references) -> one score per answer: a metric that is a plain function rather than a module.
Scorer = Callable[..., list[float]]


@dataclass(frozen=True)
class Metric:
    name: str  # its column in eval_scores and its row in the comparison table
    title: str  # how tables and figures label it
    description: str
    # its evaluate module in metric_modules/ (the file's name), or a plain Scorer; None: not computed from the
    # texts (the judge's grade)
    score: str | Scorer | None
    figure: str | None = None  # eval_report's PNG of it, per field (the paper's Figures 1 and 2)
    version: int = 1  # bump when the computation changes what it gives: eval_scores turns stale
    options: tuple[str, ...] = ()  # settings compute() hands on as keywords (e.g. embedding_model)

    def compute(self, answers: Sequence[str], references: Sequence[str], **options: object) -> list[float]:
        """One score per answer; a ValueError when the two lists differ in length or the metric is the judge's.
        `options` may hold any setting; the metric takes those it names."""
        if self.score is None:
            raise ValueError(f"{self.name} is not computed from the texts")
        if len(answers) != len(references):
            raise ValueError(f"{self.name}: {len(answers)} answers but {len(references)} references")
        if not answers:
            return []
        chosen = {k: options[k] for k in self.options if k in options}
        if isinstance(self.score, str):
            result = load_module(self.score).compute(predictions=list(answers), references=list(references),
                                                     **chosen)["scores"]
        else:
            result = self.score(list(answers), list(references), **chosen)
        scores = [float(v) for v in result]
        if len(scores) != len(answers):
            raise ValueError(f"{self.name} gave {len(scores)} scores for {len(answers)} answers")
        return scores


ROUGE_L = Metric("rouge_l", "ROUGE-L", "F-measure of the longest common subsequence with the reference "
                 "(rouge-score, no stemming: evaluate's rouge)", "rouge_l", "figure1_rouge_l.png")
METEOR = Metric("meteor", "METEOR", "unigram matches with the reference, with stems and WordNet synonyms "
                "(NLTK, alpha 0.9, beta 3, gamma 0.5: evaluate's meteor)", "meteor", "figure2_meteor.png")
SECTION_COVERAGE = Metric("section_coverage", "Section coverage", "share of the 7 sections present with content",
                          "section_coverage")
EMBEDDING_SIMILARITY = Metric("embedding_similarity", "Embedding similarity", "cosine of the answer's and the "
                              "reference's sentence embeddings (dedup.embedding_model, MiniLM by default)",
                              "embedding_similarity", options=("embedding_model",))
#: The metrics eval_scores computes from the answers, in table order.
METRICS: tuple[Metric, ...] = (ROUGE_L, METEOR, SECTION_COVERAGE, EMBEDDING_SIMILARITY)
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
