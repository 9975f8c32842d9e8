"""Pairwise judges whose behaviour is known, for the loopback OpenAI-compatible server (openai_server.py): each
reads the two answers out of a pairwise prompt and answers with a verdict by a fixed rule."""

from __future__ import annotations

import json

from research_tuner.lib.evaluation.judge.pairwise_prompts import FIRST_CLOSE, FIRST_OPEN, SECOND_CLOSE, SECOND_OPEN
from research_tuner.lib.shared.sections import present_sections

#: Within this many words, the 'longer' judge calls two answers a tie.
LENGTH_TIE_WORDS = 15


def is_pairwise_request(messages: list[dict]) -> bool:
    return FIRST_OPEN in messages[-1]["content"] and SECOND_OPEN in messages[-1]["content"]


def _between(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start) : text.index(end)].strip()


def _by_count(first: int, second: int, margin: int = 0) -> str:
    if abs(first - second) <= margin:
        return "tie"
    return "first" if first > second else "second"


def _rule(behaviour: str, first: str, second: str) -> tuple[str, str]:
    """(verdict, reason) of each known judge."""
    if behaviour == "first":  # position bias at its purest: always the answer shown first
        return "first", "The first approach is better."
    if behaviour == "sections":  # the answer with more of the 7 sections; equal counts tie
        a, b = len(present_sections(first)), len(present_sections(second))
        return _by_count(a, b), f"{a} against {b} of the 7 sections."
    if behaviour == "longer":  # the answer with more words, a tie within LENGTH_TIE_WORDS
        a, b = len(first.split()), len(second.split())
        return _by_count(a, b, LENGTH_TIE_WORDS), f"{a} against {b} words."
    raise ValueError(f"unknown fake judge behaviour {behaviour!r}")


def pairwise_answer(messages: list[dict], behaviour: str, wants_json: bool) -> str:
    """The judge's answer text; 'malformed' gives prose with no verdict in it (never readable)."""
    if behaviour == "malformed":
        return "Both approaches have merits; it is hard to choose, and each would need more work."
    user = messages[-1]["content"]
    verdict, reason = _rule(behaviour, _between(user, FIRST_OPEN, FIRST_CLOSE), _between(user, SECOND_OPEN,
                                                                                         SECOND_CLOSE))
    if wants_json:
        return json.dumps({"reason": reason, "verdict": verdict})
    return f"{reason}\n\n**Verdict:** {verdict}"  # a server that ignores response_format
