"""Ways of asking the teacher for an approach, looked up by `teacher.approach_strategy`.

- `whole` (capable teachers): one Markdown answer with the 7 headings, checked: every section present and not
  empty, not refused, not cut off at the token limit;
- `by_section` (small teachers): one completion per section under a fixed heading, so the structure never
  depends on the model; the 7 bodies are assembled into the same Markdown.

A strategy names the parts it asks for, builds the request for one part of one question, accepts or rejects
one response (with the reason), and assembles the accepted parts into the approach. Adding a way of asking is a
class here and a line in registry.py's `APPROACH_STRATEGIES`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from research_tuner.lib.generation import approach_prompts as prompts
from research_tuner.lib.generation.registry import APPROACH_STRATEGIES, load
from research_tuner.lib.shared.ids import stable_seed
from research_tuner.lib.shared.sections import SECTIONS, assemble_markdown, missing_sections, split_sections
from research_tuner.lib.teacher.base import OVERSIZE, TeacherFailure, TeacherRequest, TeacherResponse

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

#: The part of an approach one request asks for: a section name, or None for the whole approach.
Part = str | None


class ApproachStrategy(Protocol):
    parts: tuple[Part, ...]

    def request(self, question: Mapping, part: Part, cfg: TeacherSettings, attempt: int) -> TeacherRequest: ...

    def accept(self, part: Part, response: TeacherResponse | TeacherFailure) -> tuple[str | None, str | None]:
        """(the part's text, None) when usable, else (None, why not)."""
        ...

    def assemble(self, texts: Mapping[Part, str]) -> tuple[str | None, str | None]:
        """(the approach, None) from every part's accepted text, else (None, why not)."""
        ...


def _messages(system: str, user: str) -> tuple[dict[str, str], ...]:
    return ({"role": "system", "content": system}, {"role": "user", "content": user})


def validate_whole(response: TeacherResponse | TeacherFailure) -> str | None:
    """Why a whole-approach response is unusable, or None when it is a valid approach."""
    if isinstance(response, TeacherFailure):
        return f"transport: {response.reason}"
    if response.finish_reason == "refusal":
        return "refused"
    if response.finish_reason == "length":
        return "truncated at the token limit"
    if response.finish_reason == OVERSIZE:
        return f"{OVERSIZE}: longer than max_tokens allows ({response.completion_tokens} tokens reported)"
    if not response.text.strip():
        return "empty"
    missing = missing_sections(response.text)
    if missing:
        return "missing sections: " + ", ".join(missing)
    return None


def clean_section_body(text: str, max_sentences: int = 4) -> str:
    """A section body from a small model: no stray headings, whole sentences only."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    body = " ".join(ln.strip() for ln in lines)
    body = re.sub(r"^\W*[A-Z][A-Za-z ]{2,40}:\s+", "", body)  # "Key steps: 1. ..." -> "1. ..."
    sentences = re.findall(r"[^.!?]+[.!?]", body)
    return " ".join(s.strip() for s in sentences[:max_sentences])


def normalise_headings(text: str) -> str:
    """The same '## Heading' form whatever the teacher used, so students learn one format."""
    bodies = split_sections(text)
    return assemble_markdown(bodies) if all(bodies.get(s) for s in SECTIONS) else text


def _round(question: Mapping) -> int:
    """The round that wrote the question: its approach's seeds stay the same in every later round, so an
    approach already paid for is the response cache's answer, never a new request."""
    return int(question.get("generation_round", 0) or 0)


class WholeApproach:
    parts: tuple[Part, ...] = (None,)

    def request(self, question: Mapping, part: Part, cfg: TeacherSettings, attempt: int) -> TeacherRequest:
        user = prompts.APPROACH_USER.format(field=question["field"], subdomain=question["subdomain"],
                                            question=question["question"])
        seed = stable_seed(question["question_id"], "approach", _round(question), attempt)
        return TeacherRequest(_messages(prompts.APPROACH_SYSTEM, user), cfg.max_tokens_approach, cfg.temperature,
                              cfg.top_p, seed)

    def accept(self, part: Part, response: TeacherResponse | TeacherFailure) -> tuple[str | None, str | None]:
        problem = validate_whole(response)
        return (None, problem) if problem else (response.text.strip(), None)

    def assemble(self, texts: Mapping[Part, str]) -> tuple[str | None, str | None]:
        return normalise_headings(texts[None]), None


class ApproachBySection:
    parts: tuple[Part, ...] = SECTIONS

    def request(self, question: Mapping, part: Part, cfg: TeacherSettings, attempt: int) -> TeacherRequest:
        user = prompts.SECTION_USER.format(question=question["question"], instruction=prompts.SECTION_INSTRUCTIONS[part])
        seed = stable_seed(question["question_id"], part, _round(question), attempt)
        # A little lower temperature than for questions: sections should be on topic, not inventive.
        return TeacherRequest(_messages(prompts.SECTION_SYSTEM, user), cfg.max_tokens_approach,
                              min(cfg.temperature, 0.7), cfg.top_p, seed)

    def accept(self, part: Part, response: TeacherResponse | TeacherFailure) -> tuple[str | None, str | None]:
        if isinstance(response, TeacherFailure):
            return None, f"transport: {response.reason}"
        if response.finish_reason == OVERSIZE:
            return None, f"{OVERSIZE}: {part} longer than max_tokens allows"
        body = clean_section_body(response.text)
        return (body, None) if body else (None, f"empty {part}")

    def assemble(self, texts: Mapping[Part, str]) -> tuple[str | None, str | None]:
        text = assemble_markdown(dict(texts))
        if missing_sections(text):  # a body that reads as a heading
            return None, "assembled approach does not parse into 7 sections"
        return normalise_headings(text), None


def approach_strategy(name: str) -> ApproachStrategy:
    """The way of asking for approaches that `teacher.approach_strategy` names."""
    return load(APPROACH_STRATEGIES, name)
