"""LLM-as-judge: the teacher grades each evaluation answer on the 7 sections and feasibility (prompt/parse).

The judge sees the question, the teacher's reference approach (for grounding, not as the only right
answer) and one response, never which model wrote it. It is asked for structured output (a JSON schema);
servers that ignore the schema are read by a fallback parser that accepts JSON anywhere in the text or
'Criterion: 4/5' lines. An answer that still does not give all 8 integer scores on the scale is asked
again, a bounded number of times, with a reminder; after that the judgement is recorded as failed with
its reason. A score is never filled in, clamped or guessed.

Every request goes through the teacher's cache: the key covers the rubric and the response (both in the
messages), the schema and the judge model, so a rerun sends only what has not been answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pandas as pd

from research_tuner.lib.questions import stable_seed
from research_tuner.lib.sections import SECTIONS
from research_tuner.lib.teacher import Teacher, TeacherFailure, TeacherRequest, TeacherResponse, Usage
from research_tuner.settings import JudgeSettings

SCALE_MIN, SCALE_MAX = 0, 5


def _snake(name: str) -> str:
    return re.sub(r"[^a-z]+", "_", name.lower()).strip("_")


#: The 7 sections as criterion keys, then feasibility of the whole approach.
CRITERIA: tuple[str, ...] = tuple(_snake(s) for s in SECTIONS) + ("feasibility",)

_WHAT_EACH_CRITERION_ASKS = {
    "hypothesis": "a clear, testable hypothesis that answers this question",
    "methodology": "a study design that can actually answer the question",
    "key_steps": "concrete steps in a sensible order",
    "data_collection_plan": "which data, from where, how much and how it is collected",
    "data_analysis_plan": "which analyses test the hypothesis, and how",
    "challenges_and_limitations": "the real risks and limits of this study, with mitigations",
    "ethical_considerations": "the ethical issues this study raises and how they are handled",
    "feasibility": "could a research team carry out the whole approach as written, with realistic time, "
    "money and access? Give 0 if the response is not a research approach at all",
}

JUDGE_SYSTEM = (
    "You are a strict, fair reviewer of research proposals. You grade one proposed research approach "
    "against a rubric and answer with JSON only."
)

_SCALE_TEXT = (
    f"Score every criterion with an integer from {SCALE_MIN} to {SCALE_MAX}:\n"
    "0 = missing: the response has no such part or says nothing about it\n"
    "1 = present but wrong, or not about this question\n"
    "2 = vague or generic, with major gaps\n"
    "3 = adequate: sound, with notable gaps\n"
    "4 = good: specific and sound, with minor gaps\n"
    "5 = excellent: specific, sound and complete"
)

RUBRIC = (
    "Grade the RESPONSE, a proposed research approach to the research QUESTION. A REFERENCE approach by an "
    "expert is given for grounding: use it to see what a sound approach to this question needs, not as the "
    "only right answer. A different approach can earn full marks; length alone earns nothing.\n\n"
    + _SCALE_TEXT
    + "\n\nCriteria:\n"
    + "\n".join(f"- {c}: {_WHAT_EACH_CRITERION_ASKS[c]}" for c in CRITERIA)
)

#: Delimiters of the graded text in the prompt (the loopback test server finds the response by them).
RESPONSE_OPEN, RESPONSE_CLOSE = "<response>", "</response>"

RETRY_REMINDER = (
    "Your previous answer could not be read as the JSON object asked for. Answer with that JSON object only: "
    f"a short rationale and all {len(CRITERIA)} integer scores from {SCALE_MIN} to {SCALE_MAX}."
)

JUDGEMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},  # first, so the scores follow from the reasons and not the reverse
        **{c: {"type": "integer", "enum": list(range(SCALE_MIN, SCALE_MAX + 1))} for c in CRITERIA},
    },
    "required": ["rationale", *CRITERIA],
    "additionalProperties": False,
}

SCORE_COLUMNS = [f"judge_{c}" for c in CRITERIA]
JUDGEMENT_COLUMNS = ["question_id", "field", "model", "judge_model", "status", "attempts", "error",
                     *SCORE_COLUMNS, "judge_score", "rationale"]


def judge_messages(question: str, reference: str, response: str, attempt: int = 0) -> tuple[dict[str, str], ...]:
    shape = "{" + ", ".join(['"rationale": "<one or two sentences>"'] + [f'"{c}": <int>' for c in CRITERIA]) + "}"
    user = (
        f"{RUBRIC}\n\n<question>\n{question.strip()}\n</question>\n\n"
        f"<reference_approach>\n{reference.strip()}\n</reference_approach>\n\n"
        f"{RESPONSE_OPEN}\n{response.strip()}\n{RESPONSE_CLOSE}\n\n"
        f"Return a JSON object of the form {shape}."
    )
    if attempt:
        user += "\n\n" + RETRY_REMINDER
    return ({"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user})


def judge_request(row: dict, cfg: JudgeSettings, attempt: int = 0) -> TeacherRequest:
    """Temperature 0: a grade should depend on the answer, not on the draw."""
    return TeacherRequest(
        judge_messages(row["question"], row["reference"], row["response"], attempt),
        max_tokens=cfg.max_tokens,
        temperature=0.0,
        top_p=1.0,
        seed=stable_seed(row["question_id"], row["model"], "judge", attempt),
        json_schema=JUDGEMENT_SCHEMA,
    )


class UnreadableJudgement(ValueError):
    """The judge's answer does not give all the scores on the scale; the message says what is wrong."""


_KEY_ALIASES = {re.sub(r"[^a-z]", "", c): c for c in CRITERIA} | {
    "hypotheses": "hypothesis",
    "steps": "key_steps",
    "datacollection": "data_collection_plan",
    "dataanalysis": "data_analysis_plan",
    "challenges": "challenges_and_limitations",
    "challengeslimitations": "challenges_and_limitations",
    "ethics": "ethical_considerations",
    "ethical": "ethical_considerations",
}

# "Hypothesis: 4", "**Key steps** - 3/5", "3. Data analysis plan = 2 out of 5", "| feasibility | 4 |"
_SCORE_LINE = re.compile(
    r"^[ \t>#*|-]*(?:\d+[.)][ \t]*)?\**[ \t]*(?P<name>[A-Za-z][A-Za-z &/_-]*?)[ \t]*\**[ \t]*"
    r"[:=|\u2013\u2014-]+[ \t]*\**[ \t]*(?P<value>-?\d+(?:\.\d+)?)\b",
    re.MULTILINE,
)


def _criterion(key: str) -> str | None:
    return _KEY_ALIASES.get(re.sub(r"[^a-z]", "", str(key).lower().replace("&", "and")))


def _score(value: object, criterion: str) -> int:
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+|out of \d+)?\s*", value)
        if not match:
            raise UnreadableJudgement(f"{criterion}: {value!r} is not a number")
        value = float(match.group(1))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnreadableJudgement(f"{criterion}: {value!r} is not a number")
    if float(value) != int(value):
        raise UnreadableJudgement(f"{criterion}: {value} is not an integer")
    if not SCALE_MIN <= int(value) <= SCALE_MAX:
        raise UnreadableJudgement(f"{criterion}: {int(value)} is outside {SCALE_MIN}-{SCALE_MAX}")
    return int(value)


def _json_object(text: str) -> dict | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_judgement(text: str) -> tuple[dict[str, int], str]:
    """(criterion -> score, rationale) from a judge's answer; UnreadableJudgement when any score is missing.

    JSON first (anywhere in the text, so code fences and a preamble are fine), then 'Name: score' lines.
    """
    raw: dict[str, object] = {}
    rationale = ""
    data = _json_object(text or "")
    if data is not None:
        flat = {**data, **{k: v for inner in data.values() if isinstance(inner, dict) for k, v in inner.items()}}
        for key, value in flat.items():  # {"scores": {...}} one level down is read too
            if (name := _criterion(key)) and name not in raw:
                raw[name] = value
        rationale = str(data.get("rationale", "") or "")
    if len(raw) < len(CRITERIA):
        for match in _SCORE_LINE.finditer(text or ""):
            if (name := _criterion(match.group("name"))) and name not in raw:
                raw[name] = match.group("value")
    missing = [c for c in CRITERIA if c not in raw]
    if missing:
        raise UnreadableJudgement("no score for " + ", ".join(missing))
    return {c: _score(raw[c], c) for c in CRITERIA}, rationale.strip()


def _problem(response: TeacherResponse | TeacherFailure) -> tuple[str | None, tuple[dict[str, int], str] | None]:
    if isinstance(response, TeacherFailure):
        return f"transport: {response.reason}", None
    if response.finish_reason == "refusal":
        return "refused", None
    try:
        return None, parse_judgement(response.text)
    except UnreadableJudgement as exc:
        cut = " (cut at the token limit)" if response.finish_reason == "length" else ""
        return f"unreadable: {exc}{cut}", None


def empty_judgements() -> pd.DataFrame:
    """The judgements table with no rows: what a partition holds when the judge is off."""
    dtypes = {c: "float64" for c in SCORE_COLUMNS + ["judge_score"]} | {"attempts": "int64"}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in JUDGEMENT_COLUMNS})


def judge_responses(
    teacher: Teacher,
    generations: pd.DataFrame,
    cfg: JudgeSettings,
    usage: Usage,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """One judgement row per evaluation answer: status 'ok' with the 8 scores and their mean (judge_score,
    on the 0-5 scale), or status 'failed' with the reason and no scores."""
    records = generations.to_dict("records")
    if not records:
        return empty_judgements()
    parsed: dict[int, tuple[dict[str, int], str]] = {}
    last_error: dict[int, str] = {}
    attempts: dict[int, int] = {}
    for attempt in range(cfg.max_retries + 1):
        pending = [i for i in range(len(records)) if i not in parsed]
        if not pending:
            break
        if attempt:
            usage.retries += len(pending)
        responses = teacher.complete([judge_request(records[i], cfg, attempt) for i in pending], usage, progress)
        for i, response in zip(pending, responses, strict=True):
            attempts[i] = attempt + 1
            error, result = _problem(response)
            if result is None:
                last_error[i] = error or "unknown"
            else:
                parsed[i] = result
                last_error.pop(i, None)

    rows = []
    for i, record in enumerate(records):
        row = {"question_id": record["question_id"], "field": record["field"], "model": record["model"],
               "judge_model": teacher.model, "attempts": attempts[i]}
        if i in parsed:
            scores, rationale = parsed[i]
            row |= {"status": "ok", "error": "", "rationale": rationale,
                    **{f"judge_{c}": float(v) for c, v in scores.items()},
                    "judge_score": sum(scores.values()) / len(scores)}
        else:
            usage.record_failure("judge " + last_error[i].split(":")[0])
            row |= {"status": "failed", "error": last_error[i], "rationale": "",
                    **{c: float("nan") for c in SCORE_COLUMNS}, "judge_score": float("nan")}
        rows.append(row)
    return pd.DataFrame(rows)[JUDGEMENT_COLUMNS].astype({c: "float64" for c in SCORE_COLUMNS + ["judge_score"]})
