"""Ways of asking the teacher for questions, each a plan()/parse() pair, looked up by `teacher.question_strategy`.

- `list` (capable teachers): one request per `questions_per_request` questions of a subdomain, each with another
  focus (an angle), answered as a JSON list (structured output, with a line-by-line fallback parser);
- `one_by_one` (small teachers): one short completion per question, forced to start with a fixed opening, so
  that the answer is a question whatever the model does.

A strategy turns (field, subdomain, count) into requests, and one response into zero or more cleaned questions.
Adding a way of asking is a class here and a line in registry.py's `QUESTION_STRATEGIES`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from research_tuner.lib.generation import question_prompts as prompts
from research_tuner.lib.generation.question_schemas import QUESTIONS_SCHEMA
from research_tuner.lib.generation.registry import QUESTION_STRATEGIES, load
from research_tuner.lib.shared.ids import stable_seed
from research_tuner.lib.teacher.base import TeacherRequest

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

MIN_WORDS, MAX_WORDS = 5, 60


@dataclass(frozen=True)
class PlannedRequest:
    """One request for questions of one subdomain; `opening` is the forced start of a one-by-one answer, `count` the
    number of questions it asks for."""

    subdomain: str
    request: TeacherRequest
    opening: str = ""
    count: int = 1


class QuestionStrategy(Protocol):
    def plan(self, field: str, subdomain: str, n: int, cfg: TeacherSettings,
             generation_round: int = 0) -> list[PlannedRequest]:
        """The requests that ask for `n` questions of `subdomain`."""
        ...

    def parse(self, planned: PlannedRequest, text: str) -> list[str]:
        """The well-formed questions in one response (empty when there is none)."""
        ...


def clean_question(text: str) -> str | None:
    """One well-formed question, or None: first line, cut after its first '?', sane length."""
    text = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", text.strip().splitlines()[0] if text.strip() else "")
    text = text.strip().strip('"“”').strip()
    if "?" not in text:
        return None
    text = text[: text.index("?") + 1]
    text = re.sub(r"\s+", " ", text)
    n_words = len(text.split())
    if not (MIN_WORDS <= n_words <= MAX_WORDS):
        return None
    return text[0].upper() + text[1:]


def parse_question_list(text: str) -> list[str]:
    """Questions from a JSON answer; servers that ignore the schema get a line-by-line fallback."""
    items: list[str] = []
    try:
        start, end = text.index("{"), text.rindex("}") + 1
        data = json.loads(text[start:end])
        if isinstance(data, dict) and isinstance(data.get("questions"), list):
            items = [str(q) for q in data["questions"]]
    except ValueError:
        pass
    if not items:
        items = [line for line in text.splitlines() if "?" in line]
    return [q for q in (clean_question(item) for item in items) if q]


def _messages(system: str, user: str) -> tuple[dict[str, str], ...]:
    return ({"role": "system", "content": system}, {"role": "user", "content": user})


class ListOfQuestions:
    """A JSON list of up to `questions_per_request` questions per request, each request with another angle."""

    def plan(self, field: str, subdomain: str, n: int, cfg: TeacherSettings,
             generation_round: int = 0) -> list[PlannedRequest]:
        planned = []
        for k in range(math.ceil(n / cfg.questions_per_request)):
            count = min(cfg.questions_per_request, n - k * cfg.questions_per_request)
            angle = prompts.QUESTION_ANGLES[k % len(prompts.QUESTION_ANGLES)]
            user = prompts.QUESTION_LIST_USER.format(n=count, subdomain=subdomain, field=field, angle=angle)
            request = TeacherRequest(_messages(prompts.QUESTION_LIST_SYSTEM, user), cfg.max_tokens_question,
                                     cfg.temperature, cfg.top_p, stable_seed(field, subdomain, k, generation_round),
                                     json_schema=QUESTIONS_SCHEMA)
            planned.append(PlannedRequest(subdomain, request, count=count))
        return planned

    def parse(self, planned: PlannedRequest, text: str) -> list[str]:
        return parse_question_list(text)


class OneQuestionEach:
    """One completion per question, forced to start with an opening ("How does", ...) and steered to a topic."""

    def plan(self, field: str, subdomain: str, n: int, cfg: TeacherSettings,
             generation_round: int = 0) -> list[PlannedRequest]:
        planned = []
        for k in range(n):
            opening = prompts.QUESTION_OPENINGS[k % len(prompts.QUESTION_OPENINGS)]
            topic = prompts.QUESTION_TOPICS[(k // len(prompts.QUESTION_OPENINGS) + k) % len(prompts.QUESTION_TOPICS)]
            user = prompts.QUESTION_ONE_USER.format(topic=topic, subdomain=subdomain)
            # No trailing space after the opening: a prompt ending in a space token derails small models.
            request = TeacherRequest(_messages(prompts.QUESTION_ONE_SYSTEM, user), cfg.max_tokens_question,
                                     cfg.temperature, cfg.top_p, stable_seed(field, subdomain, k, generation_round),
                                     assistant_prefix=opening)
            planned.append(PlannedRequest(subdomain, request, opening))
        return planned

    def parse(self, planned: PlannedRequest, text: str) -> list[str]:
        one = clean_question(planned.opening + text)
        return [one] if one else []


def question_strategy(name: str) -> QuestionStrategy:
    """The way of asking for questions that `teacher.question_strategy` names."""
    return load(QUESTION_STRATEGIES, name)
