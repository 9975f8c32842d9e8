"""Content gates on questions: is each one a research question of its subdomain at all?

Form-only checks let a weak or drifting teacher's text into the training set ("How can I help you?", "How does this
question sound?", "How does the current open problem in law compare to the current open problem in law?"). The
gates here are cheap and offline, and each returns the reason it rejects:

- `boilerplate`: refusals, assistant chatter, instruction injection, chat template tokens (lib/shared/boilerplate.py),
  and talk to or about the reader or the model itself ("you", "I can", "my");
- `self_reference`: the question talks about itself or the prompt ("this question", "a research question");
- `repetition`: a word twice in a row, a content word `repeat_word` times, a phrase of `repeat_ngram` words that
  occurs twice, or repeated pairs of content words that make up `repeat_share` of the question;
- `not_a_question`: no final "?", more than one "?", no question word or leading auxiliary, or markup
  (URLs, code, braces);
- `length`: fewer than `min_words` or more than `max_words` words, or more than `max_chars` characters;
- `off_topic`: cosine (the dedup embedding model) between the question and "A research question in <subdomain>"
  below `on_topic_threshold`.

The first four need only the text (`text_gate`); `off_topic` embeds (`off_topic_scores`).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from research_tuner.lib.shared.boilerplate import boilerplate_match
from research_tuner.lib.shared.similarity.semantic import STOPWORDS

if TYPE_CHECKING:
    from research_tuner.settings.gates import QuestionGateSettings

#: The gates, in the order they are tried; a question is rejected by the first that fails.
QUESTION_GATES = ("boilerplate", "self_reference", "repetition", "not_a_question", "length", "off_topic")

_WH = re.compile(r"\b(?:how|what|which|why|when|where|who|whom|whose|whether)\b", re.IGNORECASE)
_AUXILIARY = re.compile(
    r"^\s*(?:is|are|was|were|do|does|did|can|could|should|would|will|has|have|had|may|might|must|shall)\b",
    re.IGNORECASE)
_MARKUP = re.compile(r"https?://|www\.|```|[{}<>\[\]|\\]|\b(?:def|import|return)\s")
#: Talk to or about the reader or the model: no research question needs it.
_PERSONAL = (
    re.compile(r"\b(?:you|your|yours|yourself)\b", re.IGNORECASE),
    re.compile(r"\bI(?:'m|'d|'ll|'ve)?\s+(?:am|can|could|would|will|have|need|want|think|help|wonder|should|do)\b"),
    re.compile(r"\b(?:can|could|should|may|shall|do|would|will|am)\s+I\b"),
    re.compile(r"\b(?:me|my|mine|myself)\b"),
)
_SELF = re.compile(
    r"\b(?:this|the following|the above|the previous|my|your|that)\s+(?:research\s+)?"
    r"(?:question|prompt|request|task)s?\b"
    r"|\bresearch\s+questions?\b|\bquestion\s+(?:above|below)\b|\bwrite\s+(?:one|a)\b"
    r"|\bthis\s+(?:sentence|story|text|passage|paragraph|answer|response|discussion|conversation|one)\b"
    r"|\bour\s+(?:discussion|conversation|chat)\b|^\s*how\s+does\s+(?:this|that|it)\s+(?:relate|sound|look)\b",
    re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def repeated_phrase(text: str, n: int, share: float, word_times: int = 3) -> str | None:
    """A degenerate repetition in `text`, or None: a word doubled ("the the"), a content word `word_times` times
    ("music ... music ... music"), a phrase of `n` words with a content word that occurs twice ("the current open
    problem ... the current open problem"), or pairs of content words that recur until their repeats make up
    `share` of the words ("economic growth and economic growth rates")."""
    words = _words(text)
    for a, b in zip(words, words[1:]):
        if a == b and not a.isdigit():
            return f"{a} {b}"
    counts = Counter(w for w in words if w not in STOPWORDS and len(w) > 3)
    often = [w for w, c in counts.items() if c >= word_times]
    if often:
        return f"{often[0]} x{counts[often[0]]}"
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - n + 1):
        gram = tuple(words[i:i + n])
        if gram in seen and any(w not in STOPWORDS for w in gram):
            return " ".join(gram)
        seen.add(gram)
    first: dict[tuple[str, str], int] = {}
    covered: set[int] = set()
    for i, pair in enumerate(zip(words, words[1:])):
        if any(w in STOPWORDS for w in pair):
            continue
        if pair in first:
            covered.update((first[pair], first[pair] + 1, i, i + 1))
        else:
            first.setdefault(pair, i)
    if words and len(covered) / len(words) >= share:
        return ", ".join(" ".join(p) for p, i in first.items() if i in covered)
    return None


def _is_question_form(text: str) -> bool:
    if _WH.search(text):
        return True
    return any(_AUXILIARY.match(clause) for clause in re.split(r"[,;:]", text))


def text_gate(question: str, cfg: QuestionGateSettings) -> tuple[str, str] | None:
    """(gate, reason) of the first text-only gate `question` fails, or None when it passes them all."""
    text = question.strip()
    found = boilerplate_match(text)
    if found:
        return "boilerplate", f"{found[0]}: '{found[1]}'"
    for pattern in _PERSONAL:
        m = pattern.search(text)
        if m:
            return "boilerplate", f"talks to or as the assistant: '{m.group(0)}'"
    m = _SELF.search(text)
    if m:
        return "self_reference", f"refers to a question or prompt: '{m.group(0)}'"
    phrase = repeated_phrase(text, cfg.repeat_ngram, cfg.repeat_share, cfg.repeat_word)
    if phrase:
        return "repetition", f"repeats '{phrase}'"
    if not text.endswith("?"):
        return "not_a_question", "does not end with '?'"
    if text.count("?") > 1:
        return "not_a_question", "more than one question mark"
    if _MARKUP.search(text):
        return "not_a_question", "holds markup, code or a URL"
    if not _is_question_form(text):
        return "not_a_question", "no question word and no leading auxiliary verb"
    n_words = len(text.split())
    if n_words < cfg.min_words or n_words > cfg.max_words or len(text) > cfg.max_chars:
        return "length", (f"{n_words} words, {len(text)} characters (bounds {cfg.min_words}-{cfg.max_words} words, "
                          f"{cfg.max_chars} characters)")
    return None


#: What a question of a subdomain is compared with. Of the anchors tried on the labelled set (the subdomain's name,
#: "<subdomain> (<field>)", "a scientific study in <subdomain>, a subfield of <field>"), only this one separated
#: the off-topic questions from the good ones by MiniLM cosine (docs/gates.md).
TOPIC_ANCHOR = "A research question in {subdomain}"


def off_topic_scores(questions: list[str], subdomains: list[str], embedding_model: str,
                     batch_size: int = 128, precision: str = "bf16") -> np.ndarray:
    """Per question, the cosine to its subdomain's `TOPIC_ANCHOR`, embedded with the dedup model."""
    from research_tuner.lib.shared.similarity.embeddings import embed

    if not questions:
        return np.empty(0, np.float32)
    q = embed(questions, embedding_model, batch_size, precision)
    a = embed([TOPIC_ANCHOR.format(subdomain=s) for s in subdomains], embedding_model, batch_size, precision)
    return np.einsum("nd,nd->n", q, a)
