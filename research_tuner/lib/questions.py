"""Research-question generation: requests per subdomain (prompt) and questions per response (parse)."""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass

import pandas as pd

from research_tuner.lib import prompts
from research_tuner.lib.teacher import Teacher, TeacherFailure, TeacherRequest, Usage
from research_tuner.settings import TeacherSettings

QUESTIONS_SCHEMA = {
    "type": "object",
    "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
    "required": ["questions"],
    "additionalProperties": False,
}

MIN_WORDS, MAX_WORDS = 5, 60
_WORD = re.compile(r"[^\W_]+")


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def normalize_question(text: str) -> str:
    """Lower-case letters and digits separated by single spaces: the form exact duplicates share."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_WORD.findall(text))


def question_id(field: str, subdomain: str, question: str) -> str:
    return hashlib.sha256(f"{field}|{subdomain}|{normalize_question(question)}".encode()).hexdigest()[:16]


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


@dataclass(frozen=True)
class _Planned:
    subdomain: str
    request: TeacherRequest
    opening: str  # the forced start of a one-by-one answer, "" for lists


def _plan(field: str, subdomains: list[str], n: int, cfg: TeacherSettings) -> list[_Planned]:
    planned = []
    for subdomain in subdomains:
        if cfg.question_strategy == "list":
            for k in range(math.ceil(n / cfg.questions_per_request)):
                count = min(cfg.questions_per_request, n - k * cfg.questions_per_request)
                angle = prompts.QUESTION_ANGLES[k % len(prompts.QUESTION_ANGLES)]
                user = prompts.QUESTION_LIST_USER.format(n=count, subdomain=subdomain, field=field, angle=angle)
                messages = ({"role": "system", "content": prompts.QUESTION_LIST_SYSTEM}, {"role": "user", "content": user})
                request = TeacherRequest(messages, cfg.max_tokens_question, cfg.temperature, cfg.top_p,
                                         stable_seed(field, subdomain, k, cfg.generation_round),
                                         json_schema=QUESTIONS_SCHEMA)
                planned.append(_Planned(subdomain, request, ""))
        else:
            for k in range(n):
                opening = prompts.QUESTION_OPENINGS[k % len(prompts.QUESTION_OPENINGS)]
                topic = prompts.QUESTION_TOPICS[(k // len(prompts.QUESTION_OPENINGS) + k) % len(prompts.QUESTION_TOPICS)]
                user = prompts.QUESTION_ONE_USER.format(topic=topic, subdomain=subdomain)
                messages = ({"role": "system", "content": prompts.QUESTION_ONE_SYSTEM}, {"role": "user", "content": user})
                request = TeacherRequest(messages, cfg.max_tokens_question, cfg.temperature, cfg.top_p,
                                         stable_seed(field, subdomain, k, cfg.generation_round),
                                         assistant_prefix=opening)
                # No trailing space: a prompt ending in a space token derails small models.
                planned.append(_Planned(subdomain, request, opening))
    return planned


def generate_questions(
    teacher: Teacher,
    field: str,
    subdomains: list[str],
    cfg: TeacherSettings,
    questions_per_subdomain: int,
    usage: Usage,
    progress=None,
) -> pd.DataFrame:
    """Ask the teacher for questions on every subdomain; one row per parsed question.

    Responses that yield no question (malformed, refused, cut off) are counted in `usage` as failures
    and never become rows.
    """
    planned = _plan(field, subdomains, questions_per_subdomain, cfg)
    responses = teacher.complete([p.request for p in planned], usage, progress)
    rows = []
    for plan, response in zip(planned, responses, strict=True):
        if isinstance(response, TeacherFailure):
            continue
        if cfg.question_strategy == "list":
            questions = parse_question_list(response.text)
        else:
            one = clean_question(plan.opening + response.text)
            questions = [one] if one else []
        if not questions:
            usage.record_failure("no question in response")
        for q in questions[: questions_per_subdomain]:
            rows.append({
                "question_id": question_id(field, plan.subdomain, q),
                "field": field,
                "subdomain": plan.subdomain,
                "question": q,
                "teacher_model": teacher.model,
                "generation_round": cfg.generation_round,
            })
    columns = ["question_id", "field", "subdomain", "question", "teacher_model", "generation_round"]
    return pd.DataFrame(rows, columns=columns)
