"""The `gates` section: content checks on what the teacher writes, with their thresholds (docs/gates.md).

`gates.questions` runs in curation (`question_clusters`), before the near-duplicate search; `gates.approaches` runs
on every approach before it is accepted, so a rejected one is asked again with a new seed like a malformed one.
The similarity thresholds are cosines of `dedup.embedding_model` (all-MiniLM-L6-v2 by default), fitted on the
labelled sets in research_tuner_tests/data/.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from research_tuner.settings.base import Strict


class QuestionGateSettings(Strict):
    """Is it a research question of its subdomain at all? A rejected question stays in the audit, with its reason."""

    enabled: bool = Field(default=True, description="False: every question goes straight to the duplicate search.")
    min_words: int = Field(default=6, ge=1, description="Fewer words than this: too short to design a study around.")
    max_words: int = Field(default=60, ge=2, description="More words than this: not one question.")
    max_chars: int = Field(default=400, ge=10, description="More characters than this: not one question.")
    repeat_ngram: int = Field(
        default=3, ge=2, le=6,
        description="A phrase of this many words (with a content word) that occurs twice is degenerate repetition "
        "('the current open problem in law ... the current open problem in law').",
    )
    repeat_word: int = Field(
        default=3, ge=2, description="A content word (over 3 letters, no stop word) this many times is degenerate "
        "('music history and music technology ... in music').")
    repeat_share: float = Field(
        default=0.3, gt=0.0, le=1.0,
        description="Pairs of content words that recur ('language change affect language change') are degenerate "
        "when their repeats make up this share of the question's words; a long question may name a pair twice.",
    )
    on_topic: bool = Field(default=True, description="Compare each question with its subdomain and field by cosine.")
    on_topic_threshold: float = Field(
        default=0.1, ge=-1.0, le=1.0,
        description="Cosine between the question and 'A research question in <subdomain>' below which the question "
        "is off its topic (fitted for all-MiniLM-L6-v2 on the labelled set: good questions >= 0.106, off-topic "
        "ones <= 0.114).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> QuestionGateSettings:
        if self.min_words > self.max_words:
            raise ValueError(f"gates.questions.min_words ({self.min_words}) is above max_words ({self.max_words})")
        return self


class ApproachGateSettings(Strict):
    """Does each section say something, once, and does the approach answer its question?"""

    enabled: bool = Field(default=True, description="False: only the 7 headings are checked.")
    min_section_words: int = Field(default=8, ge=1, description="A section body with fewer words has no substance.")
    copy_jaccard: float = Field(
        default=0.8, gt=0.0, le=1.0,
        description="Content-word Jaccard at or above which a section copies another section or the question.",
    )
    on_topic: bool = Field(default=True, description="Compare each approach with its question by cosine.")
    on_topic_threshold: float = Field(
        default=0.3, ge=-1.0, le=1.0,
        description="Cosine between the question and its approach below which the approach does not address it.",
    )
    grade: bool = Field(
        default=False, description="Ask the teacher to grade each approach that passed the other gates, 1-10 "
        "(one more request per approach, cached like every request).")
    grade_threshold: int = Field(default=6, ge=1, le=10, description="A grade below this rejects the approach.")
    grade_max_tokens: int = Field(default=20, ge=5, description="Tokens the teacher may use for a grade.")


class GateSettings(Strict):
    """Content checks on the teacher's questions and approaches (docs/gates.md)."""

    questions: QuestionGateSettings = QuestionGateSettings()
    approaches: ApproachGateSettings = ApproachGateSettings()
