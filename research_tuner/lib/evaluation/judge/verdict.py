"""The pairwise judge's answer: a pydantic model (a one-sentence reason, then first / second / tie) used as the
structured-output schema, and the parser that reads it, or a server's prose when it ignores the schema."""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from research_tuner.lib.evaluation.judge.pairwise_prompts import VERDICTS
from research_tuner.lib.teacher.structured import response_schema


class Verdict(BaseModel):
    """Reason first, so that the verdict follows from the reason and not the reverse."""

    model_config = ConfigDict(extra="forbid")
    reason: str
    verdict: Literal["first", "second", "tie"]


VERDICT_SCHEMA = response_schema(Verdict)


class UnreadableVerdict(ValueError):
    """The judge's answer names no verdict (or several); the message says what is wrong."""


_SPELLINGS = {"first": "first", "1": "first", "a": "first", "second": "second", "2": "second", "b": "second",
              "tie": "tie", "draw": "tie", "equal": "tie", "neither": "tie"}
# "Verdict: first", "**Verdict** - the second", "verdict = tie", "[[first]]"
_VERDICT_LINE = re.compile(r"verdict\W{0,6}(?:the\s+)?(first|second|tie|1|2)\b|\[\[(first|second|tie)\]\]", re.I)


def _spelled(value: object) -> str:
    word = re.sub(r"^(the\s+)|(\s+(one|approach|answer))$", "", str(value).strip().lower())
    if word not in _SPELLINGS:
        raise UnreadableVerdict(f"verdict {value!r} is none of {', '.join(VERDICTS)}")
    return _SPELLINGS[word]


def parse_verdict(text: str) -> tuple[str, str]:
    """(verdict, reason) from a judge's answer: a JSON object anywhere in the text first (code fences and a
    preamble are fine), then 'Verdict: first'-style lines, which must all agree. Never a guess: an answer
    without exactly one verdict is UnreadableVerdict, never a tie."""
    text = text or ""
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start : end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict) and "verdict" in data:
            return _spelled(data["verdict"]), str(data.get("reason", "") or "").strip()
    found = {_spelled(a or b) for a, b in _VERDICT_LINE.findall(text)}
    if len(found) == 1:
        return found.pop(), ""
    if found:
        raise UnreadableVerdict(f"the answer names several verdicts ({', '.join(sorted(found))})")
    raise UnreadableVerdict("no verdict in the answer")
